"""A per-pixel ray caster for street-like scenes: ground, facades, a far wall and solid obstacles.

World frame: x right, y down, z forward; the ground is y = 0. Rays are cast with a direction whose
camera-frame z component is 1, so the ray parameter at a hit is the depth Z along the optical axis and
disparity fx * B / Z is exact. Each view is cast on its own from the same scene, which makes occlusions in
the right view real. Solids are unit shapes (cube, cylinder, sphere) under a yaw + scale + translation, and
are only cast inside the screen rectangle their bounding box projects to, which keeps a frame fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

NEAR_M = 0.05  # hits nearer than this are ignored (the camera is never inside what it sees)
_ZERO, _ONE, _MINUS_ONE = np.float32(0.0), np.float32(1.0), np.float32(-1.0)


@dataclass
class Surface:
    """How a surface looks: an atlas tile, its scale on the surface, a colour tint; which object it is."""

    tile: int
    texels_per_m: float
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    object_index: int = -1  # index into Scene.objects, -1 for background
    detail: float = 0.2  # strength of the fine grain laid over the texture (0 = none)


_BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)


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
        self._corners = self.center + _BOX_CORNERS @ self.to_world.T

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


def camera_rotation(pitch_rad: float, yaw_rad: float = 0.0, roll_rad: float = 0.0) -> np.ndarray:
    """Camera -> world rotation. Camera axes: x right, y down, z forward; pitch > 0 looks down."""
    cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
    cy, sy = np.cos(yaw_rad), np.sin(yaw_rad)
    cr, sr = np.cos(roll_rad), np.sin(roll_rad)
    pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # forward tips towards +y (down)
    yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return yaw @ pitch @ roll


def pixel_rays(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
               rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World directions of the pixel centres, scaled so that their camera-frame z is 1 (HxW float32 each).
    Both views of a rectified pair share them."""
    xn = ((np.arange(width, dtype=np.float32) - cx) / fx)[None, :]
    yn = ((np.arange(height, dtype=np.float32) - cy) / fy)[:, None]
    r = rotation.astype(np.float32)
    return tuple(np.ascontiguousarray(np.broadcast_to(r[i, 0] * xn + r[i, 1] * yn + r[i, 2], (height, width)))
                 for i in range(3))


class _Writer:
    """Z-buffer writes into the view buffers, optionally restricted to a window (row and column slices).

    Writes go through cv2.copyTo with the "closer" mask: several times faster than np.where over a window
    (the buffers are contiguous, so their windows are views that OpenCV writes in place)."""

    def __init__(self, buffers: ViewBuffers):
        self.b = buffers

    def write(self, window, t, surface, u, v, light, cosine) -> None:
        b = self.b
        depth = b.depth[window]
        closer = t < depth
        if not closer.any():
            return
        mask = closer.view(np.uint8)
        for target, values in ((depth, t), (b.surface[window], surface), (b.u[window], u),
                               (b.v[window], v), (b.light[window], light), (b.cosine[window], cosine)):
            if np.ndim(values) == 0:
                values = np.full(target.shape, values, target.dtype)
            cv2.copyTo(np.asarray(values, target.dtype), mask, target)


