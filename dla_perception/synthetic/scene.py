"""Street scenes seen by a delivery robot's stereo camera, with exact disparity and obstacle boxes.

A scene is built once from a seed (ground, facades, far wall, obstacles, light, textures); each frame casts
the left and the right view from it independently, derives the disparity from the left depth (d = fx*B/Z),
marks pixels the right camera cannot see (0 disparity), and applies a camera model (exposure, white
balance, vignetting, blur, noise) that differs between the views as it does on real stereo heads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from dla_perception.synthetic.annotation import ObjectAnnotation, annotate_obstacles
from dla_perception.synthetic.arrays import Scratch
from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.memory import keep_freed_memory
from dla_perception.synthetic.projection import pixel_rays
from dla_perception.synthetic.render import render_view
from dla_perception.synthetic.scene_builder import SceneBuilder
from dla_perception.synthetic.scene_model import Scene, Solid
from dla_perception.synthetic.scene_options import OBSTACLE_CLASSES, PlantedObject, SceneOptions
from dla_perception.synthetic.sensor import encode_gamma, through_sensor
from dla_perception.synthetic.shading import SkyCache, ViewCommon, shade_view
from dla_perception.synthetic.shadows import ground_shadow
from dla_perception.synthetic.texture_atlas import TextureAtlas

# the generator's public API (docs/synthetic.md): what callers pass in and get back, wherever it is defined
__all__ = ["OBSTACLE_CLASSES", "ObjectAnnotation", "PlantedObject", "SceneOptions", "StereoFrame",
           "generate_frame", "generate_sequence"]


@dataclass
class StereoFrame:
    """One rectified stereo pair with ground truth of the left view.

    disparity: pixels, 0 where unknown (sky, or the left pixel not visible in the right view);
    depth_m: depth Z along the optical axis for every left pixel, inf for sky.
    """

    index: int
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    depth_m: np.ndarray
    objects: list[ObjectAnnotation] = field(default_factory=list)


def generate_frame(seed: int, camera: StereoCamera | None = None, **options) -> StereoFrame:
    """One independent scene: obstacles anywhere from min_distance_m to max_distance_m ahead."""
    return next(generate_sequence(seed, 1, camera, **options))


def generate_sequence(seed: int, n_frames: int, camera: StereoCamera | None = None,
                      **options) -> Iterator[StereoFrame]:
    """Frames of one scene while the camera drives forward at speed_mps, so obstacles approach.

    Options are the fields of SceneOptions (planted=[PlantedObject(...)], pitch_deg=0.0, ...). Same seed and
    options give identical bytes; obstacles the camera would drive into are removed before it reaches them.
    Bad arguments raise here, not at the first frame.
    """
    camera = camera or StereoCamera()
    opts = _options(options)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return _frames(int(seed), n_frames, camera, opts)


def _frames(seed: int, n_frames: int, camera: StereoCamera, opts: SceneOptions) -> Iterator[StereoFrame]:
    keep_freed_memory()  # a frame's large temporaries are reused, not page-faulted in anew (memory.py)
    scene_stream, sensor_stream = np.random.SeedSequence(seed).spawn(2)
    travel_m = opts.speed_mps * max(n_frames - 1, 0) / opts.rate_hz
    builder = SceneBuilder(np.random.default_rng(scene_stream), camera, opts, travel_m)
    scene, atlas, pose, response = builder.build()
    intrinsics = (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
    rays = pixel_rays(*intrinsics, pose["rotation"])
    inverse_length = 1.0 / np.sqrt(rays[0] * rays[0] + rays[1] * rays[1] + rays[2] * rays[2])
    common = ViewCommon(rays, inverse_length, np.float32(1.0 / camera.fx) / inverse_length,
                        SkyCache(scene, atlas, rays), Scratch())
    for index, frame_stream in enumerate(sensor_stream.spawn(n_frames)):
        seconds = index / opts.rate_hz
        bob = 0.004 * np.sin(index * 1.7) if index else 0.0  # the robot's ride is not perfectly smooth
        origin = pose["origin"] + opts.speed_mps * seconds * pose["forward"] + np.array([0.0, bob, 0.0])
        yield _render_frame(index, _walked(scene, seconds), atlas, camera, origin, pose["rotation"],
                            common, opts, response, np.random.default_rng(frame_stream))


def _options(options: dict) -> SceneOptions:
    known = SceneOptions.__dataclass_fields__
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown scene option(s) {unknown}; known: {sorted(known)}")
    if "planted" in options:
        options = {**options, "planted": tuple(options["planted"])}
    opts = SceneOptions(**options)
    if not (0 < opts.min_distance_m < opts.max_distance_m):
        raise ValueError("need 0 < min_distance_m < max_distance_m")
    if opts.rate_hz <= 0 or opts.speed_mps < 0:
        raise ValueError("rate_hz must be positive and speed_mps non-negative")
    if opts.camera_height_m is not None and not (0.05 <= opts.camera_height_m <= 10.0):
        raise ValueError(f"camera_height_m must be within 0.05..10 m, got {opts.camera_height_m}")
    for name in ("pitch_deg", "yaw_deg"):
        value = getattr(opts, name)
        if value is not None and not (np.isfinite(value) and abs(value) < 60.0):
            raise ValueError(f"{name} must be finite and within +-60 degrees, got {value}")
    if opts.texture_size is not None and opts.texture_size not in (32, 64, 128, 256, 512):
        raise ValueError(f"texture_size must be one of 32, 64, 128, 256, 512, got {opts.texture_size}")
    return opts


def _render_frame(index: int, scene: Scene, atlas: TextureAtlas, camera: StereoCamera, origin: np.ndarray,
                  rotation: np.ndarray, common: ViewCommon, opts: SceneOptions, response: dict,
                  sensor_rng: np.random.Generator) -> StereoFrame:
    """Both views of one frame."""
    cam = camera
    rays = common.rays
    active = _solids_ahead(scene, origin)
    view_scene = scene if active is None else _with_solids(scene, active)
    intrinsics = (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height)
    right_origin = origin + rotation @ np.array([cam.baseline_m, 0.0, 0.0])
    shadow = ground_shadow(view_scene, origin)
    left = render_view(view_scene, *intrinsics, origin, rotation, rays, shadow)
    right = render_view(view_scene, *intrinsics, right_origin, rotation, rays, shadow)

    disparity = _visible_disparity(left.depth, right.depth, cam.fx * cam.baseline_m)
    left_linear = shade_view(left, scene, atlas, common)
    right_linear = shade_view(right, scene, atlas, common)
    if opts.photometric:
        left_image, right_image = through_sensor(left_linear, right_linear, response, sensor_rng)
    else:
        left_image, right_image = encode_gamma(left_linear), encode_gamma(right_linear)
    objects = annotate_obstacles(view_scene, left, cam)
    return StereoFrame(index, left_image, right_image, disparity, left.depth, objects)


def _walked(scene: Scene, seconds: float) -> Scene:
    """The scene `seconds` after the start: walking people moved along their velocity."""
    moving = [o for o in scene.objects if o.get("velocity") is not None]
    if not moving or seconds == 0:
        return scene
    solids = list(scene.solids)
    for obstacle in moving:
        for solid_index in obstacle["solids"]:
            solid = solids[solid_index]
            solids[solid_index] = Solid(solid.shape, solid.center + obstacle["velocity"] * seconds,
                                        solid.half_extents, solid.yaw, solid.surface)
    return replace(scene, solids=solids)


def _solids_ahead(scene: Scene, origin: np.ndarray) -> list[int] | None:
    """Solids of obstacles the camera has not driven into; None when all are kept. An obstacle whose
    footprint comes within 0.3 m of the camera is dropped (the robot would have stopped or steered)."""
    drop = set()
    for obstacle in scene.objects:
        for solid_index in obstacle["solids"]:
            solid = scene.solids[solid_index]
            local = solid.to_local @ (np.array([origin[0], solid.center[1], origin[2]]) - solid.center)
            scale = solid.half_extents
            gap = np.linalg.norm(np.maximum(np.abs(local) - 1.0, 0.0) * scale)
            if gap < 0.3:
                drop.update(obstacle["solids"])
                break
    if not drop:
        return None
    return [i for i in range(len(scene.solids)) if i not in drop]


def _with_solids(scene: Scene, keep: list[int]) -> Scene:
    """The scene with only some solids; object solid indices renumbered accordingly."""
    renumber = {old: new for new, old in enumerate(keep)}
    objects = [{**o, "solids": [renumber[s] for s in o["solids"] if s in renumber]} for o in scene.objects]
    return replace(scene, solids=[scene.solids[i] for i in keep], objects=objects)


def _visible_disparity(left_depth: np.ndarray, right_depth: np.ndarray, fx_baseline: float) -> np.ndarray:
    """fx*B/Z where the left pixel's surface point is what the right view sees at x - d, else 0.

    The right view's disparity is interpolated between the two pixels around x - d (disparity is linear
    along a row on planes); if it is larger than the left's, something nearer hides the point on the right.
    """
    height, width = left_depth.shape
    with np.errstate(divide="ignore"):
        disparity = np.divide(np.float32(fx_baseline), left_depth, dtype=np.float32)
        right_disparity = np.divide(np.float32(fx_baseline), right_depth, dtype=np.float32)  # sky: 0
    x_right = _column_indices(width) - disparity
    # linear interpolation along the row (rows are sampled exactly at their centres)
    seen = cv2.remap(right_disparity, x_right, _row_indices(height, width), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    visible = (x_right >= 0.0) & (disparity > 0) & (seen <= disparity * 1.01 + 0.05)
    np.copyto(disparity, np.float32(0.0), where=~visible)
    return disparity


@functools.lru_cache(maxsize=4)
def _column_indices(width: int) -> np.ndarray:
    """1xW float32: each pixel's column."""
    columns = np.arange(width, dtype=np.float32)[None, :]
    columns.setflags(write=False)
    return columns


@functools.lru_cache(maxsize=4)
def _row_indices(height: int, width: int) -> np.ndarray:
    """HxW float32: each pixel's row (a remap map_y that samples rows at their centres)."""
    rows = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    rows.setflags(write=False)
    return rows
