"""The replay's own rclpy node: it plays a bag's frames (inputs and /clock) and records every output.

Outputs are deserialized only for their header stamp (which frame they answer) and queued for the output
bag at their input frame's bag time; the main thread writes them (`flush`), since the sqlite3 writer is
bound to its thread. Each output also goes to the inbox the lock-step loop waits on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dla_perception.replay import bag as bagmod
from dla_perception.replay.graph import DIAGNOSTICS, GraphNode, PerceptionGraph
from dla_perception.replay.messages import typestore
from dla_perception.replay.recorder import OutputBag

# Camera models before images, so a pair never races its own camera_info.
PUBLISH_ORDER = (bagmod.LEFT_INFO, bagmod.RIGHT_INFO, bagmod.RIGHT_IMAGE, bagmod.LEFT_IMAGE,
                 bagmod.MONO_IMAGE)


@dataclass
class Received:
    topic: str
    msgtype: str
    stamp_ns: int
    raw: bytes
    at: float  # time.perf_counter() at arrival


class BagPlayer:
    """The replay's own rclpy node: plays the bag (inputs and /clock) and records every output."""

    def __init__(self, graph: PerceptionGraph, bag: bagmod.InputBag, output: OutputBag,
                 inbox: Any, with_inputs: bool = False) -> None:
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.node = Node("replay", context=graph.context)
        self.output, self.inbox = output, inbox
        # Inputs copied into the output bag: camera models always (RViz and Foxglove need them to place
        # the outputs), images and ground truth when asked (they make the bag several times larger).
        self.recorded_inputs = {bagmod.LEFT_INFO, bagmod.RIGHT_INFO}
        if with_inputs:
            self.recorded_inputs |= {bagmod.LEFT_IMAGE, bagmod.RIGHT_IMAGE, bagmod.MONO_IMAGE,
                                     bagmod.GROUND_TRUTH}
        self.write_lock = threading.Lock()
        self.to_write: list[tuple[str, str, int, bytes]] = []  # written by the main thread (flush)
        self.log_time_of_stamp: dict[int, int] = {}
        self.current_log_time_ns = 0
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.clock = self.node.create_publisher(Clock, "/clock", reliable)
        inputs = bagmod.STEREO_TOPICS if bag.mode == "stereo" else {bagmod.MONO_IMAGE: bagmod.IMAGE}
        classes = {bagmod.IMAGE: Image, bagmod.CAMERA_INFO: CameraInfo}
        # Where each input goes: compressed camera images on `<topic>/compressed`, as image_transport does.
        self.published_as = {topic: topic for topic in inputs}
        if bag.image_transport == "compressed":
            for topic in bagmod.CAMERA_IMAGES:
                if topic in inputs:
                    inputs = {**inputs, topic: bagmod.COMPRESSED_IMAGE}
                    self.published_as[topic] = topic + "/compressed"
            classes[bagmod.COMPRESSED_IMAGE] = CompressedImage
        self.inputs = {topic: self.node.create_publisher(classes[msgtype], self.published_as[topic], reliable)
                       for topic, msgtype in inputs.items()}
        self.required: dict[str, list[str]] = {}  # node name -> output topics it publishes and we wait for
        self.subscriptions = []
        self.subscribed: set[str] = set()
        for graph_node in graph.nodes:
            self.required[graph_node.name] = self._subscribe(graph_node)

    def _subscribe(self, graph_node: GraphNode) -> list[str]:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        publishers = {p.topic_name.lstrip("/"): p for p in graph_node.node.publishers}
        required = []
        for topic in graph_node.required + graph_node.optional:
            publisher = publishers.get(topic)
            if publisher is None:
                continue  # e.g. `detections` where vision_msgs is missing: taken from the node's outcome
            if topic in graph_node.required:
                required.append(topic)
            if topic in self.subscribed:
                continue  # /diagnostics has several publishers; one subscription records them all
            msg_class = publisher.msg_type
            msgtype = ros_type_name(msg_class)
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self.subscriptions.append(self.node.create_subscription(
                msg_class, topic, self._callback(topic, msgtype), qos, raw=True))
            self.subscribed.add(topic)
        return required

    def _callback(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        def receive(raw: bytes) -> None:
            at = time.perf_counter()
            try:
                stamp_ns = stamp_of(typestore().deserialize_cdr(raw, msgtype))
            except Exception:  # a type the typestore lacks: not decodable here, not recordable either
                return
            with self.write_lock:
                log_time = self.log_time_of_stamp.get(stamp_ns, self.current_log_time_ns)
                self.to_write.append((topic, msgtype, log_time, raw))
            if topic != DIAGNOSTICS:
                self.inbox.add_message(Received(topic, msgtype, stamp_ns, raw, at))

        return receive

    def write(self, topic: str, msgtype: str, stamp_ns: int, raw: bytes) -> None:
        """Queues a message for the output bag at the bag time of the frame with this stamp."""
        with self.write_lock:
            log_time = self.log_time_of_stamp.get(stamp_ns, self.current_log_time_ns)
            self.to_write.append((topic, msgtype, log_time, raw))

    def flush(self) -> None:
        """Writes the queued messages; main thread only (the sqlite3 writer is bound to its thread)."""
        with self.write_lock:
            pending, self.to_write = self.to_write, []
        for topic, msgtype, log_time, raw in pending:
            self.output.write(topic, msgtype, log_time, raw)

    def play(self, frame: bagmod.Frame) -> float:
        """Publishes one frame (clock, camera models, right then left image); returns the start time."""
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        with self.write_lock:
            self.log_time_of_stamp[frame.stamp_ns] = frame.log_time_ns
            self.current_log_time_ns = frame.log_time_ns
            self.to_write += [(self.published_as.get(m.topic, m.topic), m.msgtype, m.log_time_ns, m.raw)
                              for m in frame.messages.values() if m.topic in self.recorded_inputs]
        sec, nanosec = divmod(frame.stamp_ns, 1_000_000_000)
        started = time.perf_counter()
        self.clock.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
        for topic in PUBLISH_ORDER:
            message = frame.messages.get(topic)
            if message is not None and topic in self.inputs:
                self.inputs[topic].publish(message.raw)
        return started

    def prime(self, frame: bagmod.Frame) -> None:
        """Camera models first, so the first stereo pair does not race its own camera_info."""
        for topic in (bagmod.LEFT_INFO, bagmod.RIGHT_INFO):
            message = frame.messages.get(topic)
            if message is not None and topic in self.inputs:
                self.inputs[topic].publish(message.raw)

    def wait_for_connections(self, graph: PerceptionGraph, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            inputs_ok = all(p.get_subscription_count() > 0 for p in self.inputs.values())
            outputs_ok = all(s.get_publisher_count() > 0 for s in self.subscriptions)
            if inputs_ok and outputs_ok:
                return
            time.sleep(0.02)
        unconnected = [t for t, p in self.inputs.items() if p.get_subscription_count() == 0]
        unconnected += [s.topic_name for s in self.subscriptions if s.get_publisher_count() == 0]
        raise RuntimeError(f"the perception nodes did not connect within {timeout_s:.0f} s: {unconnected}")

    def destroy(self) -> None:
        self.node.destroy_node()


def ros_type_name(msg_class: type) -> str:
    package = msg_class.__module__.split(".")[0]
    return f"{package}/msg/{msg_class.__name__}"


def stamp_of(message: Any) -> int:
    header = getattr(message, "header", None)
    if header is None:
        return -1
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
