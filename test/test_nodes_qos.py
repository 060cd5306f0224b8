"""QoS a user controls (issue 17 item 1), with real rclpy: the `input_qos` parameter, rclpy's standard QoS
overrides from a params file (`qos_overrides./left/image_rect.subscription.reliability: reliable`), and a
camera in another process reaching every output once its images are taken reliably that way.

Large best-effort images are lost between processes here (docs/environment.md), which is what the
cross-process test is about; the in-process tests check what each setting does to the real
subscriptions and publishers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, ros_domain_id

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from test_nodes import build_models, wait_until  # noqa: E402

DOMAIN_ID = ros_domain_id(6)
INPUTS = ("/left/image_rect", "/right/image_rect", "/left/camera_info", "/right/camera_info")
OUTPUTS = ("proximity/mask", "proximity/disparity", "proximity/range")
CROSS_PROCESS_FRAMES = 20


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qos")
    engines = build_models(folder)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    yield context, engines, folder
    rclpy.shutdown(context=context)


def make_node(ros, kind: str, tmp_path: Path, params_file: str | None = None, **parameters):
    """A proximity or detection node; `params_file` is YAML text handed to rcl with --params-file."""
    from dla_perception.nodes.detection import DetectionNode
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    context, engines, folder = ros
    overrides = [Parameter("engines_file", value=str(engines)),
                 *(Parameter(name, value=value) for name, value in parameters.items())]
    if kind == "detection":
        overrides.append(Parameter("model", value=str(folder / "detector.yaml")))
    cli_args = None
    if params_file is not None:
        path = tmp_path / "params.yaml"
        path.write_text(params_file)
        cli_args = ["--ros-args", "--params-file", str(path)]
    node_class = DetectionNode if kind == "detection" else ProximitySegmentationNode
    return node_class(context=context, cli_args=cli_args, parameter_overrides=overrides)


def subscription(node, topic: str):
    return next(s for s in node.subscriptions if s.topic_name == topic)


def publisher(node, topic: str):
    return next(p for p in node.publishers if p.topic_name == topic)


FLAT = """/**:
  ros__parameters:
    qos_overrides./left/image_rect.subscription.reliability: reliable
"""
NESTED = """/**:
  ros__parameters:
    qos_overrides:
      /left/image_rect:
        subscription:
          reliability: reliable
"""


@pytest.mark.parametrize("params_file", [FLAT, NESTED], ids=["flat-key", "nested"])
def test_a_params_file_override_makes_that_subscription_reliable(ros, tmp_path, params_file) -> None:
    node = make_node(ros, "proximity", tmp_path, params_file)
    try:
        override = node.get_parameter("qos_overrides./left/image_rect.subscription.reliability")
        assert override.value == "reliable"
        assert subscription(node, "/left/image_rect").qos_profile.reliability == ReliabilityPolicy.RELIABLE
        for topic in INPUTS[1:]:  # the others keep the default sensor-data profile
            assert subscription(node, topic).qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT, topic
    finally:
        node.destroy_node()


@pytest.mark.parametrize(("choice", "reliability", "depth"), [
    ("sensor_data", ReliabilityPolicy.BEST_EFFORT, 5),
    ("reliable", ReliabilityPolicy.RELIABLE, 5),
    ("system_default", ReliabilityPolicy.SYSTEM_DEFAULT, 0),  # depth too: the middleware decides
])
@pytest.mark.parametrize("kind", ["proximity", "detection"])
def test_input_qos_sets_every_camera_input(ros, tmp_path, kind, choice, reliability, depth) -> None:
    node = make_node(ros, kind, tmp_path, input_qos=choice)
    try:
        topics = INPUTS if kind == "proximity" else ("/image",)
        for topic in topics:
            profile = subscription(node, topic).qos_profile
            assert profile.reliability == reliability, topic
            assert profile.depth == depth, topic
        assert not node.health.conditions
    finally:
        node.destroy_node()


def test_overrides_apply_on_top_of_input_qos_and_to_outputs(ros, tmp_path) -> None:
    params = """/**:
  ros__parameters:
    qos_overrides./right/image_rect.subscription.reliability: best_effort
    qos_overrides./left/image_rect.subscription.depth: 2
    qos_overrides./proximity/mask.publisher.reliability: best_effort
    qos_overrides./proximity/range.publisher.durability: transient_local
"""
    node = make_node(ros, "proximity", tmp_path, params, input_qos="reliable")
    try:
        left, right = subscription(node, "/left/image_rect"), subscription(node, "/right/image_rect")
        assert (left.qos_profile.reliability, left.qos_profile.depth) == (ReliabilityPolicy.RELIABLE, 2)
        assert right.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert subscription(node, "/left/camera_info").qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert publisher(node, "/proximity/mask").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert publisher(node, "/proximity/range").qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        disparity = publisher(node, "/proximity/disparity").qos_profile  # the default of outputs
        assert (disparity.reliability, disparity.depth) == (ReliabilityPolicy.RELIABLE, 5)
        assert node.has_parameter("qos_overrides./diagnostics.publisher.reliability")
    finally:
        node.destroy_node()


def test_an_unknown_input_qos_keeps_the_default_and_says_why(ros, tmp_path) -> None:
    node = make_node(ros, "proximity", tmp_path, "/**:\n  ros__parameters:\n    input_qos: fast\n")
    try:
        assert node.get_parameter("input_qos").value == "sensor_data"
        assert subscription(node, "/left/image_rect").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert "input_qos" in node.health.conditions["parameter:input_qos"][1]
    finally:
        node.destroy_node()


def test_an_unreadable_override_is_an_error_condition_not_a_crash(ros, tmp_path) -> None:
    params = FLAT.replace("reliable", "sometimes")
    node = make_node(ros, "proximity", tmp_path, params)
    try:
        assert subscription(node, "/left/image_rect").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        status = node.health.status("node", "hw")
        assert status.level == 2 and "/left/image_rect" in status.message, status.message
    finally:
        node.destroy_node()


def test_a_peer_with_incompatible_qos_is_counted_and_warned(ros, tmp_path) -> None:
    from sensor_msgs.msg import Image

    from dla_perception.nodes.spinning import IsolatedSpinner

    context = ros[0]
    node = make_node(ros, "proximity", tmp_path, input_qos="reliable")
    camera = rclpy.create_node("best_effort_camera", context=context)
    camera.create_publisher(Image, "/left/image_rect", qos_profile_sensor_data)  # cannot serve reliable
    spinner = IsolatedSpinner([node, camera], context).start()
    try:
        wait_until(lambda: node.health.counters.get("rejected_incompatible_qos", 0) > 0)
        status = node.health.status("node", "hw")
        assert status.level == 1 and "rejected_incompatible_qos" in status.message
        assert "incompatible QoS (RELIABILITY)" in node.health.last_problem
    finally:
        spinner.shutdown()
        camera.destroy_node()
        node.destroy_node()


@pytest.mark.slow
def test_a_camera_in_another_process_reaches_every_output_with_reliable_overrides(ros, tmp_path) -> None:
    """The camera (benchmarks/stereo_source.py, another process) publishes reliable, as a driver set up for
    it does, and times the outputs coming back; the node takes its four inputs reliably through
    qos_overrides in a params file. 640x480 rgb8 (921 kB an image), sent lock-step so that a frame without
    outputs is one the transport lost, not one a busy node dropped."""
    from dla_perception.nodes.spinning import IsolatedSpinner
    from dla_perception.synthetic.camera import StereoCamera

    camera = StereoCamera()
    rng = np.random.default_rng(7)
    frames = tmp_path / "frames.npz"
    np.savez(frames, left=rng.integers(0, 256, (4, 480, 640, 3), dtype=np.uint8),
             right=rng.integers(0, 256, (4, 480, 640, 3), dtype=np.uint8),
             projection_left=camera.projection_left(), projection_right=camera.projection_right())
    params = "/**:\n  ros__parameters:\n    qos_overrides:\n" + "".join(
        f"      {topic}:\n        subscription:\n          reliability: reliable\n" for topic in INPUTS)
    node = make_node(ros, "proximity", tmp_path, params, planes_m=[1.0, 2.0])
    spinner = IsolatedSpinner([node], ros[0]).start()
    try:
        out = tmp_path / "source.json"
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "benchmarks" / "stereo_source.py"), str(frames),
             "--count", str(CROSS_PROCESS_FRAMES), "--rate", "10", "--qos", "reliable", "--lockstep",
             "--answer-timeout-s", "10", "--listen", ",".join(OUTPUTS), "--out", str(out)],
            env={**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        sent = json.loads(out.read_text())["frames"]
        answered = [f for f in sent if all(f["arrivals"][topic] is not None for topic in OUTPUTS)]
        assert len(sent) == CROSS_PROCESS_FRAMES
        assert len(answered) >= CROSS_PROCESS_FRAMES - 1, (len(answered), dict(node.health.counters))
        assert not node.health.counters.get("dropped_busy")
    finally:
        spinner.shutdown()
        node.destroy_node()


def test_the_disparity_image_is_built_only_for_a_subscriber(ros, tmp_path) -> None:
    """1.2 MB of float32 a frame at 640x480: skipped while nobody listens, like detection's overlay."""
    from sensor_msgs.msg import CameraInfo, Image
    from stereo_msgs.msg import DisparityImage
    from test_nodes import Outcomes, camera_info, image, ramp_pair, stamp_of

    from dla_perception.nodes.spinning import IsolatedSpinner

    context = ros[0]
    node = make_node(ros, "proximity", tmp_path, planes_m=[1.0, 2.0])
    camera = rclpy.create_node("lazy_camera", context=context)
    images = {side: camera.create_publisher(Image, f"/{side}/image_rect", qos_profile_sensor_data)
              for side in ("left", "right")}
    infos = {side: camera.create_publisher(CameraInfo, f"/{side}/camera_info", qos_profile_sensor_data)
             for side in ("left", "right")}
    spinner = IsolatedSpinner([node, camera], context).start()
    outcomes = Outcomes(node)

    def send(seconds: int):
        for side in ("left", "right"):
            infos[side].publish(camera_info(side, stamp_of(seconds)))
        wait_until(lambda: node._geometry is not None)
        left, right = ramp_pair()
        images["left"].publish(image(left, "rgb8", stamp_of(seconds)))
        images["right"].publish(image(right, "rgb8", stamp_of(seconds)))
        return outcomes.wait(seconds * 1_000_000_000 + 500)

    try:
        wait_until(lambda: all(p.get_subscription_count() for p in (*images.values(), *infos.values())))
        unread = send(7001)
        assert unread.status == "published" and "proximity/disparity" not in unread.outputs
        camera.create_subscription(DisparityImage, "/proximity/disparity", lambda msg: None, 10)
        wait_until(lambda: node._disparity_pub.get_subscription_count() > 0)
        read = send(7002)
        assert read.outputs["proximity/disparity"].image.encoding == "32FC1"
    finally:
        spinner.shutdown()
        camera.destroy_node()
        node.destroy_node()
