"""The rectified pinhole stereo camera the synthetic scenes are rendered with.

Both views share the intrinsics and orientation; the right camera sits `baseline_m` to the right of the left
one. That is exactly what a rectified stereo pair is, so disparity is d = fx * B / Z with no residual error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class StereoCamera:
    """Intrinsics in pixels of the (rectified) left and right views; the baseline in metres.

    The defaults are a 640x480 camera with a ~69 degree horizontal field of view, a typical robot stereo
    head. Use `scaled` to get the same field of view at another resolution (training uses small ones).
    """

    width: int = 640
    height: int = 480
    fx: float = 460.0
    fy: float = 460.0
    cx: float = 319.5
    cy: float = 239.5
    baseline_m: float = 0.12

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"image size {self.width}x{self.height} is too small (8x8 at least)")
        values = (self.fx, self.fy, self.cx, self.cy, self.baseline_m)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f"camera parameters must be finite, got {values}")
        if self.fx <= 0 or self.fy <= 0 or self.baseline_m <= 0:
            raise ValueError("fx, fy and baseline_m must be positive")

    def scaled(self, width: int, height: int) -> StereoCamera:
        """The same camera at another resolution: focal lengths and principal point scale with the size."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            width=int(width),
            height=int(height),
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
        )

    def intrinsics(self) -> np.ndarray:
        """K, 3x3 float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def projection_left(self) -> np.ndarray:
        """P of the left view, 3x4 float64: [K | 0]."""
        return np.hstack([self.intrinsics(), np.zeros((3, 1))])

    def projection_right(self) -> np.ndarray:
        """P of the right view, 3x4 float64, ROS convention: P[0, 3] = -fx * B."""
        projection = self.projection_left()
        projection[0, 3] = -self.fx * self.baseline_m
        return projection

    def disparity_px(self, depth_m: np.ndarray | float) -> np.ndarray | float:
        """Disparity in pixels of a point at depth Z (metres along the optical axis): fx * B / Z."""
        return _inverse(self.fx * self.baseline_m, depth_m)

    def depth_m(self, disparity_px: np.ndarray | float) -> np.ndarray | float:
        """Depth in metres of a disparity in pixels: fx * B / d (inf where d = 0)."""
        return _inverse(self.fx * self.baseline_m, disparity_px)


def _inverse(numerator: float, value: np.ndarray | float) -> np.ndarray | float:
    """numerator / value, elementwise, inf at 0; a float for a scalar, float64 array otherwise."""
    with np.errstate(divide="ignore"):
        result = numerator / np.asarray(value, dtype=np.float64)
    return float(result) if result.ndim == 0 else result
