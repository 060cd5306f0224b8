"""Camera and output images of a bag as numpy arrays: the replay's one decoding function.

Everything the replay reads from an image message (ground truth, level images, masks, report pictures)
goes through `decode_image`, so one change here moves the whole replay to another decoder.
"""

from __future__ import annotations

import numpy as np


class ImageError(ValueError):
    """An image message that cannot be decoded (unknown encoding, data shorter than its step says)."""


def decode_image(image: object, encoding: str | None = None) -> np.ndarray:
    """The pixels of a sensor_msgs/Image (rosbags or rclpy object); `encoding` converts, e.g. "rgb8".

    Without `encoding`, the stored layout is kept (32FC1 stays float32, mono8 uint8, bgr8 three channels).
    A camera image to "rgb8" is decoded as the nodes decode it (dla_perception.models.image_decode: every
    driver encoding, 16-bit scaled to 8, CompressedImage too).
    """
    from rosbags.image import message_to_cvimage

    if encoding == "rgb8":
        from dla_perception.models.image_decode import BadInput, decode_any

        try:
            return decode_any(image)
        except BadInput as exc:
            raise ImageError(str(exc)) from exc

    try:
        pixels = message_to_cvimage(image, encoding) if encoding else message_to_cvimage(image)
    except Exception as exc:  # the library raises several types; all mean "this image is malformed"
        raise ImageError(f"cannot decode a {getattr(image, 'encoding', '?')} image "
                         f"{getattr(image, 'width', '?')}x{getattr(image, 'height', '?')}: {exc}") from exc
    return np.ascontiguousarray(pixels)