def render_view(scene: Scene, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                origin: np.ndarray, rotation: np.ndarray,
                rays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                shadow: GroundShadow | None = None) -> ViewBuffers:
    """Cast one ray per pixel centre from `origin` (world metres) with camera->world `rotation`.

    `rays` are pixel_rays(...) for this camera and rotation and `shadow` the frame's ground_shadow(...),
    when the caller already has them (both views of a frame share them).
    """
    dx, dy, dz = rays if rays is not None else pixel_rays(fx, fy, cx, cy, width, height, rotation)
    shape = (height, width)
    ox, oy, oz = (float(c) for c in origin)
    sun = scene.sun
    full = (slice(None), slice(None))

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the ground y = 0 (normal up, -y) is the first layer: written without a depth test
        t = -oy / dy
        _beyond_near(t)
        gx, gz = ox + t * dx, oz + t * dz
        ground_surface = np.full(shape, scene.ground_bands[0][2], np.int32)
        for x_min, x_max, surface in scene.ground_bands[1:]:
            np.copyto(ground_surface, np.int32(surface), where=(gx >= x_min) & (gx < x_max))
        np.copyto(ground_surface, np.int32(-1), where=~np.isfinite(t))  # sky
        buffers = ViewBuffers(
            depth=t, surface=ground_surface, u=gx, v=gz,
            light=np.full(shape, scene.ambient + scene.sun_strength * max(0.0, -float(sun[1])), np.float32),
            cosine=np.abs(dy), directions=(dx, dy, dz),
        )
        writer = _Writer(buffers)
        intrinsics = (fx, fy, cx, cy, width, height)

        for facade in scene.facades:
            _cast_facade(writer, facade, scene, origin, rotation, intrinsics)

        if scene.far_wall is not None:
            z_wall, surface = scene.far_wall
            t = (z_wall - oz) / dz
            _beyond_near(t)
            light = np.float32(scene.ambient + scene.sun_strength * max(0.0, -float(sun[2])))
            writer.write(full, t, np.int32(surface), ox + t * dx, oy + t * dy, light, np.abs(dz))

        # nearest first, so that solids hidden behind nearer ones are skipped without casting
        corners = np.array([solid.corners() for solid in scene.solids]).reshape(-1, 8, 3)
        placed = [(found[1], solid_index, found[0])
                  for solid_index, found in enumerate(_windows(corners, origin, rotation, intrinsics))
                  if found is not None]
        for nearest, solid_index, window in sorted(placed, key=lambda item: (item[0], item[1])):
            if buffers.depth[window].max() < nearest:
                continue  # everything in its window is already nearer than it can be
            solid = scene.solids[solid_index]
            wdx, wdy, wdz = dx[window], dy[window], dz[window]
            hit = intersect_solid(solid, ox, oy, oz, wdx, wdy, wdz, scene.sun)
            if hit is None:
                continue
            t, u, v, facing, cosine = hit
            buffers.coverage[solid_index] = (window, np.isfinite(t))
            light = cv2.max(facing, 0.0, dst=facing)
            light *= scene.sun_strength
            light += scene.ambient
            writer.write(window, t, np.int32(solid.surface), u, v, light, cosine)

        if shadow is None:
            shadow = ground_shadow(scene, origin)
        if shadow is not None:
            _apply_ground_shadow(buffers, scene, shadow)
    return buffers


def _beyond_near(t: np.ndarray) -> None:
    """In place: ray parameters not at least NEAR_M (nearer, behind, NaN) become inf (no hit)."""
    np.copyto(t, np.float32(np.inf), where=~(t >= NEAR_M))


def _cast_facade(writer: _Writer, facade: Facade, scene: Scene, origin, rotation, intrinsics) -> None:
    """The plane x = x_m is cast once, over the window its segments (rectangles from the ground to their
    heights) project to. A pixel belongs to the segment whose (z_start, z_end] holds its hit, looked for only
    in that segment's own window, and sees it when the hit is no higher than the segment's top."""
    ox, oy, oz = (float(c) for c in origin)
    dx, dy, dz = writer.b.directions
    side = 1.0 if facade.x_m > ox else -1.0
    light = np.float32(scene.ambient + scene.sun_strength * max(0.0, -side * float(scene.sun[0])))
    edges = facade.z_edges.astype(np.float32)
    tops = -facade.heights_m.astype(np.float32)
    corners = np.array([[[facade.x_m, y, z] for y in (0.0, top) for z in (z_start, z_end)]
                        for z_start, z_end, top in zip(facade.z_edges[:-1], facade.z_edges[1:],
                                                       -facade.heights_m, strict=True)]).reshape(-1, 4, 3)
    found = _windows(corners, origin, rotation, intrinsics)
    segments = [(segment, window[0]) for segment, window in enumerate(found) if window is not None]
    if not segments:
        return
    top, left = min(w[0].start for _, w in segments), min(w[1].start for _, w in segments)
    bottom, right = max(w[0].stop for _, w in segments), max(w[1].stop for _, w in segments)
    window = (slice(top, bottom), slice(left, right))
    wdx = dx[window]
    t = (facade.x_m - ox) / wdx
    _beyond_near(t)
    hz = oz + t * dz[window]
    hy = oy + t * dy[window]
    surface = np.empty(t.shape, np.int32)
    seen = np.zeros(t.shape, bool)
    for segment, (rows, columns) in segments:
        part = (slice(rows.start - top, rows.stop - top), slice(columns.start - left, columns.stop - left))
        inside = (hz[part] > edges[segment]) & (hz[part] <= edges[segment + 1]) & (hy[part] >= tops[segment])
        np.copyto(surface[part], facade.surfaces[segment], where=inside)
        seen[part] |= inside
    np.copyto(t, np.float32(np.inf), where=~seen)
    writer.write(window, t, surface, hz, hy, light, np.abs(wdx))


