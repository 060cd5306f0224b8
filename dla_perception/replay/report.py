"""report.html with PNG plots of a replay: where the time went, how accuracy moved, what the graph saw.

Plots use matplotlib's Agg backend (no display needed); overlays are drawn with OpenCV. Everything is
written next to metrics.json so the folder can be archived by CI as one artefact.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from dla_perception.replay.frame_report import write_frame_figure
from dla_perception.replay.records import FrameRecord, Overlay

PLOTS = ("latency_per_core.png", "end_to_end.png", "iou_per_frame.png")


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
    previous = [*out_dir.glob("overlay_*.png"), *out_dir.glob("frame_*.png")]
    for name in (*PLOTS, *(p.name for p in previous)):  # a previous run's pictures
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
            axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0, -0.25), ncol=2,
                        frameon=False)  # below the axes, never over the bars
        save(fig, "latency_per_core.png",
             "Engine latency per core, stacked by model (every inference of the replay).")

    timed = [(f.index, f.end_to_end_ms) for f in frames if f.end_to_end_ms is not None]
    if timed:
        fig, axis = plt.subplots(figsize=(8, 3))
        axis.plot([i for i, _ in timed], [ms for _, ms in timed], marker=".", linewidth=1)
        missing = [f.index for f in frames if f.missing]
        if missing:
            axis.scatter(missing, [0] * len(missing), color="red", marker="x", label="missing output")
            axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        axis.set_xlabel("frame")
        axis.set_ylabel("end-to-end latency (ms)")
        save(fig, "end_to_end.png", "Inputs published -> last output received, per frame.")

    scored = [f for f in frames if f.iou]
    thresholds = (metrics.get("proximity") or {}).get("thresholds_m", [])
    if scored and thresholds:
        fig, axis = plt.subplots(figsize=(8, 3))
        for k, threshold in enumerate(thresholds):
            # A frame without near pixels for a plane has no IoU there: a gap in its line, not a bridge.
            values = [f.iou[k] if k < len(f.iou) and f.iou[k] is not None else float("nan") for f in scored]
            axis.plot([f.index for f in scored], values, marker=".", linewidth=1, label=f"{threshold:g} m")
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("frame")
        axis.set_ylabel("near-mask IoU")
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="plane")
        save(fig, "iou_per_frame.png", "Near-mask IoU against the bag's ground truth, per plane.")

    for overlay in overlays:
        name = f"frame_{overlay.index:05d}.png"
        write_frame_figure(overlay, out_dir / name)
        figures.append((name, (overlay.title or f"Frame {overlay.index}") + ". Input with detections "
                        "(yellow); ground truth and the graph's levels in the same plane colours (legend "
                        "with each plane's near-pixel counts); alert mask (red) with the ground truth "
                        "nearer than the alert distance outlined (green)."))

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
