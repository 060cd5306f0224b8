"""The held-out evaluation family "blocks": boxes and cylinders before a far wall, value-noise surfaces.

Written for evaluation alone, and on purpose sharing no code with what the proximity network trains on (the
street scenes of scene.py and the families of families.py): its own ray casting, its own surfaces (value
noise evaluated at the surface point and band-limited per pixel, instead of texture tiles), its own light
(a lamp beside the cameras whose light falls off with distance, and light from above), its own camera
response (the right view with another gain and offset, Gaussian sensor noise). It has the look of the
independent check of issue 20, on which a model that learnt its renderer instead of stereo falls below
OpenCV's SGBM.

Scenes: the camera 0.25-1.3 m above the floor (present in 85 % of scenes), pitch -3..10 degrees, no roll;
a far wall 3.5-14 m away, turned up to 25 degrees, weakly textured in half the scenes; 3-9 boxes (any yaw)
and upright cylinders 0.8-9 m away, standing on the floor or (without a floor, and a quarter of the time
with one) floating. Everything is drawn from `numpy.random.SeedSequence([salt, seed])`: same seed, same
bytes; nothing outside the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.sample import StereoSample, visible_disparities

FAMILY = "heldout_blocks"
_SALT = 0x20B10C  # this family's own random streams, apart from every training family's
_NEAR_M = 0.05


@dataclass(frozen=True)
class _Look:
    """Value noise of `octaves` octaves from `frequency` cycles per metre, around `colour`."""

    seed: int
    frequency: float
    octaves: int
    persistence: float
    contrast: float
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class _Primitive:
    kind: str  # "plane" | "box" | "cylinder"
    centre: tuple[float, float, float]
    size: tuple[float, float, float]  # box: half extents; cylinder: (radius, half height, 0); plane: unused
    angle: float  # yaw of boxes and of the wall's normal
    look: _Look


def heldout_frame(
    seed: int, camera: StereoCamera | None = None, photometric: bool = True, keep_out_of_view: bool = False
) -> StereoSample:
    """One scene of the held-out family, rendered with `camera` (default StereoCamera(): 640x480).
    keep_out_of_view: also give the truth of the band whose match is outside the other image
    (`visible_disparities`), for scoring a model there too; the images are the same either way."""
    camera = camera or StereoCamera()
    rng = np.random.default_rng(np.random.SeedSequence([_SALT, int(seed)]))
    height_m = rng.uniform(0.6, 1.5)
    pitch = math.radians(rng.uniform(-3.0, 10.0))
    primitives = _scene(rng, height_m)
    rotation = _rotation(pitch)
    left_origin = np.array([0.0, -height_m, 0.0])
    origins = (left_origin, left_origin + camera.baseline_m * rotation[:, 0])
    rays = _rays(camera, rotation)
    middle = 0.5 * (origins[0] + origins[1])
    lamp = middle + np.array([0.0, -0.15, 0.0])
    views, depths = [], []
    for origin in origins:
        depth, radiance = _render(primitives, origin, rays, camera.fx, middle, lamp)
        depths.append(depth.reshape(camera.height, camera.width))
        views.append(radiance.reshape(camera.height, camera.width, 3))
    left_disparity, right_disparity = visible_disparities(
        depths[0], depths[1], camera.fx * camera.baseline_m, keep_out_of_view
    )
    exposure = 0.8 / max(float(np.percentile(views[0], 95)), 1e-3)  # few pixels clip
    left, right = (np.clip(v * exposure, 0.0, 1.0) ** (1 / 2.2) for v in views)
    if photometric:
        right = right * rng.uniform(0.8, 1.2) + rng.uniform(-15.0, 15.0) / 255.0
        sigma = rng.uniform(1.0, 4.0) / 255.0
        left = left + sigma * rng.standard_normal(left.shape)
        right = right + sigma * rng.standard_normal(right.shape)
    return StereoSample(
        FAMILY, int(seed), camera, _to_uint8(left), _to_uint8(right), left_disparity, right_disparity
    )


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _look(rng: np.random.Generator, weak: bool = False) -> _Look:
    return _Look(
        seed=int(rng.integers(1, 2**31)),
        frequency=float(math.exp(rng.uniform(math.log(2.0), math.log(30.0)))),
        octaves=int(rng.integers(3, 7)),
        persistence=float(rng.uniform(0.55, 0.8)),
        contrast=float(rng.uniform(0.04, 0.12) if weak else rng.uniform(0.5, 1.0)),
        colour=tuple(float(c) for c in rng.uniform(0.2, 0.85, 3)),
    )


def _scene(rng: np.random.Generator, camera_height: float) -> list[_Primitive]:
    wall_distance = rng.uniform(3.5, 14.0)
    wall_angle = math.radians(rng.uniform(-25.0, 25.0))
    wall_look = _look(rng, weak=bool(rng.random() < 0.5))
    primitives = [_Primitive("plane", (0.0, 0.0, wall_distance), (0, 0, 0), wall_angle, wall_look)]
    floor = bool(rng.random() < 0.85)
    if floor:
        primitives.append(_Primitive("plane", (0.0, 0.0, 0.0), (0, 0, 0), math.nan, _look(rng)))
    wall_normal = np.array([math.sin(wall_angle), 0.0, -math.cos(wall_angle)])  # towards the camera
    for _ in range(int(rng.integers(3, 10))):
        z = math.exp(rng.uniform(math.log(0.8), math.log(9.0)))
        x = rng.uniform(-0.65, 0.65) * z
        if rng.random() < 0.6:
            size = (rng.uniform(0.08, 0.4), rng.uniform(0.1, 0.6), rng.uniform(0.08, 0.4))
            kind, angle, reach = "box", rng.uniform(0, math.pi), math.hypot(size[0], size[2])
        else:
            size = (rng.uniform(0.04, 0.3), rng.uniform(0.15, 0.7), 0.0)
            kind, angle, reach = "cylinder", 0.0, size[0]
        standing = floor and rng.random() < 0.75
        y = -size[1] if standing else -camera_height + rng.uniform(-0.45, 0.45) * z
        centre = np.array([x, y, z])
        in_front_of_wall = float((centre - np.array([0.0, 0.0, wall_distance])) @ wall_normal) > reach + 0.1
        if z - reach > 0.45 and in_front_of_wall:
            primitives.append(_Primitive(kind, tuple(centre), size, angle, _look(rng)))
    return primitives


def _rotation(pitch: float) -> np.ndarray:
    """Camera -> world: columns are the camera's right, down and forward axes (pitch > 0 looks down)."""
    c, s = math.cos(pitch), math.sin(pitch)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def _rays(camera: StereoCamera, rotation: np.ndarray) -> np.ndarray:
    """[H*W, 3] world directions of the pixel centres, camera-frame z = 1 (the ray parameter is depth)."""
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    local = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u, float)], -1)
    return local.reshape(-1, 3) @ rotation.T


