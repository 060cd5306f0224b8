"""Scene families for training the proximity network on stereo rather than on one renderer's look.

    from dla_perception.synthetic.families import FAMILIES, family_sample
    sample = family_sample("flying", seed=7)     # a StereoSample: both views and both views' disparity

Three families that share nothing with the street scenes (scene.py), each with its own camera drawn from the
seed (`random_rig`: 320-752 px wide at 4:3 to 16:9, 50-105 degrees across, baseline 4-30 cm, 0.2-1.5 m
above the floor, pitch -10..20 and roll -10..10 degrees):

- `flying`: FlyingThings-style boxes, spheres, cylinders, rods and plates of random size and rotation
  floating anywhere from 0.25 to 25 m, before a far slanted wall, inside a room or under an empty sky; a
  floor in half the scenes; sun with or without cast shadows, lamps, glossy highlights.
- `indoor`: corridors and halls: floor, walls, ceiling, doors, pillars, furniture, ceiling lamps that glow
  (bloom, glare) over glossy floors; walls with little texture (paint) or repetitive texture (tiles).
- `thin`: fences, railings, poles, wires, meshes, tables and branching trees before a far wall or sky.

Patterns come from patterns.py (every kind at every scale), rendering from primitives.py. Ground truth is
exact for both views (`visible_disparities`); the empty sky is labelled as infinitely far (disparity 1e-3,
known) where both views see it. Photometric differences between the views (gain, offset, gamma, white
balance, blur, noise, vignetting, rectification error) are drawn per training sample by the training code.
Everything derives from `numpy.random.SeedSequence([salt, family, seed])`.
"""

from __future__ import annotations

import cv2
import numpy as np

from dla_perception.synthetic import family_scenes
from dla_perception.synthetic.family_kit import Rig, random_rig
from dla_perception.synthetic.primitives import (
    PrimitiveScene,
    cast,
    shade,
)
from dla_perception.synthetic.sample import StereoSample, visible_disparities

FAMILIES: tuple[str, ...] = ("flying", "indoor", "thin")
SKY_DISPARITY = 1e-3  # "infinitely far", known: nearer than no plane
_SALT = 0x5EED20


def family_sample(family: str, seed: int, keep_out_of_view: bool = False) -> StereoSample:
    """One scene of `family` (one of FAMILIES) with its own camera, rendered from both views.
    keep_out_of_view: see `visible_disparities` (training labels the image edge's band too)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng(np.random.SeedSequence([_SALT, FAMILIES.index(family), int(seed)]))
    rig = random_rig(rng)
    scene = getattr(family_scenes, f"build_{family}")(rng, rig)
    return render(scene, rig, rng, family, int(seed), keep_out_of_view)


def render(
    scene: PrimitiveScene,
    rig: Rig,
    rng: np.random.Generator,
    family: str = "",
    seed: int = 0,
    keep_out_of_view: bool = False,
) -> StereoSample:
    """Both views of `scene` through `rig`: shaded, bloomed, exposed together, 8-bit sRGB-like."""
    c = rig.camera
    views, depths, skies = [], [], []
    for origin in (rig.left, rig.right):
        depth, owner, rays = cast(scene, origin, rig.rotation, c.fx, c.fy, c.cx, c.cy, c.width, c.height)
        radiance = shade(scene, origin, rig.middle, depth, owner, rays, c.fx)
        sky = owner < 0
        if np.any(sky):
            radiance[sky] = _sky(rays[sky], scene.lights.background)
        views.append(radiance)
        depths.append(depth)
        skies.append(sky)
    left_d, right_d = visible_disparities(depths[0], depths[1], c.fx * c.baseline_m, keep_out_of_view)
    both_sky = skies[0] & skies[1]
    left_d[both_sky] = right_d[both_sky] = SKY_DISPARITY
    key = rng.uniform(0.55, 1.0) / max(float(np.percentile(views[0], 97)), 1e-4)  # shared auto exposure
    bloom_sigma = rng.uniform(0.005, 0.03) * c.width
    images = []
    for radiance in views:
        exposed = radiance * key
        glare = np.maximum(exposed - 1.0, 0.0)
        if np.any(glare > 0):
            exposed = exposed + 0.6 * cv2.GaussianBlur(glare.astype(np.float32), (0, 0), bloom_sigma)
        images.append(np.round(np.clip(exposed, 0.0, 1.0) ** (1 / 2.2) * 255).astype(np.uint8))
    return StereoSample(family, seed, c, images[0], images[1], left_d, right_d)


def _sky(rays: np.ndarray, colour) -> np.ndarray:
    """A gradient by elevation, the same in both views (it depends on the direction only)."""
    up = -rays[:, 1] / np.linalg.norm(rays, axis=1)
    return np.asarray(colour)[None, :] * (0.7 + 0.5 * np.clip(up, -0.2, 1.0))[:, None]
