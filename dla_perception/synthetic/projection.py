"""The camera's pose and pixel rays, and the screen windows that world point sets project to (solids are only
cast inside their window, which keeps a frame fast)."""

from __future__ import annotations

import numpy as np

from dla_perception.synthetic.scene_model import NEAR_M


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


def screen_windows(point_sets: np.ndarray, origin, rotation, intrinsics) -> list:
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