def intersect_solid(solid: Solid, ox: float, oy: float, oz: float, dx, dy, dz, sun: np.ndarray):
    """Nearest hit (t > NEAR_M) of rays o + t d from one origin with a solid: (t, u, v, facing, cosine) with
    t = inf where a ray misses, or None when no ray hits. facing is the unit normal . `sun` (a unit vector),
    cosine |unit normal . d|.

    Both are worked out in the solid's own frame, where normals are simple. With to_local A = S R (S the
    inverse half extents, R the yaw), a local normal n is the world normal R^T S n / |S n|, so its dot
    product with a world vector w is n . (A w) / |S n|: with w = d that is n . (the local ray)."""
    a = solid.to_local.tolist()  # Python floats keep the float32 arrays float32
    c = solid.center.tolist()
    px, py, pz = ox - c[0], oy - c[1], oz - c[2]
    lox = a[0][0] * px + a[0][2] * pz
    loy = a[1][1] * py
    loz = a[2][0] * px + a[2][2] * pz
    ldx = a[0][0] * dx + a[0][2] * dz  # float32, like the rays
    ldy = a[1][1] * dy
    ldz = a[2][0] * dx + a[2][2] * dz
    if solid.shape == "box":
        t, hits, tt, nx, ny, nz = _hit_unit_box(lox, loy, loz, ldx, ldy, ldz)
    elif solid.shape == "cylinder":
        t, hits, tt, nx, ny, nz = _hit_unit_cylinder(lox, loy, loz, ldx, ldy, ldz)
    else:
        t, hits, tt, nx, ny, nz = _hit_unit_sphere(lox, loy, loz, ldx, ldy, ldz)
    if not hits.any():
        return None
    # local hit points; for a sphere and the side of a cylinder the local normal is the hit point itself
    # (computed the same way), so only what is missing is computed
    if solid.shape == "sphere":
        hx, hy, hz = nx, ny, nz
    elif solid.shape == "cylinder" and ny is None:
        hx, hy, hz = nx, loy + tt * ldy, nz
    else:
        hx, hy, hz = lox + tt * ldx, loy + tt * ldy, loz + tt * ldz
    extents = solid.half_extents.tolist()
    hx_m, hy_m, hz_m = (h * e for h, e in zip((hx, hy, hz), extents, strict=True))
    if solid.shape == "box":
        # texture coordinates on the face the ray hit, offset per face so faces do not repeat each other
        u = hx_m + 3.1 * nz + 11.7 * ny
        np.copyto(u, hz_m + 7.3 * nx, where=nx != 0)
        v = hy_m.copy()
        np.copyto(v, hz_m, where=ny != 0)
    else:
        radius = float(np.sqrt(extents[0] * extents[2]))
        u = cv2.phase(hx, hz) * np.float32(radius)  # the angle round the axis (cv2: 25x numpy's arctan2)
        v = hy_m
        if solid.shape == "cylinder" and ny is not None:
            cap = ny != 0
            if cap.any():
                np.copyto(u, hx_m + 5.0, where=cap)
                v = v.copy()
                np.copyto(v, hz_m, where=cap)
    # the dot products in the local frame; a normal's y that is zero for every ray (None) adds nothing
    sun_x, sun_y, sun_z = (solid.to_local @ sun).tolist()
    scale_x, scale_y, scale_z = (1.0 / (e * e) for e in extents)
    length2 = nx * nx * scale_x
    length2 += nz * nz * scale_z
    facing = nx * sun_x
    facing += nz * sun_z
    cosine = nx * ldx
    cosine += nz * ldz
    if ny is not None:
        length2 += ny * ny * scale_y
        facing += ny * sun_y
        cosine += ny * ldy
    length = np.sqrt(length2, out=length2)
    np.maximum(length, 1e-12, out=length)
    inverse_length = np.divide(1.0, length, out=length)
    facing *= inverse_length
    cosine = np.abs(cosine, out=cosine)
    cosine *= inverse_length
    return t, u.astype(np.float32, copy=False), v.astype(np.float32, copy=False), facing, cosine


