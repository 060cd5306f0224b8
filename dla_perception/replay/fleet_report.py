"""OUT/report.html of a many-bag run: the pooled summary, one row per bag, the gate's verdict."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from dla_perception.replay.baseline import Tolerances, latency_comparisons
from dla_perception.replay.summary import core_table, latency_table, reference_lines


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fleet_summary_text(metrics: dict, baseline: dict | None, tolerances: Tolerances,
                       regressions: Sequence[object] | None) -> str:
    lines = [f"bags: {metrics['bags_total']} ({metrics['bags_failed']} failed, "
             f"{metrics['bags_resumed']} taken from earlier results)",
             f"frames: {metrics['frames']} replayed, {metrics['frames_with_output']} with every output"]
    for entry in metrics["bags"]:
        if entry.get("status") == "failed":
            lines.append(f"  FAILED {entry['name']}: {entry.get('error')}")
    if metrics.get("bags_without_ground_truth"):
        lines.append("no ground truth (accuracy not measured): "
                     + ", ".join(metrics["bags_without_ground_truth"]))
    lines += ["", core_table(metrics), *reference_lines(metrics)]
    e2e = metrics.get("end_to_end_ms") or {}
    lines.append(f"\nend-to-end ms (every frame of every bag): p50 {_fmt(e2e.get('p50'), 1)}  "
                 f"p99 {_fmt(e2e.get('p99'), 1)}  max {_fmt(e2e.get('max'), 1)}")
    proximity = metrics.get("proximity")
    if proximity:
        lines.append("\npooled proximity (IoU of summed pixel counts)")
        lines.append(f"{'plane':<10}" + "".join(f"{f'{t:g} m':>9}" for t in proximity["thresholds_m"]))
        for name in ("iou", "precision", "recall"):
            lines.append(f"{name:<10}" + "".join(f"{_fmt(v):>9}" for v in proximity[name]))
    if baseline is not None:
        lines += ["", latency_table(latency_comparisons(metrics, baseline, tolerances))]
    if regressions is not None:
        lines.append("")
        lines.append(f"baseline: {len(regressions)} regression(s)" if regressions
                     else "baseline: no regression")
        lines.extend(f"  REGRESSION {r}" for r in regressions)
    return "\n".join(lines)


def _bag_rows(metrics: dict) -> list[str]:
    thresholds = (metrics.get("proximity") or {}).get("thresholds_m", [])
    head = ["bag", "status", "frames", "with output", *[f"IoU {t:g} m" for t in thresholds],
            "e2e p50 ms", "e2e p99 ms", "error"]
    rows = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for entry in metrics["bags"]:
        proximity = entry.get("proximity") or {}
        by_threshold = dict(zip([round(t, 6) for t in proximity.get("thresholds_m", [])],
                                proximity.get("iou", []), strict=True))
        e2e = entry.get("end_to_end_ms") or {}
        name = html.escape(entry["name"])
        link = f"<a href='{name}/report.html'>{name}</a>" if entry.get("status") != "failed" else name
        cells = [link, entry.get("status", ""), entry.get("frames", 0), entry.get("frames_with_output", 0),
                 *[_fmt(by_threshold.get(round(t, 6))) if proximity else "no ground truth"
                   for t in thresholds],
                 _fmt(e2e.get("p50"), 1), _fmt(e2e.get("p99"), 1), entry.get("error") or ""]
        rows.append("<tr>" + "".join(f"<td>{c if i == 0 else html.escape(str(c))}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    rows.append("</table>")
    return rows


def write_fleet_report(out: Path, metrics: dict, baseline: dict | None, tolerances: Tolerances,
                       regressions: Sequence[object] | None) -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dla_perception fleet replay</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}pre{background:#f5f5f5;padding:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>",
        f"<h1>Replay of {metrics['bags_total']} bags</h1>",
        f"<pre>{html.escape(fleet_summary_text(metrics, baseline, tolerances, regressions))}</pre>",
        "<h2>Per bag</h2>", *_bag_rows(metrics),
        "<p>Each bag's own report (worst frames, latency plots) is in its folder.</p>",
        "<h2>metrics.json</h2>",
        f"<pre>{html.escape(json.dumps({k: v for k, v in metrics.items() if k != 'bags'}, indent=2))}</pre>",
        "</body></html>",
    ]
    report = out / "report.html"
    report.write_text("\n".join(parts))
    return report
