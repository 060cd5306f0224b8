"""A ray caster for scenes of free-standing primitives, the renderer of the training families (families.py).

Shapes are quads (finite or infinite planes), boxes, spheres and capped cylinders under any rotation,
with patterned materials (patterns.py) that can be glossy or glowing; light is ambient, a sun with optional
cast shadows, and point lamps. As in the street renderer, rays are scaled so that their camera-frame z is 1:
the ray parameter at a hit is the depth Z, and disparity = fx * B / Z exactly. Each view is cast on its
own from its own optical centre, so occlusions and glossy highlights differ between the views as they do
in a real rig. Patterns are read in the mip level of the surface point's footprint as seen from the middle
of the baseline, which both views share, so they see the same texels at the same surface point.

World frame: x right, y down, z forward; a floor, when present, is y = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from dla_perception.synthetic.patterns import pattern_mips

NEAR_M = 0.03


@dataclass
class Material:
    """A pattern tile (kind, variant) laid on the surface at `texels_per_m`, turned by `angle`, shifted by
    `offset` texels, tinted, with its contrast scaled; `gloss` > 0 adds highlights of that strength and
    `shininess`; `glow` > 0 makes the surface a light source of that radiance (not shaded)."""

    pattern: tuple[str, int]
    texels_per_m: float
    angle: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    gloss: float = 0.0
    shininess: float = 32.0
    glow: float = 0.0


@dataclass
class Shape:
    """kind: "quad" (half sizes size[0], size[1] in local x/y, inf for an unbounded plane; normal local +z),
    "box" (half extents), "sphere" (radius size[0]) or "cylinder" (radius size[0], half length size[1] along
    local y). rotation: local -> world 3x3; centre: world metres."""

    kind: str
    centre: np.ndarray
    rotation: np.ndarray
    size: tuple[float, float, float]
    material: int

    def __post_init__(self) -> None:
        if self.kind not in ("quad", "box", "sphere", "cylinder"):
            raise ValueError(f"unknown shape kind {self.kind!r}")
        self.centre = np.asarray(self.centre, np.float64)
        self.rotation = np.asarray(self.rotation, np.float64)

    def bounding_radius(self) -> float:
        s = self.size
        return {
            "quad": math.hypot(s[0], s[1]),
            "box": math.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2),
            "sphere": s[0],
            "cylinder": math.hypot(s[0], s[1]),
        }[self.kind]


@dataclass
class Lights:
    ambient: tuple[float, float, float] = (0.3, 0.3, 0.3)
    sun_direction: np.ndarray | None = None  # unit vector towards the sun (world)
    sun: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shadows: bool = False
    # (position, power): radiance at 1 m facing the lamp
    lamps: list[tuple[np.ndarray, tuple[float, float, float]]] = field(default_factory=list)
    background: tuple[float, float, float] = (0.5, 0.6, 0.75)  # radiance where nothing is hit


@dataclass
class PrimitiveScene:
    shapes: list[Shape]
    materials: list[Material]
    lights: Lights


def rotation_matrix(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Local -> world: roll about z, then pitch about x (positive tips +z down, to +y), then yaw about y."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    pitch_m = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    roll_m = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return yaw_m @ pitch_m @ roll_m


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation drawn uniformly (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def pixel_rays(fx, fy, cx, cy, width, height, rotation) -> np.ndarray:
    """[H, W, 3] float32 world directions of the pixel centres with camera-frame z = 1."""
    u = (np.arange(width) - cx) / fx
    v = (np.arange(height) - cy) / fy
    local = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    return (local @ rotation.T).astype(np.float32)


def surface(shape: Shape, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(surface coordinates [N, 2] in metres, world normals [N, 3]) at world points on the shape's surface."""
    p = (points - shape.centre) @ shape.rotation  # world -> local: R^T x
    n = len(p)
    normal = np.zeros((n, 3))
    if shape.kind == "quad":
        uv = p[:, :2]
        normal[:, 2] = 1.0
    elif shape.kind == "box":
        ratio = np.abs(p) / np.asarray(shape.size)
        axis = ratio.argmax(axis=1)
        normal[np.arange(n), axis] = np.sign(p[np.arange(n), axis])
        uv = np.take_along_axis(p, np.array([[1, 2], [2, 0], [0, 1]])[axis], axis=1)
    elif shape.kind == "sphere":
        r = shape.size[0]
        normal = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
        uv = np.stack([np.arctan2(p[:, 0], p[:, 2]) * r, np.arcsin(np.clip(normal[:, 1], -1, 1)) * r], 1)
    else:
        r, half_length = shape.size[0], shape.size[1]
        radial = np.hypot(p[:, 0], p[:, 2])
        side = np.abs(radial - r) <= np.abs(np.abs(p[:, 1]) - half_length)
        uv = np.where(side[:, None], np.stack([np.arctan2(p[:, 2], p[:, 0]) * r, p[:, 1]], 1), p[:, [0, 2]])
        normal[:, 0] = np.where(side, p[:, 0] / np.maximum(radial, 1e-12), 0.0)
        normal[:, 2] = np.where(side, p[:, 2] / np.maximum(radial, 1e-12), 0.0)
        normal[:, 1] = np.where(side, 0.0, np.sign(p[:, 1]))
    return uv, normal @ shape.rotation.T


