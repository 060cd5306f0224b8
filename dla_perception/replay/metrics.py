"""Replay metrics: latency percentiles and proximity accuracy against the bag's ground-truth disparity.

Accuracy convention (design.md): a ground-truth pixel is *near* a plane when its disparity is larger than
the plane's disparity d = fx * B / Z; pixels with unknown ground truth (0 or NaN) are ignored. The graph's
answer for a plane is read from `proximity/disparity` (per pixel the largest plane disparity the pixel is
nearer than, 0 beyond all): near when that level reaches the plane's disparity. IoU, precision and recall
per plane are computed over all pixels of all frames together; per-frame IoU is kept for the report.
Ratios with an empty denominator are None (JSON null), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


def latency_summary(samples_ms: Iterable[float]) -> dict[str, float | None]:
    """{p50, p90, p99, max, mean} of latency samples in ms; None each when there are none."""
    values = np.asarray([s for s in samples_ms if s is not None and math.isfinite(s)], dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "max": round(float(values.max()), 3),
        "mean": round(float(values.mean()), 3),
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


@dataclass
class ProximityScore:
    """Near-mask confusion counts per plane over a replay, and IoU per plane per frame."""

    thresholds_m: list[float]
    true_positive: list[int] = field(default_factory=list)
    false_positive: list[int] = field(default_factory=list)
    false_negative: list[int] = field(default_factory=list)
    frame_iou: list[tuple[int, list[float | None]]] = field(default_factory=list)  # (frame index, per plane)
    last_counts: list[tuple[int, int, int]] = field(default_factory=list)  # the last frame's (tp, fp, fn)

    def __post_init__(self) -> None:
        count = len(self.thresholds_m)
        self.true_positive = self.true_positive or [0] * count
        self.false_positive = self.false_positive or [0] * count
        self.false_negative = self.false_negative or [0] * count

    def add(
        self, frame_index: int, level_image: np.ndarray, ground_truth: np.ndarray,
        disparities_px: Sequence[float],
    ) -> list[float | None]:
        """Scores one frame; returns its IoU per plane. Shapes must match (nodes keep input resolution)."""
        if level_image.shape != ground_truth.shape:
            raise ValueError(
                f"proximity/disparity is {level_image.shape[1]}x{level_image.shape[0]} but the ground truth "
                f"is {ground_truth.shape[1]}x{ground_truth.shape[0]}"
            )
        known = np.isfinite(ground_truth) & (ground_truth > 0)
        ious: list[float | None] = []
        self.last_counts = []
        for k, plane in enumerate(disparities_px):
            truth = known & (ground_truth > plane)
            # The level image holds plane disparities exactly; a relative tolerance absorbs float32 rounding.
            predicted = known & (level_image >= plane * (1.0 - 1e-5))
            tp = int(np.count_nonzero(truth & predicted))
            fp = int(np.count_nonzero(~truth & predicted))
            fn = int(np.count_nonzero(truth & ~predicted))
            self.true_positive[k] += tp
            self.false_positive[k] += fp
            self.false_negative[k] += fn
            self.last_counts.append((tp, fp, fn))
            ious.append(_ratio(tp, tp + fp + fn))
        self.frame_iou.append((frame_index, ious))
        return ious

    def as_dict(self) -> dict:
        planes = range(len(self.thresholds_m))
        tp, fp, fn = self.true_positive, self.false_positive, self.false_negative
        return {
            "thresholds_m": [float(t) for t in self.thresholds_m],
            "iou": [_ratio(tp[k], tp[k] + fp[k] + fn[k]) for k in planes],
            "precision": [_ratio(tp[k], tp[k] + fp[k]) for k in planes],
            "recall": [_ratio(tp[k], tp[k] + fn[k]) for k in planes],
            "frames": len(self.frame_iou),
            # Pixel counts behind the ratios (pooling across bags sums these): a plane with no near pixel
            # in truth or prediction has IoU null, not 0, and reads as empty rather than broken.
            "true_positive": list(tp),
            "false_positive": list(fp),
            "false_negative": list(fn),
            "near_px_truth": [tp[k] + fn[k] for k in planes],
            "near_px_predicted": [tp[k] + fp[k] for k in planes],
        }


def ratios_from_counts(tp: Sequence[int], fp: Sequence[int], fn: Sequence[int]) -> dict[str, list]:
    """IoU, precision and recall per plane from (pooled) pixel counts."""
    planes = range(len(tp))
    return {
        "iou": [_ratio(tp[k], tp[k] + fp[k] + fn[k]) for k in planes],
        "precision": [_ratio(tp[k], tp[k] + fp[k]) for k in planes],
        "recall": [_ratio(tp[k], tp[k] + fn[k]) for k in planes],
    }


def core_metrics(statistics: dict) -> dict[str, dict]:
    """design.md's per-core block from EngineManager.statistics()["cores"]."""
    cores = {}
    for core, stats in sorted(statistics.get("cores", {}).items()):
        cores[core] = {
            "inferences": int(stats.get("inferences", 0)),
            "latency_ms": {
                "p50": stats.get("latency_p50_ms"),
                "p90": stats.get("latency_p90_ms"),
                "p99": stats.get("latency_p99_ms"),
                "max": stats.get("latency_max_ms"),
            },
            "fps": stats.get("fps"),
            "errors": int(stats.get("errors", 0)),
            "drops": int(stats.get("drops", 0)),
            "engines": list(stats.get("engines", [])),
        }
    return cores



def _quantile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def add_reference(metrics: dict, samples: dict[str, dict[str, list[float]]]) -> None:
    """The machine reference's figures (`reference`) and each cpu-core engine's `cpu_over_reference`.

    `samples` as RunLog.samples() (engine_runs.json; pooled across bags for a fleet). Lower quartiles, of
    the engine's CPU time and of every reference run of the replay: load only ever adds time, so the
    lower quartile is the least disturbed level of each, and unlike the minimum it rests on a quarter of
    the runs, not one lucky one. The reference is pooled over all engines' runs (the machine's state is
    the same for all, and more runs make its quartile steadier). Nothing is added without reference runs
    (no cpu-core engine ran, or results from before the reference existed).
    """
    from dla_perception.replay.reference import reference_description

    reference_cpu = [ms for figures in samples.values() for ms in figures.get("reference_cpu_ms", [])]
    reference_wall = [ms for figures in samples.values() for ms in figures.get("reference_ms", [])]
    if not reference_cpu or not reference_wall:
        return
    reference_p25 = _quantile(reference_cpu, 25)
    metrics["reference"] = {
        **reference_description(),
        "runs": len(reference_cpu),
        "cpu_ms": {"p25": round(reference_p25, 3), "p50": round(_quantile(reference_cpu, 50), 3)},
        "latency_ms": {"p25": round(_quantile(reference_wall, 25), 3),
                       "p50": round(_quantile(reference_wall, 50), 3)},
    }
    for name, figures in samples.items():
        engine = (metrics.get("engines") or {}).get(name)
        if engine is None or not figures.get("reference_cpu_ms") or not figures.get("cpu_ms"):
            continue
        engine_p25 = _quantile(figures["cpu_ms"], 25)
        engine.setdefault("cpu_ms", {})["p25"] = round(engine_p25, 3)
        engine["cpu_over_reference"] = {"p25": round(engine_p25 / reference_p25, 4) if reference_p25 > 0
                                        else None}
