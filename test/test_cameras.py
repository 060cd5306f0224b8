"""Several cameras in one perception_container, one engine manager over two "DLAs" (cpu0, cpu1: config/
engines.cpu_cores.yaml, the shipped networks): per-camera parameters from the params file, and, fed from
another process faster than the machine can follow, the high-priority camera keeps >= 90 % of its target,
no camera starves below its minimum and the per-stream statuses agree with what was delivered."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, ros_domain_id

rclpy = pytest.importorskip("rclpy")

DOMAIN_ID = ros_domain_id(7)
ENGINES = REPO_ROOT / "config" / "engines.cpu_cores.yaml"
WARM_UP_S = 4.0  # engines' first runs, DDS discovery of the drivers
PUBLISH_S = 16.0


# Five planes: two head calls a frame (~110 ms of the two cores' time here against ~20 ms of Python in the
# node), so the inference cores, which the manager schedules, are what the cameras overload.
PLANES_M = [0.75, 1.0, 1.5, 2.0, 3.0]
# Twenty-four planes (eight head calls a frame) for the cameras the overload tests degrade: fed from another
# process with each camera on its own phase (as separate drivers are), five- and twelve-plane cameras left
# the two cores 70-80 % busy here, not overloaded (a twelve-plane rear kept up with 9.2 of 10 Hz).
HEAVY_PLANES_M = [0.5 + 0.25 * index for index in range(24)]


def params_file(folder: Path, cameras: dict[str, dict], detection_camera: str = "") -> Path:
    """A four_cameras.yaml-style params file: shared proximity settings, then each camera's own."""
    document = {
        "/**/engine_manager": {"ros__parameters": {"cameras": list(cameras), "diagnostics_period_s": 0.5,
                                                   "detection_camera": detection_camera,
                                                   "diagnostic_updater": {"use_fqn": True}}},
        "/**/proximity_segmentation": {"ros__parameters": {
            "planes_m": PLANES_M, "camera_height_m": 0.0, "input_qos": "reliable",
            "diagnostic_updater": {"use_fqn": True}}},
        **{f"/**/{camera}/proximity_segmentation": {"ros__parameters": settings}
           for camera, settings in cameras.items()},
        "/**/detection": {"ros__parameters": {"max_rate_hz": 1.0, "input_qos": "reliable"}},
    }
    path = folder / "cameras.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))  # rcl applies sections in file order
    return path


class Cameras:
    """The container on its IsolatedSpinner, a listener of every camera's range and of /diagnostics."""

    def __init__(self, params: Path, cameras: list[str], ros_args: tuple[str, ...] = ()) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Range

        from dla_perception.nodes.container import build_container
        from dla_perception.nodes.spinning import IsolatedSpinner

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID,
                   args=["--ros-args", "--params-file", str(params), "-p", f"engines_file:={ENGINES}",
                         *ros_args])
        self.container = build_container(context=self.context)
        self.listener = rclpy.create_node("listener", context=self.context)
        self.lock = threading.Lock()
        self.ranges: dict[str, list[float]] = {camera: [] for camera in cameras}
        self.statuses: list[tuple[float, dict]] = []
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        for camera in cameras:
            self.listener.create_subscription(Range, f"/{camera}/proximity/range",
                                              lambda msg, c=camera: self._range(c), reliable)
        self.listener.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 50)
        self.spinner = IsolatedSpinner([*self.container.nodes, self.listener], self.context).start()

    def _range(self, camera: str) -> None:
        with self.lock:
            self.ranges[camera].append(time.monotonic())

    def _diagnostics(self, msg) -> None:
        now = time.monotonic()
        with self.lock:
            for status in msg.status:
                if ": stream " in status.name:
                    values = {kv.key: kv.value for kv in status.values}
                    level = status.level
                    level = int.from_bytes(level, "little") if isinstance(level, bytes) else int(level)
                    self.statuses.append((now, {"name": status.name, "level": level,
                                                "hardware_id": status.hardware_id, **values}))

    def rate(self, camera: str, start: float, end: float) -> float:
        with self.lock:
            return sum(start <= t < end for t in self.ranges[camera]) / (end - start)

    def last_status(self, stream: str, before: float) -> dict:
        with self.lock:
            found = [status for when, status in self.statuses
                     if when <= before and status["name"].endswith(f": stream {stream}")]
        assert found, f"no status for stream {stream}"
        return found[-1]

    def close(self) -> None:
        self.spinner.shutdown()
        self.container.destroy()
        self.listener.destroy_node()
        rclpy.shutdown(context=self.context)


