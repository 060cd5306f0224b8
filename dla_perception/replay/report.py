"""report.html with PNG plots of a replay: where the time went, how accuracy moved, what the graph saw.

Plots use matplotlib's Agg backend (no display needed); overlays are drawn with OpenCV. Everything is
written next to metrics.json so the folder can be archived by CI as one artefact.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PLOTS = ("latency_per_core.png", "end_to_end.png", "iou_per_frame.png")


@dataclass
class FrameRecord:
    """What the replay saw for one input frame."""

    index: int
    stamp_ns: int
    end_to_end_ms: float | None = None  # publish of the inputs -> last expected output; None if missing
    missing: list[str] = field(default_factory=list)  # expected output topics that never came
    iou: list[float | None] | None = None  # per proximity plane, when the bag has ground truth
    nearest_m: float | None = None
    detections: int | None = None


@dataclass
class Overlay:
    """One input image with the graph's answers, for a picture in the report."""

    index: int
    image_rgb: np.ndarray
    alert_mask: np.ndarray | None = None  # HxW uint8, 255 = nearer than the alert distance
    truth_mask: np.ndarray | None = None  # HxW bool, ground truth nearer than the alert distance
    detections: list[tuple[str, float, tuple[float, float, float, float]]] = field(default_factory=list)


def overlay_image(overlay: Overlay) -> np.ndarray:
    """RGB picture: alert mask tinted red, ground-truth outline green, detection boxes yellow."""
    import cv2

    picture = overlay.image_rgb.copy()
    if overlay.alert_mask is not None and overlay.alert_mask.shape == picture.shape[:2]:
        near = overlay.alert_mask > 0
        picture[near] = (0.5 * picture[near] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
    if overlay.truth_mask is not None and overlay.truth_mask.shape == picture.shape[:2]:
        contours, _ = cv2.findContours(overlay.truth_mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, (0, 255, 0), 1)
    for label, score, (x1, y1, x2, y2) in overlay.detections:
        cv2.rectangle(picture, (int(x1), int(y1)), (int(x2), int(y2)), (255, 220, 0), 2)
        cv2.putText(picture, f"{label} {score:.2f}", (int(x1), max(10, int(y1) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 220, 0), 1, cv2.LINE_AA)
    return picture


def write_report(
    out_dir: Path,
    metrics: dict,
    frames: Sequence[FrameRecord],
    latencies_by_core: dict[str, dict[str, list[float]]],
    overlays: Sequence[Overlay] = (),
    regressions: Sequence[object] | None = None,
) -> Path:
    """Writes the PNGs and report.html into out_dir; returns the report's path.

    latencies_by_core: core -> model -> engine run times (ms) of every successful run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*PLOTS, *(p.name for p in out_dir.glob("overlay_*.png"))):  # a previous run's pictures
        (out_dir / name).unlink(missing_ok=True)
    figures: list[tuple[str, str]] = []  # (file name, caption)

    def save(fig, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        figures.append((name, caption))

    if latencies_by_core:
        fig, axes = plt.subplots(1, len(latencies_by_core), figsize=(4.5 * len(latencies_by_core), 3.2),
                                 squeeze=False)
        for axis, (core, by_model) in zip(axes[0], latencies_by_core.items(), strict=True):
            models = sorted(by_model)
            total = sum(len(by_model[m]) for m in models)
            axis.hist([by_model[m] for m in models], bins=min(40, max(5, total // 3)), stacked=True,
                      label=models)
            axis.set_title(f"{core}: {total} inferences")
            axis.set_xlabel("engine latency (ms)")
            axis.set_ylabel("runs")
            axis.legend(fontsize="small")
        save(fig, "latency_per_core.png",
             "Engine latency per core, stacked by model (every inference of the replay).")

    timed = [(f.index, f.end_to_end_ms) for f in frames if f.end_to_end_ms is not None]
    if timed:
        fig, axis = plt.subplots(figsize=(8, 3))
        axis.plot([i for i, _ in timed], [ms for _, ms in timed], marker=".", linewidth=1)
        missing = [f.index for f in frames if f.missing]
        if missing:
            axis.scatter(missing, [0] * len(missing), color="red", marker="x", label="missing output")
            axis.legend()
        axis.set_xlabel("frame")
        axis.set_ylabel("end-to-end latency (ms)")
        save(fig, "end_to_end.png", "Inputs published -> last output received, per frame.")

    scored = [f for f in frames if f.iou]
    thresholds = (metrics.get("proximity") or {}).get("thresholds_m", [])
    if scored and thresholds:
        fig, axis = plt.subplots(figsize=(8, 3))
        for k, threshold in enumerate(thresholds):
            points = [(f.index, f.iou[k]) for f in scored if k < len(f.iou) and f.iou[k] is not None]
            axis.plot([i for i, _ in points], [v for _, v in points], marker=".", linewidth=1,
                      label=f"{threshold:g} m")
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("frame")
        axis.set_ylabel("near-mask IoU")
        axis.legend(loc="lower right")
        save(fig, "iou_per_frame.png", "Near-mask IoU against the bag's ground truth, per plane.")

    import cv2

    for overlay in overlays:
        name = f"overlay_{overlay.index:05d}.png"
        cv2.imwrite(str(out_dir / name), cv2.cvtColor(overlay_image(overlay), cv2.COLOR_RGB2BGR))
        figures.append((name, f"Frame {overlay.index}: alert mask (red), ground truth near the alert "
                              "distance (green outline), detections (yellow)."))

    report = out_dir / "report.html"
    report.write_text(_html(metrics, figures, regressions))
    return report


def _html(metrics: dict, figures: list[tuple[str, str]], regressions: Sequence[object] | None) -> str:
    from dla_perception.replay.summary import summary_text

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dla_perception replay</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{max-width:100%;"
        "border:1px solid #ccc}figure{margin:1em 0}pre{background:#f5f5f5;padding:1em}</style></head><body>",
        f"<h1>Replay of {html.escape(str((metrics.get('bag') or {}).get('path', 'a bag')))}</h1>",
        f"<pre>{html.escape(summary_text(metrics, regressions))}</pre>",
    ]
    for name, caption in figures:
        parts.append(f"<figure><img src='{name}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("<h2>metrics.json</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(metrics, indent=2))}</pre></body></html>")
    return "\n".join(parts)
