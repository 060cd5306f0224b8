"""Bags as Ray tasks: one actor per worker, each its own process with its own DDS domain and engines.

Ray is an optional extra (`pip install 'dla_perception[fleet]'`). `run_on_ray` starts a local cluster
for the run (`workers` CPUs, no dashboard) and shuts it down at the end, or connects to an existing one
(`address`, e.g. `ray://head:10001` or `auto`) and leaves it running. Each actor keeps its engine manager
across the bags it is given (the models load once per worker), and replays on the DDS domain it was
given, so no two bags running at once share one; DDS discovery is also kept to the machine
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) so workers on different machines of a cluster never meet. An
actor that dies (a crash in native code) fails its bag, and a fresh actor takes its place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

from dla_perception.replay.engine_cache import EngineCache
from dla_perception.replay.graph import domain_ids
from dla_perception.replay.outcomes import run_bag
from dla_perception.replay.pooling import BagOutcome
from dla_perception.replay.runner import ReplayOptions
from dla_perception.replay.sources import BagJob

FLEET_HINT = ("--workers and --ray-address run bags on Ray, which is not installed: "
              "pip install 'dla_perception[fleet]' (or pip install ray)")
DEFAULT_DOMAIN_BASE = 215  # 215-232, then 0-101 (graph.SAFE_DOMAIN_IDS); DLA_PERCEPTION_FLEET_DOMAIN_BASE


class FleetError(Exception):
    """Ray missing, or a cluster that cannot be reached: a message for the user."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise FleetError(FLEET_HINT) from None
    return ray


class ReplayWorker:
    """A Ray actor's state: its engine cache and domain id (defined plain, made remote at run time)."""

    def __init__(self, domain_id: int) -> None:
        self.domain_id = domain_id
        self.cache = EngineCache()
        if not os.environ.get("ROS_LOCALHOST_ONLY"):
            os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    def run(self, job: BagJob, options: ReplayOptions) -> BagOutcome:
        return run_bag(job, replace(options, engine_cache=self.cache, domain_id=self.domain_id))

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.cache.close()


def run_on_ray(pending: list[tuple[BagJob, ReplayOptions]], workers: int, address: str | None,
               domain_base: int | None) -> Iterator[BagOutcome]:
    """Runs every job on Ray; yields outcomes as bags finish (any order)."""
    ray = import_ray()
    started_here = address is None
    try:
        if started_here:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: the cluster is not there
        raise FleetError(f"cannot start or reach the Ray cluster ({address or 'local'}): {exc}") from exc
    try:
        if not started_here and workers <= 1:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield from _schedule(ray, pending, min(workers, len(pending)), domain_base)
    finally:
        ray.shutdown()  # stops the cluster started here; only disconnects from an existing one


def _schedule(ray, pending: list[tuple[BagJob, ReplayOptions]], workers: int,
              domain_base: int | None) -> Iterator[BagOutcome]:
    base = domain_base if domain_base is not None else int(
        os.environ.get("DLA_PERCEPTION_FLEET_DOMAIN_BASE", DEFAULT_DOMAIN_BASE))
    remote_worker = ray.remote(num_cpus=1, max_restarts=0)(ReplayWorker)
    domains = domain_ids(base, workers)
    actors = {domain: remote_worker.remote(domain) for domain in domains}
    queue = list(pending)
    running: dict = {}  # object ref -> (domain, job)

    def submit(domain: int) -> None:
        job, options = queue.pop(0)
        running[actors[domain].run.remote(job, options)] = (domain, job)

    for domain in domains:
        if queue:
            submit(domain)
    try:
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            domain, job = running.pop(done[0])
            try:
                yield ray.get(done[0])
            except Exception as exc:  # the actor died (RayActorError) or could not start
                yield BagOutcome(job.name, str(job.bag), "failed", error=f"Ray worker failed: {exc}")
                actors[domain] = remote_worker.remote(domain)
            if queue:
                submit(domain)
    finally:
        for actor in actors.values():
            try:
                ray.get(actor.close.remote(), timeout=30)
            except Exception:  # a dead actor has nothing left to close
                pass
            ray.kill(actor)
