"""The ROS nodes, in-process with real rclpy, real onnxruntime engines and the real pipelines.

The networks are tiny ONNX graphs built here so the test knows the right answer:
- proximity: features = 4x4 average pool of the image; head = sigmoid(k * sum_c(right_shifted - left)).
  On images whose intensity is a horizontal ramp (left x -> x + c, right x -> x + D + c for a surface of
  disparity D), the shifted difference is proportional to D - d: "nearer than the plane", exactly.
- detection (YOLOv8 layout): one candidate per 8x8 cell, score = the cell's mean brightness.
One rclpy context per module on its own domain id keeps it apart from other test runs on the machine.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from conftest import ros_domain_id
from onnx import TensorProto, helper

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: E402

DOMAIN_ID = ros_domain_id(1)
WIDTH, HEIGHT, FX, BASELINE = 160, 120, 100.0, 0.12  # fx * B = 12: 1 m -> 12 px, 2 m -> 6 px
OBSTACLE = (60, 30, 124, 90)  # x1, y1, x2, y2 in the left image
OBSTACLE_DISPARITY, BACKGROUND_DISPARITY = 24, 2  # 0.5 m and 6 m
TIMEOUT = 15.0
_stamps = itertools.count(1_000)


# -- models --------------------------------------------------------------------------------------------
def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def build_models(folder: Path) -> Path:
    """Write the proximity and detection test networks, the detector description and an engines file."""
    n, h, w = 2, HEIGHT, WIDTH
    _save(helper.make_graph(
        [helper.make_node("AveragePool", ["images"], ["features"], kernel_shape=[4, 4], strides=[4, 4])],
        "features",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [n, 3, h // 4, w // 4])],
    ), folder / "features.onnx")
    batch = 4
    shape = [batch, 3, h // 4, w // 4]
    _save(helper.make_graph(
        [
            helper.make_node("Sub", ["right_shifted", "left_features"], ["difference"]),
            helper.make_node("ReduceSum", ["difference", "axis"], ["summed"], keepdims=1),
            helper.make_node("Mul", ["summed", "gain"], ["scaled"]),
            helper.make_node("Sigmoid", ["scaled"], ["near"]),
        ],
        "head",
        [helper.make_tensor_value_info("left_features", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("right_shifted", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("near", TensorProto.FLOAT, [batch, 1, h // 4, w // 4])],
        [helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
         helper.make_tensor("gain", TensorProto.FLOAT, [], [300.0])],
    ), folder / "head.onnx")

    cells = 8
    gy, gx = np.mgrid[0:cells, 0:cells].astype(np.float32)
    boxes = np.stack([(gx + 0.5) * 8, (gy + 0.5) * 8, np.full_like(gx, 8), np.full_like(gy, 8)])
    _save(helper.make_graph(
        [
            helper.make_node("AveragePool", ["images"], ["cells"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("ReduceMean", ["cells"], ["brightness"], axes=[1], keepdims=1),
            helper.make_node("Reshape", ["brightness", "score_shape"], ["scores"]),
            helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
        ],
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, cells * cells])],
        [helper.make_tensor("score_shape", TensorProto.INT64, [3], [1, 1, cells * cells]),
         helper.make_tensor("boxes", TensorProto.FLOAT, [1, 4, cells * cells], boxes.reshape(-1).tolist())],
    ), folder / "detector.onnx")
    (folder / "labels.txt").write_text("square\n")
    (folder / "detector.yaml").write_text(yaml.safe_dump({
        "onnx": "detector.onnx", "labels": "labels.txt",
        "input": {"name": "images", "width": 64, "height": 64, "color": "rgb", "scale": 1 / 255,
                  "resize": "stretch"},
        "output": {"format": "yolov8", "score_threshold": 0.5},
    }))
    engines = folder / "engines.yaml"
    engines.write_text(yaml.safe_dump({
        "cache_dir": str(folder / "cache"),
        "latency_budget_ms": {"cpu": 5000.0, "dla0": 50.0},
        "models": {
            "proximity_features": {"onnx": "features.onnx", "cores": ["cpu"]},
            # dla0 does not exist here: the manager falls back to cpu and diagnostics must say so.
            "proximity_head": {"onnx": "head.onnx", "cores": ["dla0", "cpu"], "precision": "fp16",
                               "policy": "round_robin"},
            "detector": {"onnx": "detector.onnx", "cores": ["cpu"]},
        },
    }))
    return engines


# -- messages --------------------------------------------------------------------------------------------
def ramp_pair() -> tuple[np.ndarray, np.ndarray]:
    """Left/right rgb8 images of a near box in front of a far wall, intensity a horizontal ramp."""
    x = np.arange(WIDTH)
    left = np.repeat((x + 20)[None, :], HEIGHT, axis=0)
    right = np.repeat((x + 20 + BACKGROUND_DISPARITY)[None, :], HEIGHT, axis=0)
    x1, y1, x2, y2 = OBSTACLE
    columns = slice(x1 - OBSTACLE_DISPARITY, x2 - OBSTACLE_DISPARITY)
    right[y1:y2, columns] = (x[columns] + 20 + OBSTACLE_DISPARITY)[None, :]
    as_rgb = lambda a: np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)  # noqa: E731
    return as_rgb(left), as_rgb(right)


def camera_info(side: str, stamp, baseline: float = BASELINE, fx: float = FX):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo()
    info.header.stamp, info.header.frame_id = stamp, "camera_left"
    info.width, info.height = WIDTH, HEIGHT
    tx = -fx * baseline if side == "right" else 0.0
    info.p = [fx, 0.0, WIDTH / 2, tx, 0.0, fx, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.k = [fx, 0.0, WIDTH / 2, 0.0, fx, HEIGHT / 2, 0.0, 0.0, 1.0]
    return info


def stamp_of(seconds: int):
    from builtin_interfaces.msg import Time

    return Time(sec=seconds, nanosec=500)


def image(pixels: np.ndarray, encoding: str, stamp, frame_id: str = "camera_left"):
    from dla_perception.nodes.messages import image_message

    return image_message(pixels, encoding, stamp, frame_id)


# -- harness ------------------------------------------------------------------------------------------------
class Outcomes:
    """Collects FrameOutcomes of a node; waits for the one of a stamp."""

    def __init__(self, node) -> None:
        self._items = []
        self._condition = threading.Condition()
        node.add_frame_listener(self._add)

    def _add(self, outcome) -> None:
        with self._condition:
            self._items.append(outcome)
            self._condition.notify_all()

    def wait(self, stamp_ns: int, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for outcome in self._items:
                    if outcome.stamp_ns == stamp_ns:
                        return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no outcome for stamp {stamp_ns} within {timeout} s")
                self._condition.wait(remaining)


class Received:
    """Messages of one topic, by header stamp."""

    def __init__(self, node, msg_type, topic: str, qos=None) -> None:
        self.messages = []
        self._event = threading.Condition()
        node.create_subscription(msg_type, topic, self._add, qos or QoSProfile(depth=20))

    def _add(self, msg) -> None:
        with self._event:
            self.messages.append(msg)
            self._event.notify_all()

    def wait(self, predicate, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._event:
            while True:
                for msg in self.messages:
                    if predicate(msg):
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching message within {timeout} s")
                self._event.wait(remaining)


def wait_until(predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Graph:
    """The container's three nodes plus a test node that publishes inputs and subscribes to outputs."""

    def __init__(self, tmp: Path) -> None:
        from dla_perception.nodes.container import build_container
        from dla_perception.nodes.spinning import IsolatedSpinner

        self.engines = build_models(tmp)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.overrides = [
            Parameter("engines_file", value=str(self.engines)),
            Parameter("model", value=str(tmp / "detector.yaml")),
            Parameter("diagnostics_period_s", value=0.2),
            Parameter("planes_m", value=[1.0, 2.0]),
            Parameter("alert_distance_m", value=1.0),
            Parameter("min_blob_px", value=200),
        ]
        self.container = build_container(context=self.context, parameter_overrides=self.overrides)
        self.tester = rclpy.create_node("tester", context=self.context)
        self.extra_nodes = []
        # Each node on its own executor thread, as the executables run them.
        self.spinner = IsolatedSpinner([*self.container.nodes, self.tester], self.context).start()

    def add(self, node):
        self.extra_nodes.append(node)
        return self.spinner.add(node)

    def close(self) -> None:
        self.spinner.shutdown()
        for node in self.extra_nodes:
            node.destroy_node()
        self.container.destroy()
        self.tester.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    graph = Graph(tmp_path_factory.mktemp("nodes"))
    yield graph
    graph.close()


