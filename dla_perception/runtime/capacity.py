"""Capacity plan: will these camera streams fit these cores? A model of what the scheduler does, no ROS.

Each stream costs, per frame, its models' requests (the proximity pipeline: one features request and
ceil(queries / head batch) head requests); a model's requests spread over its cores (pinned: the first;
round_robin: evenly; least_loaded: in proportion to each core's speed). With measured per-model, per-core
latencies (a profile) that gives each core's busy time per second. Rates are granted as the scheduler grants
them: every stream's min_rate_hz first, then by priority (highest first) up to max_rate_hz, the streams of one
priority level sharing the cores' time equally (the oldest request first) until a core would go past
`headroom`; no stream faster than its frames in flight allow (a camera node has one: one frame per frame
latency, in camera periods when the camera's rate is known).

A frame's latency: its models in turn; a node keeps one request per core in flight (models/proximity.py),
so a model's k requests on n cores go in ceil(k / n) rounds, a round ends with its last request, and every
request queues anew on its core. A request of priority p waits, on core c (non-preemptive priorities, as
in Cobham's formula, but with at most one request per node and core queued: no M/D/1 build-up),

    W(c) = (R(c) + Q(c)) / (1 - U_>p(c))

for the rest of the request it finds running (R: the other streams' requests per ms x service^2 / 2), the
work queued ahead (Q, by Little's law each other stream's requests per ms x their wait x their service:
all of a higher priority's, half of its own level's, the older ones) and the higher-priority work that
arrives meanwhile (U_>p: its utilisation of c) and goes first. The lowest priority waits longest. A wait
is 0 with probability U(c) (the others' utilisation) and exponential beyond, so a frame's waits add up to an
Erlang mixture; with a camera of period T, a node that finishes a frame takes the next one to arrive, so
the rate is 1 / (T E[ceil(latency / T)]): frames of 1.2 periods cost two, and frames that take two periods
or three by turns give a rate in between.

The node's own work (`host_ms`: CPU time per frame outside inference) adds to a frame's chain, slowed by
the CPUs it shares: engines of `cpu`/`cpuN` cores run on the same CPUs as the nodes (a DLA or GPU does
not), so a frame's host work gets, on average, cpus / (1 + the mean number of other busy threads) of a
CPU (processor sharing; never more than one): the CPU cores' utilisation plus the other streams' host work.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dla_perception.runtime.cores import base_core


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
    host_ms: float = 0.0  # the node's own CPU time per frame outside inference (conversion, numpy), if known


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


def frame_rounds(stream: StreamDemand, placement: Mapping[str, ModelPlacement],
                 profile: Mapping[str, Mapping[str, float]]) -> list[tuple[str, tuple[str, ...], int]]:
    """One frame's chain, model by model: (model, the cores its requests use, rounds of one request per
    core; requests of one round run on all those cores at once)."""
    chain = []
    for model, count in stream.requests.items():
        used = tuple(shares(placement[model], profile[model]))
        chain.append((model, used, math.ceil(count / len(used))))
    return chain


def frame_latency_ms(stream: StreamDemand, placement: Mapping[str, ModelPlacement],
                     profile: Mapping[str, Mapping[str, float]]) -> float:
    """One frame's chain on idle cores: each model's rounds in turn, each as long as its slowest core."""
    return sum(rounds * max(profile[model][core] for core in used)
               for model, used, rounds in frame_rounds(stream, placement, profile))


def priority_waits(streams: Sequence[StreamDemand], rates: Mapping[str, float],
                   placement: Mapping[str, ModelPlacement], profile: Mapping[str, Mapping[str, float]],
                   ) -> dict[tuple[str, str], tuple[float, float]]:
    """{(stream, core): (mean wait ms of one of its requests there, probability the core is busy)}:

        W_s(c) = (R_s(c) + Q_s(c)) / (1 - U_>p(c))

    R_s: the rest of the request running (the other streams' u x service / 2); Q_s: the work queued ahead,
    by Little's law each other stream's requests per ms x their wait x their service there (all of a higher
    priority's, half of its own level's: those older); U_>p: higher-priority work arriving meanwhile."""
    load: dict[str, list[tuple[StreamDemand, float, float]]] = {}  # core -> (stream, per ms, service ms)
    for s in streams:
        for model, count in s.requests.items():
            latencies = profile[model]
            for core, share in shares(placement[model], latencies).items():
                load.setdefault(core, []).append((s, rates[s.name] * count * share / 1e3, latencies[core]))
    waits = {(s.name, core): 0.0 for s in streams for core in load}
    for _ in range(50):  # the waits of one level depend on each other: a fixed point
        for core, requests in load.items():
            for s in streams:
                residual = sum(per_ms * ms * ms / 2 for other, per_ms, ms in requests if other is not s)
                queued = sum(per_ms * waits[(other.name, core)] * ms * (1.0 if other.priority > s.priority
                                                                        else 0.5)
                             for other, per_ms, ms in requests
                             if other is not s and other.priority >= s.priority)
                higher = sum(per_ms * ms for other, per_ms, ms in requests if other.priority > s.priority)
                waits[(s.name, core)] = (residual + queued) / max(1.0 - min(higher, 1.0), 1e-3)
    busy = {(s.name, core): min(1.0, sum(per_ms * ms for other, per_ms, ms in requests if other is not s))
            for core, requests in load.items() for s in streams}
    return {key: (wait, busy[key]) for key, wait in waits.items()}


def round_wait(wait_ms: float, busy: float, parallel: int) -> tuple[float, float]:
    """(mean, probability > 0) of the longest of `parallel` requests' waits (a round ends with its last):
    each 0 with probability 1 - busy, else exponential of mean wait_ms / busy."""
    if parallel <= 1 or busy <= 0:
        return wait_ms, busy
    mean = wait_ms / busy * sum(math.comb(parallel, i) * (-1) ** (i + 1) * busy ** i / i
                                for i in range(1, parallel + 1))
    return mean, 1.0 - (1.0 - busy) ** parallel


def wait_beyond(x_ms: float, terms: int, mean_ms: float, busy: float) -> float:
    """P(the sum of `terms` waits > x): each 0 with probability 1 - busy, else exponential (mean
    mean_ms / busy); given j non-zero, their sum is Erlang(j)."""
    if x_ms < 0:
        return 1.0
    if terms == 0 or busy <= 0 or mean_ms <= 0:
        return 0.0
    rate = busy / mean_ms
    total = 0.0
    for j in range(1, terms + 1):
        erlang = math.exp(-rate * x_ms) * sum((rate * x_ms) ** i / math.factorial(i) for i in range(j))
        total += math.comb(terms, j) * busy ** j * (1 - busy) ** (terms - j) * erlang
    return total


def in_flight_bound(stream: StreamDemand, latency_ms: float, terms: int = 0, wait_ms: float = 0.0,
                    busy: float = 0.0) -> float:
    """The most frames/s `stream` runs with `frames_in_flight` frames of `latency_ms` each (the idle
    chain plus `terms` waits of `wait_ms` in all, each non-zero with probability `busy`). With a camera
    of `source_rate_hz`, a node that finishes a frame takes the next one to arrive: E[ceil(latency / T)]
    periods a frame (T: `frames_in_flight` camera periods)."""
    if not stream.frames_in_flight or latency_ms <= 0:
        return math.inf
    if stream.source_rate_hz > 0:
        period_ms = 1e3 * stream.frames_in_flight / stream.source_rate_hz
        chain = latency_ms - wait_ms
        mean_each = wait_ms / terms if terms else 0.0
        periods, k = 1.0, 1
        while k < 1000:  # E[ceil(L / T)] = sum over k >= 0 of P(L > k T)
            beyond = wait_beyond(k * period_ms - chain, terms, mean_each, busy)
            if beyond < 1e-6:
                break
            periods, k = periods + beyond, k + 1
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


def host_stretch(stream: StreamDemand, streams: Sequence[StreamDemand], rates: Mapping[str, float],
                 utilisation: Mapping[str, float], cpus: int) -> float:
    """How much longer than its CPU time a frame's host work takes: processor sharing of `cpus` with the
    CPU cores' engines and the other streams' host work (module docstring)."""
    others = sum(u for core, u in utilisation.items() if base_core(core) == "cpu")  # engines on the CPUs
    others += sum(rates[s.name] * s.host_ms / 1e3 for s in streams if s.name != stream.name)
    return max(1.0, (1.0 + others) / max(cpus, 1))


def plan(streams: Sequence[StreamDemand], placement: Mapping[str, ModelPlacement],
         profile: Mapping[str, Mapping[str, float]], headroom: float = 0.95,
         cpus: int | None = None) -> Plan:
    """Rates, utilisation and latency of `streams` on `placement`, granted as the scheduler grants them.

    A camera node has one frame in flight, so a stream also runs no faster than one frame per frame
    latency (`frames_in_flight`), that latency growing with the waits the rates give (module docstring).
    `cpus`: the host's CPUs the nodes' own work shares (default: this machine's)."""
    cpus = cpus or os.cpu_count() or 1
    costs = {s.name: frame_cost(s, placement, profile) for s in streams}
    cores = sorted({core for cost in costs.values() for core in cost})
    chains = {s.name: frame_rounds(s, placement, profile) for s in streams}
    idle = {s.name: frame_latency_ms(s, placement, profile) for s in streams}
    ceiling = dict.fromkeys(idle, math.inf)
    for step in range(60):  # the ceiling depends on the waits it leads to: a damped fixed point
        rates = _rates(streams, costs, cores, headroom, ceiling)
        utilisation = {core: sum(rates[n] * costs[n].get(core, 0.0) for n in rates) for core in cores}
        waits = priority_waits(streams, rates, placement, profile)
        latency, bound = {}, {}
        for s in streams:
            host = s.host_ms * host_stretch(s, streams, rates, utilisation, cpus)
            # each round waits for the longest of its requests' waits, on the worst of its cores
            worst = [round_wait(*max((waits[(s.name, core)] for core in used), key=lambda w: w[0]),
                                min(s.requests[model], len(used)))
                     for model, used, rounds in chains[s.name] for _ in range(rounds)]
            wait = sum(w for w, _ in worst)
            busy = max((b for _, b in worst), default=0.0)
            latency[s.name] = idle[s.name] + host + wait
            bound[s.name] = in_flight_bound(s, latency[s.name], len(worst), wait, busy)
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
