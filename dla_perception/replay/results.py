"""metrics.json of one replay (design.md's fields and more), from the frame records and the engine runs.

Beside metrics.json: frames.jsonl (one line per frame) and engine_runs.json (every engine run's wall and
CPU time, and the machine reference's after it, per model@core), which is what pooling many bags'
latencies needs (percentiles do not add up).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dla_perception.replay import bag as bagmod
from dla_perception.replay.graph import PerceptionGraph
from dla_perception.replay.metrics import add_reference, latency_summary
from dla_perception.replay.records import FrameRecord
from dla_perception.replay.scoring import Scorer
from dla_perception.replay.timing import RunLog

ENGINE_RUNS_FILE = "engine_runs.json"


def build_metrics(bag: bagmod.InputBag, graph: PerceptionGraph, records: list[FrameRecord], scorer: Scorer,
             wall_s: float, error: str | None, output_path: Path) -> dict:
    runs_by_core = graph.run_log.by_core()
    drops = graph.drops()
    cores = {}
    for core, runs in runs_by_core.items():
        ok = [r.latency_ms for r in runs if r.ok]
        latency = latency_summary(ok)
        cores[core] = {
            "inferences": len(ok),
            "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max")},
            "fps": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
            "errors": len(runs) - len(ok),
            "drops": int(drops.get(core, 0)),
            "engines": sorted({r.model for r in runs}),
        }
    engines = {}
    for core, runs in runs_by_core.items():
        for model in sorted({r.model for r in runs}):
            ok = [r for r in runs if r.model == model and r.ok]
            latency = latency_summary(r.latency_ms for r in ok)
            cpu = latency_summary(r.cpu_ms for r in ok)
            engines[f"{model}@{core}"] = {
                "inferences": len(ok),
                "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max")},
                "cpu_ms": {k: cpu[k] for k in ("p50", "p90")},  # process CPU time per run
                "errors": sum(1 for r in runs if r.model == model and not r.ok),
            }
    missing: dict[str, int] = {}
    for record in records:
        for item in record.missing:
            missing[item] = missing.get(item, 0) + 1
    end_to_end = latency_summary(r.end_to_end_ms for r in records)
    metrics = {
        "frames": len(records),
        "frames_with_output": sum(1 for r in records if not r.missing),
        "cores": cores,
        "engines": engines,
        "end_to_end_ms": end_to_end,
        "missing_outputs": dict(sorted(missing.items())),
        "bag": {"path": str(bag.path), "name": bag.path.name, "storage": bag.storage, "mode": bag.mode,
                "frames_in_bag": bag.expected_frames, "topics": bag.topics},
        # Which topic was read as ground truth (null: none, so no accuracy), and whether it was detected.
        "ground_truth": ({"topic": bag.ground_truth_topic, "detected": bag.ground_truth_detected}
                         if bag.ground_truth_topic else None),
        "output_bag": str(output_path),
        "wall_s": round(wall_s, 3),
        "complete": error is None,
        "error": error,
        "graph": {"nodes": [n.name for n in graph.nodes], "problems": graph.problems + scorer.problems,
                  "placements": graph.manager.placements() if graph.manager is not None else []},
    }
    add_reference(metrics, graph.run_log.samples())  # the machine reference and engine/reference ratios
    if scorer.score is not None:
        metrics["proximity"] = scorer.score.as_dict()
        metrics["proximity"]["alert_distance_m"] = scorer.alert_distance_m
    counted = [r.detections for r in records if r.detections is not None]
    if counted or any(n.name == "detection" for n in graph.nodes):
        metrics["detection"] = {"frames": len(counted), "detections": int(sum(counted))}
    return metrics


def latencies_by_core(run_log: RunLog) -> dict[str, dict[str, list[float]]]:
    """core -> model -> run times (ms) of every successful run."""
    latencies: dict[str, dict[str, list[float]]] = {}
    for core, runs in run_log.by_core().items():
        for run in runs:
            if run.ok:
                latencies.setdefault(core, {}).setdefault(run.model, []).append(run.latency_ms)
    return latencies


def write_results(out: Path, metrics: dict, records: list[FrameRecord], run_log: RunLog) -> None:
    """metrics.json, frames.jsonl and engine_runs.json into `out`."""
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (out / "frames.jsonl").open("w") as per_frame:  # one line per frame, for digging in
        for record in records:
            per_frame.write(json.dumps(dataclasses.asdict(record)) + "\n")
    (out / ENGINE_RUNS_FILE).write_text(json.dumps(run_log.samples()) + "\n")
