"""Replay metrics, baseline comparison and the summary, on hand-computable inputs (no ROS)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from dla_perception.models.proximity_geometry import StereoGeometry
from dla_perception.replay.baseline import Tolerances, compare, latency_comparisons, load_metrics
from dla_perception.replay.metrics import ProximityScore, latency_summary
from dla_perception.replay.summary import summary_text


def test_latency_summary_percentiles() -> None:
    summary = latency_summary([float(v) for v in range(1, 101)])
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100.0
    assert latency_summary([None, float("nan")]) == {k: None for k in ("p50", "p90", "p99", "max", "mean")}


def test_stereo_geometry_and_planes() -> None:
    """The replay scores planes with the core's stereo model, from camera_info P as a bag stores it."""
    intrinsics = [0, 400.0, 240, 0, 0, 0, 1, 0]
    geometry = StereoGeometry.from_projections([400.0, 0, 320, 0, *intrinsics],
                                               [400.0, 0, 320, -400.0 * 0.12, *intrinsics])
    fx, baseline = geometry.fx, geometry.baseline_m
    assert (fx, baseline) == (400.0, pytest.approx(0.12))
    assert geometry.disparity_px([1.0, 2.0, 4.0]).tolist() == pytest.approx([48.0, 24.0, 12.0])


def test_proximity_score_counts_near_pixels_and_ignores_unknown_truth() -> None:
    # Ground truth: one column per disparity; 0 and NaN are unknown and must not count.
    truth = np.array([[30.0, 20.0, 10.0, 0.0, np.nan]], dtype=np.float32)
    planes_px = [25.0, 15.0]  # e.g. 1 m and a farther plane
    # The node's level image: the largest plane disparity the pixel is nearer than, 0 beyond all.
    # Pixel 1 (truth 20) is wrongly said nearer than the 25 px plane; pixel 2 (truth 10) is right (0).
    level = np.array([[25.0, 25.0, 0.0, 25.0, 25.0]], dtype=np.float32)
    score = ProximityScore([1.0, 2.0])
    ious = score.add(0, level, truth, planes_px)
    # Plane 25 px: truth near = {0}; predicted = {0, 1} -> tp 1, fp 1, fn 0 -> IoU 0.5.
    # Plane 15 px: truth near = {0, 1}; predicted (level >= 15) = {0, 1} -> IoU 1.
    assert ious == [0.5, 1.0]
    result = score.as_dict()
    assert result["thresholds_m"] == [1.0, 2.0]
    assert result["iou"] == [0.5, 1.0]
    assert result["precision"] == [0.5, 1.0]
    assert result["recall"] == [1.0, 1.0]
    # A second frame with nothing near anywhere adds no counts and has an undefined (None) IoU.
    far_truth = np.full((1, 5), 1.0, np.float32)
    assert score.add(1, np.zeros((1, 5), np.float32), far_truth, planes_px) == [None, None]
    assert score.as_dict()["iou"] == [0.5, 1.0]
    assert score.as_dict()["frames"] == 2


def test_proximity_score_rejects_size_mismatch() -> None:
    with pytest.raises(ValueError, match="ground truth"):
        ProximityScore([1.0]).add(0, np.zeros((2, 2), np.float32), np.zeros((3, 3), np.float32), [10.0])


METRICS = {
    "frames": 10,
    "frames_with_output": 10,
    "cores": {"cpu": {"inferences": 30, "latency_ms": {"p50": 20.0, "p90": 25.0, "p99": 30.0, "max": 31.0},
                      "fps": 9.0, "errors": 0}},
    "engines": {"proximity_head@cpu": {"inferences": 20, "latency_ms": {"p50": 20.0, "p99": 30.0},
                                       "cpu_ms": {"p50": 18.0}},
                "detector@dla0": {"inferences": 10, "latency_ms": {"p50": 10.0, "p99": 12.0}}},
    "end_to_end_ms": {"p50": 60.0, "p99": 80.0},
    "proximity": {"thresholds_m": [1.0, 2.0], "iou": [0.9, 0.8], "precision": [0.95, 0.9],
                  "recall": [0.93, 0.85]},
}


