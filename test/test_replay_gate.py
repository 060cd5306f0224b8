"""The regression gate is right both ways: an unchanged version passes every rerun on a loaded machine;
an accuracy drop of 0.02 and a twice-as-slow model fail every time.

One small bag, replayed in one process with the engines cached (as a fleet worker does): a baseline, then
ten unchanged reruns and three runs with the feature network computed twice per run (test/slow_model.py:
real work, bit-identical outputs), all while two burner processes keep both cores of the machine busy.
CPU engines gate on their CPU time over the machine reference's (replay/reference.py).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, ros_domain_id
from slow_model import write_twice_as_slow

from dla_perception.replay.baseline import Tolerances, compare, latency_comparisons
from dla_perception.replay.summary import latency_table, summary_text

RERUNS = 10
SLOW_RUNS = 3
BURNERS = 2  # one per core of the 2-core CI machine: every engine run competes for its core
FEATURES_GATE = "engines.proximity_features@cpu.cpu_over_reference.p25"


def _engines(folder: Path, features: Path) -> Path:
    path = folder / f"engines_{features.stem}.yaml"
    head = REPO_ROOT / "models" / "proximity" / "head.onnx"
    path.write_text("models:\n"
                    f"  proximity_features: {{onnx: {features}, cores: [cpu], precision: fp32}}\n"
                    f"  proximity_head: {{onnx: {head}, cores: [cpu], precision: fp32}}\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict], list[dict]]:
    from dla_perception.replay.engine_cache import EngineCache
    from dla_perception.replay.runner import ReplayOptions, replay
    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    root = tmp_path_factory.mktemp("gate")
    camera = StereoCamera().scaled(160, 120)
    bag = write_stereo_bag(root / "bag", generate_sequence(9300, 5, camera), camera)
    config = root / "robot.yaml"
    config.write_text("/**/proximity_segmentation:\n  ros__parameters:\n    planes_m: [1.0, 2.0, 4.0]\n")
    features = REPO_ROOT / "models" / "proximity" / "features.onnx"
    normal = _engines(root, features)
    slow = _engines(root, write_twice_as_slow(features, root / "features_twice.onnx"))
    cache = EngineCache()

    def run(engines: Path, name: str) -> dict:
        return replay(ReplayOptions(bag=bag, out=root / name, engines=engines, robot_config=config,
                                    nodes=["proximity"], progress=False, engine_cache=cache, overlays=0,
                                    domain_id=ros_domain_id(6))).metrics

    try:
        baseline = run(normal, "baseline")
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BURNERS)]
        try:  # a loaded machine
            unchanged = [run(normal, f"rerun{k}") for k in range(RERUNS)]
            slowed = [run(slow, f"slow{k}") for k in range(SLOW_RUNS)]
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
    finally:
        cache.close()
    return baseline, unchanged, slowed


def test_an_unchanged_version_passes_every_rerun(runs) -> None:
    baseline, unchanged, _ = runs
    for metrics in unchanged:
        assert metrics["proximity"]["iou"] == baseline["proximity"]["iou"]  # lock-step: deterministic
        assert compare(metrics, baseline) == [], latency_table(latency_comparisons(metrics, baseline))


def test_cpu_engines_are_gated_on_their_time_over_the_machine_reference(runs) -> None:
    baseline, unchanged, _ = runs
    reference = baseline["reference"]
    # one reference run after each successful CPU engine run
    assert reference["runs"] == sum(e["inferences"] for e in baseline["engines"].values())
    assert 0 < reference["cpu_ms"]["p25"] <= reference["cpu_ms"]["p50"]
    for engine in ("proximity_features@cpu", "proximity_head@cpu"):
        stats = baseline["engines"][engine]
        assert stats["cpu_over_reference"]["p25"] == pytest.approx(
            stats["cpu_ms"]["p25"] / reference["cpu_ms"]["p25"], rel=1e-3)
    rows = {c.metric: c for c in latency_comparisons(unchanged[0], baseline)}
    assert rows[FEATURES_GATE].gated and not rows["engines.proximity_features@cpu.cpu_ms.p50"].gated
    assert not rows["engines.proximity_features@cpu.latency_ms.p50"].gated
    # the absolute margin is the ms margin at the baseline's reference speed
    ratio = baseline["engines"]["proximity_features@cpu"]["cpu_over_reference"]["p25"]
    assert rows[FEATURES_GATE].allowed == pytest.approx(
        max(ratio * 1.5, ratio + 2.0 / reference["cpu_ms"]["p25"]))
    text = summary_text(unchanged[0], [])
    assert "machine reference:" in text and "proximity_features@cpu: CPU ms p25" in text


def test_a_baseline_without_the_reference_gates_raw_cpu_time_and_says_so(runs) -> None:
    baseline, unchanged, slowed = runs
    old = copy.deepcopy(baseline)
    del old["reference"]
    for stats in old["engines"].values():
        stats.pop("cpu_over_reference", None)
    comparisons = latency_comparisons(unchanged[0], old)
    gated = [c.metric for c in comparisons if c.gated]
    assert gated == ["engines.proximity_features@cpu.cpu_ms.p50", "engines.proximity_head@cpu.cpu_ms.p50"]
    assert "the baseline has no machine reference" in latency_table(comparisons)
    # Whether raw CPU time catches the 2x slower model depends on the load during the run (the reason for
    # the reference); what is checked here is that it is what an old baseline gates, and that it says so.
    compare(slowed[0], old)


def test_an_accuracy_drop_of_two_hundredths_fails_every_time(runs) -> None:
    baseline, unchanged, _ = runs
    planes = [k for k, v in enumerate(baseline["proximity"]["iou"]) if v is not None]
    assert planes
    for metrics in unchanged:
        for k in planes:
            for name in ("iou", "precision", "recall"):
                if metrics["proximity"][name][k] is None:
                    continue
                dropped = copy.deepcopy(metrics)
                dropped["proximity"][name][k] = round(dropped["proximity"][name][k] - 0.02, 6)
                assert [r.metric.split("@")[0] for r in compare(dropped, baseline)] == [f"proximity.{name}"]


def test_a_model_twice_as_slow_fails_every_time(runs) -> None:
    baseline, _, slowed = runs
    for metrics in slowed:
        assert metrics["proximity"]["iou"] == baseline["proximity"]["iou"]  # same outputs, twice the work
        names = [r.metric for r in compare(metrics, baseline)]
        assert names == [FEATURES_GATE], latency_table(latency_comparisons(metrics, baseline))
        assert compare(metrics, baseline, Tolerances(gate_latency="off")) == []