class StereoSource:
    """Publishes stereo pairs and camera_info into a namespace ('' = the container's)."""

    def __init__(self, graph: Graph, namespace: str = "") -> None:
        from sensor_msgs.msg import CameraInfo, Image

        prefix = f"/{namespace}/" if namespace else "/"
        tester = graph.tester
        sensor = qos_profile_sensor_data
        self.images = {side: tester.create_publisher(Image, f"{prefix}{side}/image_rect", sensor)
                       for side in ("left", "right")}
        self.infos = {side: tester.create_publisher(CameraInfo, f"{prefix}{side}/camera_info",
                                                    qos_profile_sensor_data) for side in ("left", "right")}
        wait_until(lambda: all(p.get_subscription_count() > 0
                               for p in (*self.images.values(), *self.infos.values())))

    def send_info(self, left=None, right=None) -> None:
        stamp = stamp_of(1)
        self.infos["left"].publish(left or camera_info("left", stamp))
        self.infos["right"].publish(right or camera_info("right", stamp))

    def send(self, left_msg, right_msg) -> None:
        self.images["left"].publish(left_msg)
        self.images["right"].publish(right_msg)

    def send_pair(self, seconds: int | None = None, encoding: str = "rgb8"):
        seconds = next(_stamps) if seconds is None else seconds
        left, right = ramp_pair()
        stamp = stamp_of(seconds)
        self.send(image(left, encoding, stamp), image(right, encoding, stamp))
        return seconds * 1_000_000_000 + 500


