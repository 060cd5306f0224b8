"""Replays through the real nodes (in-process rclpy, real ONNX models on onnxruntime).

One small synthetic bag (issue 5's generator and writer) is replayed a few times: as sqlite3 and as MCAP,
against itself as a baseline, and against a doctored baseline. Kept small (320x240, few frames) so the
whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from dla_perception.replay.messages import typestore
from dla_perception.tools.cli import main

REPO = Path(__file__).resolve().parent.parent
PROXIMITY_CARD = REPO / "models" / "proximity" / "MODEL_CARD.md"
FRAMES = 6
WIDTH, HEIGHT = 320, 240
IOU_MARGIN = 0.05  # a handful of frames at the network's own size vs the card's 200 held-out frames
OUTPUT_TOPICS = ("/proximity/mask", "/proximity/disparity", "/proximity/range")


def _make_bag(path: Path, storage: str, frames: int = FRAMES, seed: int = 9100) -> Path:
    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    camera = StereoCamera().scaled(WIDTH, HEIGHT)
    write_stereo_bag(path, generate_sequence(seed, frames, camera), camera, storage=storage)
    return path


def _replay(bag: Path, out: Path, *extra: str, nodes: str = "proximity") -> int:
    """The CLI; the proximity node alone unless asked (the detector is tested on its own, below)."""
    return main(["replay", str(bag), "--out", str(out), "--no-progress", "--frame-timeout", "30",
                 "--nodes", nodes, *extra])


def held_out_iou() -> float:
    """The smallest per-plane IoU of the model card's held-out synthetic table (its last, newest row)."""
    if not PROXIMITY_CARD.is_file():
        pytest.fail(f"{PROXIMITY_CARD} is missing: the shipped proximity model must come with its card")
    rows: list[list[float]] = []
    in_section = False
    for line in PROXIMITY_CARD.read_text().splitlines():
        if "held-out synthetic" in line.lower():
            in_section = True
        elif in_section and line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            values = [float(c) for c in cells if re.fullmatch(r"[01]\.\d+", c)]
            if values:
                rows.append(values)
        elif in_section and rows:
            break  # the end of the table
    if not rows:
        pytest.fail(f"no held-out synthetic IoU table in {PROXIMITY_CARD}")
    return min(rows[-1])


@pytest.fixture(scope="module")
def planes_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Robot parameters with the model card's planes (1, 2, 4 m), so the IoU compares like with like."""
    path = tmp_path_factory.mktemp("config") / "robot.yaml"
    path.write_text("/**/proximity_segmentation:\n  ros__parameters:\n    planes_m: [1.0, 2.0, 4.0]\n")
    return path


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory: pytest.TempPathFactory, planes_config: Path) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("replay")
    bag = _make_bag(root / "bag_sqlite", "sqlite3")
    out = root / "out"
    return bag, out, _replay(bag, out, "--config", str(planes_config))


def _output_messages(bag: Path) -> dict[str, list[tuple[int, int]]]:
    """topic -> [(bag time, header stamp)] of an output bag."""
    found: dict[str, list[tuple[int, int]]] = {}
    with Reader(bag) as reader:
        for connection, log_time, raw in reader.messages():
            message = typestore().deserialize_cdr(raw, connection.msgtype)
            stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
            found.setdefault(connection.topic, []).append((log_time, stamp))
    return found