def _with_zeros(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where t is finite: the rays that hit, t with 0 where they missed: hit points stay finite)."""
    hits = np.isfinite(t)
    tt = t.copy()
    np.copyto(tt, _ZERO, where=~hits)
    return hits, tt


def _hit_unit_box(ox, oy, oz, dx, dy, dz):
    """(t, hits, t zeroed where missed, local normal x, y, z) of rays with the unit cube (slab test).

    The origin is a scalar point outside the cube. Where it lies beyond a slab, on side s = +-1, every ray
    that hits enters that slab through the plane at s, and the normal there is s: one plane per slab to try,
    and no per-ray signs. Where it lies within a slab, that slab's entry is behind the origin and never the
    last one; only its exit counts."""
    t_near = np.full(np.broadcast(ox, dx).shape, -np.inf, np.float32)
    t_far = np.full_like(t_near, np.inf)
    axis = np.full(t_near.shape, -1, np.int8)
    sides = []
    for index, (o, d) in enumerate(((ox, dx), (oy, dy), (oz, dz))):
        inverse = 1.0 / d
        side = 1.0 if o > 1.0 else -1.0 if o < -1.0 else 0.0
        sides.append(side)
        if side:
            enter, leave = (side - o) * inverse, (-side - o) * inverse
            later = enter > t_near
            np.copyto(t_near, enter, where=later)
            np.copyto(axis, np.int8(index), where=later)
        else:
            leave = np.maximum((-1.0 - o) * inverse, (1.0 - o) * inverse)
        np.minimum(t_far, leave, out=t_far)
    hit = (t_near <= t_far) & (t_near >= NEAR_M)
    np.copyto(t_near, np.float32(np.inf), where=~hit)
    normal = []
    for index, side in enumerate(sides):
        component = np.zeros(t_near.shape, np.float32)
        if side:
            np.copyto(component, np.float32(side), where=axis == index)
        normal.append(component)
    return (t_near, *_with_zeros(t_near), *normal)


def _hit_unit_cylinder(ox, oy, oz, dx, dy, dz):
    """(t, hits, t zeroed where missed, local normal x, y, z) of rays with the unit cylinder; y is None
    when no ray can hit a cap."""
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - 1.0
    disc = b * b - a * c
    root = cv2.sqrt(cv2.max(disc, 0.0))
    t_side = (-b - root) / a
    y_side = oy + t_side * dy
    np.copyto(t_side, np.float32(np.inf), where=~((disc >= 0) & (t_side >= NEAR_M) & (np.abs(y_side) <= 1.0)))
    if -1.0 <= oy <= 1.0:
        # the origin is level with the side: no ray can enter through a cap (a camera below the top of a
        # post or a person, the usual case, is spared the cap tests)
        hits, tt = _with_zeros(t_side)
        return t_side, hits, tt, ox + tt * dx, None, oz + tt * dz
    cap_y = _MINUS_ONE if oy < -1.0 else _ONE  # the cap facing the origin
    t_cap = (cap_y - oy) / dy
    cx, cz = ox + t_cap * dx, oz + t_cap * dz
    np.copyto(t_cap, np.float32(np.inf), where=~((t_cap >= NEAR_M) & (cx * cx + cz * cz <= 1.0)))
    use_cap = t_cap < t_side
    t = t_side.copy()
    np.copyto(t, t_cap, where=use_cap)
    hits, tt = _with_zeros(t)
    nx, nz = ox + tt * dx, oz + tt * dz
    ny = np.zeros_like(t)
    if use_cap.any():
        np.copyto(nx, _ZERO, where=use_cap)
        np.copyto(nz, _ZERO, where=use_cap)
        np.copyto(ny, np.float32(cap_y), where=use_cap)
    return t, hits, tt, nx, ny, nz


def _hit_unit_sphere(ox, oy, oz, dx, dy, dz):
    """(t, hits, t zeroed where missed, local normal x, y, z = the hit point) of rays with the unit
    sphere."""
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - 1.0
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    np.copyto(t, np.float32(np.inf), where=~((disc >= 0) & (t >= NEAR_M)))
    hits, tt = _with_zeros(t)
    return t, hits, tt, ox + tt * dx, oy + tt * dy, oz + tt * dz


def _clipped_camera_points(points: np.ndarray, origin, rotation) -> np.ndarray:
    """Camera-frame points of the convex hull of `points` (world, Nx3) clipped to z >= NEAR_M: the points in
    front, plus where every segment between a point in front and one behind crosses the near plane (all
    pairs, so every hull edge is among them; the extra crossings lie inside the clipped hull anyway)."""
    camera = (np.asarray(points, np.float64) - origin) @ rotation  # rotation is camera->world
    front = camera[:, 2] >= NEAR_M
    if front.all() or not front.any():
        return camera[front]
    ahead, behind = camera[front], camera[~front]
    a = np.repeat(ahead, len(behind), axis=0)
    b = np.tile(behind, (len(ahead), 1))
    fraction = (a[:, 2] - NEAR_M) / (a[:, 2] - b[:, 2])
    crossings = a + (b - a) * fraction[:, None]
    return np.vstack([ahead, crossings])


def _windows(point_sets: np.ndarray, origin, rotation, intrinsics) -> list:
    """_window_of for N point sets at once (N x K x 3): vectorised for the common case of sets wholly in
    front of the camera, which keeps the per-solid cost of a frame small."""
    fx, fy, cx, cy, width, height = intrinsics
    if not len(point_sets):
        return []
    camera = (point_sets - origin) @ rotation
    z = camera[..., 2]
    in_front = (z >= NEAR_M).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = fx * camera[..., 0] / z + cx, fy * camera[..., 1] / z + cy
    x0 = np.maximum(np.floor(x.min(axis=1)) - 1, 0)
    x1 = np.minimum(np.ceil(x.max(axis=1)) + 2, width)
    y0 = np.maximum(np.floor(y.min(axis=1)) - 1, 0)
    y1 = np.minimum(np.ceil(y.max(axis=1)) + 2, height)
    nearest = z.min(axis=1)
    found = []
    for index in range(len(point_sets)):
        if not in_front[index]:
            found.append(_window_of(point_sets[index], origin, rotation, *intrinsics))
        elif x0[index] >= x1[index] or y0[index] >= y1[index]:
            found.append(None)
        else:
            window = (slice(int(y0[index]), int(y1[index])), slice(int(x0[index]), int(x1[index])))
            found.append((window, float(nearest[index])))
    return found


def _window_of(points, origin, rotation, fx, fy, cx, cy, width, height):
    """The pixel window (row, column slices) that the convex hull of world `points` covers in a view, with
    the nearest depth it can have there; None when it is behind the camera or off screen."""
    camera = _clipped_camera_points(points, origin, rotation)
    if not len(camera):
        return None
    z = np.maximum(camera[:, 2], NEAR_M)
    x, y = fx * camera[:, 0] / z + cx, fy * camera[:, 1] / z + cy
    x0, x1 = int(max(np.floor(x.min()) - 1, 0)), int(min(np.ceil(x.max()) + 2, width))
    y0, y1 = int(max(np.floor(y.min()) - 1, 0)), int(min(np.ceil(y.max()) + 2, height))
    if x0 >= x1 or y0 >= y1:
        return None
    return (slice(y0, y1), slice(x0, x1)), float(z.min())


@dataclass
class GroundShadow:
    """Sun shadows on the ground plane as an image over world (x, z): 255 = in shadow. Both views (and the
    right and left rays of one frame) read the same map at the same ground point, so they always agree.
    Cells are SHADOW_CELL_M wide and edges anti-aliased: about the penumbra a real sun casts."""

    image: np.ndarray
    x0: float
    z0: float
    cell: float


SHADOW_CELL_M = 0.03
SHADOW_AHEAD_M = 120.0


def ground_shadow(scene: Scene, origin: np.ndarray) -> GroundShadow | None:
    """The shadows of the facades and the solids on the ground around the camera; None when the sun is too
    low (never, in generated scenes)."""
    sun = scene.sun
    if sun[1] >= -1e-3:
        return None
    xs = [facade.x_m for facade in scene.facades]
    x0, x1 = min([-12.0, *xs]) - 1.0, max([12.0, *xs]) + 1.0
    z0 = float(origin[2]) - 2.0
    cell = SHADOW_CELL_M
    image = np.zeros((int(SHADOW_AHEAD_M / cell), int((x1 - x0) / cell)), np.uint8)

    outlines = []  # ground projections (along the sun) of convex sets, each given by points (Nx3, y <= 0)
    for facade in scene.facades:
        for z_start, z_end, height in zip(facade.z_edges[:-1], facade.z_edges[1:], facade.heights_m,
                                          strict=True):
            if z_end < z0 - 50 or z_start > z0 + SHADOW_AHEAD_M + 50:
                continue
            wall = np.array([[facade.x_m, 0.0, z_start], [facade.x_m, 0.0, z_end],
                             [facade.x_m, -height, z_start], [facade.x_m, -height, z_end]])
            outlines.append(_on_ground(wall, sun))
    outlines += [_solid_on_ground(solid, sun) for solid in scene.solids]
    if outlines:
        ground = np.concatenate(outlines)
        # 4 fractional bits: sub-cell precise, anti-aliased edges
        pixels = np.round(np.stack([(ground[:, 0] - x0) / cell, (ground[:, 2] - z0) / cell], axis=1) * 16)
        ends = np.cumsum([len(outline) for outline in outlines])
        for points in np.split(pixels.astype(np.int32), ends[:-1]):
            cv2.fillConvexPoly(image, cv2.convexHull(points), 255, lineType=cv2.LINE_AA, shift=4)
    return GroundShadow(image, x0, z0, cell)


def _on_ground(points: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """Points moved along the sun's rays down to the ground y = 0."""
    return points - (points[:, 1:2] / sun[1]) * sun


