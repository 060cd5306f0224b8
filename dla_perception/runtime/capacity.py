"""Capacity plan: will these camera streams fit these cores? A model of what the scheduler does, no ROS.

Each stream costs, per frame, its models' requests (the proximity pipeline: one features request and
ceil(queries / head batch) head requests); a model's requests spread over its cores (pinned: the first;
round_robin: evenly; least_loaded: in proportion to each core's speed). With measured per-model, per-core
latencies (a profile) that gives each core's busy time per second. Rates are granted as the scheduler grants
them: every stream's min_rate_hz first, then by priority (highest first) up to max_rate_hz, the streams of one
priority level sharing the cores' time equally (the oldest request first) until a core would go past
`headroom`; no stream faster than its frames in flight allow (a camera node has one: one frame per frame
latency, in whole camera periods when the camera's rate is known). A frame's latency is its chain of requests
(head requests of one frame run on all the model's cores at once), stretched by the busiest core's utilisation
(the request it finds running, on average).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StreamDemand:
    """One camera stream: what a frame asks of each model, its priority and its rates."""

    name: str
    requests: Mapping[str, int]  # model -> requests per frame
    priority: int = 0
    max_rate_hz: float = 15.0
    min_rate_hz: float = 0.0
    frames_in_flight: int = 0  # 0: unbounded; a camera node has 1 (nodes/frames.py, tools/plan.py sets it)
    source_rate_hz: float = 0.0  # the camera's frame rate, when known (0: frames whenever the node is free)


@dataclass(frozen=True)
class ModelPlacement:
    cores: tuple[str, ...]
    policy: str = "least_loaded"


@dataclass
class Plan:
    utilisation: dict[str, float]
    rates: dict[str, float]
    latency_ms: dict[str, float]
    degraded: list[str]
    placement: dict[str, ModelPlacement]
    suggestion: dict[str, ModelPlacement] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def placements(values: Mapping[str, ModelPlacement] | None) -> Any:
            return None if values is None else {m: {"cores": list(p.cores), "policy": p.policy}
                                                for m, p in values.items()}

        return {"utilisation": self.utilisation, "rates_hz": self.rates, "latency_ms": self.latency_ms,
                "degraded": self.degraded, "placement": placements(self.placement),
                "suggestion": placements(self.suggestion), "notes": self.notes}


def shares(placement: ModelPlacement, latencies: Mapping[str, float]) -> dict[str, float]:
    """The share of a model's requests each core takes under its policy."""
    cores = [core for core in placement.cores if core in latencies]
    if not cores:
        raise ValueError(f"no latency in the profile for any of cores {list(placement.cores)}")
    if placement.policy == "pinned" or len(cores) == 1:
        return {cores[0]: 1.0}
    if placement.policy == "round_robin":
        return dict.fromkeys(cores, 1.0 / len(cores))
    speed = {core: 1.0 / latencies[core] for core in cores}
    total = sum(speed.values())
    return {core: value / total for core, value in speed.items()}


