"""Image -> network input tensor (resize, pad, colour order, normalisation) and boxes back to image pixels.

The mapping between input-image pixels and network pixels is kept as one affine transform per axis
(`net = image * scale + pad`), computed from the sizes actually produced by the resize, so that boxes
go back to the input image exactly (no accumulated rounding from a nominal ratio).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dla_perception.models.detection_description import RESIZE_MODES, InputDescription
from dla_perception.models.image import to_bgr, to_rgb


@dataclass(frozen=True)
class ImageTransform:
    """Affine map from input-image pixels to network-input pixels, per axis: net = image * scale + pad."""

    image_width: int
    image_height: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_width: int
    resized_height: int

    def to_network(self, boxes: np.ndarray) -> np.ndarray:
        """[N, 4] x1,y1,x2,y2 image pixels -> network pixels."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float64)
        return boxes * scale + pad

    def to_image(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """[N, 4] x1,y1,x2,y2 network pixels -> image pixels, clipped to the image by default."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float64)
        mapped = (boxes - pad) / scale
        if clip:
            limits = np.array([self.image_width, self.image_height, self.image_width, self.image_height])
            mapped = np.clip(mapped, 0.0, limits)
        return mapped


def plan_resize(image_width: int, image_height: int, net_width: int, net_height: int,
                mode: str) -> ImageTransform:
    """Where an image of the given size lands in the network input for a resize mode."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {list(RESIZE_MODES)}")
    if image_width <= 0 or image_height <= 0:
        raise ValueError(f"image size must be positive, got {image_width}x{image_height}")
    if mode == "stretch":
        resized_width, resized_height = net_width, net_height
    else:
        ratio = min(net_width / image_width, net_height / image_height)
        resized_width = min(net_width, max(1, round(image_width * ratio)))
        resized_height = min(net_height, max(1, round(image_height * ratio)))
    pad_x = pad_y = 0
    if mode == "letterbox_center":
        pad_x = (net_width - resized_width) // 2
        pad_y = (net_height - resized_height) // 2
    return ImageTransform(
        image_width=image_width,
        image_height=image_height,
        scale_x=resized_width / image_width,
        scale_y=resized_height / image_height,
        pad_x=pad_x,
        pad_y=pad_y,
        resized_width=resized_width,
        resized_height=resized_height,
    )


def resize_image(image: np.ndarray, spec: InputDescription) -> tuple[np.ndarray, ImageTransform]:
    """HxWx3 uint8 -> net_h x net_w x 3 uint8 placed per the resize mode, padded with pad_value."""
    import cv2

    height, width = image.shape[:2]
    transform = plan_resize(width, height, spec.width, spec.height, spec.resize)
    size = (transform.resized_width, transform.resized_height)
    resized = image if size == (width, height) else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if size == (spec.width, spec.height):
        return np.ascontiguousarray(resized), transform
    pad_value = int(np.clip(round(spec.pad_value), 0, 255))
    canvas = np.full((spec.height, spec.width, 3), pad_value, dtype=np.uint8)
    y, x = transform.pad_y, transform.pad_x
    canvas[y:y + transform.resized_height, x:x + transform.resized_width] = resized
    return canvas, transform


def preprocess(image: np.ndarray, encoding: str, spec: InputDescription) -> tuple[np.ndarray, ImageTransform]:
    """An rgb8/bgr8/mono8 image -> [1, 3, H, W] float32 network input and its image transform.

    Value fed to the network = (pixel * scale - mean) / std per channel, channels in spec.color order.
    """
    ordered = to_bgr(image, encoding) if spec.color == "bgr" else to_rgb(image, encoding)
    placed, transform = resize_image(ordered, spec)
    tensor = placed.astype(np.float32)
    if spec.scale != 1.0:
        tensor *= np.float32(spec.scale)
    if any(spec.mean):
        tensor -= np.asarray(spec.mean, dtype=np.float32)
    if any(s != 1.0 for s in spec.std):
        tensor /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None]), transform
