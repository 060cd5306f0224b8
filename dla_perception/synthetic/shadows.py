"""Sun shadows on the ground: the facades' and solids' outlines projected along the sun onto one map that both
views of a frame read."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dla_perception.synthetic.scene_model import BOX_CORNERS, Scene, Solid, ViewBuffers


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
    return {"box": BOX_CORNERS, "cylinder": np.vstack(cylinder), "sphere": np.vstack(sphere)}


_UNIT_OUTLINES = _unit_outlines()


def _outline_points(solid: Solid) -> np.ndarray:
    """World points whose convex hull is the solid."""
    return solid.center + _UNIT_OUTLINES[solid.shape] @ solid.to_world.T


def apply_ground_shadow(buffers: ViewBuffers, scene: Scene, shadow: GroundShadow) -> None:
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
