"""proximity_segmentation's outputs for Nav2 (proximity/points, proximity/occupancy) and its mount check.

The computations are ROS-free (dla_perception.models.obstacles, .freespace, .mount_check); this module
keeps what they need between frames (the floor projection of the current camera and mount, the recent
mount evidence) and turns their arrays into messages. Called on the node's worker thread only.
"""

from __future__ import annotations

import threading
from typing import Any

from dla_perception.models.freespace import FloorProjection, GridSpec, footprint_transform, occupancy_grid
from dla_perception.models.mount_check import MountCheck, MountMonitor
from dla_perception.models.obstacles import depth_levels, obstacle_points
from dla_perception.models.proximity_geometry import GroundModel, StereoGeometry
from dla_perception.nodes.messages import occupancy_grid_message, point_cloud_message

POINTS = "proximity/points"
OCCUPANCY = "proximity/occupancy"


def occupancy_frame(configured: str, camera_frame: str) -> str:
    """The occupancy grid's frame: the parameter, else `<camera frame>_footprint`."""
    return configured or f"{camera_frame or 'camera'}_footprint"


def static_transform_command(mount: GroundModel, camera_frame: str, footprint_frame: str) -> str:
    """The `static_transform_publisher` line that hangs the footprint frame under the camera's frame."""
    (x, y, z), (qx, qy, qz, qw) = footprint_transform(mount)
    return (f"ros2 run tf2_ros static_transform_publisher --x {x:.4f} --y {y:.4f} --z {z:.4f} "
            f"--qx {qx:.6f} --qy {qy:.6f} --qz {qz:.6f} --qw {qw:.6f} "
            f"--frame-id {camera_frame} --child-frame-id {footprint_frame}")


class FloorOutputs:
    """Point cloud, occupancy grid and mount check of one proximity node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projection: FloorProjection | None = None
        self._check: MountCheck | None = None
        self._last_checked_ns: int | None = None
        self.monitor = MountMonitor()

    def mount_floors(self, ground: GroundModel | None, tolerance_m: float, stamp_ns: int = 0,
                     period_s: float = 0.0) -> tuple[GroundModel, ...]:
        """The extra floors the pipeline must answer for the mount check on this frame: none when it is off
        or when the last checked frame is less than `period_s` of stamps ago (a stamp going backwards, a bag
        played again, checks at once)."""
        with self._lock:
            check = MountCheck(ground, tolerance_m) if ground is not None and tolerance_m > 0 else None
            if check != self._check:  # another mount or tolerance: earlier evidence is about the old one
                self.monitor.reset()
                self._check, self._last_checked_ns = check, None
            if check is None:
                return ()
            last = self._last_checked_ns
            if last is not None and 0 <= stamp_ns - last < period_s * 1e9:
                return ()
            self._last_checked_ns = stamp_ns
            return check.floors()

    def observe_mount(self, result: Any, geometry: StereoGeometry) -> tuple[bool, str]:
        """Add this frame's floor evidence, if it was checked; (ok, message) of the recent checked frames."""
        with self._lock:
            check = self._check
        if check is None:
            return True, ""
        if result.floor_masks is not None:
            self.monitor.add(check.evidence(result.floor_masks, geometry))
        return self.monitor.verdict()

    def projection(self, geometry: StereoGeometry, ground: GroundModel, width: int, height: int,
                   stride: int) -> FloorProjection:
        with self._lock:
            key = (geometry, ground, width, height, stride)
            if self._projection is None or self._projection.key != key:
                self._projection = FloorProjection(geometry, ground, width, height, stride)
            return self._projection

    def messages(self, result: Any, geometry: StereoGeometry, ground: GroundModel | None,
                 values: dict[str, Any], grid: GridSpec | None, stamp: Any, frame_id: str,
                 wanted: set[str] | frozenset[str] = frozenset((POINTS, OCCUPANCY))) -> dict[str, Any]:
        """proximity/points, and proximity/occupancy with a grid spec and a ground model (the floor), of
        those in `wanted` (the topics someone reads)."""
        height, width = result.alert_mask.shape
        stride = int(values["points_stride"])
        outputs: dict[str, Any] = {}
        if not wanted & {POINTS, OCCUPANCY}:
            return outputs
        projection = self.projection(geometry, ground, width, height, stride) if ground is not None else None
        if POINTS in wanted:
            points = obstacle_points(result, geometry, alert_distance_m=float(values["alert_distance_m"]),
                                     plane_m=float(values["points_plane_m"]), stride=stride, floor=projection)
            outputs[POINTS] = point_cloud_message(points, stamp, frame_id)
        if OCCUPANCY in wanted and projection is not None and grid is not None:
            cells = occupancy_grid(result, depth_levels(result), projection, grid)
            frame = occupancy_frame(values["occupancy_frame"], frame_id)
            outputs[OCCUPANCY] = occupancy_grid_message(cells, grid.resolution_m, grid.origin, stamp, frame)
        return outputs