def drive(cameras: list[str], rate_hz: float) -> tuple[float, float, dict]:
    """Run the drivers in another process: (start, end) on this clock and what they sent."""
    start = time.monotonic()
    driver = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("cameras_publisher.py")), "--domain", str(DOMAIN_ID),
         "--cameras", ",".join(cameras), "--rate-hz", str(rate_hz), "--duration", str(PUBLISH_S)],
        capture_output=True, text=True, timeout=180)
    end = time.monotonic()
    assert driver.returncode == 0, driver.stderr[-2000:]
    return start, end, json.loads(driver.stdout.strip().splitlines()[-1])["sent"]


def test_four_cameras_get_their_params_file_sections_and_one_manager(tmp_path) -> None:
    four = REPO_ROOT / "config" / "four_cameras.yaml"
    graph = Cameras(four, ["front", "rear", "left", "right"])
    try:
        container = graph.container
        assert list(container.cameras) == ["front", "rear", "left", "right"]
        names = {camera: node.get_fully_qualified_name() for camera, node in container.cameras.items()}
        assert names["rear"] == "/rear/proximity_segmentation"
        assert container.detection.get_fully_qualified_name() == "/front/detection"
        front, left = container.cameras["front"], container.cameras["left"]
        assert front.param("planes_m") == [0.75, 1.0, 1.5, 2.0, 3.0] and left.param("planes_m") == [1.0, 2.0]
        assert left.param("camera_pitch_deg") == 10.0 and front.param("camera_pitch_deg") == 5.0
        manager = container.engine_manager.manager
        assert all(node.manager is manager for node in container.cameras.values())
        streams = manager.stream_statistics()
        assert streams["front/proximity"]["priority"] == 10
        assert streams["front/proximity"]["max_rate_hz"] == 15
        assert streams["rear/proximity"]["min_rate_hz"] == 5 and streams["left/proximity"]["priority"] == 0
        assert streams["front/detection"]["max_rate_hz"] == 5
        front.set_parameters([rclpy.parameter.Parameter("max_rate_hz", value=12.0)])  # dynamic
        assert manager.stream_statistics()["front/proximity"]["max_rate_hz"] == 12
    finally:
        graph.close()


def check_overload(graph: Cameras, cameras: dict[str, dict], rate_hz: float) -> dict:
    start, end, sent = drive(list(cameras), rate_hz)
    time.sleep(1.5)  # the last frames publish, a diagnostics period passes
    window = (start + WARM_UP_S, end)
    rates = {camera: graph.rate(camera, *window) for camera in cameras}
    streams = graph.container.engine_manager.manager.stream_statistics()
    report = {"rates": rates, "sent": sent, "streams": {name: {k: v for k, v in s.items() if k != "stream"}
                                                        for name, s in streams.items()}}
    top = max(cameras, key=lambda camera: cameras[camera]["priority"])
    assert rates[top] >= 0.9 * cameras[top]["max_rate_hz"], report
    for camera, settings in cameras.items():
        assert rates[camera] >= 0.9 * settings.get("min_rate_hz", 0.0), (camera, report)
    offered = sum(sent.values()) / PUBLISH_S
    assert sum(rates.values()) < 0.8 * offered, ("the machine kept up: no overload", report)
    for camera in cameras:
        stream = f"{camera}/proximity"
        received = len(graph.ranges[camera])
        delivered = streams[stream]["delivered"]
        assert abs(delivered - received) <= max(2, 0.05 * received), (camera, delivered, received)
        assert streams[stream]["host_cpu_ms_p50"] > 0  # the node's own CPU per frame, for the plan
        status = graph.last_status(stream, end)  # published while the drivers ran
        assert status["hardware_id"] == f"{camera}_camera_left"
        window_rate = graph.rate(camera, max(start, end - 10.0), end)
        achieved = float(status["achieved_rate_hz"])
        assert abs(achieved - window_rate) <= 0.2 * window_rate + 0.5, (camera, achieved, window_rate)
        floor = cameras[camera].get("min_rate_hz", 0.0)
        assert (status["level"] == 1) == (achieved < floor), (camera, status)
        assert int(status["dropped_busy"]) + int(status["dropped_rate_cap"]) > 0 or camera == top
    print(json.dumps(report, default=str))
    return report