def send_info_until_ready(node, source: StereoSource) -> None:
    source.send_info()
    wait_until(lambda: node._geometry is not None)  # camera_info is best effort: the first may be lost


@pytest.fixture(scope="module")
def stereo(graph):
    source = StereoSource(graph)
    send_info_until_ready(graph.container.proximity, source)
    return source


# -- proximity ----------------------------------------------------------------------------------------------
def test_proximity_publishes_mask_disparity_and_range_for_a_planted_obstacle(graph, stereo) -> None:
    from sensor_msgs.msg import Image, Range
    from stereo_msgs.msg import DisparityImage

    masks = Received(graph.tester, Image, "/proximity/mask")
    disparities = Received(graph.tester, DisparityImage, "/proximity/disparity")
    ranges = Received(graph.tester, Range, "/proximity/range")
    outcomes = Outcomes(graph.container.proximity)
    wait_until(lambda: graph.container.proximity._mask_pub.get_subscription_count() > 0)
    stamp_ns = stereo.send_pair()
    outcome = outcomes.wait(stamp_ns)
    assert outcome.status == "published", outcome.reason

    same_frame = lambda m: m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns  # noqa: E731
    mask_msg, disparity_msg = masks.wait(same_frame), disparities.wait(same_frame)
    range_msg = ranges.wait(same_frame)
    for msg in (mask_msg, disparity_msg, range_msg):
        assert msg.header.frame_id == "camera_left"

    assert (mask_msg.encoding, mask_msg.width, mask_msg.height) == ("mono8", WIDTH, HEIGHT)
    mask = np.frombuffer(mask_msg.data, np.uint8).reshape(HEIGHT, WIDTH)
    x1, y1, x2, y2 = OBSTACLE
    inside = np.zeros_like(mask, bool)
    inside[y1:y2, x1:x2] = True
    assert set(np.unique(mask)) <= {0, 255}
    assert np.mean(mask[inside] == 255) > 0.7  # the occluded right edge of the box reads the wall
    assert np.mean(mask[~inside] == 255) < 0.1

    levels = np.frombuffer(disparity_msg.image.data, np.float32).reshape(HEIGHT, WIDTH)
    assert disparity_msg.image.encoding == "32FC1"
    assert np.median(levels[y1 + 5:y2 - 5, x1 + 5:x1 + 40]) == pytest.approx(12.0)  # nearer than 1 m
    assert np.median(levels[~inside]) == 0.0  # the wall at 6 m is beyond both planes
    assert disparity_msg.f == pytest.approx(FX) and disparity_msg.t == pytest.approx(BASELINE)
    assert (disparity_msg.min_disparity, disparity_msg.max_disparity) == pytest.approx((6.0, 12.0))

    assert range_msg.range == pytest.approx(1.0)  # the nearest plane with an obstacle blob
    assert range_msg.min_range == pytest.approx(1.0) and range_msg.max_range == pytest.approx(2.0)


