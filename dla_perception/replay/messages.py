"""The message types the replay reads and writes bags with, without a ROS install.

The rosbags typestore for ROS 2 Jazzy knows the standard interfaces but not vision_msgs, which is not
installable here (see environment.md). The nodes' message module registers it from the .msg text of
vision_msgs 4.x (what Humble and Jazzy ship), so output bags open in `ros2 bag` and Foxglove on a robot.
"""

from __future__ import annotations

from functools import lru_cache

from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from dla_perception.nodes.messages import register_vision_msgs

DETECTION_ARRAY_TYPE = "vision_msgs/msg/Detection2DArray"


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The Jazzy typestore plus vision_msgs; shared, since building it is the slow part."""
    store = get_typestore(Stores.ROS2_JAZZY)
    register_vision_msgs(store)
    return store
