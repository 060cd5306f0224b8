"""What every training family builds its scenes with: the camera rig drawn from the seed, materials,
lights, the floor and the clearance test (family_scenes.py builds the scenes, families.py renders them)."""

from __future__ import annotations

import math

import numpy as np

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.patterns import PATTERN_KINDS, VARIANTS
from dla_perception.synthetic.primitives import Lights, Material, Shape, rotation_matrix

_FLOOR = rotation_matrix(pitch=-math.pi / 2)  # local +z (a quad's normal) -> world up (-y)


class Rig:
    """A stereo camera and its pose: left optical centre height_m above the floor, pitch (> 0 down), roll."""

    def __init__(
        self,
        camera: StereoCamera,
        height_m: float,
        pitch: float,
        roll: float,
        yaw: float = 0.0,
        lateral_m: float = 0.0,
    ) -> None:
        self.camera, self.height_m, self.pitch, self.roll, self.yaw = camera, height_m, pitch, roll, yaw
        self.rotation = rotation_matrix(yaw, pitch, roll)
        self.left = np.array([lateral_m, -height_m, 0.0])
        self.right = self.left + camera.baseline_m * self.rotation[:, 0]
        self.middle = 0.5 * (self.left + self.right)

    def point(self, u: float, v: float, depth: float) -> np.ndarray:
        """World point seen by the left camera at pixel (u, v), `depth` metres along its optical axis."""
        c = self.camera
        return self.left + self.rotation @ np.array(
            [(u - c.cx) / c.fx * depth, (v - c.cy) / c.fy * depth, depth]
        )


def random_rig(rng: np.random.Generator, height_range=(0.2, 1.5)) -> Rig:
    width = int(rng.choice([320, 320, 384, 424, 480, 512, 640, 752]))
    aspect = float(rng.choice([4 / 3, 4 / 3, 16 / 9, 16 / 10, 5 / 4, 3 / 2]))
    height = 2 * round(width / aspect / 2)
    fov = math.radians(rng.uniform(50.0, 105.0))
    fx = (width / 2) / math.tan(fov / 2)
    camera = StereoCamera(
        width,
        height,
        fx,
        fx,
        (width - 1) / 2 + rng.uniform(-0.03, 0.03) * width,
        (height - 1) / 2 + rng.uniform(-0.03, 0.03) * height,
        float(math.exp(rng.uniform(math.log(0.04), math.log(0.30)))),
    )
    pitch = math.radians(rng.uniform(-10.0, 20.0))
    roll = math.radians(float(np.clip(rng.normal(0.0, 4.0), -10.0, 10.0)))
    return Rig(camera, float(rng.uniform(*height_range)), pitch, roll)


# -- materials and lights shared by the families -----------------------------------------------------------
_KIND_WEIGHTS = {
    "dead_leaves": 3,
    "spectral": 3,
    "grating": 1,
    "tiles": 1.5,
    "checker": 0.7,
    "dots": 1,
    "cells": 1.2,
    "glyphs": 1,
    "scratches": 1,
    "weave": 1,
    "gradient": 0.8,
    "flat": 0.8,
}


def random_material(
    rng: np.random.Generator,
    kinds: tuple[str, ...] | None = None,
    tile_m=(0.05, 8.0),
    gloss: float = 0.35,
    glow: float = 0.0,
) -> Material:
    """A pattern of `kinds` (default: all, weighted) whose 256-texel tile spans tile_m metres (log-uniform).
    """
    kinds = kinds or PATTERN_KINDS
    weights = np.array([_KIND_WEIGHTS[k] for k in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    size_m = math.exp(rng.uniform(math.log(tile_m[0]), math.log(tile_m[1])))
    tint = np.clip(rng.uniform(0.4, 1.15, 3) * rng.uniform(0.6, 1.2), 0.05, 1.3)
    contrast = 0.06 if rng.random() < 0.06 else math.exp(rng.uniform(math.log(0.4), math.log(1.8)))
    shiny = rng.random() < gloss
    return Material(
        pattern=(kind, int(rng.integers(VARIANTS))),
        texels_per_m=256.0 / size_m,
        angle=float(rng.uniform(0, 2 * math.pi)),
        offset=(float(rng.uniform(0, 256)), float(rng.uniform(0, 256))),
        tint=tuple(float(t) for t in tint),
        contrast=float(contrast),
        gloss=float(rng.uniform(0.1, 1.5)) if shiny else 0.0,
        shininess=float(math.exp(rng.uniform(math.log(8), math.log(300)))),
        glow=glow,
    )


def random_lights(rng: np.random.Generator, rig: Rig, outdoor: bool, shapes: int) -> Lights:
    white = rng.uniform(0.85, 1.15, 3)
    ambient = tuple(float(a) for a in rng.uniform(0.08, 0.6) * white)
    lights = Lights(ambient=ambient, background=tuple(float(b) for b in rng.uniform(0.3, 1.0, 3)))
    if outdoor and rng.random() < 0.8:
        elevation, azimuth = rng.uniform(0.15, 1.4), rng.uniform(0, 2 * math.pi)
        lights.sun_direction = np.array(
            [
                math.cos(elevation) * math.sin(azimuth),
                -math.sin(elevation),
                math.cos(elevation) * math.cos(azimuth),
            ]
        )
        lights.sun = tuple(float(s) for s in rng.uniform(0.4, 2.5) * rng.uniform(0.85, 1.15, 3))
        lights.shadows = bool(rng.random() < 0.5 and shapes <= 40)
    for _ in range(int(rng.integers(0, 3 if outdoor else 1))):
        position = rig.point(
            rng.uniform(-0.3, 1.3) * rig.camera.width,
            rng.uniform(-0.5, 0.6) * rig.camera.height,
            math.exp(rng.uniform(math.log(0.5), math.log(15))),
        )
        lights.lamps.append(
            (position, tuple(float(p) for p in rng.uniform(0.3, 6.0) * rng.uniform(0.8, 1.2, 3)))
        )
    return lights


def floor_shape(material: int) -> Shape:
    return Shape("quad", np.zeros(3), _FLOOR, (math.inf, math.inf, 0.0), material)


def free_of_rig(shape: Shape, rig: Rig, margin: float = 0.1) -> bool:
    """Whether the shape's bounding sphere keeps clear of both optical centres."""
    reach = shape.bounding_radius() + margin
    return all(np.linalg.norm(shape.centre - o) > reach for o in (rig.left, rig.right))
