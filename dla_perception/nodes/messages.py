"""Pure conversions between ROS messages and numpy, with the validation the nodes need.

Nothing here creates a node. Every function raises `BadInput` (a ValueError carrying a short `kind`) for a
message the nodes must reject, so the nodes can count rejections per kind in diagnostics and keep running.
Decoding uses rosbags-image (it accepts rclpy and rosbags messages alike); encoding fills the five fields.
"""

from __future__ import annotations

import array
import importlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from dla_perception.models import image_decode

DEFAULT_MAX_IMAGE_SIDE = image_decode.DEFAULT_MAX_IMAGE_SIDE
SUPPORTED_ENCODINGS = image_decode.SUPPORTED_ENCODINGS
BadInput = image_decode.BadInput  # a ValueError with a `kind`; defined without ROS for the replay's use


# --------------------------------------------------------------------------------------------- time
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp_fields(stamp_ns: int) -> dict[str, int]:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return {"sec": sec, "nanosec": nanosec}


# --------------------------------------------------------------------------------------------- images
def image_to_rgb(msg: Any, max_side: int = DEFAULT_MAX_IMAGE_SIDE) -> np.ndarray:
    """sensor_msgs/Image (any encoding of SUPPORTED_ENCODINGS) or CompressedImage -> HxWx3 uint8 RGB.

    The decoding is dla_perception.models.image_decode's, the same the replay uses.
    """
    return image_decode.decode_any(msg, max_side)


def image_message(pixels: np.ndarray, encoding: str, stamp: Any = None, frame_id: str = "") -> Any:
    """numpy -> sensor_msgs/Image (rclpy). `stamp` is copied into the header when given."""
    from sensor_msgs.msg import Image

    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    data = array.array("B")
    data.frombytes(memoryview(pixels).cast("B"))  # one copy, ten times faster than via bytes
    msg.data = data
    return msg


def point_cloud_message(points: np.ndarray, stamp: Any, frame_id: str) -> Any:
    """[N, 3] float32 points -> an unorganised sensor_msgs/PointCloud2 with fields x, y, z (float32)."""
    from sensor_msgs.msg import PointCloud2, PointField

    packed = np.ascontiguousarray(points, dtype="<f4").reshape(-1, 3)
    msg = PointCloud2()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width = 1, int(packed.shape[0])
    msg.fields = [PointField(name=name, offset=4 * index, datatype=PointField.FLOAT32, count=1)
                  for index, name in enumerate("xyz")]
    msg.is_bigendian = False
    msg.point_step, msg.row_step = 12, 12 * int(packed.shape[0])
    msg.is_dense = True  # every point is finite
    data = array.array("B")
    data.frombytes(packed.tobytes() if packed.size == 0 else memoryview(packed).cast("B"))
    msg.data = data
    return msg


def occupancy_grid_message(grid: np.ndarray, resolution_m: float, origin_xy: tuple[float, float], stamp: Any,
                           frame_id: str) -> Any:
    """[rows (y), columns (x)] int8 grid -> nav_msgs/OccupancyGrid, origin in `frame_id` at z = 0."""
    from nav_msgs.msg import OccupancyGrid

    msg = OccupancyGrid()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.info.map_load_time = stamp
    msg.info.resolution = float(resolution_m)
    msg.info.height, msg.info.width = (int(n) for n in grid.shape)
    msg.info.origin.position.x, msg.info.origin.position.y = (float(v) for v in origin_xy)
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(np.ascontiguousarray(grid, dtype=np.int8).tobytes())
    msg.data = data
    return msg


# --------------------------------------------------------------------------------------------- cameras
@dataclass(frozen=True)
class StereoGeometry:
    """The rectified stereo model the proximity pipeline needs, validated."""

    projection_left: np.ndarray  # 3x4 float64
    projection_right: np.ndarray  # 3x4 float64
    fx: float
    baseline_m: float
    width: int
    height: int
    # The core's model of the same projections (models.proximity_geometry.StereoGeometry), made once per
    # camera_info change instead of once per frame.
    core: Any = field(compare=False, repr=False)

    def disparity_px(self, distance_m: float) -> float:
        return self.fx * self.baseline_m / distance_m


def projection_matrix(info: Any, side: str) -> np.ndarray:
    """CameraInfo.p -> 3x4 float64, rejecting an uncalibrated (all zero) or non-finite matrix."""
    values = np.asarray(list(info.p), dtype=np.float64)
    if values.size != 12:
        raise BadInput("camera_info", f"{side} camera_info has {values.size} values in P, expected 12")
    matrix = values.reshape(3, 4)
    if not np.all(np.isfinite(matrix)):
        raise BadInput("camera_info", f"{side} camera_info P has non-finite values: {values.tolist()}")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise BadInput("camera_info", f"{side} camera_info P has no positive focal length (uncalibrated?)")
    return matrix


