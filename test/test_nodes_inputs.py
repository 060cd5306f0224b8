"""Real camera inputs and the Nav2 outputs, in-process with real rclpy and the tiny test networks.

Driver encodings through the node, compressed input under `image_transport: compressed` (on the remapped
topic + /compressed, as image_transport resolves it), the input stream's diagnostics (pairs that never
form, a rate below expected_rate_hz), proximity/points and proximity/occupancy with their stamps and
frames, and the empty-frame_id warning. The cross-process case is test_nodes_cross_process.py.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from conftest import ros_domain_id

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: E402
from test_nodes import (  # noqa: E402
    HEIGHT,
    OBSTACLE,
    WIDTH,
    Outcomes,
    Received,
    build_models,
    camera_info,
    ramp_pair,
    stamp_of,
    wait_until,
)

DOMAIN_ID = ros_domain_id(4)
_seconds = iter(range(10_000, 1_000_000))


class Bench:
    """One rclpy context with a tester node; nodes under test are added per test, each in a namespace."""

    def __init__(self, tmp) -> None:
        self.engines = build_models(tmp)
        self.detector = tmp / "detector.yaml"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.tester = rclpy.create_node("input_tester", context=self.context)
        self.executor.add_node(self.tester)
        self.nodes = []
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def proximity(self, namespace: str, *parameters: Parameter, remaps: tuple[str, ...] = ()):
        from dla_perception.nodes.proximity import ProximitySegmentationNode

        cli = ["--ros-args", *(arg for remap in remaps for arg in ("-r", remap))] if remaps else None
        node = ProximitySegmentationNode(context=self.context, namespace=namespace, cli_args=cli,
                                         parameter_overrides=[
                                             Parameter("engines_file", value=str(self.engines)),
                                             Parameter("planes_m", value=[1.0, 2.0]), *parameters])
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def detection(self, namespace: str, *parameters: Parameter):
        from dla_perception.nodes.detection import DetectionNode

        node = DetectionNode(context=self.context, namespace=namespace, parameter_overrides=[
            Parameter("engines_file", value=str(self.engines)), Parameter("model", value=str(self.detector)),
            *parameters])
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        for node in self.nodes:
            node.destroy_node()
        self.tester.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    bench = Bench(tmp_path_factory.mktemp("inputs"))
    yield bench
    bench.close()


class Camera:
    """Publishes stereo pairs (any message type) and camera_info into a node's topics."""

    def __init__(self, bench: Bench, node, image_topics: dict[str, str], image_type=None) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        self.node = node
        tester = bench.tester
        self.images = {side: tester.create_publisher(image_type or Image, topic, qos_profile_sensor_data)
                       for side, topic in image_topics.items()}
        ns = node.get_namespace().rstrip("/")
        self.infos = {side: tester.create_publisher(CameraInfo, f"{ns}/{side}/camera_info",
                                                    qos_profile_sensor_data) for side in ("left", "right")}
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in (*self.images.values(),
                                                                        *self.infos.values())))
        while node._geometry is None:  # camera_info is best effort: the first may be lost
            for side, publisher in self.infos.items():
                publisher.publish(camera_info(side, stamp_of(1)))
            time.sleep(0.05)

    def send(self, left, right) -> None:
        self.images["left"].publish(left)
        self.images["right"].publish(right)


def raw_pair(encoding: str, seconds: int, frame_id: str = "camera_left"):
    """The ramp stereo pair in a driver encoding, encoded by OpenCV (or by the Bayer sampling rule)."""
    from sensor_msgs.msg import Image

    messages = []
    for rgb in ramp_pair():
        if encoding == "yuv422_yuy2":
            data, pixel_bytes = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2).tobytes(), 2
        elif encoding == "bayer_grbg8":
            data, pixel_bytes = rgb[:, :, 1].tobytes(), 1  # a grey scene: every filter sees the same value
        elif encoding == "mono16":
            data, pixel_bytes = (rgb[:, :, 0].astype("<u2") * 257).tobytes(), 2
        else:
            data, pixel_bytes = rgb.tobytes(), 3
        msg = Image(height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=0, step=WIDTH * pixel_bytes,
                    data=data)
        msg.header.stamp, msg.header.frame_id = stamp_of(seconds), frame_id
        messages.append(msg)
    return messages


def compressed_pair(extension: str, seconds: int):
    from sensor_msgs.msg import CompressedImage

    messages = []
    for rgb in ramp_pair():
        ok, encoded = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        msg = CompressedImage(format=f"rgb8; {extension.strip('.')} compressed bgr8", data=encoded.tobytes())
        msg.header.stamp, msg.header.frame_id = stamp_of(seconds), "camera_left"
        messages.append(msg)
    return messages