def _render(primitives, origin, rays, fx, middle, lamp) -> tuple[np.ndarray, np.ndarray]:
    """(depth [N] with inf for nothing, linear radiance [N, 3]) of the nearest hits along `rays`."""
    n = len(rays)
    depth = np.full(n, np.inf)
    owner = np.full(n, -1)
    uv = np.zeros((n, 2))
    normal = np.zeros((n, 3))
    for index, primitive in enumerate(primitives):
        t, coords, normals = _intersect(primitive, origin, rays)
        nearer = t < depth
        depth[nearer], owner[nearer] = t[nearer], index
        uv[nearer], normal[nearer] = coords[nearer], normals[nearer]
    points = origin + depth[:, None] * rays
    radiance = np.zeros((n, 3))
    for index, primitive in enumerate(primitives):
        mine = owner == index
        if not np.any(mine):
            continue
        p, nrm = points[mine], normal[mine]
        nrm = np.where(np.sum(nrm * (p - middle), axis=1, keepdims=True) > 0, -nrm, nrm)  # face the rig
        to_rig = middle - p
        distance = np.linalg.norm(to_rig, axis=1)
        slant = np.maximum(np.abs(np.sum(nrm * to_rig, axis=1)) / distance, 0.2)
        footprint = distance / (fx * slant)  # metres of surface per pixel, the same for both views
        albedo = _albedo(primitive.look, uv[mine], footprint)
        to_lamp = lamp - p
        lamp_distance = np.linalg.norm(to_lamp, axis=1)
        facing = np.maximum(np.sum(nrm * to_lamp, axis=1) / lamp_distance, 0.0)
        lamp_light = facing / (1 + (lamp_distance / 4.0) ** 2)
        top_light = np.maximum(-nrm[:, 1], 0.0)
        radiance[mine] = albedo * (0.3 + 0.9 * lamp_light + 0.4 * top_light)[:, None]
    return depth, radiance


