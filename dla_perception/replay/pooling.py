"""Many bags' metrics as one: sums of counts, percentiles of the pooled samples, IoU of pooled pixels.

Ratios are never averaged: a bag of 10 frames and one of 1000 weigh by their frames and pixels. IoU,
precision and recall per plane come from the summed pixel counts of every bag that ran that plane;
latency percentiles from every engine run (engine_runs.json) and every frame's end-to-end time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dla_perception.replay.metrics import add_reference, latency_summary, ratios_from_counts

PERCENTILES = ("p50", "p90", "p99", "max")


@dataclass
class BagOutcome:
    """One bag of a many-bag run: its metrics (None when it failed before any) and its samples."""

    name: str
    path: str
    status: str  # "replayed", "resumed", "failed"
    metrics: dict | None = None
    error: str | None = None
    engine_runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # model@core -> figure -> ms
    end_to_end_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def entry(self) -> dict:
        """The bag's entry in the pooled metrics.json: its single-bag fields, path, name and status."""
        entry = dict(self.metrics or {"frames": 0, "frames_with_output": 0, "cores": {}, "complete": False})
        entry.update({"name": self.name, "path": self.path, "status": self.status})
        if self.error:
            entry["error"] = self.error
        return entry


def pooled_metrics(outcomes: Sequence[BagOutcome], wall_s: float) -> dict:
    done = [o for o in outcomes if o.metrics is not None]
    metrics: dict = {
        "frames": sum(o.metrics["frames"] for o in done),
        "frames_with_output": sum(o.metrics["frames_with_output"] for o in done),
        "cores": _cores(done, wall_s),
        "engines": _engines(done),
        "end_to_end_ms": latency_summary(ms for o in done for ms in o.end_to_end_ms),
        "missing_outputs": _summed(o.metrics.get("missing_outputs") or {} for o in done),
    }
    add_reference(metrics, _pooled_runs(done))  # the machine reference over every bag's runs
    proximity = _proximity(done)
    if proximity:
        metrics["proximity"] = proximity
    detections = [o.metrics["detection"] for o in done if o.metrics.get("detection")]
    if detections:
        metrics["detection"] = {"frames": sum(d["frames"] for d in detections),
                                "detections": sum(d["detections"] for d in detections)}
    failed = [o for o in outcomes if o.status == "failed" or o.error]
    metrics.update({
        "bags_total": len(outcomes),
        "bags_failed": sum(1 for o in outcomes if o.status == "failed"),
        "bags_resumed": sum(1 for o in outcomes if o.status == "resumed"),
        "bags_without_ground_truth": [o.name for o in done if not o.metrics.get("proximity")],
        "complete": not failed,
        "error": "; ".join(f"{o.name}: {o.error}" for o in failed) or None,
        "wall_s": round(wall_s, 3),
        "bags": [o.entry() for o in outcomes],
    })
    return metrics


def _engines(done: Sequence[BagOutcome]) -> dict:
    engines: dict = {}
    for name in sorted({e for o in done for e in (o.metrics.get("engines") or {})}):
        runs = [o.engine_runs.get(name, {}) for o in done]
        latency = latency_summary(ms for r in runs for ms in r.get("latency_ms", []))
        cpu = latency_summary(ms for r in runs for ms in r.get("cpu_ms", []))
        per_bag = [(o.metrics.get("engines") or {}).get(name) or {} for o in done]
        engines[name] = {
            "inferences": sum(e.get("inferences", 0) for e in per_bag),
            "latency_ms": {k: latency[k] for k in PERCENTILES},
            "cpu_ms": {k: cpu[k] for k in ("p50", "p90")},
            "errors": sum(e.get("errors", 0) for e in per_bag),
        }
    return engines


def _pooled_runs(done: Sequence[BagOutcome]) -> dict[str, dict[str, list[float]]]:
    pooled: dict[str, dict[str, list[float]]] = {}
    for outcome in done:
        for name, figures in outcome.engine_runs.items():
            for figure, samples in figures.items():
                pooled.setdefault(name, {}).setdefault(figure, []).extend(samples)
    return pooled


def _cores(done: Sequence[BagOutcome], wall_s: float) -> dict:
    cores: dict = {}
    for core in sorted({c for o in done for c in o.metrics.get("cores") or {}}):
        per_bag = [(o.metrics.get("cores") or {}).get(core) or {} for o in done]
        samples = [ms for o in done for name, runs in o.engine_runs.items() if name.endswith(f"@{core}")
                   for ms in runs.get("latency_ms", [])]
        latency = latency_summary(samples)
        inferences = sum(c.get("inferences", 0) for c in per_bag)
        cores[core] = {
            "inferences": inferences,
            "latency_ms": {k: latency[k] for k in PERCENTILES},
            "fps": round(inferences / wall_s, 3) if wall_s > 0 else None,  # of the whole run, all workers
            "errors": sum(c.get("errors", 0) for c in per_bag),
            "drops": sum(c.get("drops", 0) for c in per_bag),
            "engines": sorted({e for c in per_bag for e in c.get("engines", [])}),
        }
    return cores


def _proximity(done: Sequence[BagOutcome]) -> dict | None:
    scored = [o.metrics["proximity"] for o in done if o.metrics.get("proximity")]
    if not scored:
        return None
    thresholds = sorted({round(t, 6) for p in scored for t in p["thresholds_m"]})
    tp, fp, fn = [0] * len(thresholds), [0] * len(thresholds), [0] * len(thresholds)
    for proximity in scored:
        for k, threshold in enumerate(proximity["thresholds_m"]):
            j = thresholds.index(round(threshold, 6))
            tp[j] += proximity["true_positive"][k]
            fp[j] += proximity["false_positive"][k]
            fn[j] += proximity["false_negative"][k]
    pooled = {"thresholds_m": thresholds, **ratios_from_counts(tp, fp, fn),
              "frames": sum(p.get("frames", 0) for p in scored),
              "true_positive": tp, "false_positive": fp, "false_negative": fn,
              "near_px_truth": [a + c for a, c in zip(tp, fn, strict=True)],
              "near_px_predicted": [a + b for a, b in zip(tp, fp, strict=True)]}
    alert = {p.get("alert_distance_m") for p in scored}
    pooled["alert_distance_m"] = alert.pop() if len(alert) == 1 else None
    return pooled


def _summed(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in dicts:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))
