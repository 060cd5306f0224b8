"""What the manager reports about its models and cores: statistics, placements, health, description.

Pure functions over the manager's model entries, cheap enough to be read at 1 Hz by the diagnostics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dla_perception.runtime.dispatch import ModelEntry
from dla_perception.runtime.statistics import summarize
from dla_perception.runtime.worker import Worker


def wall_iso(seconds: float | None) -> str:
    """A time.time() instant as ISO 8601 UTC with milliseconds ('' for None): what /diagnostics shows."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def workers_of(entries: Mapping[str, ModelEntry]) -> list[Worker]:
    return [worker for entry in list(entries.values()) for worker in entry.workers]


def statistics(entries: Mapping[str, ModelEntry]) -> dict[str, Any]:
    """Per core and per engine (`model@core`): see docs/runtime.md for the keys."""
    now = time.monotonic()
    workers = workers_of(entries)
    cores: dict[str, dict[str, Any]] = {}
    for core in dict.fromkeys(worker.core for worker in workers):
        on_core = [worker for worker in workers if worker.core == core]
        cores[core] = summarize([(w.stats, w.queue_depth(), w.model) for w in on_core], now)
        cores[core]["stuck_engines"] = [worker.name for worker in on_core if worker.stuck]
    engines = {}
    for worker in workers:
        summary = summarize([(worker.stats, worker.queue_depth(), worker.model)], now)
        summary.update(model=worker.model, core=worker.core, precision=worker.engine.precision,
                       backend=worker.engine.backend, in_rotation=worker.in_rotation(now),
                       deadline_ms=worker.deadline_s * 1e3, stuck=worker.stuck,
                       stuck_since=wall_iso(worker.stuck_since_wall), times_stuck=worker.times_stuck)
        engines[worker.name] = summary
    return {"cores": cores, "engines": engines}


def placements(entries: Mapping[str, ModelEntry]) -> list[dict[str, Any]]:
    return [
        {
            "model": name,
            "requested": list(entry.spec.cores),
            "active": [worker.core for worker in entry.workers],
            "fallbacks": [dict(fallback) for fallback in entry.fallbacks],
            "policy": entry.spec.policy,
            "deadline_ms": {worker.core: worker.deadline_s * 1e3 for worker in entry.workers},
        }
        for name, entry in list(entries.items())
    ]


def health(entries: Mapping[str, ModelEntry]) -> dict[str, dict[str, Any]]:
    """Per model: `state` ok | degraded (a core stuck or backing off, others serve) | unavailable (every
    core stuck), the cores `serving` now, the `stuck` ones with their stuck_since, those `backing_off`."""
    now = time.monotonic()
    report = {}
    for name, entry in list(entries.items()):
        stuck = {w.core: wall_iso(w.stuck_since_wall) for w in entry.workers if w.stuck}
        backing_off = [w.core for w in entry.workers if not w.stuck and now < w.out_until]
        serving = [w.core for w in entry.workers if w.in_rotation(now)]
        if len(stuck) == len(entry.workers):
            state = "unavailable"
        elif stuck or backing_off:
            state = "degraded"
        else:
            state = "ok"
        report[name] = {"state": state, "serving": serving, "stuck": stuck, "backing_off": backing_off}
    return report


def describe(entries: Mapping[str, ModelEntry]) -> dict[str, Any]:
    """`models`: each placement with its I/O; `engines`: each engine's own description (TensorRT engines
    include their layer placement report)."""
    models = {
        placement["model"]: {
            **placement,
            "inputs": [spec.as_dict() for spec in entries[placement["model"]].inputs],
            "outputs": [spec.as_dict() for spec in entries[placement["model"]].outputs],
        }
        for placement in placements(entries)
    }
    engines = {}
    for worker in workers_of(entries):
        try:
            engines[worker.name] = worker.engine.describe()
        except Exception as exc:
            engines[worker.name] = {"model": worker.model, "core": worker.core, "error": str(exc)}
    return {"models": models, "engines": engines}