def _window(shape: Shape, origin, rotation, fx, fy, cx, cy, width, height):
    """(row slice, column slice) of the pixels the shape's bounding sphere may cover; None if none."""
    radius = shape.bounding_radius()
    if not math.isfinite(radius):
        return slice(0, height), slice(0, width)
    corners = shape.centre + radius * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    camera = (corners - origin) @ rotation  # world -> camera coordinates
    if np.all(camera[:, 2] <= NEAR_M):
        return None
    if np.any(camera[:, 2] <= NEAR_M):
        return slice(0, height), slice(0, width)
    u = cx + fx * camera[:, 0] / camera[:, 2]
    v = cy + fy * camera[:, 1] / camera[:, 2]
    x0, x1 = max(0, int(math.floor(u.min()))), min(width, int(math.ceil(u.max())) + 1)
    y0, y1 = max(0, int(math.floor(v.min()))), min(height, int(math.ceil(v.max())) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def cast(scene: PrimitiveScene, origin, rotation, fx, fy, cx, cy, width, height):
    """(depth [H, W] with inf where nothing is hit, owner [H, W] int shape index or -1, rays [H, W, 3])."""
    rays = pixel_rays(fx, fy, cx, cy, width, height, rotation)
    components = [np.ascontiguousarray(rays[..., i], dtype=np.float32) for i in range(3)]
    depth = np.full((height, width), np.inf, np.float32)
    owner = np.full((height, width), -1, np.int32)
    for index, shape in enumerate(scene.shapes):
        window = _window(shape, origin, rotation, fx, fy, cx, cy, width, height)
        if window is None:
            continue
        t = _distance(shape, origin, *(c[window] for c in components))
        view = depth[window]
        nearer = t < view
        view[nearer] = t[nearer]
        owner[window][nearer] = index
    return depth, owner, rays


def _distance(shape: Shape, origin: np.ndarray, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit (inf where none) for the world ray components rx, ry, rz (float32):
    the fast path of `intersect` for casting, component arrays instead of [N, 3] rows."""
    r = shape.rotation.astype(np.float32)
    o = ((origin - shape.centre) @ shape.rotation).astype(np.float32)
    d = [r[0, i] * rx + r[1, i] * ry + r[2, i] * rz for i in range(3)]  # world -> local: R^T d
    inf = np.float32(np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if shape.kind == "quad":
            t = -o[2] / d[2]
            ok = t > NEAR_M
            if math.isfinite(shape.size[0]):
                ok &= np.abs(o[0] + t * d[0]) <= shape.size[0]
                ok &= np.abs(o[1] + t * d[1]) <= shape.size[1]
            return np.where(ok, t, inf)
        if shape.kind == "box":
            t_in = t_out = None
            for axis in range(3):
                inverse = np.float32(1.0) / np.where(np.abs(d[axis]) < 1e-12, np.float32(1e-12), d[axis])
                t1 = (-shape.size[axis] - o[axis]) * inverse
                t2 = (shape.size[axis] - o[axis]) * inverse
                near, far = np.minimum(t1, t2), np.maximum(t1, t2)
                t_in = near if t_in is None else np.maximum(t_in, near)
                t_out = far if t_out is None else np.minimum(t_out, far)
            return np.where((t_in <= t_out) & (t_in > NEAR_M), t_in, inf)
        if shape.kind == "sphere":
            b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
            a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            disc = b * b - a * np.float32(o @ o - shape.size[0] ** 2)
            t = (-b - np.sqrt(np.maximum(disc, 0))) / a
            return np.where((disc >= 0) & (t > NEAR_M), t, inf)
        radius, half_length = shape.size[0], shape.size[1]
        a = d[0] * d[0] + d[2] * d[2]
        b = o[0] * d[0] + o[2] * d[2]
        disc = b * b - a * np.float32(o[0] ** 2 + o[2] ** 2 - radius**2)
        side = (-b - np.sqrt(np.maximum(disc, 0))) / a
        side_ok = (disc >= 0) & (side > NEAR_M) & (np.abs(o[1] + side * d[1]) <= half_length)
        cap_y = -half_length if o[1] < 0 else half_length
        cap = (cap_y - o[1]) / d[1]
        cx, cz = o[0] + cap * d[0], o[2] + cap * d[2]
        cap_ok = (cap > NEAR_M) & (cx * cx + cz * cz <= radius**2)
        t = np.where(side_ok, side, inf)
        return np.where(cap_ok & (cap < t), cap, t)


def shade(scene: PrimitiveScene, origin, middle, depth, owner, rays, fx) -> np.ndarray:
    """Linear RGB radiance [H, W, 3] of one view: patterned albedo under the scene's lights."""
    lights = scene.lights
    height, width = depth.shape
    out = np.empty((height * width, 3), np.float32)
    out[:] = lights.background
    origin, middle = origin.astype(np.float32), middle.astype(np.float32)
    flat_owner, flat_rays, flat_depth = owner.ravel(), rays.reshape(-1, 3), depth.ravel()
    order = np.argsort(flat_owner, kind="stable")  # pixels grouped by the shape they show
    starts = np.searchsorted(flat_owner[order], np.arange(len(scene.shapes) + 1))
    for index, shape in enumerate(scene.shapes):
        mine = order[starts[index] : starts[index + 1]]
        if not len(mine):
            continue
        material = scene.materials[shape.material]
        ray = flat_rays[mine]
        point = origin + flat_depth[mine, None] * ray
        uv, normal = surface(shape, point)
        normal = np.where(np.einsum("ij,ij->i", normal, ray)[:, None] > 0, -normal, normal)  # face the camera
        albedo = _albedo(material, uv, point, normal, middle, fx)
        if material.glow > 0:
            out[mine] = albedo * material.glow
            continue
        light = np.broadcast_to(np.asarray(lights.ambient), (len(mine), 3)).copy()
        specular = np.zeros((len(mine), 3))
        view = -ray / np.linalg.norm(ray, axis=1, keepdims=True)
        sources = []
        if lights.sun_direction is not None:
            sun = np.broadcast_to(lights.sun_direction, point.shape)
            sources.append((sun, 1.0, np.asarray(lights.sun), True))
        for position, power in lights.lamps:
            to_lamp = position - point
            distance2 = np.einsum("ij,ij->i", to_lamp, to_lamp)
            sources.append(
                (
                    to_lamp / np.sqrt(distance2)[:, None],
                    1.0 / np.maximum(distance2, 0.05),
                    np.asarray(power),
                    False,
                )
            )
        for direction, falloff, colour, is_sun in sources:
            facing = np.maximum(np.einsum("ij,ij->i", normal, direction), 0.0) * falloff
            if is_sun and lights.shadows:
                facing = facing * _lit(scene, point + 1e-3 * normal, direction, index)
            light += facing[:, None] * colour
            if material.gloss > 0:
                half = direction + view
                half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
                highlight = np.maximum(np.einsum("ij,ij->i", normal, half), 0.0) ** material.shininess
                specular += (material.gloss * highlight * (facing > 0) * falloff)[:, None] * colour
        out[mine] = albedo * light + specular
    return out.reshape(height, width, 3)


def _lit(scene: PrimitiveScene, points: np.ndarray, direction: np.ndarray, own: int) -> np.ndarray:
    """1 where the ray from each point towards the sun leaves the scene, 0 where a shape is in the way."""
    sun = direction[0]
    free = np.ones(len(points))
    for index, shape in enumerate(scene.shapes):
        radius = shape.bounding_radius()
        if index == own or scene.materials[shape.material].glow > 0 or not math.isfinite(radius):
            continue
        rel = points - shape.centre  # only rays passing the bounding sphere get the exact test
        along = rel @ sun
        near = np.flatnonzero((along < radius) & (np.einsum("ij,ij->i", rel, rel) - along**2 < radius**2))
        if len(near):
            free[near[_blocked(shape, points[near], sun)]] = 0.0
    return free


def _blocked(shape: Shape, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Whether the ray point + t * direction (t > 0) meets the shape, for many points and one direction.
    Exact for quads and spheres; boxes and cylinders by their local bounding box (a cylinder's shadow is
    a box's: shadows only need to be where both views see them)."""
    o = (points - shape.centre) @ shape.rotation
    d = direction @ shape.rotation
    with np.errstate(divide="ignore", invalid="ignore"):
        if shape.kind == "quad":
            t = -o[:, 2] / d[2]
            x, y = o[:, 0] + t * d[0], o[:, 1] + t * d[1]
            return (t > NEAR_M) & (np.abs(x) <= shape.size[0]) & (np.abs(y) <= shape.size[1])
        if shape.kind == "sphere":
            b = o @ d
            disc = b * b - (np.einsum("ij,ij->i", o, o) - shape.size[0] ** 2)
            return (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) > NEAR_M)
        r = shape.size[0]
        half = np.asarray(shape.size if shape.kind == "box" else (r, shape.size[1], r))
        safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (-half - o) / safe, (half - o) / safe
        t_in, t_out = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
        return (t_in <= t_out) & (t_out > NEAR_M)


def _albedo(material: Material, uv, point, normal, middle, fx) -> np.ndarray:
    """Pattern colour at the surface coordinates, in the mip level of the footprint seen from `middle`."""
    mips = pattern_mips(*material.pattern)
    c, s = math.cos(material.angle), math.sin(material.angle)
    scale = material.texels_per_m
    tu = (c * uv[:, 0] - s * uv[:, 1]) * scale + material.offset[0]
    tv = (s * uv[:, 0] + c * uv[:, 1]) * scale + material.offset[1]
    to_middle = middle - point
    distance = np.linalg.norm(to_middle, axis=1)
    slant = np.maximum(np.abs(np.einsum("ij,ij->i", normal, to_middle)) / np.maximum(distance, 1e-9), 0.1)
    footprint = distance * scale / (fx * slant)  # texels per pixel
    level = np.clip(np.floor(np.log2(np.maximum(footprint, 1e-6)) + 0.5), 0, len(mips) - 1).astype(int)
    colour = np.empty((len(uv), 3))
    size = mips[0].shape[0]
    for lev in np.unique(level):
        pick = np.flatnonzero(level == lev)
        factor = 0.5**lev
        maps = [_rows_of_1024(np.mod(t[pick], size) * factor - 0.5 * (1 - factor)) for t in (tu, tv)]
        texels = cv2.remap(mips[lev], *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        colour[pick] = texels.reshape(-1, 3)[: len(pick)] / 255.0
    mean = mips[-1].reshape(-1, 3).mean(axis=0) / 255.0  # the tile's, so both views agree
    colour = np.clip(mean + material.contrast * (colour - mean), 0.0, 1.0)
    return colour * np.asarray(material.tint)


def _rows_of_1024(values: np.ndarray) -> np.ndarray:
    """A 1-D coordinate list as a float32 [rows, 1024] remap map (remap takes under 32767 per side)."""
    rows = -(-len(values) // 1024)
    out = np.zeros(rows * 1024, np.float32)
    out[: len(values)] = values
    return out.reshape(rows, 1024)
