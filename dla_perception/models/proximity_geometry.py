"""Stereo geometry of the proximity pipeline: metres to disparity, the ground surface, the feature shift.

Kept apart from the pipeline so that each piece is a small pure function that tests can check by hand.
Disparities here are in pixels of whatever image the caller says; conversion between the input image and
the network's resolution is the pipeline's job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StereoGeometry:
    """What the pipeline needs of a rectified stereo pair: left intrinsics and the baseline (metres)."""

    fx: float
    fy: float
    cx: float
    cy: float
    baseline_m: float

    @classmethod
    def from_projections(cls, projection_left, projection_right) -> StereoGeometry:
        """From the two 3x4 projection matrices (ROS convention: right P[0,3] = -fx * B).

        ValueError when the matrices are not 3x4, not finite, or give a baseline that is not positive.
        """
        left = _projection(projection_left, "left")
        right = _projection(projection_right, "right")
        fx, fy, cx, cy = left[0, 0], left[1, 1], left[0, 2], left[1, 2]
        if fx <= 0 or fy <= 0:
            raise ValueError(f"left projection has non-positive focal length (fx={fx}, fy={fy})")
        baseline = -right[0, 3] / fx
        if baseline <= 0:
            raise ValueError(
                f"stereo baseline {baseline:g} m (from right P[0,3]={right[0, 3]:g}) is not positive: the "
                "baseline must be positive, with P[0,3] = -fx * baseline (are left and right swapped, or is "
                "this a mono camera_info?)"
            )
        return cls(float(fx), float(fy), float(cx), float(cy), float(baseline))

    def disparity_px(self, distance_m) -> np.ndarray:
        """d = fx * B / Z, in pixels of the image the projection describes."""
        return self.fx * self.baseline_m / np.asarray(distance_m, dtype=np.float64)

    def distance_m(self, disparity_px) -> np.ndarray:
        return self.fx * self.baseline_m / np.asarray(disparity_px, dtype=np.float64)

    def scaled(self, sx: float, sy: float) -> StereoGeometry:
        """The same camera seen through an image resized by (sx, sy), pixel centres kept aligned."""
        return StereoGeometry(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            self.baseline_m,
        )


def _projection(matrix, which: str) -> np.ndarray:
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{which} projection is not numeric: {exc}") from exc
    if array.size == 12:
        array = array.reshape(3, 4)
    if array.shape != (3, 4):
        raise ValueError(f"{which} projection must be 3x4 (or 12 values), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{which} projection has non-finite values")
    return array


def checked_planes(planes_m: Sequence[float]) -> np.ndarray:
    """Plane distances as a sorted, de-duplicated float64 array, or ValueError saying what is wrong."""
    try:
        planes = np.asarray(list(planes_m), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"planes_m must be a sequence of distances in metres: {exc}") from exc
    if planes.ndim != 1 or planes.size == 0:
        raise ValueError("planes_m must hold at least one distance in metres")
    if not np.all(np.isfinite(planes)) or np.any(planes <= 0):
        raise ValueError(f"planes_m must be finite and positive, got {planes.tolist()}")
    return np.unique(planes)


@dataclass(frozen=True)
class GroundModel:
    """A flat floor under a camera at a known height and pitch, for telling obstacles from the floor.

    A pixel counts as an obstacle only when its surface point is more than `clearance_m` above the floor.
    Along a ray that goes down towards the floor, points nearer than the ray's crossing with the plane
    `clearance_m` above the floor are exactly the points higher than that: so the pipeline asks the plane
    head one more question per pixel, with the plane replaced by that raised floor (one disparity per row).

    pitch_rad: positive when the camera looks down. Roll is assumed zero (rows parallel to the floor).
    """

    camera_height_m: float
    pitch_rad: float = 0.0
    clearance_m: float = 0.10

    def __post_init__(self) -> None:
        values = (self.camera_height_m, self.pitch_rad, self.clearance_m)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"ground model values must be finite, got {values}")
        if self.clearance_m < 0 or self.camera_height_m <= self.clearance_m:
            raise ValueError(
                f"need 0 <= clearance_m < camera_height_m, got clearance {self.clearance_m} m, "
                f"height {self.camera_height_m} m"
            )

    def clearance_disparity_px(self, rows: np.ndarray, geometry: StereoGeometry) -> np.ndarray:
        """Disparity of the raised floor at each image row (0 at and above the horizon: nothing below)."""
        rows = np.asarray(rows, dtype=np.float64)
        # Unit "down" in camera coordinates (x right, y down, z forward) is (0, cos p, sin p); a point
        # Z * ((u-cx)/fx, (v-cy)/fy, 1) lies h below the camera when Z * ((v-cy)/fy cos p + sin p) = h.
        downward = (rows - geometry.cy) / geometry.fy * math.cos(self.pitch_rad) + math.sin(self.pitch_rad)
        height = self.camera_height_m - self.clearance_m
        return geometry.fx * geometry.baseline_m * np.maximum(downward, 0.0) / height


def shift_features(right: np.ndarray, shift: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Right features moved right by `shift` feature pixels, linearly interpolated, zero where unseen.

    right [C, h, w]; shift [N, h] (one value per row and plane) -> [N, C, h, w], where output column x holds
    right at column x - shift. Linear interpolation keeps sub-pixel planes distinct (a plane at 1/4 of the
    input resolution moves by a quarter of its input disparity). Same arithmetic as training's
    `shift_features` in training/proximity/network.py. `out` (float32 [N, C, h, w]) is written in place: the
    pipeline shifts straight into the head's input batch, as allocating fresh megabytes costs more here
    than the shifting.
    """
    c, h, w = right.shape
    shift = np.asarray(shift, dtype=np.float32).reshape(-1, h)
    if out is None:
        out = np.empty((shift.shape[0], c, h, w), dtype=np.float32)
    if out.shape != (shift.shape[0], c, h, w) or out.dtype != np.float32:
        want = [shift.shape[0], c, h, w]
        raise ValueError(f"out must be float32 {want}, got {out.dtype} {list(out.shape)}")
    # plane by plane: a fronto-parallel plane is two slices; only a floor-like plane (a shift per row) needs
    # a gather, and gathering a whole mixed batch costs ~5x the planes done one by one
    for plane_shift, plane_out in zip(shift, out, strict=True):
        if np.all(plane_shift == plane_shift[0]):
            _shift_constant(right, float(plane_shift[0]), plane_out)
        else:
            _shift_rows(right, plane_shift, plane_out)
    return out