def stereo_geometry(left_info: Any, right_info: Any) -> StereoGeometry:
    """Left/right CameraInfo -> StereoGeometry; baseline from the right P[0,3] = -fx * B (ROS convention).

    The CameraInfo checks are here; focal length and baseline come from the core's stereo model, the one
    the pipeline itself uses, so the node and the pipeline cannot disagree about them.
    """
    from dla_perception.models.proximity_geometry import StereoGeometry as CoreStereoGeometry

    left = projection_matrix(left_info, "left")
    right = projection_matrix(right_info, "right")
    try:  # P is finite with positive focal lengths by now: only the baseline can be wrong
        core = CoreStereoGeometry.from_projections(left, right)
    except ValueError as exc:
        raise BadInput("baseline", str(exc)) from exc
    sizes = {(int(left_info.width), int(left_info.height)), (int(right_info.width), int(right_info.height))}
    if len(sizes) != 1:
        raise BadInput("camera_info", f"left and right camera_info sizes differ: {sorted(sizes)}")
    width, height = sizes.pop()
    return StereoGeometry(left, right, core.fx, core.baseline_m, width, height, core)


# --------------------------------------------------------------------------------------------- pairing
T = TypeVar("T")


@dataclass
class PairerCounters:
    paired: int = 0
    unpaired: int = 0  # evicted without a partner
    out_of_order: int = 0  # older than the last pair
    restarts: int = 0  # stamps jumped back further than restart_ns: a new stream


