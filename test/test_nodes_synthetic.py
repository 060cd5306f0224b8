"""The nodes with the shipped networks on synthetic street scenes with planted obstacles.

End to end as on a robot: synthetic stereo (dla_perception.synthetic) and its camera_info published over
DDS, the node running alone with a private engine manager (the DLA core it asks for is absent here, so it
falls back to the CPU and says so), outputs received over DDS. Each test skips where its shipped model is
absent.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT, ros_domain_id

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from test_nodes import Outcomes, Received, wait_until  # noqa: E402

DOMAIN_ID = ros_domain_id(3)
MODELS = REPO_ROOT / "models" / "proximity"
PLANTED_M = 1.0


def _proximity_engines(tmp_path, head: dict):
    """engines.yaml for the shipped proximity networks (features on the CPU, the head with `head`'s
    settings); skips the test where they are absent."""
    if not all((MODELS / name).is_file() for name in ("features.onnx", "head.onnx")):
        pytest.skip(f"shipped proximity models not found in {MODELS}")
    engines = tmp_path / "engines.yaml"
    engines.write_text(yaml.safe_dump({"models": {
        "proximity_features": {"onnx": str(MODELS / "features.onnx"), "cores": ["cpu"]},
        "proximity_head": {"onnx": str(MODELS / "head.onnx"), **head},
    }}))
    return engines


@contextlib.contextmanager
def _proximity_graph(engines, camera, namespace: str, planes_m: list[float], alert_distance_m: float):
    """The proximity node alone in its own ROS context (namespace `namespace`), with a source node whose
    image and camera_info publishers it has matched and whose camera_info it has taken; yields
    (node, images, masks, ranges, outcomes) and shuts everything down after."""
    from sensor_msgs.msg import CameraInfo, Image, Range

    from dla_perception.nodes.proximity import ProximitySegmentationNode
    from dla_perception.nodes.spinning import IsolatedSpinner

    prefix = f"/{namespace}" if namespace else ""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = ProximitySegmentationNode(context=context, namespace=namespace, parameter_overrides=[
        Parameter("engines_file", value=str(engines)), Parameter("planes_m", value=planes_m),
        Parameter("alert_distance_m", value=alert_distance_m)])
    tester = rclpy.create_node("synthetic_source", context=context)
    spinner = IsolatedSpinner([node, tester], context).start()
    try:
        images = {side: tester.create_publisher(Image, f"{prefix}/{side}/image_rect", qos_profile_sensor_data)
                  for side in ("left", "right")}
        infos = {side: tester.create_publisher(CameraInfo, f"{prefix}/{side}/camera_info",
                                               qos_profile_sensor_data) for side in ("left", "right")}
        masks = Received(tester, Image, f"{prefix}/proximity/mask")
        ranges = Received(tester, Range, f"{prefix}/proximity/range")
        wait_until(lambda: all(p.get_subscription_count() for p in (*images.values(), *infos.values())))
        wait_until(lambda: node._mask_pub.get_subscription_count() > 0
                   and node._range_pub.get_subscription_count() > 0)

        def send_info() -> bool:
            projections = {"left": camera.projection_left(), "right": camera.projection_right()}
            for side, projection in projections.items():
                info = CameraInfo(width=camera.width, height=camera.height)
                info.header.frame_id = "camera_left"
                info.p = [float(v) for v in projection.reshape(-1)]
                infos[side].publish(info)
            return node._geometry is not None

        wait_until(send_info)
        yield node, images, masks, ranges, Outcomes(node)
    finally:
        spinner.shutdown()
        node.destroy_node()
        tester.destroy_node()
        rclpy.shutdown(context=context)


@pytest.fixture(scope="module")
def scene():
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import PlantedObject, generate_frame

    camera = StereoCamera().scaled(320, 240)
    frame = generate_frame(7, camera, planted=[PlantedObject("box", PLANTED_M)], clutter=False, pitch_deg=0.0)
    return camera, frame


def test_planted_box_is_in_the_near_mask_and_sets_the_range(tmp_path, scene) -> None:
    engines = _proximity_engines(tmp_path, {"cores": ["dla0", "cpu"], "precision": "fp16"})
    from builtin_interfaces.msg import Time

    from dla_perception.nodes.messages import image_message

    camera, frame = scene
    graph = _proximity_graph(engines, camera, "", [1.5, 3.0], 1.5)
    with graph as (node, images, masks, ranges, outcomes):
        stamp = Time(sec=42, nanosec=7)
        images["left"].publish(image_message(frame.left, "rgb8", stamp, "camera_left"))
        images["right"].publish(image_message(frame.right, "rgb8", stamp, "camera_left"))
        outcome = outcomes.wait(42 * 10**9 + 7)
        assert outcome.status == "published", outcome.reason

        mask_msg = masks.wait(lambda m: m.header.stamp.sec == 42)
        mask = np.frombuffer(mask_msg.data, np.uint8).reshape(camera.height, camera.width)
        (box,) = frame.objects
        x1, y1, x2, y2 = (int(round(v)) for v in box.box)
        truth = (frame.disparity > camera.disparity_px(1.5))  # what "nearer than 1.5 m" really is
        assert np.mean(mask[y1:y2, x1:x2] == 255) > 0.9
        agreement = np.mean((mask == 255) == truth)
        assert agreement > 0.93, agreement  # 0.973 when written; margin for renderer changes

        distance = ranges.wait(lambda m: m.header.stamp.sec == 42)
        assert distance.range == pytest.approx(1.5) and distance.header.frame_id == "camera_left"
        statuses = {s.name: s for s in node.diagnostic_statuses()}  # a private manager: its cores too
        assert statuses["proximity_segmentation: core dla0"].level == 1  # requested, absent, fell back to cpu
        assert int(statuses["proximity_segmentation: core cpu"].values["inferences"]) >= 2


DETECTOR = REPO_ROOT / "models" / "detector"


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_detection_node_finds_planted_objects_with_the_shipped_detector(tmp_path) -> None:
    if not (DETECTOR / "detector.yaml").is_file() or not (DETECTOR / "detector.onnx").is_file():
        pytest.skip(f"shipped detector not found in {DETECTOR}")
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image

    from dla_perception.nodes.detection import DetectionNode
    from dla_perception.nodes.messages import image_message
    from dla_perception.nodes.spinning import IsolatedSpinner
    from dla_perception.synthetic.scene import PlantedObject, generate_frame

    planted = [PlantedObject("person", 3.0), PlantedObject("box", 2.0, lateral_m=-1.0)]
    frame = generate_frame(8, planted=planted, clutter=False, pitch_deg=0.0)
    engines = tmp_path / "engines.yaml"
    engines.write_text(yaml.safe_dump({"models": {"detector": {"onnx": str(DETECTOR / "detector.onnx"),
                                                               "cores": ["cpu"]}}}))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = DetectionNode(context=context, parameter_overrides=[
        Parameter("engines_file", value=str(engines)),
        Parameter("model", value=str(DETECTOR / "detector.yaml"))])
    tester = rclpy.create_node("synthetic_camera", context=context)
    spinner = IsolatedSpinner([node, tester], context).start()
    try:
        publisher = tester.create_publisher(Image, "/image", qos_profile_sensor_data)
        overlays = Received(tester, Image, "/detections/image")
        wait_until(lambda: publisher.get_subscription_count() > 0)
        wait_until(lambda: node._overlay_pub.get_subscription_count() > 0)
        outcomes = Outcomes(node)
        bgr = frame.left[:, :, ::-1]
        publisher.publish(image_message(bgr, "bgr8", Time(sec=9, nanosec=1), "camera_left"))
        outcome = outcomes.wait(9 * 10**9 + 1)
        assert outcome.status == "published", outcome.reason
        for truth in frame.objects:
            matches = [d for d in outcome.result if d.label == truth.label and _iou(d.box, truth.box) > 0.7]
            assert matches, (truth, outcome.result)
        fields = outcome.outputs["detections"]
        if isinstance(fields, dict):  # no vision_msgs here: the Detection2DArray field structure
            assert fields["header"] == {"stamp": {"sec": 9, "nanosec": 1}, "frame_id": "camera_left"}
            labels = {d["results"][0]["hypothesis"]["class_id"] for d in fields["detections"]}
            assert {"person", "box"} <= labels
        overlay = overlays.wait(lambda m: m.header.stamp.sec == 9)
        assert (overlay.width, overlay.height, overlay.encoding) == (640, 480, "rgb8")
        assert overlay.header.frame_id == "camera_left"
    finally:
        spinner.shutdown()
        node.destroy_node()
        tester.destroy_node()
        rclpy.shutdown(context=context)


# -- ground handling ----------------------------------------------------------------------------------------
GROUND_CAMERA_HEIGHT_M, GROUND_PITCH_DEG, GROUND_BOX_M = 0.5, 5.0, 1.5


@pytest.fixture(scope="module")
def floor_scene():
    """A box 1.5 m ahead on a flat floor seen from a known camera height and pitch (5 degrees down)."""
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import PlantedObject, generate_frame

    camera = StereoCamera().scaled(320, 240)
    frame = generate_frame(7, camera, planted=[PlantedObject("box", GROUND_BOX_M)], clutter=False,
                           camera_height_m=GROUND_CAMERA_HEIGHT_M, pitch_deg=GROUND_PITCH_DEG, yaw_deg=0.0)
    return camera, frame


def test_ground_parameters_remove_the_floor_but_not_the_obstacle(tmp_path, floor_scene) -> None:
    """Ground handling off, the floor ahead is in proximity/mask and sets proximity/range; turned on at run
    time with the scene's true height and pitch, the floor leaves the mask and the range is the box's."""
    engines = _proximity_engines(tmp_path, {"cores": ["cpu"]})
    from builtin_interfaces.msg import Time

    from dla_perception.nodes.messages import image_message

    camera, frame = floor_scene
    graph = _proximity_graph(engines, camera, "ground", [1.0, 2.0], 2.0)
    with graph as (node, images, masks, ranges, outcomes):
        def run(seconds: int) -> tuple[np.ndarray, float]:
            stamp = Time(sec=seconds)
            images["left"].publish(image_message(frame.left, "rgb8", stamp, "camera_left"))
            images["right"].publish(image_message(frame.right, "rgb8", stamp, "camera_left"))
            outcome = outcomes.wait(seconds * 10**9)
            assert outcome.status == "published", outcome.reason
            mask_msg = masks.wait(lambda m: m.header.stamp.sec == seconds)
            mask = np.frombuffer(mask_msg.data, np.uint8).reshape(camera.height, camera.width) == 255
            return mask, ranges.wait(lambda m: m.header.stamp.sec == seconds).range

        (box,) = frame.objects
        x1, y1, x2, y2 = (int(round(v)) for v in box.box)
        box_top = np.zeros((camera.height, camera.width), bool)  # above the clearance: 80 % of its 0.5 m
        box_top[y1 + 2:y1 + int(0.7 * (y2 - y1)), x1 + 4:x2 - 4] = True
        floor = frame.depth_m < 2.0  # nearer than the alert distance...
        floor[: y2 + 3] = False  # ...and below the box's foot: nothing but floor there
        assert floor.sum() > 5000

        mask, distance = run(50)
        assert node.get_parameter("camera_height_m").value == 0.0  # off by default
        assert np.mean(mask[floor]) > 0.95  # without ground handling the floor is an obstacle
        assert np.mean(mask[box_top]) > 0.95
        assert distance == pytest.approx(1.0)  # the floor right in front of the robot

        results = node.set_parameters([Parameter("camera_height_m", value=GROUND_CAMERA_HEIGHT_M),
                                       Parameter("camera_pitch_deg", value=GROUND_PITCH_DEG),
                                       Parameter("ground_clearance_m", value=0.1)])
        assert all(r.successful for r in results), [r.reason for r in results]
        mask, distance = run(51)
        assert np.mean(mask[floor]) < 0.02  # 0.0 when written
        assert np.mean(mask[box_top]) > 0.95
        assert distance == pytest.approx(2.0)  # the box (1.5 m) is nearer than 2 m, not than 1 m

        # Bad values are refused with a reason and change nothing.
        for name, value, reason in [("ground_clearance_m", 0.6, "below camera_height_m"),
                                    ("camera_height_m", 0.08, "below camera_height_m"),
                                    ("camera_height_m", 0.01, "at least"),
                                    ("camera_pitch_deg", float("nan"), ""),
                                    ("camera_pitch_deg", 95.0, "")]:
            (result,) = node.set_parameters([Parameter(name, value=value)])
            assert not result.successful and reason in result.reason, (name, value, result.reason)
        assert [node.get_parameter(n).value for n in ("camera_height_m", "camera_pitch_deg",
                                                      "ground_clearance_m")] == [0.5, 5.0, 0.1]
        mask, distance = run(52)
        assert np.mean(mask[floor]) < 0.02 and distance == pytest.approx(2.0)

        (result,) = node.set_parameters([Parameter("camera_height_m", value=0.0)])  # off again
        assert result.successful
        assert run(53)[1] == pytest.approx(1.0)


def test_ground_override_that_does_not_fit_is_refused_at_start(tmp_path) -> None:
    """A clearance above the camera from a parameters file: refused, default used, said in diagnostics."""
    from dla_perception.nodes.parameters import ground_problem
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    assert ground_problem(0.0, 5.0) is None and ground_problem(0.5, 0.1) is None
    assert "below camera_height_m" in ground_problem(0.3, 0.3)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = ProximitySegmentationNode(context=context, namespace="ground_start", parameter_overrides=[
        Parameter("engines_file", value=str(tmp_path / "absent.yaml")),
        Parameter("camera_height_m", value=0.3), Parameter("ground_clearance_m", value=0.4)])
    try:
        assert node.get_parameter("camera_height_m").value == 0.3
        assert node.get_parameter("ground_clearance_m").value == 0.1  # the default
        assert node._ground is not None and node._ground.clearance_m == pytest.approx(0.1)
        (status,) = [s for s in node.diagnostic_statuses() if s.name == "proximity_segmentation: pipeline"]
        assert status.level >= 1 and "ground_clearance_m (0.4 m) must be below" in status.message
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
