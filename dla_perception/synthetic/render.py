"""A per-pixel ray caster for street-like scenes: ground, facades, a far wall and solid obstacles.

World frame: x right, y down, z forward; the ground is y = 0. Rays are cast with a direction whose
camera-frame z component is 1, so the ray parameter at a hit is the depth Z along the optical axis and
disparity fx * B / Z is exact. Each view is cast on its own from the same scene, which makes occlusions in
the right view real. Solids are unit shapes (cube, cylinder, sphere) under a yaw + scale + translation, and
are only cast inside the screen rectangle their bounding box projects to, which keeps a frame fast.
"""

from __future__ import annotations

import cv2
import numpy as np

from dla_perception.synthetic.intersections import intersect_solid
from dla_perception.synthetic.projection import pixel_rays, screen_windows
from dla_perception.synthetic.scene_model import NEAR_M, Facade, Scene, ViewBuffers
from dla_perception.synthetic.shadows import GroundShadow, apply_ground_shadow, ground_shadow


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
                  for solid_index, found in enumerate(screen_windows(corners, origin, rotation, intrinsics))
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
            apply_ground_shadow(buffers, scene, shadow)
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
    found = screen_windows(corners, origin, rotation, intrinsics)
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
