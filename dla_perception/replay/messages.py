"""Message types for reading and writing bags without a ROS install.

The rosbags typestore for ROS 2 Jazzy knows the standard interfaces but not vision_msgs, which is not
installable here (see environment.md). Its definitions are registered from the .msg text of vision_msgs 4.x
(the version Humble and Jazzy ship), so bags written here open in `ros2 bag` and Foxglove on a robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

DETECTION_ARRAY_TYPE = "vision_msgs/msg/Detection2DArray"

# vision_msgs 4.1 (ros-perception/vision_msgs, branch ros2), the fields this project fills.
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


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The Jazzy typestore plus vision_msgs; shared, since registration is the slow part."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name, text in VISION_MSGS_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def detection_array(
    stamp_ns: int, frame_id: str, detections: Sequence[tuple[str, float, tuple[float, float, float, float]]]
) -> object:
    """A rosbags vision_msgs/Detection2DArray from (class id, score, x1 y1 x2 y2 box in pixels) triples."""
    store = typestore()
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](*divmod(stamp_ns, 1_000_000_000)),
        frame_id=frame_id,
    )
    pose = _zero_pose_with_covariance(types)
    items = []
    for class_id, score, (x1, y1, x2, y2) in detections:
        center = types["vision_msgs/msg/Pose2D"](
            position=types["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2.0, y=(y1 + y2) / 2.0), theta=0.0
        )
        hypothesis = types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id=str(class_id), score=float(score)),
            pose=pose,
        )
        items.append(
            types["vision_msgs/msg/Detection2D"](
                header=header,
                results=[hypothesis],
                bbox=types["vision_msgs/msg/BoundingBox2D"](center=center, size_x=x2 - x1, size_y=y2 - y1),
                id="",
            )
        )
    return types[DETECTION_ARRAY_TYPE](header=header, detections=items)


def _zero_pose_with_covariance(types: dict) -> object:
    import numpy as np

    pose = types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
        orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
    )
    return types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36, dtype=np.float64))
