"""The regression gate's run-to-run spread and its verdicts, unloaded and loaded, measured; prints one JSON.

    .venv/bin/python benchmarks/bench_gate.py [--reruns 10] [--frames 8] [--width 320 --height 240]
        [--burners 2]

A synthetic stereo bag (proximity node, planes 1/2/4 m, onnxruntime CPU engines) is replayed once as the
baseline (no extra load), then in four groups of `--reruns`: unchanged, unchanged while `--burners`
processes (`while True: pass`) keep the cores busy, and the same two with the feature network made twice
as slow (the same network computed twice per run, test/slow_model.py), all in one process with the
engines cached per model as a fleet worker has them. For each figure the gate looks at it reports the
spread of each group relative to the baseline (min, median, max of current / baseline) and, per gate
mode, how many runs of each group passed; `old_gate` is the gate on raw CPU-time medians (a baseline
without the machine reference). Unchanged runs should pass every time, slowed ones fail every time; the
spread is what the default tolerances in docs/replay.md rest on. Say the load average with the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ.setdefault("DLA_PERCEPTION_REPLAY_DOMAIN_ID",
                      str(int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")) + 5))


def _engines_file(folder: Path, features: Path) -> Path:
    path = folder / f"engines_{features.stem}.yaml"
    path.write_text(
        "models:\n"
        f"  proximity_features: {{onnx: {features}, cores: [cpu], precision: fp32}}\n"
        f"  proximity_head: {{onnx: {REPO / 'models/proximity/head.onnx'}, cores: [cpu], precision: fp32}}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    from slow_model import write_twice_as_slow

    from dla_perception.replay.baseline import GATE_LATENCY_CHOICES, Tolerances, compare
    from dla_perception.replay.engine_cache import EngineCache
    from dla_perception.replay.runner import ReplayOptions, replay
    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        camera = StereoCamera().scaled(args.width, args.height)
        bag = write_stereo_bag(root / "bag", generate_sequence(9100, args.frames, camera), camera)
        config = root / "robot.yaml"
        config.write_text("/**/proximity_segmentation:\n  ros__parameters:\n    planes_m: [1.0, 2.0, 4.0]\n")
        normal = _engines_file(root, REPO / "models/proximity/features.onnx")
        slow = _engines_file(root, write_twice_as_slow(REPO / "models/proximity/features.onnx",
                                                       root / "features_twice.onnx"))
        cache = EngineCache()

        def run(engines: Path, name: str) -> dict:
            options = ReplayOptions(bag=bag, out=root / name, engines=engines, robot_config=config,
                                    nodes=["proximity"], progress=False, engine_cache=cache, overlays=0)
            return replay(options).metrics

        def group(engines: Path, name: str, burners: int) -> list[dict]:
            processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(burners)]
            try:
                return [run(engines, f"{name}{k}") for k in range(args.reruns)]
            finally:
                for process in processes:
                    process.kill()
                    process.wait()

        started = time.perf_counter()
        baseline = run(normal, "baseline")
        runs = {"unchanged": group(normal, "unchanged", 0),
                "unchanged_loaded": group(normal, "unchanged_loaded", args.burners),
                "twice_slower_features": group(slow, "slow", 0),
                "twice_slower_features_loaded": group(slow, "slow_loaded", args.burners)}
        cache.close()
        wall_s = time.perf_counter() - started

    def ratios(group_runs: list[dict], path: list[str]) -> dict:
        values = np.array([_value(m, path) / _value(baseline, path) for m in group_runs])
        return {"min": round(float(values.min()), 3), "median": round(float(np.median(values)), 3),
                "max": round(float(values.max()), 3)}

    figures = {}
    for engine in baseline["engines"]:
        figures[f"engines.{engine}.cpu_over_reference.p25"] = ["engines", engine, "cpu_over_reference", "p25"]
        for figure in ("cpu_ms", "latency_ms"):
            figures[f"engines.{engine}.{figure}.p50"] = ["engines", engine, figure, "p50"]
    figures["reference.cpu_ms.p25"] = ["reference", "cpu_ms", "p25"]
    figures["reference.latency_ms.p25"] = ["reference", "latency_ms", "p25"]
    figures["end_to_end_ms.p99"] = ["end_to_end_ms", "p99"]
    for core in baseline["cores"]:
        figures[f"cores.{core}.latency_ms.p99"] = ["cores", core, "latency_ms", "p99"]
    old_baseline = copy.deepcopy(baseline)  # as a metrics.json from before the reference
    old_baseline.pop("reference", None)
    for stats in old_baseline["engines"].values():
        stats.pop("cpu_over_reference", None)
    verdicts = {}
    for mode, reference in [(mode, baseline) for mode in GATE_LATENCY_CHOICES] + [("old_gate", old_baseline)]:
        tolerances = Tolerances(gate_latency="median" if mode == "old_gate" else mode)
        verdicts[mode] = {name: {("passed" if name.startswith("unchanged") else "failed"):
                                 sum(bool(compare(m, reference, tolerances)) != name.startswith("unchanged")
                                     for m in group_runs), "of": len(group_runs)}
                          for name, group_runs in runs.items()}
    everything = [m for group_runs in runs.values() for m in group_runs]
    print(json.dumps({
        "benchmark": "bench_gate",
        "frames": args.frames, "size": [args.width, args.height], "reruns": args.reruns,
        "burners": args.burners, "cpus": os.cpu_count(),
        "baseline": {name: _value(baseline, path) for name, path in figures.items()},
        "over_baseline": {name: {figure: ratios(group_runs, path) for figure, path in figures.items()}
                          for name, group_runs in runs.items()},
        "verdicts": verdicts,
        "accuracy_identical": all(m["proximity"]["iou"] == baseline["proximity"]["iou"] for m in everything),
        "wall_s": round(wall_s, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }, indent=1))


def _value(metrics: dict, path: list[str]) -> float:
    for key in path:
        metrics = metrics[key]
    return metrics


if __name__ == "__main__":
    main()
