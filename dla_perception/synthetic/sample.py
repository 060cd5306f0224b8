"""What every scene family returns: a rectified stereo pair with the ground truth of both views.

The street generator (scene.py) has its own richer `StereoFrame`; the families made for training and
evaluating the proximity network (families.py, heldout.py) return this smaller record, which also holds the
right view's disparity: with it a pair can be mirrored with the views swapped (the mirrored right image
becomes the left one) and still have exact ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dla_perception.synthetic.camera import StereoCamera


@dataclass
class StereoSample:
    """left/right: HxWx3 uint8 RGB. disparity: HxW float32 px of the left view, 0 = unknown (nothing there,
    or not seen by the right camera; rendered with keep_out_of_view, only occluded pixels are unknown, not
    those whose match lies outside the right image); right_disparity: the same for the right view (its
    pixel x sees the surface that the left view sees at x + d)."""

    family: str
    seed: int
    camera: StereoCamera
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    right_disparity: np.ndarray

    def upside_down(self) -> StereoSample:
        """Both views flipped top to bottom: still a rectified pair (rows stay rows, the right camera stays on
        the right), with the ground truth flipped likewise."""
        return StereoSample(
            self.family,
            self.seed,
            self.camera,
            self.left[::-1].copy(),
            self.right[::-1].copy(),
            self.disparity[::-1].copy(),
            self.right_disparity[::-1].copy(),
        )

    def mirrored(self) -> StereoSample:
        """Both views mirrored left to right and swapped: the mirrored right view is the new left view, which
        again sees everything shifted right in the new right view. Ground truth swaps likewise."""
        return StereoSample(
            self.family,
            self.seed,
            self.camera,
            self.right[:, ::-1].copy(),
            self.left[:, ::-1].copy(),
            self.right_disparity[:, ::-1].copy(),
            self.disparity[:, ::-1].copy(),
        )


def visible_disparities(
    left_depth: np.ndarray, right_depth: np.ndarray, fx_baseline: float, keep_out_of_view: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) disparity fx*B/Z where the other view sees the same surface point, else 0.

    A left pixel at x with disparity d is seen by the right view at x - d unless the right view's surface
    there is nearer (its disparity, interpolated along the row, is larger by more than 1 % + 0.05 px);
    likewise for right pixels at x + d. Depth inf (nothing hit) gives disparity 0. keep_out_of_view also
    keeps the pixels whose match falls outside the other image (the left view's left band, the right
    view's right band): their disparity is exact, only the other view cannot confirm it, and a network
    should still answer there (a robot's obstacle at the image's edge); occluded pixels stay 0.
    """
    left, right = _disparity(left_depth, fx_baseline), _disparity(right_depth, fx_baseline)
    seen_left, seen_right = _occluded_to_zero(left, right, -1.0), _occluded_to_zero(right, left, 1.0)
    if keep_out_of_view:
        seen_left = np.where(_out_of_view(left, -1.0), left, seen_left)
        seen_right = np.where(_out_of_view(right, 1.0), right, seen_right)
    return seen_left, seen_right


def _disparity(depth: np.ndarray, fx_baseline: float) -> np.ndarray:
    """fx*B/Z, 0 where nothing was hit (depth inf)."""
    with np.errstate(divide="ignore"):
        disparity = (np.float32(fx_baseline) / depth.astype(np.float32)).astype(np.float32)
    disparity[~np.isfinite(disparity)] = 0.0
    return disparity


def _match_columns(own: np.ndarray, direction: float) -> np.ndarray:
    return np.arange(own.shape[1], dtype=np.float32)[None, :] + np.float32(direction) * own


def _out_of_view(own: np.ndarray, direction: float) -> np.ndarray:
    columns = _match_columns(own, direction)
    return (own > 0) & ((columns < 0) | (columns > own.shape[1] - 1))


def out_of_view_disparity(depth: np.ndarray, fx_baseline: float, direction: float = -1.0) -> np.ndarray:
    """fx*B/Z of the pixels whose match (at x + direction * d) falls outside the other image, else 0:
    what keep_out_of_view adds, for a renderer that gives the visible disparity and the depth."""
    own = _disparity(depth, fx_baseline)
    return np.where(_out_of_view(own, direction), own, np.float32(0.0)).astype(np.float32)


def with_out_of_view(visible: np.ndarray, depth: np.ndarray, fx_baseline: float) -> np.ndarray:
    """A left view's visible disparity (0 unknown) with the band beyond the right image filled in."""
    return np.where(visible > 0, visible, out_of_view_disparity(depth, fx_baseline))


def _occluded_to_zero(own: np.ndarray, other: np.ndarray, direction: float) -> np.ndarray:
    import cv2

    height, width = own.shape
    columns = _match_columns(own, direction)
    rows = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    seen = cv2.remap(other, columns, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    visible = (own > 0) & (columns >= 0) & (columns <= width - 1) & (seen <= own * 1.01 + 0.05)
    return np.where(visible, own, np.float32(0.0)).astype(np.float32)
