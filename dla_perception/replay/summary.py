"""The one-screen summary printed at the end of a replay (and at the top of report.html)."""

from __future__ import annotations

from collections.abc import Sequence


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ms2(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _shorten(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _count(value: int) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e4 else str(value)


def ground_truth_line(metrics: dict) -> str:
    """Says plainly whether accuracy was measured, and against which topic."""
    truth = metrics.get("ground_truth")
    if not truth:
        return ("ground truth: none in this bag (no ground_truth/disparity topic): accuracy NOT measured; "
                "name the topic with --ground-truth TOPIC")
    how = "detected" if truth.get("detected") else "read"
    scored = "" if metrics.get("proximity") else " (not scored: the proximity node did not run)"
    return f"ground truth: {truth.get('topic')} ({how}){scored}"


def latency_table(comparisons: Sequence[object]) -> str:
    """Each latency figure against the baseline: gated ones decide, the others are for reading."""
    if not comparisons:
        return "latency vs baseline: nothing to compare"
    width = max(len(c.metric) for c in comparisons)
    lines = [f"{'latency vs baseline':<{width}} {'baseline':>9} {'now':>9} {'allowed':>9}  verdict"]
    for c in comparisons:
        now = "missing" if c.current is None else f"{c.current:.2f}"
        verdict = ("REGRESSION" if c.worse else "ok") if c.gated else "(not gated)"
        lines.append(f"{c.metric:<{width}} {c.baseline:>9.2f} {now:>9} {c.allowed:>9.2f}  {verdict}")
    notes = dict.fromkeys(f"note: {c.metric}: {c.note}" for c in comparisons if getattr(c, "note", ""))
    return "\n".join([*lines, *notes])


def reference_lines(metrics: dict) -> list[str]:
    """The machine reference's speed in this run and each CPU engine's time over it (what the gate reads)."""
    reference = metrics.get("reference")
    if not reference:
        return []
    cpu, wall = reference.get("cpu_ms") or {}, reference.get("latency_ms") or {}
    lines = [f"machine reference: {reference.get('runs', 0)} runs, CPU ms p25 {_ms2(cpu.get('p25'))} "
             f"p50 {_ms2(cpu.get('p50'))}, wall ms p25 {_ms2(wall.get('p25'))} p50 {_ms2(wall.get('p50'))}"]
    for engine, stats in (metrics.get("engines") or {}).items():
        ratio = (stats.get("cpu_over_reference") or {}).get("p25")
        if ratio is not None:
            lines.append(f"  {engine}: CPU ms p25 {_ms2((stats.get('cpu_ms') or {}).get('p25'))} = "
                         f"{ratio:.3f} x reference (gated)")
    return lines


def core_table(metrics: dict) -> str:
    """Per-core latency table: the lines `demo` prints."""
    header = f"{'core':<6} {'inferences':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} " \
             f"{'fps':>7} {'errors':>6}  engines"
    lines = [header, "-" * len(header)]
    for core, stats in (metrics.get("cores") or {}).items():
        latency = stats.get("latency_ms") or {}
        fps = stats.get("fps")
        lines.append(
            f"{core:<6} {stats.get('inferences', 0):>10} {_ms(latency.get('p50')):>8} "
            f"{_ms(latency.get('p90')):>8} {_ms(latency.get('p99')):>8} {_ms(latency.get('max')):>8} "
            f"{'-' if fps is None else f'{fps:.1f}':>7} {stats.get('errors', 0):>6}  "
            + ", ".join(stats.get("engines", []))
        )
    if len(lines) == 2:
        lines.append("(no inference ran)")
    return "\n".join(lines)


def summary_text(metrics: dict, regressions: Sequence[object] | None = None) -> str:
    """Frames, per-core latency, end-to-end latency, accuracy per plane, detections, baseline verdict."""
    bag = metrics.get("bag") or {}
    lines = [f"bag: {bag.get('path', '?')} ({bag.get('mode', '?')}, {bag.get('storage', '?')})"]
    missing = metrics.get("missing_outputs") or {}
    lines.append(f"frames: {metrics.get('frames', 0)} replayed, {metrics.get('frames_with_output', 0)} with "
                 f"every output" + ("" if missing else " (missing: none)"))
    for what, count in missing.items():
        lines.append(f"  missing x{count}: {_shorten(what)}")
    if metrics.get("error"):
        lines.append(f"stopped early: {metrics['error']}")
    for problem in (metrics.get("graph") or {}).get("problems", []):
        lines.append(f"warning: {_shorten(problem)}")
    lines.append(ground_truth_line(metrics))
    lines.append("")
    lines.append(core_table(metrics))
    lines.extend(reference_lines(metrics))
    e2e = metrics.get("end_to_end_ms") or {}
    lines.append("")
    lines.append(f"end-to-end ms: p50 {_ms(e2e.get('p50'))}  p99 {_ms(e2e.get('p99'))}  "
                 f"max {_ms(e2e.get('max'))}")
    proximity = metrics.get("proximity")
    if proximity:
        thresholds = proximity.get("thresholds_m", [])
        lines.append("")
        lines.append(f"{'proximity':<10}" + "".join(f"{f'{t:g} m':>9}" for t in thresholds))
        for name in ("iou", "precision", "recall"):
            lines.append(f"{name:<10}" + "".join(f"{_ratio(v):>9}" for v in proximity.get(name, [])))
        for name, label in (("near_px_truth", "near px truth"), ("near_px_predicted", "near px pred.")):
            if name in proximity:
                lines.append(f"{label:<10}" + "".join(f"{_count(v):>9}" for v in proximity[name]))
    detection = metrics.get("detection")
    if detection:
        lines.append("")
        lines.append(f"detections: {detection.get('detections', 0)} in {detection.get('frames', 0)} frames")
    if regressions is not None:
        lines.append("")
        if regressions:
            lines.append(f"baseline: {len(regressions)} regression(s)")
            lines.extend(f"  REGRESSION {r}" for r in regressions)
        else:
            lines.append("baseline: no regression")
    return "\n".join(lines)