def test_nothing_near_gives_infinite_range(graph, stereo) -> None:
    from sensor_msgs.msg import Range

    ranges = Received(graph.tester, Range, "/proximity/range")
    outcomes = Outcomes(graph.container.proximity)
    seconds = next(_stamps)
    wall = ramp_pair()[0]
    right = np.repeat(((np.arange(WIDTH) + 20 + BACKGROUND_DISPARITY).astype(np.uint8))[None, :, None],
                      HEIGHT, axis=0).repeat(3, axis=2)
    stereo.send(image(wall, "rgb8", stamp_of(seconds)), image(right, "rgb8", stamp_of(seconds)))
    stamp_ns = seconds * 10**9 + 500
    assert outcomes.wait(stamp_ns).status == "published"
    msg = ranges.wait(lambda m: m.header.stamp.sec == seconds)
    assert math.isinf(msg.range) and msg.range > 0


def test_planes_and_alert_distance_are_dynamic_and_validated(graph, stereo) -> None:
    node = graph.container.proximity
    rejected = [
        [Parameter("planes_m", value=[1.0, float("nan")])],
        [Parameter("planes_m", value=[-1.0])],
        [Parameter("planes_m", value=[1.0, 1.0])],
        [Parameter("planes_m", value=[0.1 * (i + 1) for i in range(40)])],
        [Parameter("alert_distance_m", value=float("inf"))],
        [Parameter("roi", value=[10, 10, 5, 20])],
    ]
    for parameters in rejected:
        (result,) = node.set_parameters(parameters)
        assert not result.successful and result.reason, parameters
    assert list(node.get_parameter("planes_m").value) == [1.0, 2.0]

    outcomes = Outcomes(node)
    (result,) = node.set_parameters([Parameter("alert_distance_m", value=0.3)])  # nearer than the box
    assert result.successful
    try:
        outcome = outcomes.wait(stereo.send_pair())
        assert outcome.status == "published"
        assert not outcome.result.alert_mask.any()
    finally:
        node.set_parameters([Parameter("alert_distance_m", value=1.0)])
    # rclpy's own range check refuses alert_distance_m=inf before the node's validator sees (and counts) it.
    assert node.health.counters.get("rejected_parameter", 0) >= len(rejected) - 1


def test_padded_rows_and_bgr8_are_accepted(graph, stereo) -> None:
    outcomes = Outcomes(graph.container.proximity)
    left, right = ramp_pair()
    seconds = next(_stamps)
    messages = []
    for pixels in (left, right):
        msg = image(pixels[:, :, ::-1], "bgr8", stamp_of(seconds))
        padded = np.zeros((HEIGHT, WIDTH * 3 + 16), np.uint8)
        padded[:, : WIDTH * 3] = pixels[:, :, ::-1].reshape(HEIGHT, -1)
        msg.step, msg.data = WIDTH * 3 + 16, padded.tobytes()
        messages.append(msg)
    stereo.send(*messages)
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert outcome.status == "published", outcome.reason
    assert np.mean(outcome.result.alert_mask[35:85, 65:105] == 255) > 0.9


