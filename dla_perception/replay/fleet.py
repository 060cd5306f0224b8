"""Many bags in one run: in this process one after another, or as Ray tasks on a local or existing cluster.

Each bag is a normal replay (runner.replay) into `OUT/<bag name>/`, in a process that keeps its engines
for the next bag (engine_cache) and with a DDS domain of its own. A bag that fails is recorded with its
error and the others go on. `resume` takes a bag's existing results when they were made by the same code,
models, configuration and bag (fingerprint.py). The run's own `OUT/metrics.json` holds every bag's entry
and the pooled metrics (pooling.py); `OUT/report.html` shows them side by side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from dla_perception.replay.baseline import Regression, Tolerances, compare_fleet, load_metrics
from dla_perception.replay.engine_cache import EngineCache
from dla_perception.replay.fleet_report import write_fleet_report
from dla_perception.replay.outcomes import resumable, run_bag
from dla_perception.replay.pooling import BagOutcome, pooled_metrics
from dla_perception.replay.ray_pool import run_on_ray
from dla_perception.replay.runner import ReplayOptions
from dla_perception.replay.sources import BagJob


@dataclass
class FleetOptions:
    jobs: list[BagJob]
    out: Path
    engines: Path
    robot_config: Path | None = None  # for bags whose settings name none
    baseline: Path | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    frame_timeout_s: float = 60.0
    with_inputs: bool = False
    workers: int = 1  # > 1, or ray_address: Ray
    ray_address: str | None = None
    domain_base: int | None = None  # first DDS domain id of the Ray workers (graph.domain_ids)
    resume: bool = False
    on_bag: Callable[[BagOutcome], None] | None = None  # called as each bag finishes (progress lines)


@dataclass
class FleetResult:
    metrics: dict
    report: Path
    outcomes: list[BagOutcome]
    regressions: list[Regression] | None = None


def bag_options(job: BagJob, options: FleetOptions) -> ReplayOptions:
    """The single-bag replay of one job (no baseline: the run compares the pooled result once)."""
    settings = job.settings
    return ReplayOptions(
        bag=job.bag, out=options.out / job.name, engines=options.engines,
        robot_config=settings.config or options.robot_config, max_frames=settings.max_frames,
        remaps=list(settings.remaps), namespace=settings.namespace, camera_topics=settings.camera_topics,
        parameters=list(settings.parameters), ground_truth=settings.ground_truth,
        with_inputs=options.with_inputs, frame_timeout_s=options.frame_timeout_s, progress=False,
        nodes=settings.nodes)


def run_fleet(options: FleetOptions) -> FleetResult:
    baseline = load_metrics(options.baseline) if options.baseline is not None else None  # fail fast
    options.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    planned = [(job, bag_options(job, options)) for job in options.jobs]
    outcomes: dict[str, BagOutcome] = {}
    pending = []
    for job, replay_options in planned:
        previous = resumable(job, replay_options) if options.resume else None
        if previous is not None:
            outcomes[job.name] = previous
            _notify(options, previous)
        else:
            pending.append((job, replay_options))
    if pending and (options.workers > 1 or options.ray_address):
        for outcome in run_on_ray(pending, options.workers, options.ray_address, options.domain_base):
            outcomes[outcome.name] = outcome
            _notify(options, outcome)
    else:
        cache = EngineCache()
        try:
            for job, replay_options in pending:
                outcome = run_bag(job, replace(replay_options, engine_cache=cache))
                outcomes[job.name] = outcome
                _notify(options, outcome)
        finally:
            cache.close()
    ordered = [outcomes[job.name] for job, _ in planned]
    metrics = pooled_metrics(ordered, time.perf_counter() - started)
    metrics["fleet"] = {"workers": options.workers, "ray_address": options.ray_address,
                        "engines": str(options.engines)}
    regressions = compare_fleet(metrics, baseline, options.tolerances) if baseline is not None else None
    (options.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    report = write_fleet_report(options.out, metrics, baseline, options.tolerances, regressions)
    return FleetResult(metrics, report, ordered, regressions)


def _notify(options: FleetOptions, outcome: BagOutcome) -> None:
    if options.on_bag is not None:
        options.on_bag(outcome)