def test_baseline_against_itself_has_no_regression() -> None:
    assert compare(METRICS, METRICS) == []


def test_baseline_names_each_regression() -> None:
    worse = copy.deepcopy(METRICS)
    worse["proximity"]["iou"][1] = 0.7  # drop 0.1 > 0.01
    worse["proximity"]["recall"][0] = 0.925  # drop 0.005: within tolerance
    worse["engines"]["proximity_head@cpu"]["cpu_ms"]["p50"] = 30.0  # +67 % and +12 ms: both margins
    worse["engines"]["detector@dla0"]["latency_ms"]["p50"] = 16.0  # +60 %, +6 ms: both margins
    worse["cores"]["cpu"]["latency_ms"]["p99"] = 90.0  # a tail: shown, not gated by default
    worse["end_to_end_ms"]["p99"] = 400.0
    worse["frames_with_output"] = 7
    names = {r.metric for r in compare(worse, METRICS)}
    assert names == {"proximity.iou@2m", "engines.proximity_head@cpu.cpu_ms.p50",
                     "engines.detector@dla0.latency_ms.p50", "frames_with_output/frames"}
    text = summary_text(worse, compare(worse, METRICS))
    assert "REGRESSION proximity.iou@2m: 0.7 (baseline 0.8" in text
    tails = {r.metric for r in compare(worse, METRICS, Tolerances(gate_latency="tail"))}
    assert tails == names | {"end_to_end_ms.p99", "cores.cpu.latency_ms.p99"}
    assert {r.metric for r in compare(worse, METRICS, Tolerances(gate_latency="off"))} == {
        "proximity.iou@2m", "frames_with_output/frames"}


def test_a_cpu_engine_gates_on_cpu_time_not_on_wall_time() -> None:
    loaded = copy.deepcopy(METRICS)  # another process took the cores: wall time doubled, the work did not
    loaded["engines"]["proximity_head@cpu"]["latency_ms"]["p50"] = 40.0
    assert compare(loaded, METRICS) == []
    rows = {c.metric: c for c in latency_comparisons(loaded, METRICS)}
    assert rows["engines.proximity_head@cpu.latency_ms.p50"].worse
    assert not rows["engines.proximity_head@cpu.latency_ms.p50"].gated
    assert rows["engines.proximity_head@cpu.cpu_ms.p50"].gated


def test_latency_needs_both_margins_and_tolerances_are_adjustable() -> None:
    slower = copy.deepcopy(METRICS)
    slower["engines"]["detector@dla0"]["latency_ms"]["p50"] = 11.5  # +15 %, +1.5 ms: neither margin
    assert compare(slower, METRICS) == []
    slower["engines"]["detector@dla0"]["latency_ms"]["p50"] = 16.0  # +60 % but the slack is 10 ms here
    assert compare(slower, METRICS, Tolerances(latency_slack_ms=10.0)) == []
    tight = Tolerances(latency=0.05, latency_slack_ms=1.0)
    slower["engines"]["detector@dla0"]["latency_ms"]["p50"] = 11.5
    assert [r.metric for r in compare(slower, METRICS, tight)] == ["engines.detector@dla0.latency_ms.p50"]


def test_an_engine_or_plane_that_disappeared_is_a_regression() -> None:
    moved = copy.deepcopy(METRICS)
    moved["engines"] = {"detector@gpu": moved["engines"].pop("detector@dla0")}
    moved["proximity"]["thresholds_m"] = [1.0, 3.0]
    names = {r.metric for r in compare(moved, METRICS)}
    assert {"engines.detector@dla0.latency_ms.p50", "engines.proximity_head@cpu.cpu_ms.p50"} <= names
    assert {"proximity.iou@2m", "proximity.precision@2m", "proximity.recall@2m"} <= names


def test_load_metrics_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(METRICS))
    assert load_metrics(path)["frames"] == 10
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_metrics(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a replay metrics.json"):
        load_metrics(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_metrics(tmp_path / "missing.json")
