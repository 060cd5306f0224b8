"""Comparing a replay's metrics.json with a baseline one: what got worse beyond tolerance.

Replays are lock-step, so accuracy and output coverage are deterministic for a given code, model and bag:
any drop beyond a small tolerance is real. Latency is not (shared CI machines): a tail over a hundred
frames is one or two stalled frames, and an unchanged version failed its own baseline three times out of
three on `end_to_end_ms.p99`. So latency gates, by default, on the median run time of each engine (model
on core), which a stall or two does not move, and only when it rises both by a relative and by an
absolute margin. On the `cpu` core what is gated is the engine's CPU time over the machine reference's
(`cpu_over_reference.p25`, reference.py): a loaded or slower machine stretches a CPU engine's wall time
(up to 2.8x measured on a busy two-core machine) and its CPU time too (10.5 -> 16.8 ms median of an
unchanged run), and the reference, timed on the same thread right after each run, alike; a slower model
moves the ratio alone. Its absolute margin is the ms margin at the baseline's reference speed. A
baseline without the reference (an older metrics.json) gates the engine's CPU-time median as before,
with a note saying so. On DLA and GPU cores the wall-time median is gated: device time, which CPU load
barely moves. The end-to-end tail and per-core p99s are always compared and shown, and gated only with
`gate_latency="tail"`. docs/replay.md gives the measured run-to-run spread behind the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dla_perception.runtime.cores import base_core

DEFAULT_ACCURACY_TOLERANCE = 0.01  # absolute drop allowed in IoU, precision, recall, output coverage
DEFAULT_LATENCY_TOLERANCE = 0.5  # relative rise allowed in a gated latency (+50 %)...
DEFAULT_LATENCY_SLACK_MS = 2.0  # ...and absolute rise, in ms; both must be exceeded
GATE_LATENCY_CHOICES = ("median", "tail", "off")


@dataclass(frozen=True)
class Tolerances:
    accuracy: float = DEFAULT_ACCURACY_TOLERANCE
    latency: float = DEFAULT_LATENCY_TOLERANCE
    latency_slack_ms: float = DEFAULT_LATENCY_SLACK_MS
    gate_latency: str = "median"  # median: engine medians; tail: also end-to-end and core p99; off


@dataclass(frozen=True)
class Regression:
    metric: str  # e.g. "proximity.iou@2.0m", "engines.proximity_head@cpu.latency_ms.p50"
    baseline: float
    current: float | None
    allowed: float  # the worst value still accepted

    def __str__(self) -> str:
        current = "missing" if self.current is None else f"{self.current:.4g}"
        return f"{self.metric}: {current} (baseline {self.baseline:.4g}, allowed {self.allowed:.4g})"


@dataclass(frozen=True)
class LatencyComparison:
    """One latency figure against its baseline, gated or only shown."""

    metric: str
    baseline: float
    current: float | None
    allowed: float
    gated: bool
    note: str = ""  # why the figure is gated as it is, when that is not the default (old baseline)

    @property
    def worse(self) -> bool:
        return self.current is None or self.current > self.allowed


def load_metrics(path: str | Path) -> dict:
    """A metrics.json file; ValueError with the reason when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"baseline {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"baseline {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or "frames" not in data or "cores" not in data:
        raise ValueError(f"baseline {path} is not a replay metrics.json (no 'frames'/'cores')")
    return data


def compare(current: dict, baseline: dict, tolerances: Tolerances = Tolerances()) -> list[Regression]:
    """Every gated metric of `current` that is worse than `baseline` beyond the tolerances."""
    regressions: list[Regression] = []
    regressions += _coverage(current, baseline, tolerances)
    regressions += _accuracy(current, baseline, tolerances)
    regressions += [Regression(c.metric, c.baseline, c.current, c.allowed)
                    for c in latency_comparisons(current, baseline, tolerances) if c.gated and c.worse]
    return regressions


def compare_fleet(current: dict, baseline: dict, tolerances: Tolerances = Tolerances()) -> list[Regression]:
    """A many-bag run: pooled metrics as `compare`, plus accuracy and coverage of each bag in both runs.

    Bags are matched by name. Latency gates on the pooled engine medians only (per bag they rest on
    fewer runs).
    """
    regressions = compare(current, baseline, tolerances)
    old_bags = {entry.get("name"): entry for entry in baseline.get("bags") or []}
    for entry in current.get("bags") or []:
        old = old_bags.get(entry.get("name"))
        if old is None or old.get("error") or not old.get("frames"):
            continue
        prefix = f"bags[{entry.get('name')}]."
        if entry.get("error") and not entry.get("frames"):
            regressions.append(Regression(prefix + "frames", old["frames"], None, old["frames"]))
            continue
        for regression in _coverage(entry, old, tolerances) + _accuracy(entry, old, tolerances):
            regressions.append(Regression(prefix + regression.metric, regression.baseline,
                                          regression.current, regression.allowed))
    return regressions


def latency_comparisons(current: dict, baseline: dict, tolerances: Tolerances = Tolerances()
                        ) -> list[LatencyComparison]:
    """Per engine its gated figure (cpu: CPU time over the reference; else the wall median; gated unless
    gate_latency is off) and the others shown, then the tails (gated only with `tail`)."""
    median_gated = tolerances.gate_latency in ("median", "tail")
    tail_gated = tolerances.gate_latency == "tail"
    comparisons: list[LatencyComparison] = []

    def add(name: str, before: float | None, after: float | None, gated: bool, slack: float | None = None,
            note: str = "") -> None:
        if before is None:
            return
        slack = tolerances.latency_slack_ms if slack is None else slack
        allowed = max(before * (1.0 + tolerances.latency), before + slack)
        comparisons.append(LatencyComparison(name, before, after, allowed, gated, note))

    reference_ms = ((baseline.get("reference") or {}).get("cpu_ms") or {}).get("p25")
    for engine, stats in sorted((baseline.get("engines") or {}).items()):
        if not stats.get("inferences"):
            continue
        now = (current.get("engines") or {}).get(engine) or {}
        ran = bool(now.get("inferences"))
        prefix = f"engines.{engine}"

        on_cpu = base_core(engine.rpartition("@")[2]) == "cpu" and figure(stats, "cpu_ms") is not None
        if not on_cpu:
            add(f"{prefix}.latency_ms.p50", figure(stats, "latency_ms"),
                figure(now, "latency_ms") if ran else None, median_gated)
            continue
        ratio = figure(stats, "cpu_over_reference", "p25")
        current_ratio = figure(now, "cpu_over_reference", "p25")
        normalised = ratio is not None and bool(reference_ms) and (current_ratio is not None or not ran)
        note = ""
        if not normalised:
            note = ("the baseline has no machine reference (made before it existed): gated on raw CPU time, "
                    "which machine load moves; regenerate the baseline" if ratio is None or not reference_ms
                    else "this run has no machine reference: gated on raw CPU time, which machine load moves")
        else:  # the absolute margin: the ms margin at the baseline machine's reference speed
            add(f"{prefix}.cpu_over_reference.p25", ratio, current_ratio if ran else None, median_gated,
                tolerances.latency_slack_ms / reference_ms)
        add(f"{prefix}.cpu_ms.p50", figure(stats, "cpu_ms"), figure(now, "cpu_ms") if ran else None,
            median_gated and not normalised, note=note)
        add(f"{prefix}.latency_ms.p50", figure(stats, "latency_ms"),
            figure(now, "latency_ms") if ran else None, False)
    add("end_to_end_ms.p99", (baseline.get("end_to_end_ms") or {}).get("p99"),
        (current.get("end_to_end_ms") or {}).get("p99"), tail_gated)
    for core, stats in sorted((baseline.get("cores") or {}).items()):
        if not stats.get("inferences"):
            continue
        now = (current.get("cores") or {}).get(core) or {}
        add(f"cores.{core}.latency_ms.p99", (stats.get("latency_ms") or {}).get("p99"),
            (now.get("latency_ms") or {}).get("p99") if now.get("inferences") else None, tail_gated)
    return comparisons


def figure(metrics: dict, name: str, statistic: str = "p50") -> float | None:
    """metrics[name][statistic], None where absent."""
    return (metrics.get(name) or {}).get(statistic)


def _coverage(current: dict, baseline: dict, tolerances: Tolerances) -> list[Regression]:
    def fraction(metrics: dict) -> float | None:
        frames = metrics.get("frames") or 0
        return metrics.get("frames_with_output", 0) / frames if frames else None

    old, new = fraction(baseline), fraction(current)
    if old is None:
        return []
    allowed = old - tolerances.accuracy
    if new is None or new < allowed:
        return [Regression("frames_with_output/frames", old, new, allowed)]
    return []


def _accuracy(current: dict, baseline: dict, tolerances: Tolerances) -> list[Regression]:
    old, new = baseline.get("proximity"), current.get("proximity") or {}
    if not old:
        return []
    regressions = []
    new_by_threshold = {
        round(t, 6): k for k, t in enumerate(new.get("thresholds_m", []))
    }
    for k, threshold in enumerate(old.get("thresholds_m", [])):
        j = new_by_threshold.get(round(threshold, 6))
        for name in ("iou", "precision", "recall"):
            before = _item(old.get(name), k)
            if before is None:
                continue
            after = None if j is None else _item(new.get(name), j)
            allowed = before - tolerances.accuracy
            if after is None or after < allowed:
                regressions.append(Regression(f"proximity.{name}@{threshold:g}m", before, after, allowed))
    return regressions


def _item(values: list | None, index: int) -> float | None:
    if not values or index >= len(values):
        return None
    return values[index]