def box_covered(outcome) -> float:
    x1, y1, x2, y2 = OBSTACLE
    return float(np.mean(outcome.result.alert_mask[y1 + 5:y2 - 5, x1 + 5:x1 + 40] == 255))


@pytest.mark.parametrize("encoding", ["yuv422_yuy2", "bayer_grbg8", "mono16"])
def test_driver_encodings_reach_the_pipeline(bench, encoding) -> None:
    node = bench.proximity(f"enc_{encoding}")
    camera = Camera(bench, node, {side: f"/enc_{encoding}/{side}/image_rect" for side in ("left", "right")})
    outcomes = Outcomes(node)
    seconds = next(_seconds)
    camera.send(*raw_pair(encoding, seconds))
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert outcome.status == "published", outcome.reason
    assert box_covered(outcome) > 0.9  # the planted box at 0.5 m, through the driver's encoding


def test_compressed_input_on_the_remapped_topic(bench) -> None:
    from sensor_msgs.msg import CompressedImage

    node = bench.proximity("comp", Parameter("image_transport", value="compressed"),
                           remaps=("left/image_rect:=/driver/left/image_raw",))
    topics = {"left": "/driver/left/image_raw/compressed", "right": "/comp/right/image_rect/compressed"}
    camera = Camera(bench, node, topics, CompressedImage)
    outcomes = Outcomes(node)
    seconds = next(_seconds)
    camera.send(*compressed_pair(".png", seconds))
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert outcome.status == "published", outcome.reason
    assert box_covered(outcome) > 0.9  # png is lossless: the same answer as raw
    seconds = next(_seconds)
    camera.send(*compressed_pair(".jpg", seconds))
    assert outcomes.wait(seconds * 10**9 + 500).status == "published"
    broken = compressed_pair(".png", next(_seconds))
    broken[0].data = b"\x89PNG but cut short"
    camera.send(*broken)
    stamp = broken[0].header.stamp.sec * 10**9 + 500
    outcome = outcomes.wait(stamp)
    assert outcome.status == "rejected" and node.health.counters["rejected_corrupt"] == 1


def test_detection_takes_compressed_images(bench) -> None:
    from sensor_msgs.msg import CompressedImage

    node = bench.detection("compdet", Parameter("image_transport", value="compressed"))
    publisher = bench.tester.create_publisher(CompressedImage, "/compdet/image/compressed",
                                              qos_profile_sensor_data)
    wait_until(lambda: publisher.get_subscription_count() > 0)
    outcomes = Outcomes(node)
    pixels = np.zeros((128, 128, 3), np.uint8)
    pixels[48:80, 48:80] = 255
    ok, encoded = cv2.imencode(".jpg", pixels)
    seconds = next(_seconds)
    msg = CompressedImage(format="jpeg", data=encoded.tobytes())
    msg.header.stamp, msg.header.frame_id = stamp_of(seconds), "camera_front"
    publisher.publish(msg)
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert outcome.status == "published" and outcome.result and outcome.result[0].label == "square"


def test_points_and_occupancy_carry_stamp_and_frames(bench) -> None:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import PointCloud2, Range

    node = bench.proximity("nav", Parameter("camera_height_m", value=0.5),
                           Parameter("points_plane_m", value=2.0), Parameter("points_stride", value=2))
    camera = Camera(bench, node, {side: f"/nav/{side}/image_rect" for side in ("left", "right")})
    clouds = Received(bench.tester, PointCloud2, "/nav/proximity/points")
    grids = Received(bench.tester, OccupancyGrid, "/nav/proximity/occupancy")
    ranges = Received(bench.tester, Range, "/nav/proximity/range")
    wait_until(lambda: node._occupancy_pub.get_subscription_count() > 0)
    seconds = next(_seconds)
    camera.send(*raw_pair("rgb8", seconds))
    cloud = clouds.wait(lambda m: m.header.stamp.sec == seconds)
    grid = grids.wait(lambda m: m.header.stamp.sec == seconds)
    assert cloud.header.frame_id == "camera_left" and [f.name for f in cloud.fields] == ["x", "y", "z"]
    points = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 3)
    assert cloud.width == len(points) > 0 and cloud.point_step == 12 and cloud.is_dense
    assert np.all(points[:, 2] <= 2.0 + 1e-6)  # points_plane_m
    assert np.mean(points[:, 2] <= 1.0 + 1e-6) > 0.8  # mostly the box at 0.5 m: nearer than the 1 m plane
    assert grid.header.frame_id == "camera_left_footprint"
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (80, 80, pytest.approx(0.05))
    assert set(np.unique(np.asarray(grid.data))) <= {-1, 0, 100}
    assert ranges.wait(lambda m: m.header.stamp.sec == seconds).radiation_type == 2  # not INFRARED


