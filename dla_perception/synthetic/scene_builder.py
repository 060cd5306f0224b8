"""One street scene drawn from the seed: ground bands, facades, a far wall, obstacles (planted and random),
sun and sky, and the drive's camera response."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.projection import camera_rotation
from dla_perception.synthetic.scene_model import Facade, Scene, Solid, Surface
from dla_perception.synthetic.scene_options import OBSTACLE_CLASSES, SceneOptions
from dla_perception.synthetic.sensor import camera_response
from dla_perception.synthetic.texture_atlas import TEXTURE_VARIANTS, TextureAtlas, texture_pool

# how strongly the fine grain shows on each kind of surface (rough ground most, fabric and paint least)
_DETAIL = {"asphalt": 0.45, "grass": 0.5, "concrete": 0.35, "paving": 0.3, "bricks": 0.3, "planks": 0.25,
           "cardboard": 0.25, "metal": 0.15, "plastic": 0.1, "fabric": 0.15, "stripes": 0.15, "poster": 0.1,
           "plaster_windows": 0.25}


_DEFAULT_SIZES = {"box": (0.6, 0.5, 0.5), "post": (0.12, 1.2, 0.12), "bin": (0.6, 0.9, 0.6),
                  "person": (0.5, 1.75, 0.3)}


class SceneBuilder:
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
        return scene, self.textures.atlas, pose, camera_response(rng)

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