def _intersect(primitive: _Primitive, origin: np.ndarray, rays: np.ndarray):
    """(t [N] inf where missed, surface coordinates [N, 2] in metres, normals [N, 3]) for one primitive."""
    n = len(rays)
    t = np.full(n, np.inf)
    coords = np.zeros((n, 2))
    normals = np.zeros((n, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        if primitive.kind == "plane":
            if math.isnan(primitive.angle):  # the floor y = 0
                normal = np.array([0.0, -1.0, 0.0])
                axis_u, axis_v = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
            else:
                a = primitive.angle
                normal = np.array([math.sin(a), 0.0, -math.cos(a)])
                axis_u, axis_v = np.array([math.cos(a), 0.0, math.sin(a)]), np.array([0.0, 1.0, 0.0])
            centre = np.asarray(primitive.centre)
            hit = ((centre - origin) @ normal) / (rays @ normal)
            ok = np.isfinite(hit) & (hit > _NEAR_M)
            t[ok] = hit[ok]
            p = origin + hit[ok, None] * rays[ok] - centre
            coords[ok] = np.stack([p @ axis_u, p @ axis_v], axis=1)
            normals[ok] = normal
        elif primitive.kind == "box":
            c, s = math.cos(primitive.angle), math.sin(primitive.angle)
            to_local = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
            o = to_local @ (origin - np.asarray(primitive.centre))
            d = rays @ to_local.T
            d = np.where(np.abs(d) < 1e-12, 1e-12, d)
            half = np.asarray(primitive.size)
            t1, t2 = (-half - o) / d, (half - o) / d
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            t_in, t_out = near.max(axis=1), far.min(axis=1)
            ok = (t_in <= t_out) & (t_in > _NEAR_M)
            t[ok] = t_in[ok]
            axis = near[ok].argmax(axis=1)
            p = o + t_in[ok, None] * d[ok]
            sign = np.where(d[ok, axis] > 0, -1.0, 1.0)
            local_normal = np.zeros((int(ok.sum()), 3))
            local_normal[np.arange(len(axis)), axis] = sign
            normals[ok] = local_normal @ to_local
            other = np.array([[1, 2], [0, 2], [0, 1]])[axis]
            coords[ok] = np.take_along_axis(p, other, axis=1)
        else:  # an upright cylinder with its caps
            radius, half_height = primitive.size[0], primitive.size[1]
            o = origin - np.asarray(primitive.centre)
            dx, dy, dz = rays[:, 0], rays[:, 1], rays[:, 2]
            a = dx * dx + dz * dz
            b = 2 * (o[0] * dx + o[2] * dz)
            disc = b * b - 4 * a * (o[0] ** 2 + o[2] ** 2 - radius**2)
            side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
            y = o[1] + side * dy
            side_ok = (disc >= 0) & (side > _NEAR_M) & (np.abs(y) <= half_height)
            cap_y = np.where(o[1] < 0, -half_height, half_height)  # the cap facing the rays' origin
            cap = (cap_y - o[1]) / dy
            cx, cz = o[0] + cap * dx, o[2] + cap * dz
            cap_ok = np.isfinite(cap) & (cap > _NEAR_M) & (cx * cx + cz * cz <= radius**2)
            cap_ok &= ~side_ok | (cap < side)
            t[side_ok], t[cap_ok] = side[side_ok], cap[cap_ok]
            px, pz = o[0] + side * dx, o[2] + side * dz
            coords[side_ok] = np.stack([np.arctan2(pz, px)[side_ok] * radius, y[side_ok]], axis=1)
            normals[side_ok] = np.stack([px[side_ok], np.zeros(int(side_ok.sum())), pz[side_ok]], 1) / radius
            coords[cap_ok] = np.stack([cx[cap_ok], cz[cap_ok]], axis=1)
            normals[cap_ok] = np.array([0.0, 1.0, 0.0]) * np.sign(cap_y)
    return t, coords, normals


def _albedo(look: _Look, uv: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Value noise in [0, 1] around the look's colour; octaves finer than the pixel fade to their mean."""
    total = np.zeros(len(uv))
    weight_sum = 0.0
    for octave in range(look.octaves):
        frequency = look.frequency * 2.0**octave
        amplitude = look.persistence**octave
        keep = np.clip(2.0 - 4.0 * frequency * footprint, 0.0, 1.0)  # 1 under 1/4 cycle a pixel, 0 over 1/2
        noise = _value_noise(uv[:, 0] * frequency, uv[:, 1] * frequency, look.seed + 7919 * octave)
        total += amplitude * (0.5 + keep * (noise - 0.5))
        weight_sum += amplitude
    shade = 1.0 + 2.0 * look.contrast * (total / weight_sum - 0.5) * 2.0
    return np.clip(np.asarray(look.colour)[None, :] * shade[:, None], 0.0, 1.0)


def _value_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Smoothly interpolated hashed lattice values in [0, 1]."""
    ix, iy = np.floor(x), np.floor(y)
    fx, fy = x - ix, y - iy
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    ix, iy = ix.astype(np.int64), iy.astype(np.int64)
    v00, v10 = _hash(ix, iy, seed), _hash(ix + 1, iy, seed)
    v01, v11 = _hash(ix, iy + 1, seed), _hash(ix + 1, iy + 1, seed)
    return (v00 * (1 - sx) + v10 * sx) * (1 - sy) + (v01 * (1 - sx) + v11 * sx) * sy


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    h = (ix.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (iy.astype(np.uint32) * np.uint32(0xD8163841))
    h ^= np.uint32(seed * 0xCB1AB31F & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(16)
    return h.astype(np.float64) / 4294967296.0