def test_replay_writes_consistent_metrics_output_bag_and_report(sqlite_run: tuple[Path, Path, int]) -> None:
    bag, out, code = sqlite_run
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == FRAMES
    assert metrics["frames_with_output"] == FRAMES
    assert metrics["complete"] is True
    assert metrics["cores"], "no core ran an inference"
    for core, stats in metrics["cores"].items():
        assert stats["inferences"] > 0 and stats["errors"] == 0, core
        latency = stats["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert stats["fps"] > 0
    for core, stats in metrics["cores"].items():  # the per-engine breakdown adds up to the core
        on_core = [e for name, e in metrics["engines"].items() if name.endswith(f"@{core}")]
        assert sum(e["inferences"] for e in on_core) == stats["inferences"]
    e2e = metrics["end_to_end_ms"]
    assert 0 < e2e["p50"] <= e2e["p99"]
    per_frame = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert [f["index"] for f in per_frame] == list(range(FRAMES))
    assert max(f["end_to_end_ms"] for f in per_frame) == pytest.approx(e2e["max"], abs=1e-3)
    proximity = metrics["proximity"]
    planes = len(proximity["thresholds_m"])
    assert planes >= 1 and all(len(proximity[k]) == planes for k in ("iou", "precision", "recall"))

    # One output per input frame, each at its input's bag time with the input's header stamp.
    with Reader(bag) as reader:
        inputs = sorted((t, typestore().deserialize_cdr(raw, c.msgtype).header.stamp)
                        for c, t, raw in reader.messages() if c.topic.strip("/") == "left/image_rect")
    input_times = [(t, s.sec * 1_000_000_000 + s.nanosec) for t, s in inputs]
    outputs = _output_messages(out / "output_bag")
    for topic in OUTPUT_TOPICS:
        assert sorted(outputs[topic]) == input_times, topic
    assert metrics["output_bag_messages"]["/proximity/mask"] == FRAMES

    report = (out / "report.html").read_text()
    for picture in ("latency_per_core.png", "end_to_end.png", "iou_per_frame.png"):
        assert picture in report and (out / picture).stat().st_size > 1000
    assert list(out.glob("frame_*.png"))


def test_replay_iou_matches_the_model_card(sqlite_run: tuple[Path, Path, int]) -> None:
    _, out, _ = sqlite_run
    metrics = json.loads((out / "metrics.json").read_text())
    floor = held_out_iou() - IOU_MARGIN
    ious = metrics["proximity"]["iou"]
    # A plane nearer than everything in these scenes has no near pixel, truth or predicted: IoU null.
    scored = [v for v in ious if v is not None]
    assert metrics["proximity"]["thresholds_m"] == [1.0, 2.0, 4.0]
    assert len(scored) >= 2 and all(v >= floor for v in scored), (ious, floor)


def test_mcap_input_replays_like_sqlite3(sqlite_run: tuple[Path, Path, int], tmp_path: Path,
                                        planes_config: Path) -> None:
    _, sqlite_out, _ = sqlite_run
    bag = _make_bag(tmp_path / "bag_mcap", "mcap")
    out = tmp_path / "out"
    # Same scenes as the sqlite3 bag, so it must pass against that run as a baseline (latency is not
    # what this test is about: shared CI machines are noisy).
    code = _replay(bag, out, "--baseline", str(sqlite_out / "metrics.json"), "--latency-slack-ms", "10000",
                   "--config", str(planes_config))
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    baseline = json.loads((sqlite_out / "metrics.json").read_text())
    assert metrics["bag"]["storage"] == "mcap"
    assert metrics["proximity"]["iou"] == baseline["proximity"]["iou"]  # lock-step: deterministic
    assert any(p.suffix == ".mcap" for p in (out / "output_bag").iterdir())


def test_doctored_baseline_fails_naming_each_regression(
    sqlite_run: tuple[Path, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture, planes_config: Path
) -> None:
    bag, out, _ = sqlite_run
    doctored = json.loads((out / "metrics.json").read_text())
    doctored["proximity"]["iou"] = [1.0] * len(doctored["proximity"]["thresholds_m"])  # a perfect model
    engine = next(iter(doctored["engines"]))
    # what the gate reads (baseline.py): CPU time over the machine reference on cpu, wall time elsewhere
    figure, statistic = ("cpu_over_reference", "p25") if engine.endswith("@cpu") else ("latency_ms", "p50")
    doctored["engines"][engine][figure][statistic] = 0.001
    baseline = tmp_path / "doctored.json"
    baseline.write_text(json.dumps(doctored))
    capsys.readouterr()
    code = _replay(bag, tmp_path / "out", "--baseline", str(baseline), "--max-frames", "2",
                   "--config", str(planes_config), "--accuracy-tolerance", "0")
    printed = capsys.readouterr().out
    assert code == 1
    assert f"REGRESSION engines.{engine}.{figure}.{statistic}" in printed
    current = json.loads((tmp_path / "out" / "metrics.json").read_text())["proximity"]
    expected = {f"proximity.iou@{t:g}m" for t, v in zip(current["thresholds_m"], current["iou"], strict=True)
                if v is None or v < 1.0}
    named = set(re.findall(r"REGRESSION (proximity\.iou@[\d.]+m)", printed))
    assert expected and named == expected
    report = (tmp_path / "out" / "report.html").read_text()
    assert f"REGRESSION engines.{engine}.{figure}.{statistic}" in report


def test_bag_broken_half_way_leaves_readable_partial_results(
    sqlite_run: tuple[Path, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source, _, _ = sqlite_run
    bag = tmp_path / "broken"
    shutil.copytree(source, bag)
    # Cut the 4th left image short inside the database: the bag opens, then breaks when read.
    import sqlite3

    database = next(bag.glob("*.db3"))
    with sqlite3.connect(database) as connection:
        query = "SELECT id FROM topics WHERE name LIKE '%left/image_rect'"
        topic_id = connection.execute(query).fetchone()[0]
        rows = connection.execute("SELECT id FROM messages WHERE topic_id = ? ORDER BY timestamp",
                                  (topic_id,)).fetchall()
        connection.execute("UPDATE messages SET data = ? WHERE id = ?",
                           (b"\x00\x01\x00\x00\x05", rows[3][0]))
    out = tmp_path / "out"
    code = _replay(bag, out)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "partial results written" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and "unreadable after" in metrics["error"]
    assert metrics["frames"] == 3 and metrics["frames_with_output"] == 3
    assert len(_output_messages(out / "output_bag")["/proximity/mask"]) == 3
    assert (out / "report.html").is_file()


def test_ros_written_bag_replays(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = shared_data / "bags" / "ros2bag_tools_images"
    if not bag.is_dir():
        pytest.skip(f"{bag} not in this data checkout")
    code = _replay(bag, tmp_path / "out", nodes="detection")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["bag"]["mode"] == "mono" and metrics["frames"] == 3
    assert metrics["graph"]["nodes"] == ["engine_manager", "detection"]
    # Its 2x2 images carry nothing to detect; the detector answers every frame either way.
    assert code in (0, 1)
    assert "detection: no answer" not in metrics["missing_outputs"]
    assert np.isfinite(metrics["wall_s"])


def test_detections_are_recorded_in_vision_msgs_form(sqlite_run: tuple[Path, Path, int],
                                                     tmp_path: Path) -> None:
    bag, _, _ = sqlite_run
    out = tmp_path / "out"
    assert _replay(bag, out, "--max-frames", "2", nodes="proximity,detection") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames_with_output"] == 2 and metrics["detection"]["frames"] == 2
    with Reader(out / "output_bag") as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/detections"] == "vision_msgs/msg/Detection2DArray"
        # The definition travels in the bag: a reader without vision_msgs decodes it.
        definition = next(c for c in reader.connections if c.topic == "/detections").msgdef.data
        assert "vision_msgs/Detection2D[] detections" in definition
    stamps = [stamp for _, stamp in _output_messages(out / "output_bag")["/detections"]]
    masks = [stamp for _, stamp in _output_messages(out / "output_bag")["/proximity/mask"]]
    assert stamps == masks and len(stamps) == 2


def test_demo_makes_the_bag_once_then_reuses_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arguments = ["demo", "--frames", "2", "--width", "160", "--height", "120", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert main(arguments) == 0
    first = capsys.readouterr().out
    assert "made now" in first and "p99 ms" in first and "report: " in first
    assert (tmp_path / "out" / "report.html").is_file()
    from dla_perception.tools.demo import generator_fingerprint

    expected = f"demo_seed2024_2f_160x120_{generator_fingerprint()}"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [expected]
    assert main(arguments) == 0
    assert "reused from the cache" in capsys.readouterr().out


def test_unsynchronised_stereo_pairs_as_the_node_does(tmp_path: Path) -> None:
    from test_replay_bags import write_bag

    # Right stamps 2 ms behind the left: within the node's default sync_slop_s (5 ms).
    bag = write_bag(tmp_path / "bag", frames=3, right_delay_ns=2_000_000)
    assert _replay(bag, tmp_path / "out") == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["frames"] == metrics["frames_with_output"] == 3
