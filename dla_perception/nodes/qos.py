"""QoS of the nodes' inputs and outputs, and the standard ROS 2 way for a user to change it.

Inputs (images, camera_info) default to the sensor-data profile (best effort, depth 5), as camera drivers
publish. The `input_qos` parameter picks another base profile; on top of it every subscription and
publisher accepts rclpy's QoS overrides (QoSOverridingOptions), e.g. in a params file

    qos_overrides./left/image_rect.subscription.reliability: reliable

with the fully qualified topic name after remapping, as ROS documents it. Outputs are reliable, depth 5
(a reliable publisher serves best-effort and reliable subscribers alike).
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

from dla_perception.nodes.parameters import INPUT_QOS_CHOICES

OUTPUT_DEPTH = 5
INPUT_DEPTH = 5
# The policies a user may override per topic (rclpy's defaults plus durability, for latched publishers).
OVERRIDABLE = (QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
               QoSPolicyKind.DURABILITY)


def input_profile(choice: str) -> QoSProfile:
    """A fresh profile for the `input_qos` parameter's value (rclpy writes the overrides into it)."""
    choice = choice.lower()
    if choice == "sensor_data":
        return _copy(qos_profile_sensor_data)
    if choice == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=INPUT_DEPTH,
                          reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    if choice == "system_default":
        return _copy(qos_profile_system_default)
    raise ValueError(f"input_qos must be one of {', '.join(INPUT_QOS_CHOICES)}, not {choice!r}")


def output_profile(depth: int = OUTPUT_DEPTH) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def overriding_options() -> QoSOverridingOptions:
    return QoSOverridingOptions(OVERRIDABLE)


def describe(profile: QoSProfile) -> str:
    """`reliable, keep_last 5, volatile`: what a subscription or publisher actually got, for the logs."""
    history = profile.history.name.lower()
    if profile.history == HistoryPolicy.KEEP_LAST:
        history += f" {profile.depth}"
    return f"{profile.reliability.name.lower()}, {history}, {profile.durability.name.lower()}"


def _copy(profile: QoSProfile) -> QoSProfile:
    return QoSProfile(history=profile.history, depth=profile.depth, reliability=profile.reliability,
                      durability=profile.durability, deadline=profile.deadline, lifespan=profile.lifespan,
                      liveliness=profile.liveliness,
                      liveliness_lease_duration=profile.liveliness_lease_duration)
