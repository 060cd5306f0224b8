"""Freespace on the floor in front of the camera as an occupancy grid, from the plane answers. No ROS.

The grid lies in the camera's *footprint* frame: origin on the floor right under the left camera's optical
centre, x forward (the optical axis projected onto the floor), y to the left, z up (REP 103). Only the
mount (height, pitch; roll assumed zero) relates it to the optical frame, so no TF lookup is needed;
`footprint_transform` gives the static transform a user publishes to hang the frame in their TF tree.

Cells: FREE where pixels see the floor there (not nearer than the floor at their row, by the ground model's
answer) before the nearest obstacle of their image column, OCCUPIED where an obstacle pixel stands (its
point at its depth level, projected down onto the floor), UNKNOWN elsewhere (out of view, hidden behind an
obstacle, or beyond every plane). The column rule keeps an obstacle's lowest band (below the clearance, so
"not an obstacle") from clearing the floor behind it, where its rays would meet the floor. Occupied wins a
cell that also has floor votes: a costmap would rather keep an obstacle than clear it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dla_perception.models.proximity_geometry import GroundModel, StereoGeometry

FREE, OCCUPIED, UNKNOWN = 0, 100, -1  # nav_msgs/OccupancyGrid values


@dataclass(frozen=True)
class GridSpec:
    """The grid's size on the floor: `length_m` ahead of the camera, `width_m` across, centred on its axis."""

    resolution_m: float = 0.05
    length_m: float = 4.0
    width_m: float = 4.0

    def __post_init__(self) -> None:
        values = (self.resolution_m, self.length_m, self.width_m)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"grid resolution, length and width must be positive, got {values}")
        if self.cells_x * self.cells_y > 4_000_000:
            raise ValueError(f"a {self.cells_x}x{self.cells_y} grid is too large; coarsen the resolution")

    @property
    def cells_x(self) -> int:
        return max(1, round(self.length_m / self.resolution_m))

    @property
    def cells_y(self) -> int:
        return max(1, round(self.width_m / self.resolution_m))

    @property
    def origin(self) -> tuple[float, float]:
        """(x, y) of the first cell's outer corner in the footprint frame: OccupancyGrid.info.origin."""
        return 0.0, -self.cells_y * self.resolution_m / 2.0


class FloorProjection:
    """Where each (strided) pixel's ray goes in the footprint frame, for one camera, mount and image size.

    Built once per geometry and mount (the node keeps it until either changes). For a pixel of depth Z
    (along the optical axis), its point is Z * (forward_per_z, left_per_z) on the floor plan; the floor
    itself is met at Z = floor_z (inf at and above the horizon).
    """

    def __init__(self, geometry: StereoGeometry, mount: GroundModel, width: int, height: int,
                 stride: int = 1) -> None:
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.key = (geometry, mount, width, height, stride)
        self.stride = stride
        v, u = np.mgrid[0:height:stride, 0:width:stride].astype(np.float64)
        ray_x, ray_y = (u - geometry.cx) / geometry.fx, (v - geometry.cy) / geometry.fy
        cos_p, sin_p = math.cos(mount.pitch_rad), math.sin(mount.pitch_rad)
        down = ray_y * cos_p + sin_p  # how fast the ray drops per metre of depth (the GroundModel's term)
        self.forward_per_z = (cos_p - ray_y * sin_p).astype(np.float32)
        self.left_per_z = (-ray_x).astype(np.float32)
        with np.errstate(divide="ignore"):
            self.floor_z = np.where(down > 0, mount.camera_height_m / down, np.inf).astype(np.float32)
            raised = mount.camera_height_m - mount.clearance_m
            self.raised_z = np.where(down > 0, raised / down, np.inf).astype(np.float32)

    def sample(self, image: np.ndarray) -> np.ndarray:
        """A full-resolution HxW array at this projection's pixels."""
        return image[:: self.stride, :: self.stride]


def occupancy_grid(result, depth_m: np.ndarray, projection: FloorProjection, spec: GridSpec) -> np.ndarray:
    """[cells_y, cells_x] int8 grid (row = y index, as OccupancyGrid.data) of a ProximityResult.

    depth_m: full-resolution depth levels (obstacles.depth_levels). Needs the ground model's obstacle mask
    (result.obstacle_mask): without a floor there is no floor plane to map.
    """
    if result.obstacle_mask is None:
        raise ValueError("an occupancy grid needs ground handling (a camera mount) to know the floor")
    obstacle = projection.sample(result.obstacle_mask)
    depth = projection.sample(depth_m)
    # An obstacle pixel below the horizon is nearer than the raised floor at its row: a tighter bound
    # than its plane for the pixels near its foot, i.e. where it stands.
    occupied_z = np.minimum(depth, projection.raised_z)
    is_occupied = obstacle & (depth > 0)
    occupied_forward = np.where(is_occupied, occupied_z * projection.forward_per_z, np.inf)
    first_hit = occupied_forward.min(axis=0)  # per image column: the nearest obstacle ahead
    floor_forward = projection.floor_z * projection.forward_per_z
    is_free = ~obstacle & np.isfinite(projection.floor_z) & (floor_forward < first_hit[None, :])

    def votes(mask: np.ndarray, z: np.ndarray) -> np.ndarray:
        ix = np.floor(z[mask] * projection.forward_per_z[mask] / spec.resolution_m).astype(np.int64)
        y = z[mask] * projection.left_per_z[mask] - spec.origin[1]
        iy = np.floor(y / spec.resolution_m).astype(np.int64)
        inside = (ix >= 0) & (ix < spec.cells_x) & (iy >= 0) & (iy < spec.cells_y)
        return np.bincount(iy[inside] * spec.cells_x + ix[inside], minlength=spec.cells_x * spec.cells_y)

    grid = np.full(spec.cells_x * spec.cells_y, UNKNOWN, np.int8)
    grid[votes(is_free, projection.floor_z) > 0] = FREE
    grid[votes(is_occupied, occupied_z) > 0] = OCCUPIED
    return grid.reshape(spec.cells_y, spec.cells_x)


Transform = tuple[tuple[float, float, float], tuple[float, float, float, float]]


def footprint_transform(mount: GroundModel) -> Transform:
    """The footprint frame in the optical frame: (translation x, y, z), (quaternion x, y, z, w).

    That is the static transform with the optical frame as parent and the footprint as child (a frame has
    one parent in TF, and the camera's optical frame usually already has its own from the robot's URDF).
    """
    cos_p, sin_p = math.cos(mount.pitch_rad), math.sin(mount.pitch_rad)
    height = mount.camera_height_m
    translation = (0.0, height * cos_p, height * sin_p)  # the floor point right under the optical centre
    # Columns: the footprint's x (forward), y (left) and z (up) axes in optical coordinates.
    rotation = np.array([[0.0, -1.0, 0.0], [-sin_p, 0.0, -cos_p], [cos_p, 0.0, -sin_p]])
    return translation, _quaternion(rotation)


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a proper rotation matrix (Shepperd's method, the largest-diagonal branch)."""
    m = rotation
    trace = np.trace(m)
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    best = int(np.argmax(candidates))
    if best == 0:
        s = math.sqrt(1.0 + trace) * 2
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    elif best == 1:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = (s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif best == 2:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = ((m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s)
    x, y, z, w = (float(v) for v in q)
    return (x, y, z, w) if w >= 0 else (-x, -y, -z, -w)
