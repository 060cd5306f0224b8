"""Ground-truth boxes of the obstacles the left view shows, by the annotation rule of docs/synthetic.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dla_perception.synthetic.arrays import lookup
from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.scene_model import Scene, ViewBuffers

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


def annotate_obstacles(scene: Scene, left: ViewBuffers, camera: StereoCamera) -> list[ObjectAnnotation]:
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