def _shift_rows(right: np.ndarray, shift: np.ndarray, out: np.ndarray) -> None:
    """shift_features for one plane with a shift per row [h], into out [C, h, w]."""
    h, w = right.shape[1:]
    source = np.arange(w, dtype=np.float32)[None, :] - shift[:, None]  # [h, w]
    left_index = np.floor(source)
    weight = source - left_index
    left_index = left_index.astype(np.int64)
    rows = np.arange(h)[:, None]
    out[...] = 0.0
    for offset, factor in ((0, 1.0 - weight), (1, weight)):
        index = left_index + offset
        seen = np.where((index >= 0) & (index <= w - 1), factor, np.float32(0.0))  # zero beyond the image
        out += right[:, rows, np.clip(index, 0, w - 1)] * seen


def _shift_constant(right: np.ndarray, shift: float, out: np.ndarray) -> None:
    """shift_features for one shift on every row, into out [C, h, w]: (1 - f) * right moved by k + f *
    right moved by k + 1."""
    whole = math.floor(shift)
    fraction = np.float32(shift - whole)
    out[...] = 0.0
    for offset, factor in ((whole, 1.0 - fraction), (whole + 1, fraction)):
        if factor == 0 or abs(offset) >= right.shape[2]:
            continue
        if offset >= 0:
            out[:, :, offset:] += factor * right[:, :, : right.shape[2] - offset]
        else:
            out[:, :, :offset] += factor * right[:, :, -offset:]
