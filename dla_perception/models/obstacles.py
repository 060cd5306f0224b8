"""Obstacle pixels of a proximity answer as 3-D points, for costmaps (Nav2 obstacle/voxel layers, STVL).

No ROS here: the node turns the array into sensor_msgs/PointCloud2. A pixel's depth is its *depth level*:
the nearest plane (or the alert distance) it is nearer than, which is what the network answers. Its true
depth lies between that level and the next plane in, so a point is at most one plane spacing too far —
the same bound proximity/range has. Points are in the left camera's optical frame (x right, y down,
z forward), as REP 103 defines `*_optical_frame`s.
"""

from __future__ import annotations

import numpy as np

from dla_perception.models.freespace import FloorProjection
from dla_perception.models.proximity_geometry import StereoGeometry


def depth_levels(result, alert_distance_m: float | None = None) -> np.ndarray:
    """HxW float32 metres: each pixel's depth level (0 where it is beyond every plane).

    With `alert_distance_m`, pixels of the alert mask are capped at it: they are known to be nearer than
    the alert distance even when that is not one of the planes.
    """
    levels = np.asarray(result.level_image)
    depth = np.zeros(levels.shape, np.float32)
    for disparity, distance in zip(result.planes_px, result.planes_m, strict=True):
        depth[levels == np.float32(disparity)] = distance  # the level image holds the planes' own values
    if alert_distance_m is not None:
        alert = np.asarray(result.alert_mask) > 0
        capped = depth[alert]
        depth[alert] = np.where(capped > 0, np.minimum(capped, alert_distance_m), alert_distance_m)
    return depth


def obstacle_selection(result, plane_m: float, alert_distance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(HxW bool pixels to publish, HxW float32 depth levels) for `points_plane_m`.

    plane_m <= 0: the alert mask's pixels (floor already removed when a ground model is set). plane_m > 0:
    the pixels whose depth level is at most plane_m, less the floor (the ground model's obstacle mask).
    """
    if plane_m <= 0:
        depth = depth_levels(result, alert_distance_m)
        return np.asarray(result.alert_mask) > 0, depth
    depth = depth_levels(result)
    selected = (depth > 0) & (depth <= plane_m + 1e-6)
    if result.obstacle_mask is not None:
        selected &= result.obstacle_mask
    return selected, depth


def obstacle_points(result, geometry: StereoGeometry, *, alert_distance_m: float, plane_m: float = 0.0,
                    stride: int = 1, floor: FloorProjection | None = None) -> np.ndarray:
    """[N, 3] float32 optical-frame points of a ProximityResult's obstacle pixels (see obstacle_selection),
    one per `stride` x `stride` block, back-projected through the left camera: X = (u - cx) Z / fx, ...

    floor: the mount's FloorProjection at the same stride. An obstacle pixel below the horizon is nearer than
    the raised floor at its row, which bounds its depth tighter than its plane near the obstacle's foot.
    """
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    selected, depth = obstacle_selection(result, plane_m, alert_distance_m)
    selected, depth = selected[::stride, ::stride], depth[::stride, ::stride]
    if floor is not None:
        if floor.stride != stride or floor.raised_z.shape != depth.shape:
            raise ValueError("the floor projection is for another stride or image size")
        depth = np.minimum(depth, floor.raised_z)
    rows, columns = np.nonzero(selected)
    z = depth[rows, columns].astype(np.float32)
    v, u = rows * stride, columns * stride
    x = ((u - geometry.cx) / geometry.fx * z).astype(np.float32)
    y = ((v - geometry.cy) / geometry.fy * z).astype(np.float32)
    return np.stack([x, y, z], axis=1)
