"""One bag of a many-bag run as an outcome: replayed now, taken from earlier results, or failed."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from dla_perception.replay.pooling import BagOutcome
from dla_perception.replay.results import ENGINE_RUNS_FILE
from dla_perception.replay.runner import ReplayOptions, replay
from dla_perception.replay.sources import BagJob


def run_bag(job: BagJob, replay_options: ReplayOptions) -> BagOutcome:
    """One bag, never raising: a failure becomes an outcome with its error (the others go on)."""
    started = time.perf_counter()
    try:
        result = replay(replay_options)
    except Exception as exc:  # any failure of one bag is that bag's result, not the run's end
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return BagOutcome(job.name, str(job.bag), "failed", error=detail,
                          wall_s=time.perf_counter() - started)
    return _outcome(job, replay_options.out, "replayed", result.metrics, time.perf_counter() - started)


def _outcome(job: BagJob, out: Path, status: str, metrics: dict, wall_s: float) -> BagOutcome:
    runs_file = out / ENGINE_RUNS_FILE
    engine_runs = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    frames = out / "frames.jsonl"
    end_to_end = []
    if frames.is_file():
        for line in frames.read_text().splitlines():
            value = json.loads(line).get("end_to_end_ms")
            if value is not None:
                end_to_end.append(value)
    return BagOutcome(job.name, str(job.bag), status, metrics, metrics.get("error"), engine_runs,
                      end_to_end, wall_s)


def resumable(job: BagJob, replay_options: ReplayOptions) -> BagOutcome | None:
    """The bag's earlier results when complete and made by the same code, models, config and bag."""
    path = replay_options.out / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
        fingerprint = replay_options.fingerprint()
    except Exception:  # no results, unreadable JSON, or the bag itself is gone: run it
        return None
    if not metrics.get("complete") or metrics.get("fingerprint") != fingerprint:
        return None
    return _outcome(job, replay_options.out, "resumed", metrics, 0.0)
