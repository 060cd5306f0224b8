"""Image encodings shared by the pipelines: ROS `sensor_msgs/Image` encodings to RGB or BGR arrays.

Pipelines accept whatever the camera publishes (rgb8, bgr8, mono8) and convert once, here, so that every
network sees the colour order its model description asks for.
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("rgb8", "bgr8", "mono8")


def _checked(array: np.ndarray, encoding: str) -> np.ndarray:
    """The array as uint8 HxW (mono8) or HxWx3, or ValueError saying what is wrong with it."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{encoding} image must be uint8, got {array.dtype}")
    if encoding == "mono8":
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim != 2:
            raise ValueError(f"mono8 image must be HxW (or HxWx1), got shape {array.shape}")
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{encoding} image must be HxWx3, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image is empty (shape {array.shape})")
    return array


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """HxWx3 uint8 RGB from an rgb8, bgr8 or mono8 array (a view when no conversion is needed)."""
    array = _checked(array, encoding)
    if encoding == "rgb8":
        return array
    if encoding == "bgr8":
        return array[:, :, ::-1]
    return np.repeat(array[:, :, None], 3, axis=2)


def to_bgr(array: np.ndarray, encoding: str) -> np.ndarray:
    """HxWx3 uint8 BGR from an rgb8, bgr8 or mono8 array (a view when no conversion is needed)."""
    array = _checked(array, encoding)
    if encoding == "bgr8":
        return array
    if encoding == "rgb8":
        return array[:, :, ::-1]
    return np.repeat(array[:, :, None], 3, axis=2)
