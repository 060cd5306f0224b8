"""Nearest hits of rays from one origin with a solid: unit box, cylinder or sphere under a yaw, scale and
translation, worked out in the solid's own frame."""

from __future__ import annotations

import cv2
import numpy as np

from dla_perception.synthetic.scene_model import NEAR_M, Solid

_ZERO, _ONE, _MINUS_ONE = np.float32(0.0), np.float32(1.0), np.float32(-1.0)


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
