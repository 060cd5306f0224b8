"""Street scenes seen by a delivery robot's stereo camera, with exact disparity and obstacle boxes.

A scene is built once from a seed (ground, facades, far wall, obstacles, light, textures); each frame casts
the left and the right view from it independently, derives the disparity from the left depth (d = fx*B/Z),
marks pixels the right camera cannot see (0 disparity), and applies a camera model (exposure, white
balance, vignetting, blur, noise) that differs between the views as it does on real stereo heads.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import NamedTuple

import cv2
import numpy as np

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.memory import keep_freed_memory
from dla_perception.synthetic.render import (
    Facade,
    Scene,
    Solid,
    Surface,
    ViewBuffers,
    camera_rotation,
    ground_shadow,
    pixel_rays,
    render_view,
)
from dla_perception.synthetic.textures import TEXTURE_VARIANTS, Scratch, TextureAtlas, lookup, texture_pool

OBSTACLE_CLASSES: tuple[str, ...] = ("box", "post", "bin", "person")

# Annotation rule (documented in docs/synthetic.md): an obstacle gets a box when at least this fraction of
# the pixels it would cover in the image without occluders is visible, and its visible box is at least
# MIN_BOX_FRACTION of the image width on each side (and never under 3 px).
MIN_VISIBLE_FRACTION = 0.3
MIN_BOX_FRACTION = 0.01


@dataclass
class ObjectAnnotation:
    """An obstacle in the left image: class, box (x1, y1, x2, y2 in pixels, visible part, x2/y2 exclusive
    pixel edges) and distance_m, the depth Z of its nearest visible pixel."""

    label: str
    class_id: int
    box: tuple[float, float, float, float]
    distance_m: float


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


# how strongly the fine grain shows on each kind of surface (rough ground most, fabric and paint least)
_DETAIL = {"asphalt": 0.45, "grass": 0.5, "concrete": 0.35, "paving": 0.3, "bricks": 0.3, "planks": 0.25,
           "cardboard": 0.25, "metal": 0.15, "plastic": 0.1, "fabric": 0.15, "stripes": 0.15, "poster": 0.1,
           "plaster_windows": 0.25}

_DEFAULT_SIZES = {"box": (0.6, 0.5, 0.5), "post": (0.12, 1.2, 0.12), "bin": (0.6, 0.9, 0.6),
                  "person": (0.5, 1.75, 0.3)}


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
    builder = _SceneBuilder(np.random.default_rng(scene_stream), camera, opts, travel_m)
    scene, atlas, pose, response = builder.build()
    intrinsics = (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
    rays = pixel_rays(*intrinsics, pose["rotation"])
    inverse_length = 1.0 / np.sqrt(rays[0] * rays[0] + rays[1] * rays[1] + rays[2] * rays[2])
    common = ViewCommon(rays, inverse_length, np.float32(1.0 / camera.fx) / inverse_length,
                        _SkyCache(scene, atlas, rays), Scratch())
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


class ViewCommon(NamedTuple):
    """What every view of a drive shares: the pixel rays (camera-frame z = 1), their inverse lengths, the
    ground footprint factor of a pixel (1 / (fx * inverse length)), the sky image and work arrays."""

    rays: tuple[np.ndarray, np.ndarray, np.ndarray]
    inverse_length: np.ndarray
    pixel_footprint: np.ndarray
    sky: _SkyCache
    scratch: Scratch


class _SceneBuilder:
    """Draws one street scene from the seed."""

    def __init__(self, rng: np.random.Generator, camera: StereoCamera, opts: SceneOptions, travel_m: float):
        self.rng, self.camera, self.opts, self.travel_m = rng, camera, opts, travel_m
        self.tile_size = opts.texture_size or (256 if camera.width >= 480 else 128)
        self.textures = texture_pool(self.tile_size)
        self.tile_kind: dict[str, list[int]] = {}
        self.surfaces: list[Surface] = []
        self.solids: list[Solid] = []
        self.objects: list[dict] = []
        self.footprints: list[tuple[float, float, float]] = []  # x, z, radius of placed obstacles

    def _tile(self, kind: str, per_scene: int = 3) -> int:
        """A tile of this kind: one of at most `per_scene` variants (from the process's pool) per scene."""
        made = self.tile_kind.setdefault(kind, [])
        if len(made) < per_scene and (not made or self.rng.random() < 0.6):
            made.append(self.textures.tile(kind, int(self.rng.integers(TEXTURE_VARIANTS))))
            return made[-1]
        return made[int(self.rng.integers(len(made)))]

    def _surface(self, kind: str, metres_per_tile: float, object_index: int = -1,
                 tint: Sequence[float] | None = None, detail: float | None = None) -> int:
        rng = self.rng
        if tint is None:
            tint = np.clip(rng.uniform(0.85, 1.15) * rng.uniform(0.92, 1.08, 3), 0.5, 1.5)
        if detail is None:
            detail = _DETAIL.get(kind, 0.2) * rng.uniform(0.7, 1.3)
        self.surfaces.append(Surface(self._tile(kind), self.tile_size / metres_per_tile,
                                     tuple(float(t) for t in tint), object_index, float(detail)))
        return len(self.surfaces) - 1

    def build(self) -> tuple[Scene, TextureAtlas, dict, dict]:
        rng, opts = self.rng, self.opts
        height = opts.camera_height_m if opts.camera_height_m is not None else rng.uniform(0.3, 0.6)
        pitch = np.radians(opts.pitch_deg if opts.pitch_deg is not None else rng.uniform(-2.0, 8.0))
        yaw = np.radians(opts.yaw_deg if opts.yaw_deg is not None else rng.uniform(-4.0, 4.0))
        rotation = camera_rotation(pitch, yaw)
        forward = np.array([np.sin(yaw), 0.0, np.cos(yaw)])  # the robot drives along its heading
        right = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
        origin = np.array([rng.uniform(-0.4, 0.4), -height, 0.0])

        z_end = self.travel_m + opts.max_distance_m + 60.0
        left_x, right_x = -rng.uniform(2.0, 9.0), rng.uniform(2.0, 9.0)
        path_half = rng.uniform(0.8, min(2.0, -left_x, right_x))
        ground_bands = [
            (-np.inf, np.inf, self._surface(str(rng.choice(["asphalt", "grass", "concrete"])),
                                            rng.uniform(1.5, 4.0))),
            (-path_half, path_half, self._surface(str(rng.choice(["paving", "concrete", "asphalt"])),
                                                  rng.uniform(1.0, 4.0))),
        ]
        facades = []
        for side_x in (left_x, right_x):
            if rng.random() < 0.15:
                continue  # open on this side: a park, a car park
            facades.append(self._facade(side_x, -5.0, z_end))
        far_wall = None
        if rng.random() < 0.5:
            # beyond the obstacles, at most 60 m away unless they stand farther (max_distance_m > 55)
            nearest = opts.max_distance_m + 5.0
            farthest = 60.0 if nearest <= 60.0 else nearest + 20.0
            far_wall = (float(self.travel_m + rng.uniform(nearest, farthest)),
                        self._surface(str(rng.choice(["bricks", "plaster_windows", "concrete"])),
                                      rng.uniform(3.0, 8.0)))

        for planted in opts.planted:
            self._add_object(planted.label, origin + forward * planted.distance_m + right * planted.lateral_m,
                             yaw, planted.size_m, front_face=True, heading=forward)
        if opts.clutter:
            span = opts.max_distance_m - opts.min_distance_m + self.travel_m
            count = int(rng.integers(2, 7) + rng.poisson(span / 4.0))
            for _ in range(count):
                self._random_obstacle(origin, forward, right, left_x, right_x, path_half)

        sun_elevation = np.radians(rng.uniform(25.0, 70.0))
        sun_azimuth = rng.uniform(0, 2 * np.pi)
        sun = np.array([np.cos(sun_elevation) * np.sin(sun_azimuth), -np.sin(sun_elevation),
                        np.cos(sun_elevation) * np.cos(sun_azimuth)])
        overcast = rng.random() < 0.3
        sun_strength = rng.uniform(0.15, 0.35) if overcast else rng.uniform(0.6, 1.0)
        zenith = np.array([0.25, 0.45, 0.85]) * rng.uniform(0.8, 1.1) if not overcast else np.full(3, 0.7)
        horizon = np.array([0.75, 0.82, 0.9]) * rng.uniform(0.85, 1.1)
        sky_tile = self._tile("clouds")
        scene = Scene(
            surfaces=self.surfaces, ground_bands=ground_bands, facades=facades, far_wall=far_wall,
            solids=self.solids, sun=sun, ambient=float(rng.uniform(0.35, 0.6)),
            sun_strength=float(sun_strength),
            sky_horizon=horizon.astype(np.float32), sky_zenith=zenith.astype(np.float32), sky_tile=sky_tile,
            haze_m=float(rng.uniform(150.0, 600.0)), objects=self.objects,
        )
        pose = {"origin": origin, "rotation": rotation, "forward": forward}
        return scene, self.textures.atlas, pose, _camera_response(rng)

    def _facade(self, x_m: float, z_start: float, z_end: float) -> Facade:
        rng = self.rng
        edges = [z_start]
        while edges[-1] < z_end:
            edges.append(edges[-1] + rng.uniform(4.0, 18.0))
        count = len(edges) - 1
        kinds = ["bricks", "plaster_windows", "concrete", "planks", "metal", "poster"]
        scales = {"bricks": (1.0, 2.5), "plaster_windows": (4.0, 7.0), "concrete": (2.0, 5.0),
                  "planks": (1.5, 3.0), "metal": (1.0, 3.0), "poster": (2.0, 5.0)}
        surfaces = []
        for _ in range(count):
            kind = _pick(rng, kinds, [0.3, 0.3, 0.15, 0.1, 0.05, 0.1])
            surfaces.append(self._surface(kind, rng.uniform(*scales[kind])))
        heights = rng.uniform(2.5, 20.0, count)
        heights[rng.random(count) < 0.2] = rng.uniform(1.0, 2.5)  # walls and fences
        return Facade(x_m, np.asarray(edges), heights, np.asarray(surfaces, np.int32))

    def _random_obstacle(self, origin, forward, right, left_x, right_x, path_half) -> None:
        rng, opts = self.rng, self.opts
        label = _pick(rng, OBSTACLE_CLASSES, [0.35, 0.2, 0.2, 0.25])
        for _ in range(10):  # a few tries to find free ground
            distance = rng.uniform(opts.min_distance_m, opts.max_distance_m + self.travel_m)
            if rng.random() < 0.5:
                lateral = rng.normal(0.0, path_half)
            else:
                lateral = rng.uniform(left_x - origin[0] + 0.4, right_x - origin[0] - 0.4)
            base = origin + forward * distance + right * lateral
            if not (left_x + 0.4 < base[0] < right_x - 0.4):
                continue
            radius = 0.5 if label != "post" else 0.15
            if all(np.hypot(base[0] - x, base[2] - z) > radius + r for x, z, r in self.footprints):
                yaw = rng.uniform(-np.pi, np.pi)
                velocity = None
                if label == "person" and self.travel_m > 0 and rng.random() < 0.5:
                    # walking along the street, either way, at a walker's pace
                    heading = np.arctan2(forward[0], forward[2]) + np.pi * (rng.random() < 0.5)
                    yaw = float(heading + rng.normal(0.0, 0.3))
                    velocity = rng.uniform(0.6, 1.5) * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
                self._add_object(label, base, yaw, None, front_face=False, heading=forward)
                self.objects[-1]["velocity"] = velocity
                return

    def _add_object(self, label: str, base: np.ndarray, yaw: float, size_m, front_face: bool,
                    heading: np.ndarray) -> None:
        """Add an obstacle standing on the ground at `base` (x, z; y ignored). With front_face, `base` is the
        middle of its nearest face as seen along `heading`, and it is turned to face the camera squarely."""
        rng = self.rng
        index = len(self.objects)
        self.objects.append({"label": label, "class_id": OBSTACLE_CLASSES.index(label), "solids": []})
        if size_m is None:
            size_m = _DEFAULT_SIZES[label] if front_face else _random_size(rng, label)
        width, height, depth = size_m
        base = np.array([base[0], 0.0, base[2]])
        if front_face:
            base = base + heading * (depth / 2.0)
            yaw = float(np.arctan2(heading[0], heading[2]))
        self.footprints.append((base[0], base[2], 0.5 * float(np.hypot(width, depth))))

        def add(shape, center, half, surface, solid_yaw=yaw):
            self.solids.append(Solid(shape, center, half, solid_yaw, surface))
            self.objects[index]["solids"].append(len(self.solids) - 1)

        def local(x, z):  # object-frame offset (x right, z forward) -> world
            c, s = np.cos(yaw), np.sin(yaw)
            return np.array([base[0] + c * x + s * z, 0.0, base[2] - s * x + c * z])

        if label == "box":
            kind = _pick(rng, ["cardboard", "planks", "plastic", "metal"], [0.5, 0.2, 0.2, 0.1])
            surface = self._surface(kind, rng.uniform(0.6, 1.5), index)
            add("box", base + [0, -height / 2, 0], (width / 2, height / 2, depth / 2), surface)
        elif label == "post":
            kind = _pick(rng, ["stripes", "metal", "concrete", "plastic"], [0.35, 0.35, 0.15, 0.15])
            surface = self._surface(kind, rng.uniform(0.4, 1.2), index)
            shape = "cylinder" if front_face or rng.random() < 0.75 else "box"
            add(shape, base + [0, -height / 2, 0], (width / 2, height / 2, depth / 2), surface)
        elif label == "bin":
            kind = _pick(rng, ["plastic", "metal"], [0.75, 0.25])
            surface = self._surface(kind, rng.uniform(0.5, 1.2), index)
            shape = "cylinder" if front_face or rng.random() < 0.6 else "box"
            add(shape, base + [0, -height / 2, 0], (width / 2, height / 2, depth / 2), surface)
            lid = self._surface("plastic", 0.8, index)
            add(shape, base + [0, -height - 0.02, 0], (width / 2 * 1.05, 0.02, depth / 2 * 1.05), lid)
        else:
            self._add_person(add, local, base, width, height, depth, index)

    def _add_person(self, add, local, base, width, height, depth, index) -> None:
        rng = self.rng
        pants = self._surface("fabric", 0.5, index)
        shirt = self._surface("fabric", 0.5, index)
        skin_tone = np.array([0.85, 0.6, 0.45]) * rng.uniform(0.35, 1.1)
        skin = self._surface("concrete", 2.0, index, tint=np.clip(skin_tone / 0.5, 0.1, 2.0), detail=0.05)
        leg_half = 0.24 * height
        leg_r = 0.06 * height / 1.75
        for side in (-1, 1):
            add("cylinder", local(side * width * 0.2, 0.0) + [0, -leg_half, 0], (leg_r, leg_half, leg_r),
                pants)
        torso_half = 0.16 * height
        torso_y = -(2 * leg_half + torso_half)
        add("cylinder", local(0.0, 0.0) + [0, torso_y, 0], (width * 0.4, torso_half, depth * 0.5), shirt)
        arm_half = 0.17 * height
        for side in (-1, 1):
            add("cylinder", local(side * (width * 0.4 + 0.04), 0.0) + [0, torso_y - torso_half + arm_half, 0],
                (0.04, arm_half, 0.045), shirt)
        head_r = 0.065 * height
        add("sphere", local(0.0, 0.0) + [0, torso_y - torso_half - head_r * 1.05, 0],
            (head_r * 0.85, head_r, head_r * 0.95), skin)


def _pick(rng: np.random.Generator, options: Sequence[str], weights: Sequence[float]) -> str:
    """rng.choice(options, p=weights), drawn the same way (one uniform number against the cumulative
    weights) without numpy's argument checks, which cost more than placing the obstacle itself."""
    cumulative = list(itertools.accumulate(weights))
    return options[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


def _random_size(rng: np.random.Generator, label: str) -> tuple[float, float, float]:
    if label == "box":
        return tuple(rng.uniform(0.25, 1.1, 3))
    if label == "post":
        diameter = rng.uniform(0.06, 0.25)
        return (diameter, rng.uniform(0.7, 2.8), diameter)
    if label == "bin":
        diameter = rng.uniform(0.4, 0.75)
        return (diameter, rng.uniform(0.6, 1.15), diameter * rng.uniform(0.9, 1.2))
    height = rng.uniform(1.5, 1.95) if rng.random() < 0.85 else rng.uniform(1.0, 1.45)
    return (0.45 * height / 1.75 * rng.uniform(0.9, 1.15), height, 0.27 * height / 1.75)


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
    left_linear = _shade(left, scene, atlas, common)
    right_linear = _shade(right, scene, atlas, common)
    if opts.photometric:
        left_image, right_image = _sensor(left_linear, right_linear, response, sensor_rng)
    else:
        left_image, right_image = _encode(left_linear), _encode(right_linear)
    objects = _annotate(view_scene, left, cam)
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


class _SkyCache:
    """Linear RGB of the sky in every pixel's direction: a gradient from the horizon up, and clouds on a plane
    high above. It depends on the direction only, so both views and all frames of a drive share it. Made on
    demand for the rows that show sky, at half resolution (the sky is smooth; its disparity is unknown)."""

    def __init__(self, scene: Scene, atlas: TextureAtlas, rays):
        self.scene, self.atlas = scene, atlas
        self.rays = [ray[::2, ::2] for ray in rays]
        self.shape = rays[0].shape
        self.image = np.zeros((0, self.shape[1], 3), np.float32)

    def rows(self, count: int) -> np.ndarray:
        """The sky image's first `count` rows (at least)."""
        if count > len(self.image):
            half = (count + 1) // 2 + 1
            small = self._render(*(ray[:half] for ray in self.rays))
            rows = min(2 * half, self.shape[0])
            self.image = cv2.resize(small, (self.shape[1], 2 * half), interpolation=cv2.INTER_LINEAR)[:rows]
        return self.image[:count]

    def _render(self, dx, dy, dz) -> np.ndarray:
        scene = self.scene
        elevation = np.clip(-dy / np.sqrt(dx * dx + dy * dy + dz * dz), 0.0, 1.0)
        up = np.maximum(-dy, np.float32(0.02))
        cloud_scale = np.float32(48.0)
        lod = np.float32(2.0) - np.float32(2.0) * np.log2(np.maximum(elevation, np.float32(0.05)))
        tile = np.full(dx.shape, scene.sky_tile, np.int32)
        cloud = self.atlas.sample(tile, dx / up * cloud_scale, dz / up * cloud_scale, lod)[..., 0]
        cloud = cv2.cvtColor(cloud.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_GRAY2RGB)
        height = cv2.cvtColor(np.sqrt(elevation), cv2.COLOR_GRAY2RGB)
        horizon, zenith = scene.sky_horizon, scene.sky_zenith
        gradient = cv2.add(cv2.multiply(height, tuple(float(c) for c in zenith - horizon) + (0.0,)),
                           tuple(float(c) for c in horizon) + (0.0,))
        return gradient + cloud * (np.float32(0.95) * (0.8 + 0.2 * height) - gradient)


SKY_BAND_PX = 80  # columns per band when the sky above each band is left out of shading
SKY_WORTH_SKIPPING = 0.1  # fraction of the image such bands must leave out to be worth their overhead


def _shade(view: ViewBuffers, scene: Scene, atlas: TextureAtlas, common: ViewCommon) -> np.ndarray:
    """Linear RGB of a view (0..1): mip-mapped texture * tint * light (with fine grain), distance haze; the
    precomputed sky where no surface is.

    Where much of the view is open sky, it is shaded in bands of columns, each from its first row that
    shows something other than sky: the rows above get the sky's colour without shading work (everything
    here is per pixel, so the result is the same). A full view shades into the drive's work arrays
    (common.scratch) rather than new ones.
    """
    # per-surface tables with one more entry at the end for the sky, which index -1 picks
    tables = {
        "tiles": np.array([s.tile for s in scene.surfaces] + [scene.sky_tile]),
        "scales": np.array([s.texels_per_m for s in scene.surfaces] + [0.0], np.float32),
        "tints": np.array([s.tint for s in scene.surfaces] + [(1.0, 1.0, 1.0)], np.float32) / 255.0,
        "details": np.array([s.detail for s in scene.surfaces] + [0.0], np.float32) * np.float32(2 / 255),
    }
    sky = view.surface < 0
    sky_rows = np.flatnonzero(sky.any(axis=1))
    sky_image = common.sky.rows(int(sky_rows[-1]) + 1) if len(sky_rows) else None
    bands = _below_the_sky(sky)
    if bands is None:
        whole = (slice(None), slice(None))
        color = _shade_window(view, whole, scene, atlas, common, tables, common.scratch.part("shade/"))
        if sky_image is not None:
            rows = slice(0, len(sky_image))
            cv2.copyTo(sky_image, sky[rows].view(np.uint8), color[rows])
        return color
    color = np.empty(sky.shape + (3,), np.float32)
    for top, columns in bands:
        color[:top, columns] = sky_image[:top, columns]
        if top == len(sky):
            continue
        window = (slice(top, None), columns)
        color[window] = _shade_window(view, window, scene, atlas, common, tables, Scratch())
        if len(sky_image) > top:  # sky between the surfaces further down the band
            below = (slice(top, len(sky_image)), columns)
            cv2.copyTo(sky_image[below], sky[below].view(np.uint8), color[below])
    return color


def _below_the_sky(sky: np.ndarray) -> list[tuple[int, slice]] | None:
    """Bands of columns with the number of rows at their top that show nothing but sky; None when those
    rows are too few (under SKY_WORTH_SKIPPING of the image) to pay for shading band by band."""
    height, width = sky.shape
    first = np.where(sky.all(axis=0), height, np.argmin(sky, axis=0))  # first row that is not sky
    bands: list[tuple[int, slice]] = []
    for start in range(0, width, SKY_BAND_PX):
        columns = slice(start, min(start + SKY_BAND_PX, width))
        top = int(first[columns].min())
        if bands and bands[-1][0] == top:  # one window for neighbours that start on the same row
            columns = slice(bands.pop()[1].start, columns.stop)
        bands.append((top, columns))
    skipped = sum(top * (columns.stop - columns.start) for top, columns in bands)
    return bands if skipped >= SKY_WORTH_SKIPPING * sky.size else None


def _shade_window(view: ViewBuffers, window: tuple[slice, slice], scene: Scene, atlas: TextureAtlas,
                  common: ViewCommon, tables: dict, work: Scratch) -> np.ndarray:
    """_shade of the pixels in a window of the view (sky pixels included, their colour to be replaced), as
    a new array. Three-channel work goes through OpenCV (merge/cvtColor to build, multiply with per-channel
    scalars): numpy's broadcasting of HxW or (3,) over HxWx3, and its uint8 x float products, are several
    times slower."""
    surface = view.surface[window]
    depth = view.depth[window]
    shape = surface.shape
    small = len(scene.surfaces) < 255  # uint8 indices: -1 -> 255, the sky
    index = work("index", shape, np.uint8) if small else surface
    if small:
        np.copyto(index, surface, casting="unsafe")  # = surface.astype(np.uint8)
    sky = np.less(surface, 0, out=work("sky", shape, bool))
    scale = lookup(tables["scales"], index, work("scale", shape))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = np.multiply(view.u[window], scale, out=work("u", shape))  # (sky: inf or nan, zeroed below)
        v = np.multiply(view.v[window], scale, out=work("v", shape))
        # texels under one pixel, grown at grazing incidence (half the anisotropy: sharp yet stable)
        footprint = np.multiply(depth, scale, out=work("lod", shape))
        footprint *= common.pixel_footprint[window]
        incidence = np.multiply(view.cosine[window], common.inverse_length[window],
                                out=work("incidence", shape))
        cv2.max(incidence, 0.05, dst=incidence)  # (OpenCV's max and min: twice numpy's speed)
        footprint *= footprint
        footprint /= incidence
        cv2.min(footprint, 1e12, dst=footprint)
        lod = cv2.log(footprint, dst=footprint)
        lod *= np.float32(0.5 / np.log(2.0))
    # only the sky's are not finite, and the sky's colour is replaced: zeroed to keep them harmless
    for array in (u, v, lod):
        np.copyto(array, np.float32(0.0), where=sky)
    texture = atlas.sample(index, u, v, lod, scratch=work.part("colour/"), tile_table=tables["tiles"])
    # the fine grain (the atlas's fourth channel) modulates the light: 1 + detail * (grain - 127.5)
    grain = cv2.extractChannel(texture, 3, dst=work("grain", shape, np.uint8))
    light = cv2.subtract(grain, 127.5, dtype=cv2.CV_32F, dst=work("light", shape))
    light *= lookup(tables["details"], index, work("detail", shape))
    light += 1.0
    light *= view.light[window]
    texture = cv2.cvtColor(texture, cv2.COLOR_RGBA2RGB, dst=work("texture", shape + (3,), np.uint8))
    # distance haze: a fraction `clear` of the surface's light arrives, the rest is the horizon's colour
    clear = np.multiply(depth, np.float32(-1.0 / scene.haze_m), out=work("clear", shape))
    cv2.exp(clear, dst=clear)  # (five times numpy's speed)
    channels = [lookup(tables["tints"][:, channel], index, work(f"tint{channel}", shape))
                for channel in range(3)]
    for channel in channels:
        channel *= light
    factor = cv2.merge(channels, dst=work("factor", shape + (3,)))
    height, width = view.surface.shape
    horizon = _uniform_image(height, width, tuple(float(c) for c in scene.sky_horizon))[:shape[0], :shape[1]]
    lit = cv2.multiply(texture, factor, dtype=cv2.CV_32F, dst=work("lit", shape + (3,)))
    return cv2.blendLinear(lit, horizon, clear, np.subtract(1.0, clear, out=work("haze", shape)))


@functools.lru_cache(maxsize=4)
def _uniform_image(height: int, width: int, color: tuple[float, float, float]) -> np.ndarray:
    """A read-only HxWx3 float32 image of one colour (the haze's, blended per pixel): one per drive and
    image size, of which windows take their corner."""
    image = cv2.repeat(np.array(color, np.float32).reshape(1, 1, 3), height, width)  # 30x numpy fill
    image.setflags(write=False)
    return image


# standard normal quantiles of 16 equiprobable bins, scaled to unit variance: Gaussian noise from four random
# bits per sample (a noise of a few grey levels needs no finer steps, and random bytes are the dear part)
_GAUSS_16 = np.array([NormalDist().inv_cdf((i + 0.5) / 16) for i in range(16)])
_GAUSS_LUT = np.zeros((1, 256), np.float32)
_GAUSS_LUT[0, :16] = _GAUSS_16 / np.sqrt(np.mean(_GAUSS_16 ** 2))


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear RGB (0..1) -> 8-bit with gamma 2 (a square root: close to sRGB's 2.2 and many times faster
    than a general power), rounded and saturated. Overwrites `linear` (a frame's own scratch image)."""
    cv2.max(linear, 0.0, dst=linear)
    cv2.sqrt(linear, dst=linear)
    return cv2.convertScaleAbs(linear, alpha=255.0)


@functools.lru_cache(maxsize=8)
def _radius2(height: int, width: int) -> np.ndarray:
    """Squared distance from the image centre, 1 at the corners (for vignetting)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    radius2.setflags(write=False)
    return radius2


_EXPOSURE_TARGET = 0.2  # linear mean brightness auto exposure aims at (about 114 of 255 after gamma 2)


def _camera_response(rng: np.random.Generator) -> dict:
    """The stereo camera of a drive: exposure, white balance, noise, and per view a gain (the two sensors
    never match exactly), vignetting and optical blur. Drawn once per scene: a sequence does not flicker."""
    return {
        "exposure_bias": rng.uniform(0.6, 1.6), "white_balance": rng.uniform(0.9, 1.1, 3),
        "read_noise": rng.uniform(0.002, 0.012), "shot_noise": rng.uniform(0.0, 0.012),
        "gain": rng.uniform(0.9, 1.1, 2), "vignetting": rng.uniform(0.0, 0.3, 2),
        "blur": rng.uniform(0.3, 0.9, 2),
    }


def _sensor(left: np.ndarray, right: np.ndarray, response: dict,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Both views through the camera: auto exposure (the left view's mean brightness to a target, with the
    camera's bias and a little wander per frame), gain and white balance, vignetting, blur and noise."""
    mean = float(np.mean(cv2.mean(left)[:3]))
    exposure = _EXPOSURE_TARGET / max(mean, 1e-3) * response["exposure_bias"] * rng.uniform(0.97, 1.03)
    images = []
    for view, linear in enumerate((left, right)):
        image = cv2.multiply(linear, _view_response(response, view, left.shape[:2]), scale=exposure,
                             dst=linear)  # in place: the shaded image is this frame's own
        sigma = float(response["blur"][view])
        side = 2 * int(np.ceil(2.0 * sigma)) + 1  # +-2 sigma: OpenCV's own choice for float images is +-4
        cv2.GaussianBlur(image, (side, side), sigma, dst=image)
        noise = cv2.LUT(_nibbles(rng, image.shape), _GAUSS_LUT)
        # noise level from the brightness (grey) of each pixel: shot noise grows with the light (the image
        # is not negative here: light, gains and blur weights all are not)
        variance = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        variance *= np.float32(response["shot_noise"] ** 2)
        variance += np.float32(response["read_noise"] ** 2)
        deviation = cv2.sqrt(variance, dst=variance)
        cv2.accumulateProduct(noise, cv2.cvtColor(deviation, cv2.COLOR_GRAY2RGB), image)  # image += both
        images.append(_encode(image))
    return images[0], images[1]


def _nibbles(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform random integers 0..15 of this shape (uint8), two from each random byte."""
    count = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes((count + 1) // 2), np.uint8)
    values = np.empty(2 * len(raw), np.uint8)
    np.bitwise_and(raw, 15, out=values[:len(raw)])
    np.right_shift(raw, 4, out=values[len(raw):])
    return values[:count].reshape(shape)


def _view_response(response: dict, view: int, shape: tuple[int, int]) -> np.ndarray:
    """Per pixel and channel: white balance x the view's gain x its vignetting (fixed for a drive)."""
    key = ("factor", view, shape)
    if key not in response:
        gain = response["white_balance"] * response["gain"][view]
        vignette = 1.0 - np.float32(response["vignetting"][view]) * _radius2(*shape)
        # per channel, then merged: OpenCV's multiply by a per-channel scalar is several times slower
        response[key] = cv2.merge([vignette * np.float32(g) for g in gain])
    return response[key]


def _annotate(scene: Scene, left: ViewBuffers, camera: StereoCamera) -> list[ObjectAnnotation]:
    """Boxes of obstacles visible enough in the left view (rule: MIN_VISIBLE_FRACTION, MIN_BOX_FRACTION)."""
    if not scene.objects:
        return []
    object_of_surface = np.array([s.object_index for s in scene.surfaces] + [-1], np.float32)
    index = left.surface.astype(np.uint8) if len(scene.surfaces) < 255 else left.surface  # -1 -> 255: sky
    object_map = lookup(object_of_surface, index)
    min_side = max(3.0, MIN_BOX_FRACTION * camera.width)
    annotations = []
    for index, obstacle in enumerate(scene.objects):
        # an obstacle's pixels all lie in the windows its solids were cast in: look there only
        cast = [left.coverage[s] for s in obstacle["solids"] if s in left.coverage]
        if not cast:
            continue
        top, left_edge = min(w[0].start for w, _ in cast), min(w[1].start for w, _ in cast)
        bottom, right_edge = max(w[0].stop for w, _ in cast), max(w[1].stop for w, _ in cast)
        area = (slice(top, bottom), slice(left_edge, right_edge))
        mask = object_map[area] == index
        visible = int(np.count_nonzero(mask))
        if visible == 0:
            continue
        unoccluded = np.zeros(mask.shape, bool)
        for (rows, cols), hits in cast:
            unoccluded[rows.start - top:rows.stop - top, cols.start - left_edge:cols.stop - left_edge] |= hits
        if visible < MIN_VISIBLE_FRACTION * max(int(np.count_nonzero(unoccluded)), 1):
            continue
        rows = np.flatnonzero(mask.any(axis=1)) + top
        cols = np.flatnonzero(mask.any(axis=0)) + left_edge
        x1, y1, x2, y2 = float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
        if x2 - x1 < min_side or y2 - y1 < min_side:
            continue
        annotations.append(ObjectAnnotation(obstacle["label"], obstacle["class_id"], (x1, y1, x2, y2),
                                            float(left.depth[area][mask].min())))
    return annotations