def _solid_on_ground(solid: Solid, sun: np.ndarray) -> np.ndarray:
    """_on_ground of the solid's outline points, kept on the solid: it stands still for a whole drive."""
    key = sun.tobytes()
    cached = solid.__dict__.get("_ground_outline")
    if cached is None or cached[0] != key:
        cached = solid.__dict__["_ground_outline"] = (key, _on_ground(_outline_points(solid), sun))
    return cached[1]


def _unit_outlines() -> dict[str, np.ndarray]:
    """Per shape, local points whose convex hull is the unit solid (its corners; rings for round shapes)."""
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    circle_x, circle_z = np.cos(angles), np.sin(angles)
    cylinder = [np.column_stack([circle_x, np.full(16, y), circle_z]) for y in (-1.0, 1.0)]
    sphere = [np.column_stack([circle_x * np.cos(a), np.full(16, np.sin(a)), circle_z * np.cos(a)])
              for a in np.radians([-60.0, -30.0, 0.0, 30.0, 60.0])]
    sphere.append(np.array([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]))  # the poles
    return {"box": _BOX_CORNERS, "cylinder": np.vstack(cylinder), "sphere": np.vstack(sphere)}


_UNIT_OUTLINES = _unit_outlines()


def _outline_points(solid: Solid) -> np.ndarray:
    """World points whose convex hull is the solid."""
    return solid.center + _UNIT_OUTLINES[solid.shape] @ solid.to_world.T


def _apply_ground_shadow(buffers: ViewBuffers, scene: Scene, shadow: GroundShadow) -> None:
    """Ground pixels in shadow get the ambient light only (partly, on the anti-aliased edges)."""
    is_ground = None
    for band in {band[2] for band in scene.ground_bands}:
        if is_ground is None:
            is_ground = buffers.surface == band
        else:
            is_ground |= buffers.surface == band
    rows = np.flatnonzero(is_ground.any(axis=1))
    if not len(rows):
        return
    part = slice(int(rows[0]), int(rows[-1]) + 1)  # the rows that show ground
    map_x = (buffers.u[part] - np.float32(shadow.x0)) * np.float32(1 / shadow.cell)
    map_y = (buffers.v[part] - np.float32(shadow.z0)) * np.float32(1 / shadow.cell)
    shade = cv2.remap(shadow.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0)
    sun_light = np.float32(scene.sun_strength * max(0.0, -float(scene.sun[1])) / 255.0)
    lit = np.float32(scene.ambient) + sun_light * (np.float32(255.0) - shade.astype(np.float32))
    np.copyto(buffers.light[part], lit, where=is_ground[part])