def _bad_images():
    """(name, left message, right message, expected counter) for each kind of bad image."""
    left, right = ramp_pair()

    def make(seconds, change=None, side="both"):
        stamp = stamp_of(seconds)
        pair = [image(left, "rgb8", stamp), image(right, "rgb8", stamp)]
        for index, msg in enumerate(pair):
            if change and (side == "both" or ("left", "right")[index] == side):
                change(msg)
        return pair

    def set_fields(**values):
        def change(msg):
            for key, value in values.items():
                setattr(msg, key, value)
        return change

    return [
        ("encoding", lambda s: make(s, set_fields(encoding="nv12")), "rejected_encoding"),
        ("depth image", lambda s: make(s, set_fields(encoding="32FC1")), "rejected_encoding"),
        ("short step", lambda s: make(s, set_fields(step=WIDTH)), "rejected_step"),
        ("truncated", lambda s: make(s, set_fields(data=bytes(100))), "rejected_truncated"),
        ("empty", lambda s: make(s, set_fields(height=0, width=0, step=0, data=b"")), "rejected_empty"),
        ("absurd size", lambda s: make(s, set_fields(width=100_000, height=100_000, step=300_000)),
         "rejected_size"),
        ("size mismatch", lambda s: [image(left, "rgb8", stamp_of(s)),
                                     image(right[:, :80].copy(), "rgb8", stamp_of(s))],
         "rejected_size_mismatch"),
    ]


@pytest.mark.parametrize("case", _bad_images(), ids=lambda case: case[0])
def test_bad_images_are_rejected_counted_and_the_node_keeps_working(graph, stereo, case) -> None:
    name, make, counter = case
    node = graph.container.proximity
    outcomes = Outcomes(node)
    before = node.health.counters.get(counter, 0)
    seconds = next(_stamps)
    stereo.send(*make(seconds))
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert outcome.status == "rejected", (name, outcome)
    assert node.health.counters[counter] == before + 1
    assert outcomes.wait(stereo.send_pair()).status == "published"  # still alive