def test_without_ground_handling_there_is_no_grid(bench) -> None:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import PointCloud2

    node = bench.proximity("flat", Parameter("camera_height_m", value=0.0))
    camera = Camera(bench, node, {side: f"/flat/{side}/image_rect" for side in ("left", "right")})
    Received(bench.tester, PointCloud2, "/flat/proximity/points")  # read: built only for a reader
    Received(bench.tester, OccupancyGrid, "/flat/proximity/occupancy")
    wait_until(lambda: node._occupancy_pub.get_subscription_count() > 0
               and node._output_publishers["proximity/points"].get_subscription_count() > 0)
    outcomes = Outcomes(node)
    seconds = next(_seconds)
    camera.send(*raw_pair("rgb8", seconds))
    outcome = outcomes.wait(seconds * 10**9 + 500)
    assert "proximity/points" in outcome.outputs and "proximity/occupancy" not in outcome.outputs


def stream_status(node):
    return next(s for s in node.diagnostic_statuses() if s.name.endswith("input stereo"))


def test_images_that_never_pair_warn_with_the_reason(bench) -> None:
    node = bench.proximity("unpaired")
    camera = Camera(bench, node, {side: f"/unpaired/{side}/image_rect" for side in ("left", "right")})
    outcomes = Outcomes(node)
    seconds = next(_seconds)
    camera.send(*raw_pair("rgb8", seconds))
    assert outcomes.wait(seconds * 10**9 + 500).status == "published"
    assert stream_status(node).level == 0
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # a driver whose right stamps trail by 50 ms: nothing pairs
        seconds = next(_seconds)
        left, right = raw_pair("rgb8", seconds)
        right.header.stamp.nanosec += 50_000_000
        camera.send(left, right)
        time.sleep(0.1)
    status = stream_status(node)
    values = status.values
    assert status.level == 1 and "have not paired" in status.message and "50.0 ms apart" in status.message
    assert int(values["images_left"]) >= 10 and int(values["pairs"]) == 1
    assert int(values["unpaired_images"]) > 0 and values["stream_restarts"] == "0"
    assert status.hardware_id == "camera_left"


def test_a_rate_below_expected_warns(bench) -> None:
    node = bench.proximity("slow", Parameter("expected_rate_hz", value=10.0))
    camera = Camera(bench, node, {side: f"/slow/{side}/image_rect" for side in ("left", "right")})
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # 2 Hz instead of 10
        camera.send(*raw_pair("rgb8", next(_seconds)))
        time.sleep(0.5)
    status = stream_status(node)
    assert status.level == 1 and "below expected_rate_hz 10" in status.message
    assert 0.5 < float(status.values["rate_left_hz"]) < 4.0
    (result,) = node.set_parameters([Parameter("expected_rate_hz", value=0.0)])  # off: no rate check
    assert result.successful and stream_status(node).level == 0


def test_detection_stream_warns_below_its_expected_rate(bench) -> None:
    from sensor_msgs.msg import Image

    node = bench.detection("slowdet", Parameter("expected_rate_hz", value=5.0))
    publisher = bench.tester.create_publisher(Image, "/slowdet/image", QoSProfile(depth=5))
    wait_until(lambda: publisher.get_subscription_count() > 0)
    time.sleep(2.1)  # no image at all for longer than the rate window
    status = next(s for s in node.diagnostic_statuses() if s.name.endswith("input image"))
    assert status.level == 1 and "image 0.0 Hz" in status.message and status.values["images"] == "0"


def test_an_empty_frame_id_is_warned_about_once(bench, capfd) -> None:
    node = bench.proximity("noframe")
    camera = Camera(bench, node, {side: f"/noframe/{side}/image_rect" for side in ("left", "right")})
    outcomes = Outcomes(node)
    for _ in range(3):
        seconds = next(_seconds)
        camera.send(*raw_pair("rgb8", seconds, frame_id=""))
        assert outcomes.wait(seconds * 10**9 + 500).status == "published"
    logged = capfd.readouterr().err
    assert logged.count("left images have an empty header.frame_id") == 1