def frame_cost(stream: StreamDemand, placement: Mapping[str, ModelPlacement],
               profile: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Seconds of each core's time one frame of `stream` takes."""
    cost: dict[str, float] = {}
    for model, count in stream.requests.items():
        latencies = profile[model]
        for core, share in shares(placement[model], latencies).items():
            cost[core] = cost.get(core, 0.0) + count * share * latencies[core] / 1e3
    return cost


def frame_latency_ms(stream: StreamDemand, placement: Mapping[str, ModelPlacement],
                     profile: Mapping[str, Mapping[str, float]]) -> float:
    """One frame's chain: each model's requests in turn, spread over its cores at once."""
    total = 0.0
    for model, count in stream.requests.items():
        latencies = profile[model]
        used = shares(placement[model], latencies)
        slowest = max(latencies[core] for core in used)
        total += math.ceil(count / len(used)) * slowest
    return total


def in_flight_bound(stream: StreamDemand, latency_ms: float) -> float:
    """The most frames/s `stream` runs with `frames_in_flight` frames of `latency_ms` each. With a camera
    of `source_rate_hz`, a node that finishes a frame takes the next one to arrive: a frame of 1.2 camera
    periods costs two (the one arriving meanwhile is dropped busy)."""
    if not stream.frames_in_flight or latency_ms <= 0:
        return math.inf
    if stream.source_rate_hz > 0:
        periods = max(1, math.ceil(latency_ms / 1e3 * stream.source_rate_hz / stream.frames_in_flight - 1e-9))
        return stream.source_rate_hz / periods
    return stream.frames_in_flight * 1e3 / latency_ms


def _rates(streams: Sequence[StreamDemand], costs: Mapping[str, Mapping[str, float]], cores: list[str],
           headroom: float, ceiling: Mapping[str, float]) -> dict[str, float]:
    """Every stream's minimum first (scaled down together if even those do not fit), then each priority
    level, highest first, by water-filling: the scheduler serves a level's oldest request first, so its
    streams share the cores' time equally (a cheap stream reaches its target before an expensive one is
    slowed), each up to min(max_rate_hz, its ceiling)."""
    free = dict.fromkeys(cores, headroom)
    rates = {s.name: 0.0 for s in streams}
    floors = {s.name: min(s.min_rate_hz, s.max_rate_hz, ceiling[s.name]) for s in streams}
    wanted = {core: sum(floors[s.name] * costs[s.name].get(core, 0.0) for s in streams) for core in cores}
    factor = max(0.0, min([1.0] + [free[core] / need for core, need in wanted.items() if need > 1e-12]))
    for s in streams:
        rates[s.name] = factor * floors[s.name]
        for core, seconds in costs[s.name].items():
            free[core] -= rates[s.name] * seconds
    for _, level in itertools.groupby(sorted(streams, key=lambda s: -s.priority), key=lambda s: s.priority):
        group = list(level)
        total = {s.name: sum(costs[s.name].values()) for s in group}
        while True:
            active = [s for s in group if total[s.name] > 0
                      and min(s.max_rate_hz, ceiling[s.name]) - rates[s.name] > 1e-9]
            if not active:
                break
            # one unit of share: each active stream gets 1 s of core time in all, 1 / cost frames
            per_core = {core: sum(costs[s.name].get(core, 0.0) / total[s.name] for s in active)
                        for core in cores}
            until_full = min([free[core] / load for core, load in per_core.items() if load > 1e-12],
                             default=math.inf)
            until_met = min((min(s.max_rate_hz, ceiling[s.name]) - rates[s.name]) * total[s.name]
                            for s in active)
            step = max(0.0, min(until_full, until_met))
            for s in active:
                rates[s.name] += step / total[s.name]
            for core, load in per_core.items():
                free[core] -= step * load
            if until_full <= until_met:
                break
    return rates


def plan(streams: Sequence[StreamDemand], placement: Mapping[str, ModelPlacement],
         profile: Mapping[str, Mapping[str, float]], headroom: float = 0.95) -> Plan:
    """Rates, utilisation and latency of `streams` on `placement`, granted as the scheduler grants them.

    A camera node has one frame in flight, so a stream also runs no faster than one frame per frame
    latency (`frames_in_flight`), that latency growing with the utilisation the rates give."""
    costs = {s.name: frame_cost(s, placement, profile) for s in streams}
    cores = sorted({core for cost in costs.values() for core in cost})
    chain = {s.name: frame_latency_ms(s, placement, profile) for s in streams}
    ceiling = dict.fromkeys(chain, math.inf)
    for step in range(40):  # the ceiling depends on the utilisation it leads to: a damped fixed point
        rates = _rates(streams, costs, cores, headroom, ceiling)
        utilisation = {core: sum(rates[n] * costs[n].get(core, 0.0) for n in rates) for core in cores}
        busiest = max(utilisation.values(), default=0.0)
        latency = {name: ms * (1.0 + min(busiest, 1.0)) for name, ms in chain.items()}
        bound = {s.name: in_flight_bound(s, latency[s.name]) for s in streams}
        if step:
            bound = {name: (ceiling[name] + value) / 2 if math.isfinite(value) else value
                     for name, value in bound.items()}
        ceiling = bound
    degraded = [s.name for s in streams if rates[s.name] < 0.99 * s.max_rate_hz]
    return Plan(utilisation, rates, latency, degraded, dict(placement))


def suggest(streams: Sequence[StreamDemand], placement: Mapping[str, ModelPlacement],
            profile: Mapping[str, Mapping[str, float]], headroom: float = 0.95) -> Plan:
    """The plan of `placement`, with `suggestion`: the placement (a set of profiled cores per model,
    least_loaded) that meets every target at the lowest busiest-core utilisation, if one does."""
    current = plan(streams, placement, profile, headroom)
    if not current.degraded:
        return current
    models = list(placement)
    options = []
    for model in models:
        cores = sorted(profile[model])
        options.append([ModelPlacement(tuple(subset), "least_loaded") for size in range(1, len(cores) + 1)
                        for subset in itertools.combinations(cores, size)])
    best: tuple[float, dict[str, ModelPlacement]] | None = None
    for combination in itertools.product(*options):
        candidate = dict(zip(models, combination, strict=True))
        result = plan(streams, candidate, profile, headroom)
        if result.degraded:
            continue
        score = max(result.utilisation.values(), default=0.0)
        if best is None or score < best[0]:
            best = (score, candidate)
    if best is not None:
        current.suggestion = best[1]
    else:
        current.notes.append("no placement of these models on the profiled cores meets every target")
    return current