class StereoPairer(Generic[T]):
    """Pairs left/right messages by stamp within `slop_ns`; bounded, thread-safe.

    A stereo driver stamps both views identically; slop covers drivers that do not. At most `capacity`
    unpaired messages are kept per side: older ones are evicted and counted as unpaired. A message older
    than the last emitted pair is refused and counted as out of order, unless it is more than `restart_ns`
    older: then the stream restarted (a bag played again, a simulation reset) and pairing starts afresh.
    """

    def __init__(self, slop_ns: int = 0, capacity: int = 4, restart_ns: int = 3_000_000_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.slop_ns = max(0, int(slop_ns))
        self.capacity = capacity
        self.restart_ns = int(restart_ns)
        self.counters = PairerCounters()
        self._waiting: dict[str, OrderedDict[int, T]] = {"left": OrderedDict(), "right": OrderedDict()}
        self._last_paired_ns: int | None = None
        self._lock = threading.Lock()

    def push(self, side: str, stamp_ns: int, item: T) -> tuple[int, T, T] | None:
        """Offer one message; returns (stamp of the left, left item, right item) when it completes a pair.

        Raises BadInput("out_of_order") for a stamp at or before the last pair (the caller counts it).
        """
        if side not in self._waiting:
            raise ValueError(f"side must be 'left' or 'right', not {side!r}")
        other = "right" if side == "left" else "left"
        with self._lock:
            if self._last_paired_ns is not None and stamp_ns < self._last_paired_ns - self.restart_ns:
                self._reset()
                self.counters.restarts += 1
            if self._last_paired_ns is not None and stamp_ns <= self._last_paired_ns:
                self.counters.out_of_order += 1
                raise BadInput(
                    "out_of_order",
                    f"{side} stamp {stamp_ns} ns is not after the last pair ({self._last_paired_ns} ns)",
                )
            match = min(
                (s for s in self._waiting[other] if abs(s - stamp_ns) <= self.slop_ns),
                key=lambda s: abs(s - stamp_ns),
                default=None,
            )
            if match is None:
                waiting = self._waiting[side]
                waiting[stamp_ns] = item
                while len(waiting) > self.capacity:
                    waiting.popitem(last=False)
                    self.counters.unpaired += 1
                return None
            partner = self._waiting[other].pop(match)
            left_ns = stamp_ns if side == "left" else match
            newest = max(stamp_ns, match)
            for queue in self._waiting.values():  # anything older than this pair can never pair now
                for stale in [s for s in queue if s <= newest]:
                    del queue[stale]
                    self.counters.unpaired += 1
            self._last_paired_ns = newest
            self.counters.paired += 1
            return (left_ns, item, partner) if side == "left" else (left_ns, partner, item)

    def reset(self) -> None:
        """Forget everything, e.g. after a simulated clock jumped back (a bag restarted)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        for queue in self._waiting.values():
            queue.clear()
        self._last_paired_ns = None


# --------------------------------------------------------------------------------------------- generic
def fill_message(msg: Any, fields: dict[str, Any]) -> Any:
    """Set an rclpy message's fields from nested dicts/lists (the shape `detection_array_fields` returns).

    Sequences of messages are built with the element class the message's own type support declares, so
    this works for any installed interface (vision_msgs on robots, diagnostic_msgs everywhere).
    """
    slot_types = dict(zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES, strict=True))
    for name, value in fields.items():
        if name not in slot_types:
            raise KeyError(f"{type(msg).__name__} has no field {name!r}")
        if isinstance(value, dict):
            fill_message(getattr(msg, name), value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            element_class = _message_class(slot_types[name].value_type)
            setattr(msg, name, [fill_message(element_class(), item) for item in value])
        else:
            setattr(msg, name, value)
    return msg


def _message_class(namespaced_type: Any) -> type:
    module = importlib.import_module(".".join(namespaced_type.namespaces))
    return getattr(module, namespaced_type.name)


# --------------------------------------------------------------------------------------------- detections
# vision_msgs 4.x (Humble, Jazzy) definitions, for building the type without the ROS package (rosbags).
VISION_MSGS_DEFINITIONS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def register_vision_msgs(typestore: Any) -> None:
    """Add the vision_msgs types above to a rosbags typestore (no-op when already there)."""
    from rosbags.typesys import get_types_from_msg

    missing = {name: text for name, text in VISION_MSGS_DEFINITIONS.items() if name not in typestore.types}
    types: dict = {}
    for name, text in missing.items():
        types.update(get_types_from_msg(text, name))
    if types:
        typestore.register(types)


def detection_array_fields(detections: Any, stamp: Any, frame_id: str) -> dict[str, Any]:
    """Detections -> the field structure of vision_msgs/Detection2DArray as nested dicts.

    class_id is the label string, bbox centre/size in input-image pixels, one hypothesis per detection.
    `stamp` is a builtin_interfaces/Time or integer nanoseconds. Feed the result to `fill_message` (rclpy)
    or to a rosbags typestore after `register_vision_msgs`.
    """
    stamp_fields = ns_to_stamp_fields(stamp if isinstance(stamp, int) else stamp_to_ns(stamp))
    header = {"stamp": stamp_fields, "frame_id": frame_id}
    items = []
    for index, detection in enumerate(detections):
        x1, y1, x2, y2 = (float(v) for v in detection.box)
        items.append({
            "header": dict(header),
            "results": [{"hypothesis": {"class_id": str(detection.label), "score": float(detection.score)}}],
            "bbox": {
                "center": {"position": {"x": (x1 + x2) / 2.0, "y": (y1 + y2) / 2.0}, "theta": 0.0},
                "size_x": max(0.0, x2 - x1),
                "size_y": max(0.0, y2 - y1),
            },
            "id": str(index),
        })
    return {"header": header, "detections": items}


def vision_msgs_available() -> tuple[bool, str]:
    """Whether vision_msgs imports here, and why not."""
    try:
        importlib.import_module("vision_msgs.msg")
    except ImportError as exc:
        return False, f"vision_msgs is not installed ({exc})"
    return True, ""


def finite_positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


_BASE_DEFAULTS = {"string": "", "bool": False, "float32": 0.0, "float64": 0.0}


def rosbags_message(typestore: Any, typename: str, fields: dict[str, Any] | None = None) -> Any:
    """Build a rosbags message of `typename` from nested dicts, defaulting every field left out.

    The counterpart of `fill_message` for bags written without ROS (the replay tool's output bag).
    """
    from rosbags.typesys.base import Nodetype

    fields = dict(fields or {})
    _, field_defs = typestore.fielddefs[typename]
    unknown = set(fields) - {name for name, _ in field_defs}
    if unknown:
        raise KeyError(f"{typename} has no field(s) {sorted(unknown)}")
    values = {}
    for name, (node_type, detail) in field_defs:
        given = fields.get(name)
        if node_type == Nodetype.NAME:
            values[name] = rosbags_message(typestore, detail, given)
        elif node_type == Nodetype.BASE:
            base = detail[0]
            values[name] = given if given is not None else _BASE_DEFAULTS.get(base, 0)
        else:  # ARRAY (fixed length) or SEQUENCE of a base type or of messages
            (element_type, element), length = detail
            if element_type == Nodetype.NAME:
                items = list(given or [])
                values[name] = [rosbags_message(typestore, element, item) for item in items]
            else:
                dtype = np.dtype({"string": object, "bool": bool}.get(element[0], element[0]))
                default = np.zeros(length if node_type == Nodetype.ARRAY else 0, dtype=dtype)
                values[name] = np.asarray(given, dtype=dtype) if given is not None else default
    return typestore.types[typename](**values)
