"""Capacity plan: will these camera streams fit these cores? A model of what the scheduler does, no ROS.

Each stream costs, per frame, its models' requests (the proximity pipeline: one features request and
ceil(queries / head batch) head requests); a model's requests spread over its cores (pinned: the first;
round_robin: evenly; least_loaded: in proportion to each core's speed). With measured per-model, per-core
latencies (a profile) that gives each core's busy time per second. Rates are granted as the scheduler
grants them: every stream's min_rate_hz first, then by priority (highest first) up to max_rate_hz, a
priority level scaled down together where the busiest core would go past `headroom`. A frame's latency is
its chain of requests (head requests of one frame run on all the model's cores at once), stretched by the
busiest core's utilisation (the request it finds running, on average).
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


def plan(streams: Sequence[StreamDemand], placement: Mapping[str, ModelPlacement],
         profile: Mapping[str, Mapping[str, float]], headroom: float = 0.95) -> Plan:
    """Rates, utilisation and latency of `streams` on `placement`, granted as the scheduler grants them."""
    costs = {s.name: frame_cost(s, placement, profile) for s in streams}
    cores = sorted({core for cost in costs.values() for core in cost})
    free = dict.fromkeys(cores, headroom)
    rates = {s.name: 0.0 for s in streams}

    def grant(group: Sequence[StreamDemand], goal: Mapping[str, float]) -> None:
        wanted = {core: sum((goal[s.name] - rates[s.name]) * costs[s.name].get(core, 0.0) for s in group)
                  for core in cores}
        factor = min([1.0] + [free[core] / need for core, need in wanted.items() if need > 1e-12])
        factor = max(0.0, factor)
        for s in group:
            added = factor * (goal[s.name] - rates[s.name])
            rates[s.name] += added
            for core, seconds in costs[s.name].items():
                free[core] -= added * seconds

    grant(streams, {s.name: min(s.min_rate_hz, s.max_rate_hz) for s in streams})
    for _, group in itertools.groupby(sorted(streams, key=lambda s: -s.priority), key=lambda s: s.priority):
        grant(list(group), {s.name: s.max_rate_hz for s in streams})
    utilisation = {core: sum(rates[n] * costs[n].get(core, 0.0) for n in rates) for core in cores}
    busiest = max(utilisation.values(), default=0.0)
    latency = {s.name: frame_latency_ms(s, placement, profile) * (1.0 + min(busiest, 1.0)) for s in streams}
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