def test_out_of_order_and_unpaired_stamps(graph, stereo) -> None:
    node = graph.container.proximity
    outcomes = Outcomes(node)
    latest = stereo.send_pair()
    assert outcomes.wait(latest).status == "published"
    old = (latest // 10**9) - 1  # older than the last pair, but not so much that it means a restart
    stereo.send_pair(old)
    outcome = outcomes.wait(old * 10**9 + 500)
    assert outcome.status == "rejected" and "not after" in outcome.reason
    unpaired_before = node._pairer.counters.unpaired
    left, _ = ramp_pair()
    for _ in range(6):  # lefts whose right never comes: bounded, evicted and counted
        stereo.images["left"].publish(image(left, "rgb8", stamp_of(next(_stamps))))
    assert outcomes.wait(stereo.send_pair()).status == "published"
    assert node._pairer.counters.unpaired > unpaired_before
    assert len(node._pairer._waiting["left"]) <= node._pairer.capacity


def test_camera_info_problems(graph) -> None:
    """Missing, zero/negative baseline and non-finite camera_info: frames rejected, node recovers."""
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    node = graph.add(ProximitySegmentationNode(manager=graph.container.engine_manager.manager,
                                               namespace="cam", context=graph.context,
                                               parameter_overrides=graph.overrides))
    source = StereoSource(graph, "cam")
    outcomes = Outcomes(node)
    outcome = outcomes.wait(source.send_pair())
    assert outcome.status == "rejected" and "camera_info" in outcome.reason

    stamp = stamp_of(1)
    for right, words in [
        (camera_info("right", stamp, baseline=0.0), "not positive"),
        (camera_info("right", stamp, baseline=-0.1), "not positive"),
        (camera_info("right", stamp, fx=float("nan")), "non-finite"),
    ]:
        source.send_info(right=right)
        wait_until(lambda words=words: words in str(node._geometry_error))
        outcome = outcomes.wait(source.send_pair())
        assert outcome.status == "rejected" and words in outcome.reason
    statuses = node.diagnostic_statuses()
    assert statuses[0].level >= 1 and "camera_info" in statuses[0].message

    send_info_until_ready(node, source)
    assert outcomes.wait(source.send_pair()).status == "published"
    assert node.health.counters["rejected_camera_info"] >= 1
    assert node.health.counters["rejected_baseline"] >= 2


def test_busy_frames_are_dropped_not_queued(graph, stereo) -> None:
    node = graph.container.proximity
    outcomes = Outcomes(node)
    release = threading.Event()

    def hold_the_worker(outcome) -> None:  # keeps the one worker busy after the first frame
        if outcome.status == "published":
            release.wait(TIMEOUT)

    node.add_frame_listener(hold_the_worker)
    try:
        first = stereo.send_pair()
        outcomes.wait(first)
        stamps = [stereo.send_pair() for _ in range(6)]  # the 1st is accepted, the rest find the slot busy
        wait_until(lambda: sum(o.status == "dropped" for o in outcomes._items) >= 3)
    finally:
        release.set()
        node.remove_frame_listener(hold_the_worker)
    statuses = [o.status for o in outcomes._items if o.stamp_ns in stamps]
    assert set(statuses) <= {"published", "dropped"} and statuses.count("published") <= 1
    assert node.health.counters["dropped_busy"] >= 3
    assert node._slot.wait_idle(TIMEOUT)
    assert outcomes.wait(stereo.send_pair()).status == "published"


def test_bad_parameter_override_falls_back_to_the_default(graph) -> None:
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    node = graph.add(ProximitySegmentationNode(
        manager=graph.container.engine_manager.manager, namespace="badparam", context=graph.context,
        parameter_overrides=[Parameter("planes_m", value=[1.0, float("nan")])],
    ))
    assert list(node.get_parameter("planes_m").value) == [0.75, 1.0, 1.5, 2.0, 3.0]
    status = node.diagnostic_statuses()[0]
    assert status.level == 1 and "planes_m" in status.message


def test_use_sim_time_stamps_diagnostics_with_the_simulated_clock(graph) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from rosgraph_msgs.msg import Clock

    from dla_perception.nodes.engine_manager import EngineManagerNode

    node = graph.add(EngineManagerNode(
        manager=graph.container.engine_manager.manager, namespace="sim", context=graph.context,
        parameter_overrides=[Parameter("use_sim_time", value=True),
                             Parameter("diagnostics_period_s", value=0.1),
                             Parameter("diagnostic_updater.use_fqn", value=True)],  # not /engine_manager
    ))
    assert node.status_name("manager") == "/sim/engine_manager: manager"
    arrays = Received(graph.tester, DiagnosticArray, "/diagnostics")
    clock = graph.tester.create_publisher(Clock, "/clock", 10)
    wait_until(lambda: clock.get_subscription_count() > 0)
    mine = lambda m: any(s.name == node.status_name("manager") for s in m.status)  # noqa: E731
    for tick in range(1, 40):  # simulated time runs from 5000 s; timers follow it
        clock.publish(Clock(clock=stamp_of(5000 + tick)))
        time.sleep(0.05)
        if any(mine(m) for m in arrays.messages):
            break
    msg = arrays.wait(mine, timeout=2.0)
    assert 5000 <= msg.header.stamp.sec < 5040


def test_runtime_model_failure_is_counted_and_the_node_survives(graph) -> None:
    from dla_perception.nodes.base import open_engine_manager
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    manager, problems = open_engine_manager(str(graph.engines))
    assert not problems
    node = graph.add(ProximitySegmentationNode(manager=manager, namespace="failing", context=graph.context,
                                               parameter_overrides=graph.overrides))
    source = StereoSource(graph, "failing")
    send_info_until_ready(node, source)
    outcomes = Outcomes(node)
    assert outcomes.wait(source.send_pair()).status == "published"
    manager.close()  # every engine gone: each frame now fails at run time
    outcome = outcomes.wait(source.send_pair())
    assert outcome.status == "failed" and "closed" in outcome.reason
    assert node.health.counters["failed_inference"] == 1
    assert node.diagnostic_statuses()[0].level == 2
    node.set_manager(graph.container.engine_manager.manager)  # failover to a working manager
    assert outcomes.wait(source.send_pair()).status == "published"


# -- detection ---------------------------------------------------------------------------------------------
def test_detection_finds_the_square_and_keeps_stamp_and_frame(graph) -> None:
    from sensor_msgs.msg import Image

    node = graph.container.detection
    publisher = graph.tester.create_publisher(Image, "/image", qos_profile_sensor_data)
    overlays = Received(graph.tester, Image, "/detections/image")
    wait_until(lambda: publisher.get_subscription_count() > 0)
    wait_until(lambda: node._overlay_pub.get_subscription_count() > 0)
    outcomes = Outcomes(node)
    pixels = np.zeros((128, 128, 3), np.uint8)
    pixels[48:80, 48:80] = 255
    seconds = next(_stamps)
    publisher.publish(image(pixels, "rgb8", stamp_of(seconds), "camera_front"))
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert outcome.status == "published", outcome.reason
    detections = outcome.result
    assert detections and all(d.label == "square" and d.score > 0.9 for d in detections)
    for d in detections:
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        assert 48 <= cx <= 80 and 48 <= cy <= 80
    fields = outcome.outputs["detections"]
    if node.publishes_detections:  # vision_msgs installed (robots)
        assert fields.header.frame_id == "camera_front"
    else:
        assert fields["header"] == {"stamp": {"sec": seconds, "nanosec": 500}, "frame_id": "camera_front"}
        assert len(fields["detections"]) == len(detections)
    overlay = overlays.wait(lambda m: m.header.stamp.sec == seconds)
    assert overlay.header.frame_id == "camera_front" and (overlay.width, overlay.height) == (128, 128)

    empty = next(_stamps)
    publisher.publish(image(np.zeros((128, 128), np.uint8), "mono8", stamp_of(empty)))
    outcome = outcomes.wait(empty * 10**9 + 500)
    assert outcome.status == "published" and outcome.result == []  # an empty array still marks the frame

    bad = next(_stamps)
    msg = image(pixels, "rgb8", stamp_of(bad))
    msg.encoding = "32FC1"
    publisher.publish(msg)
    assert outcomes.wait(bad * 10**9 + 500).status == "rejected"
    assert node.health.counters["rejected_encoding"] >= 1


def test_detection_thresholds_are_validated(graph) -> None:
    node = graph.container.detection
    (result,) = node.set_parameters([Parameter("score_threshold", value=1.5)])
    assert not result.successful
    (result,) = node.set_parameters([Parameter("score_threshold", value=0.2)])
    assert result.successful
    node.set_parameters([Parameter("score_threshold", value=-1.0)])


# -- engine manager ----------------------------------------------------------------------------------------
def test_diagnostics_carry_every_key_per_core_and_warn_for_the_absent_dla(graph, stereo) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    from dla_perception.nodes.diagnostics import CORE_KEYS

    outcomes = Outcomes(graph.container.proximity)
    assert outcomes.wait(stereo.send_pair()).status == "published"
    arrays = Received(graph.tester, DiagnosticArray, "/diagnostics")
    names = lambda msg: {status.name for status in msg.status}  # noqa: E731
    msg = arrays.wait(lambda m: "engine_manager: core cpu" in names(m))
    statuses = {status.name: status for status in msg.status}
    cpu = statuses["engine_manager: core cpu"]
    values = {kv.key: kv.value for kv in cpu.values}
    assert set(CORE_KEYS) <= set(values)
    assert cpu.hardware_id == "cpu" and int(values["inferences"]) > 0
    assert "proximity_head" in values["engines"].split(",")
    dla = statuses["engine_manager: core dla0"]
    assert dla.level == b"\x01" and "cpu" in dla.message and dla.hardware_id == "dla0"
    assert set(CORE_KEYS) <= {kv.key for kv in dla.values}
    assert "engine_manager: engine proximity_head@cpu" in statuses
    node_status = arrays.wait(lambda m: "proximity_segmentation: pipeline" in names(m))
    keys = {kv.key for status in node_status.status for kv in status.values}
    assert {"frames_published", "dropped_busy"} & keys


def _call(graph, service: str, timeout: float = TIMEOUT):
    from std_srvs.srv import Trigger

    client = graph.tester.create_client(Trigger, service)  # destroyed with the node, not under the executor
    assert client.wait_for_service(timeout_sec=timeout)
    future = client.call_async(Trigger.Request())
    wait_until(future.done, timeout)
    return future.result()


def test_describe_and_reload_services(graph, stereo) -> None:
    response = _call(graph, "/engine_manager/describe")
    assert response.success
    description = json.loads(response.message)
    assert set(description["models"]) == {"proximity_features", "proximity_head", "detector"}
    head = description["models"]["proximity_head"]
    assert head["active"] == ["cpu"] and head["fallbacks"][0]["requested"] == "dla0"
    assert description["engines_file"] == str(graph.engines) and description["problems"] == []

    old = graph.container.engine_manager.manager
    response = _call(graph, "/engine_manager/reload")
    assert response.success, response.message
    new = graph.container.engine_manager.manager
    assert new is not old and old.closed
    assert graph.container.proximity.manager is new and graph.container.detection.manager is new
    outcomes = Outcomes(graph.container.proximity)
    assert outcomes.wait(stereo.send_pair()).status == "published"  # the nodes followed the reload


def test_reload_with_a_broken_engines_file_keeps_the_running_engines(graph, tmp_path) -> None:
    node = graph.container.engine_manager
    running = node.manager
    broken = tmp_path / "engines.yaml"
    broken.write_text("models: {proximity_head: {onnx: missing.onnx, cores: [cpu]}}\n")
    node.set_parameters([Parameter("engines_file", value=str(broken))])
    try:
        switched, message = node.reload()
        assert not switched and "missing.onnx" in message
        assert node.manager is running and not running.closed
    finally:
        node.set_parameters([Parameter("engines_file", value=str(graph.engines))])


def test_engines_file_missing_at_start(graph, tmp_path) -> None:
    """Nodes start anyway, say why in diagnostics and ~/describe, and reject frames with a reason."""
    from dla_perception.nodes.engine_manager import EngineManagerNode
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    missing = str(tmp_path / "absent.yaml")
    overrides = [Parameter("engines_file", value=missing)]
    manager_node = graph.add(EngineManagerNode(namespace="nofile", context=graph.context,
                                               parameter_overrides=overrides))
    assert manager_node.problems and missing in manager_node.problems[0]
    status = manager_node.diagnostic_statuses()[0]
    assert status.level == 1 and missing in status.message
    assert json.loads(_call(graph, "/nofile/engine_manager/describe").message)["models"] == {}

    node = graph.add(ProximitySegmentationNode(namespace="nofile", context=graph.context,
                                               parameter_overrides=overrides))
    source = StereoSource(graph, "nofile")
    send_info_until_ready(node, source)
    outcome = Outcomes(node).wait(source.send_pair())
    assert outcome.status == "failed" and "unavailable" in outcome.reason
    assert node.diagnostic_statuses()[0].level == 2


def test_core_warnings_come_out_through_ros_logging(graph, capfd) -> None:
    """The ROS-free core logs with `logging`; in a node process its warnings go through the ROS logger."""
    import logging

    from dla_perception.nodes.base import RosLogHandler

    assert any(isinstance(h, RosLogHandler) for h in logging.getLogger("dla_perception").handlers)
    logging.getLogger("dla_perception.runtime.manager").warning("planted core warning %d", 42)
    logged = capfd.readouterr().err
    # rcutils' console format: "[WARN] [<stamp>] [<logger name>]: <message>"
    assert "[WARN]" in logged and "[dla_perception.runtime.manager]: planted core warning 42" in logged
