"""Camera messages to RGB without ROS: every encoding a camera driver sends, raw or compressed.

Works on anything shaped like `sensor_msgs/Image` or `sensor_msgs/CompressedImage` (rclpy messages,
rosbags messages, SimpleNamespace), so the nodes and the replay decode with the same code. The pixel
conversions are rosbags-image's (OpenCV underneath: demosaicing, YUV 4:2:2, 16 to 8 bit), the compressed
formats OpenCV's `imdecode`; what is here is the validation a driver's mistake needs before numpy or OpenCV
would fail deep inside a pipeline, raised as `BadInput` with a short `kind` for diagnostics counters.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

DEFAULT_MAX_IMAGE_SIDE = 8192  # DLA's own limit on any non-batch dimension

# encoding -> (bytes per pixel, the name rosbags-image converts from). 16UC1 is mono16 by another name
# (image_transport and many drivers use it); 16-bit inputs are scaled to 8 bit (value * 255 / 65535), as
# cv_bridge does. yuv422 is UYVY and yuv422_yuy2 is YUYV (the ROS definitions).
ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb8"), "bgr8": (3, "bgr8"), "rgba8": (4, "rgba8"), "bgra8": (4, "bgra8"),
    "mono8": (1, "mono8"), "8UC1": (1, "mono8"),
    "mono16": (2, "mono16"), "16UC1": (2, "mono16"),
    "yuv422": (2, "uyvy"), "uyvy": (2, "uyvy"), "yuv422_yuy2": (2, "yuyv"), "yuyv": (2, "yuyv"),
    "bayer_rggb8": (1, "bayer_rggb8"), "bayer_bggr8": (1, "bayer_bggr8"),
    "bayer_gbrg8": (1, "bayer_gbrg8"), "bayer_grbg8": (1, "bayer_grbg8"),
    "bayer_rggb16": (2, "bayer_rggb16"), "bayer_bggr16": (2, "bayer_bggr16"),
    "bayer_gbrg16": (2, "bayer_gbrg16"), "bayer_grbg16": (2, "bayer_grbg16"),
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)
_PAIRED_COLUMNS = {"uyvy", "yuyv"}  # 4:2:2 shares chroma between two pixels: the width must be even
COMPRESSED_FORMATS = ("jpeg", "png")


class BadInput(ValueError):
    """A message the node rejects. `kind` is a stable short name used as a diagnostics counter key."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _check_dimensions(height: int, width: int, max_side: int) -> None:
    if height <= 0 or width <= 0:
        raise BadInput("empty", f"image is empty ({width}x{height})")
    if height > max_side or width > max_side:
        raise BadInput("size", f"image {width}x{height} exceeds the limit of {max_side} pixels per side")


def image_pixels(msg: Any, max_side: int = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """sensor_msgs/Image -> its pixels as numpy (HxW or HxWxC, the message's own layout, padding stripped).

    Validates encoding, dimensions, step (row padding is allowed) and data length.
    """
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise BadInput("encoding", f"unsupported encoding {encoding!r} (supported: "
                       f"{', '.join(SUPPORTED_ENCODINGS)}; compressed inputs: image_transport compressed)")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_dimensions(height, width, max_side)
    pixel_bytes, source = ENCODINGS[encoding]
    if source in _PAIRED_COLUMNS and width % 2:
        raise BadInput("size", f"{encoding} needs an even width (two pixels share their chroma), got {width}")
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise BadInput("step", f"step {step} is smaller than width * bytes per pixel = {row_bytes} "
                       f"for {encoding}")
    if step > 2 * row_bytes + 64:
        raise BadInput("step", f"step {step} is implausible for {width} {encoding} pixels ({row_bytes} B)")
    data = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)
    expected = step * height
    if data.size != expected:
        relation = "fewer" if data.size < expected else "more"
        raise BadInput("truncated", f"image data has {data.size} bytes, {relation} than "
                       f"step*height = {expected}")
    from rosbags.image import image_to_cvimage

    rows = data.reshape(height, step)[:, :row_bytes]
    compact = SimpleNamespace(encoding=source, height=height, width=width, is_bigendian=int(msg.is_bigendian),
                              step=row_bytes, data=np.ascontiguousarray(rows).reshape(-1))
    return np.asarray(image_to_cvimage(compact))


def decode_image(msg: Any, max_side: int = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """sensor_msgs/Image in any supported encoding -> HxWx3 uint8 RGB (may share the message's memory)."""
    from rosbags.image.image import convert_color

    pixels = image_pixels(msg, max_side)
    source = ENCODINGS[str(msg.encoding)][1]
    try:
        rgb = convert_color(pixels, source, "rgb8")
    except Exception as exc:  # rosbags' ImageError, or cv2.error on a shape OpenCV refuses
        raise BadInput("encoding", f"cannot convert {msg.encoding} {msg.width}x{msg.height} "
                       f"to rgb8: {exc}") from exc
    return np.ascontiguousarray(rgb)


def decode_compressed(msg: Any, max_side: int = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png, what image_transport's `compressed` plugin sends) -> RGB.

    `format` is image_transport's ("rgb8; jpeg compressed bgr8", "mono8; png compressed") or bare ("jpeg");
    the colour order comes from the compressed data itself, which OpenCV decodes to BGR or grey.
    compressedDepth (a 16-bit depth PNG behind a private header) is not a camera image and is refused.
    """
    import cv2

    text = str(msg.format).lower()
    if "compresseddepth" in text:
        raise BadInput("encoding", f"compressedDepth ({msg.format!r}) is a depth map, not a camera image")
    data = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)
    if data.size == 0:
        raise BadInput("empty", "compressed image has no data")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)
    if decoded is None:
        raise BadInput("corrupt", f"compressed image ({msg.format!r}, {data.size} bytes) does not decode "
                       f"as {' or '.join(COMPRESSED_FORMATS)}")
    _check_dimensions(decoded.shape[0], decoded.shape[1], max_side)
    return decoded


def decode_any(msg: Any, max_side: int = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """Image or CompressedImage (told apart by the `format` field) -> HxWx3 uint8 RGB: the replay's entry."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return decode_compressed(msg, max_side)
    return decode_image(msg, max_side)
