"""A user's own bag in one line (camera topics, namespace, -p, default --out, ground truth found or not),
and the shipped RViz/Foxglove views naming topics that a replay's output bag really has.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, ros_domain_id
from rosbags.rosbag2 import Reader, Writer

from dla_perception.tools.cli import main

FRAMES = 2
# Topics the proximity node gains with helper i17's work (design.md's names); allowed in the views now.
DESIGN_ONLY = {"/proximity/points", "/proximity/occupancy"}


def _renamed_copy(source: Path, target: Path, names: dict[str, str | None]) -> Path:
    """The bag with its topics renamed (None: left out), as a robot would have recorded it."""
    with Reader(source) as reader, Writer(target, version=8) as writer:
        connections = {}
        for connection in reader.connections:
            topic = "/" + connection.topic.lstrip("/")
            name = names.get(topic, topic)
            if name is not None:
                connections[connection.id] = writer.add_connection(
                    name, connection.msgtype, msgdef=connection.msgdef.data, rihs01=connection.digest)
        for connection, log_time, raw in reader.messages():
            if connection.id in connections:
                writer.write(connections[connection.id], log_time, raw)
    return target


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    camera = StereoCamera().scaled(160, 120)
    return write_stereo_bag(tmp_path_factory.mktemp("own") / "synthetic",
                            generate_sequence(9400, FRAMES, camera), camera)


@pytest.fixture(autouse=True)
def _domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLA_PERCEPTION_REPLAY_DOMAIN_ID", str(ros_domain_id(7)))


def test_camera_topics_and_a_parameter_in_one_line(synthetic, tmp_path, monkeypatch, capsys) -> None:
    bag = _renamed_copy(synthetic, tmp_path / "zed_run", {
        "/left/image_rect": "/zed/left/image_rect_color", "/right/image_rect": "/zed/right/image_rect_color",
        "/left/camera_info": "/zed/left/camera_info", "/right/camera_info": "/zed/right/camera_info",
        "/ground_truth/disparity": "/sim/ground_truth/disparity"})
    monkeypatch.chdir(tmp_path)
    code = main(["replay", str(bag), "--camera-topics", "/zed/left/image_rect_color",
                 "/zed/right/image_rect_color", "-p", "alert_distance_m:=1.5", "--nodes", "proximity",
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    metrics = json.loads((tmp_path / "replay_results" / "zed_run" / "metrics.json").read_text())
    assert metrics["frames_with_output"] == FRAMES
    assert metrics["ground_truth"] == {"topic": "/sim/ground_truth/disparity", "detected": True}
    assert metrics["proximity"]["alert_distance_m"] == 1.5
    assert "ground truth: /sim/ground_truth/disparity (detected)" in printed


def test_a_namespace_and_a_bag_without_ground_truth_say_so(synthetic, tmp_path, capsys) -> None:
    names = {t: f"/robot7/front{t}" for t in ("/left/image_rect", "/right/image_rect", "/left/camera_info",
                                               "/right/camera_info")}
    bag = _renamed_copy(synthetic, tmp_path / "robot7", {**names, "/ground_truth/disparity": None})
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--namespace", "/robot7/front", "--nodes", "proximity",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames_with_output"] == FRAMES and metrics["ground_truth"] is None
    assert "proximity" not in metrics
    assert "ground truth: none in this bag" in printed and "accuracy NOT measured" in printed


def test_a_parameter_no_node_has_is_an_error(synthetic, tmp_path, capsys) -> None:
    code = main(["replay", str(synthetic), "-p", "alert_distanse_m:=1.5", "--nodes", "proximity",
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "alert_distanse_m" in err and "alert_distance_m" in err and "Traceback" not in err


def _rviz_topics(path: Path) -> set[str]:
    displays = yaml.safe_load(path.read_text())["Visualization Manager"]["Displays"]
    return {d["Topic"]["Value"] for d in displays if "Topic" in d}


def _foxglove_topics(path: Path) -> set[str]:
    topics = set()
    for panel in json.loads(path.read_text())["configById"].values():
        mode = panel.get("imageMode", {})
        topics |= {mode[k] for k in ("imageTopic", "calibrationTopic") if k in mode}
        topics |= set(panel.get("topics", {}))
        if "topicPath" in panel:
            topics.add(panel["topicPath"].split(".")[0])
        topics |= {p["value"].split(".")[0] for p in panel.get("paths", [])}
    return topics


def test_rviz_and_foxglove_views_name_topics_of_an_output_bag(synthetic, tmp_path) -> None:
    out = tmp_path / "out"
    assert main(["replay", str(synthetic), "--with-inputs", "--out", str(out), "--no-progress"]) == 0
    with Reader(out / "output_bag") as reader:
        recorded = {c.topic for c in reader.connections}
    assert {"/left/image_rect", "/right/image_rect", "/left/camera_info", "/proximity/mask"} <= recorded
    for view, topics in ((REPO_ROOT / "config" / "replay.rviz", _rviz_topics),
                         (REPO_ROOT / "config" / "replay.foxglove.json", _foxglove_topics)):
        named = topics(view)
        shown = {"/left/image_rect", "/proximity/mask", "/detections/image", "/proximity/points"}
        assert shown <= named, view
        assert named <= recorded | DESIGN_ONLY, (view, named - recorded - DESIGN_ONLY)
