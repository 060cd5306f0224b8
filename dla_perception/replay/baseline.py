"""Comparing a replay's metrics.json with a baseline one: what got worse beyond tolerance.

Replays are lock-step, so accuracy is deterministic for a given model and bag: any drop beyond a small
tolerance is real. Latency is not (shared CI machines): a p99 counts as a regression only when it rises
both by a relative and by an absolute margin, so a 1 ms engine going to 1.5 ms does not fail a build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ACCURACY_TOLERANCE = 0.02  # absolute drop allowed in IoU, precision, recall, output coverage
DEFAULT_LATENCY_TOLERANCE = 0.25  # relative rise allowed in a p99 latency...
DEFAULT_LATENCY_SLACK_MS = 5.0  # ...and absolute rise, in ms; both must be exceeded


@dataclass(frozen=True)
class Tolerances:
    accuracy: float = DEFAULT_ACCURACY_TOLERANCE
    latency: float = DEFAULT_LATENCY_TOLERANCE
    latency_slack_ms: float = DEFAULT_LATENCY_SLACK_MS


@dataclass(frozen=True)
class Regression:
    metric: str  # e.g. "proximity.iou@2.0m", "cores.cpu.latency_ms.p99"
    baseline: float
    current: float | None
    allowed: float  # the worst value still accepted

    def __str__(self) -> str:
        current = "missing" if self.current is None else f"{self.current:.4g}"
        return f"{self.metric}: {current} (baseline {self.baseline:.4g}, allowed {self.allowed:.4g})"


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
    """Every metric of `current` that is worse than `baseline` beyond the tolerances."""
    regressions: list[Regression] = []
    regressions += _coverage(current, baseline, tolerances)
    regressions += _accuracy(current, baseline, tolerances)
    regressions += _latency(current, baseline, tolerances)
    return regressions


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


def _latency(current: dict, baseline: dict, tolerances: Tolerances) -> list[Regression]:
    pairs = [("end_to_end_ms.p99", (baseline.get("end_to_end_ms") or {}).get("p99"),
              (current.get("end_to_end_ms") or {}).get("p99"))]
    for core, stats in sorted((baseline.get("cores") or {}).items()):
        if not stats.get("inferences"):
            continue
        now = (current.get("cores") or {}).get(core) or {}
        pairs.append((f"cores.{core}.latency_ms.p99", (stats.get("latency_ms") or {}).get("p99"),
                      (now.get("latency_ms") or {}).get("p99") if now.get("inferences") else None))
    regressions = []
    for name, before, after in pairs:
        if before is None:
            continue
        allowed = max(before * (1.0 + tolerances.latency), before + tolerances.latency_slack_ms)
        if after is None or after > allowed:
            regressions.append(Regression(name, before, after, allowed))
    return regressions


def _item(values: list | None, index: int) -> float | None:
    if not values or index >= len(values):
        return None
    return values[index]
