"""What a street scene is made of (surfaces, solids, facades, light) and what one view of it saw.

World frame: x right, y down, z forward; the ground is y = 0 (render.py casts the rays).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NEAR_M = 0.05  # hits nearer than this are ignored (the camera is never inside what it sees)


@dataclass
class Surface:
    """How a surface looks: an atlas tile, its scale on the surface, a colour tint; which object it is."""

    tile: int
    texels_per_m: float
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    object_index: int = -1  # index into Scene.objects, -1 for background
    detail: float = 0.2  # strength of the fine grain laid over the texture (0 = none)


BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)


@dataclass
class Solid:
    """A unit cube |x|,|y|,|z| <= 1, cylinder x^2 + z^2 <= 1, |y| <= 1, or unit sphere, scaled by
    half_extents, turned by yaw about the vertical axis and moved to center (world metres)."""

    shape: str  # "box" | "cylinder" | "sphere"
    center: np.ndarray
    half_extents: np.ndarray
    yaw: float
    surface: int

    def __post_init__(self) -> None:
        if self.shape not in ("box", "cylinder", "sphere"):
            raise ValueError(f"unknown solid shape {self.shape!r}")
        self.center = np.asarray(self.center, np.float64)
        self.half_extents = np.asarray(self.half_extents, np.float64)
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        # world -> local rotation about y, then scale to the unit shape
        rotation = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        self.to_local = rotation / self.half_extents[:, None]
        self.to_world = rotation.T * self.half_extents  # the inverse: a rotation's is its transpose
        self._corners = self.center + BOX_CORNERS @ self.to_world.T

    def corners(self) -> np.ndarray:
        """The 8 corners of the bounding box, 8x3 world metres."""
        return self._corners


@dataclass
class Facade:
    """The vertical plane x = x_m (a street side), in segments along z with their own height and surface."""

    x_m: float
    z_edges: np.ndarray  # ascending, len(segments) + 1
    heights_m: np.ndarray
    surfaces: np.ndarray  # int, per segment


@dataclass
class Scene:
    """Everything a view needs: geometry, surfaces, light. Obstacles are `objects` of one or more solids."""

    surfaces: list[Surface]
    ground_bands: list[tuple[float, float, int]]  # (x_min, x_max, surface); the first is the default
    facades: list[Facade]
    far_wall: tuple[float, int] | None  # (z, surface) or None for open sky
    solids: list[Solid]
    sun: np.ndarray  # unit vector towards the sun (y < 0)
    ambient: float
    sun_strength: float
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    sky_tile: int
    haze_m: float
    # per obstacle: {"label", "class_id", "solids": [indices into solids], "velocity": m/s or None}
    objects: list[dict] = field(default_factory=list)


@dataclass
class ViewBuffers:
    """What a view saw, per pixel: depth Z (inf = sky), surface index (-1 = sky), surface coordinates (m),
    light (ambient + sun), incidence (for texture filtering), the ray directions."""

    depth: np.ndarray
    surface: np.ndarray
    u: np.ndarray
    v: np.ndarray
    light: np.ndarray
    cosine: np.ndarray  # |normal . ray| with the ray of camera-frame z = 1 (not normalised)
    directions: tuple[np.ndarray, np.ndarray, np.ndarray]
    coverage: dict[int, tuple[tuple[slice, slice], np.ndarray]] = field(default_factory=dict)
    """Per solid index: (window, mask of its own hits there), before occlusion by anything else."""
