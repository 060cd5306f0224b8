"""What a caller may ask of a generated street scene: the obstacle classes, obstacles planted at known places,
and the knobs of generation (SceneOptions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBSTACLE_CLASSES: tuple[str, ...] = ("box", "post", "bin", "person")


@dataclass(frozen=True)
class PlantedObject:
    """An obstacle placed at a known position relative to the camera's start, for tests and demos.

    distance_m is the distance along the camera's forward direction (on the ground) from the camera to the
    object's nearest face; lateral_m is to the right of the camera. With pitch_deg=0 and yaw_deg=0 a planted
    box's front face is fronto-parallel, so its depth is exactly distance_m everywhere on the face.
    size_m (width, height, depth) defaults to a typical size of the class.
    """

    label: str
    distance_m: float
    lateral_m: float = 0.0
    size_m: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.label not in OBSTACLE_CLASSES:
            raise ValueError(f"unknown obstacle class {self.label!r}; known: {', '.join(OBSTACLE_CLASSES)}")
        if not (np.isfinite(self.distance_m) and self.distance_m > 0):
            raise ValueError(f"distance_m must be positive and finite, got {self.distance_m}")


@dataclass(frozen=True)
class SceneOptions:
    """Knobs of scene generation. None means: drawn at random from the seed."""

    camera_height_m: float | None = None
    pitch_deg: float | None = None
    yaw_deg: float | None = None
    planted: tuple[PlantedObject, ...] = ()
    clutter: bool = True  # random obstacles besides the planted ones
    min_distance_m: float = 0.5
    max_distance_m: float = 15.0
    photometric: bool = True  # exposure/white balance/vignetting/blur/noise; False = the clean render
    speed_mps: float = 1.0  # sequences: forward speed of the camera
    rate_hz: float = 10.0  # sequences: frames per second
    texture_size: int | None = None  # texels per tile side; None: 256 for images >= 480 px wide, else 128
