"""Lock-step replay never drops (issue 15 item 6): every frame processed exactly once, whatever else runs.

What made a lock-step replay see `dropped_busy` (and write one frame's outputs twice, which moved IoU at
4 m from 0.991 to 0.958) was another graph on its DDS domain: another replay, a robot, a bag player. Its
frames reached the replay's nodes while they were busy with the replay's own, and its outputs reached the
replay's recorder. The replay's graph now discovers no other process, and any drop, duplicate or foreign
answer still fails the run loudly. Tested with a real foreign camera process on the replay's domain.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, ros_domain_id

pytest.importorskip("rclpy")

DOMAIN_ID = ros_domain_id(7)
FRAMES = 8
WIDTH, HEIGHT = 320, 240
ENGINES = REPO_ROOT / "config" / "engines.yaml"


def test_the_inbox_reports_drops_duplicates_and_answers_to_frames_never_sent() -> None:
    from dla_perception.nodes.base import FrameOutcome
    from dla_perception.replay.player import Received
    from dla_perception.replay.runner import _Inbox, lock_step_error

    inbox = _Inbox()
    inbox.played.add(100)
    mask = Received("proximity/mask", "sensor_msgs/msg/Image", 100, b"", 0.0)
    inbox.add_message(mask)
    inbox.add_outcome("proximity_segmentation", FrameOutcome("proximity_segmentation", 100, "", "published"))
    assert inbox.violations == []
    inbox.add_message(mask)
    inbox.add_message(Received("proximity/mask", "sensor_msgs/msg/Image", 200, b"", 0.0))
    inbox.add_outcome("proximity_segmentation",
                      FrameOutcome("proximity_segmentation", 100, "", "dropped", "previous frame in flight"))
    assert [v.split(" ")[1] for v in inbox.violations] == ["answered", "answered", "dropped"]
    assert "twice" in inbox.violations[0] and "never sent" in inbox.violations[1]
    assert lock_step_error(inbox.violations).startswith("lock-step broken")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A small synthetic bag, a robot config taking the camera reliably, and a foreign camera's frames."""
    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    root = tmp_path_factory.mktemp("lockstep")
    camera = StereoCamera().scaled(WIDTH, HEIGHT)
    bag = root / "bag"
    write_stereo_bag(bag, generate_sequence(9200, FRAMES, camera), camera, storage="sqlite3")
    config = root / "robot.yaml"  # reliable inputs: a foreign camera's frames are surely delivered
    config.write_text("/**/proximity_segmentation:\n  ros__parameters:\n    planes_m: [1.0, 2.0, 4.0]\n"
                      "    input_qos: reliable\n")
    rng = np.random.default_rng(3)
    frames = root / "foreign.npz"
    np.savez(frames, left=rng.integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8),
             right=rng.integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8),
             projection_left=camera.projection_left(), projection_right=camera.projection_right())
    return bag, config, frames


def _replay(scene: tuple[Path, Path, Path], out: Path):
    from dla_perception.replay.runner import ReplayOptions, replay

    bag, config, _ = scene
    return replay(ReplayOptions(bag=bag, out=out, engines=ENGINES, robot_config=config, progress=False,
                                nodes=["proximity"], frame_timeout_s=30.0, domain_id=DOMAIN_ID))


class ForeignCamera:
    """benchmarks/stereo_source.py on the replay's domain: publishes at 10 Hz once a subscriber matches."""

    def __init__(self, frames: Path) -> None:
        command = [sys.executable, str(REPO_ROOT / "benchmarks" / "stereo_source.py"), str(frames),
                   "--count", "400", "--rate", "10", "--qos", "reliable", "--warmup-s", "0",
                   "--discovery-timeout-s", "120"]
        self.process = subprocess.Popen(command, env={**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # its participant is up before the replay's graph starts

    def __enter__(self) -> ForeignCamera:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.kill()
        self.process.communicate()


@pytest.mark.slow
def test_a_foreign_camera_on_the_replay_domain_changes_nothing(scene, tmp_path) -> None:
    alone = _replay(scene, tmp_path / "alone")
    assert alone.error is None and alone.metrics["frames_with_output"] == FRAMES
    with ForeignCamera(scene[2]):
        beside = _replay(scene, tmp_path / "beside")
    assert beside.error is None, beside.error
    assert beside.metrics["frames_with_output"] == FRAMES
    assert beside.metrics["proximity"]["iou"] == alone.metrics["proximity"]["iou"]
    for topic in ("/proximity/mask", "/proximity/disparity", "/proximity/range"):
        assert beside.metrics["output_bag_messages"][topic] == FRAMES, topic


@pytest.mark.slow
def test_a_graph_that_hears_a_foreign_camera_fails_the_run_loudly(scene, tmp_path, monkeypatch) -> None:
    """The guard behind the isolation: with the old, open discovery the same camera breaks lock-step."""
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    import dla_perception.nodes.spinning as spinning
    from dla_perception.replay.player import BagPlayer

    def open_context(domain_id: int):  # as before the fix: every participant of this machine is heard
        context = Context()
        rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        return context

    original_wait = BagPlayer.wait_for_connections

    def wait_for_the_camera_too(self, graph, timeout_s: float) -> None:  # frames only once it is heard
        original_wait(self, graph, timeout_s)
        node = next(n.node for n in graph.nodes if n.name == "proximity_segmentation")
        left = next(s for s in node.subscriptions if s.topic_name == "/left/image_rect")
        deadline = time.monotonic() + timeout_s
        while left.get_publisher_count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)

    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the camera's and the graph's
    monkeypatch.setattr(spinning, "isolated_context", open_context)
    monkeypatch.setattr(BagPlayer, "wait_for_connections", wait_for_the_camera_too)
    with ForeignCamera(scene[2]):
        result = _replay(scene, tmp_path / "open")
    assert result.error is not None and result.error.startswith("lock-step broken"), result.error
    assert result.metrics["complete"] is False