@pytest.mark.slow
def test_two_cameras_overloaded_front_keeps_its_rate_rear_its_minimum(tmp_path) -> None:
    # Targets well inside what the two cores give one camera, so that other helpers' load on this 2-core
    # machine does not decide the outcome; both cameras are offered far more than the cores can run.
    cameras = {"front": {"priority": 10, "max_rate_hz": 2.5},
               "rear": {"priority": 0, "min_rate_hz": 0.5, "planes_m": list(HEAVY_PLANES_M)}}
    graph = Cameras(params_file(tmp_path, cameras), list(cameras))
    try:
        check_overload(graph, cameras, rate_hz=10.0)
    finally:
        graph.close()


@pytest.mark.slow
def test_four_cameras_overloaded_nothing_starves(tmp_path) -> None:
    cameras = {"front": {"priority": 10, "max_rate_hz": 2.0},
               "rear": {"priority": 5, "min_rate_hz": 0.5, "planes_m": list(HEAVY_PLANES_M)},
               "left": {"priority": 0, "min_rate_hz": 0.3, "planes_m": list(HEAVY_PLANES_M)},
               "right": {"priority": 0, "min_rate_hz": 0.3, "planes_m": list(HEAVY_PLANES_M)}}
    graph = Cameras(params_file(tmp_path, cameras), list(cameras))
    try:
        check_overload(graph, cameras, rate_hz=6.0)
    finally:
        graph.close()


@pytest.mark.slow
def test_detection_runs_as_its_cameras_stream_beside_the_proximity_streams(tmp_path) -> None:
    """detection_camera puts the detection node in the rear camera's namespace; fed that camera's left
    image, its requests are the `rear/detection` stream (capped at 1 Hz here), reported in /diagnostics
    with the camera's frame, beside the proximity streams."""
    cameras = {"front": {"priority": 10, "max_rate_hz": 2.0}, "rear": {"priority": 0, "max_rate_hz": 2.0}}
    graph = Cameras(params_file(tmp_path, cameras, detection_camera="rear"), list(cameras),
                    ros_args=("-r", "/rear/image:=/rear/left/image_rect"))
    try:
        assert graph.container.detection.get_fully_qualified_name() == "/rear/detection"
        start, end, _ = drive(list(cameras), 4.0)
        time.sleep(1.5)
        streams = graph.container.engine_manager.manager.stream_statistics()
        detection = streams["rear/detection"]
        assert detection["max_rate_hz"] == 1.0 and detection["entry_model"] == "detector"
        window_s = end - start - WARM_UP_S
        assert 0.5 * window_s <= detection["delivered"] <= 1.0 * (end - start) + 2, detection
        assert detection["dropped_rate_cap"] > 0 and detection["failed"] == 0, detection
        assert detection["cores"] and set(detection["cores"]) <= {"cpu0", "cpu1"}
        status = graph.last_status("rear/detection", end)
        assert status["hardware_id"] == "rear_camera_left" and status["level"] == 0, status
        assert status["target_rate_hz"] == "1" and int(status["delivered"]) > 0, status
        for camera in cameras:
            assert graph.rate(camera, start + WARM_UP_S, end) >= 0.8 * cameras[camera]["max_rate_hz"]
    finally:
        graph.close()
