"""Rolling latency statistics per engine, merged per core. Cheap enough to read at 1 Hz.

Each engine keeps its completed requests of the last `window_s` seconds (bounded in count). `fps`,
percentiles and `busy_fraction` cover that window; the counters count since start: `inferences`, `errors`,
`drops` (pushed out of a full queue by a newer request), `drops_stale` (taken out unrun: older than their
deadline, with no retry left), `deadline_misses` (requests this engine held, queued or running, when their
deadline passed) and `late_answers` (answers that came after the request was resolved, discarded).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

STAT_KEYS = ("inferences", "fps", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms",
             "queue_depth", "busy_fraction", "errors", "drops", "engines", "drops_stale", "deadline_misses",
             "late_answers")
COUNTERS = ("inferences", "errors", "drops", "drops_stale", "deadline_misses", "late_answers")


class EngineStatistics:
    """Thread-safe counters and a rolling window of (finish time, latency) for one engine."""

    def __init__(self, window_s: float = 10.0, max_samples: int = 10_000) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float, bool]] = deque(maxlen=max_samples)
        self._started = time.monotonic()
        self.inferences = 0
        self.errors = 0
        self.drops = 0
        self.drops_stale = 0
        self.deadline_misses = 0
        self.late_answers = 0

    def record(self, started: float, finished: float, ok: bool = True) -> None:
        """One engine run from `started` to `finished` (time.monotonic seconds)."""
        with self._lock:
            self._samples.append((finished, finished - started, ok))
            if ok:
                self.inferences += 1
            else:
                self.errors += 1

    def record_drop(self) -> None:
        with self._lock:
            self.drops += 1

    def record_stale(self) -> None:
        with self._lock:
            self.drops_stale += 1

    def record_deadline_miss(self) -> None:
        with self._lock:
            self.deadline_misses += 1

    def record_late(self) -> None:
        with self._lock:
            self.late_answers += 1

    def window(self, now: float) -> tuple[np.ndarray, float, float]:
        """Latencies (s) of successful runs in the window, busy time inside it (s, failed runs too), span (s).

        The span is the window, or the engine's age while it is younger than the window.
        """
        with self._lock:
            recent = [sample for sample in self._samples if sample[0] > now - self.window_s]
        span = max(1e-9, min(self.window_s, now - self._started))
        start = now - span
        latencies = np.array([latency for _, latency, ok in recent if ok], dtype=np.float64)
        busy = sum(min(latency, finished - start) for finished, latency, _ in recent)
        return latencies, busy, span


def summarize(parts: Iterable[tuple[EngineStatistics, int, str]], now: float | None = None) -> dict[str, Any]:
    """Merge engines' statistics: (stats, queue depth, engine name) -> the contract's statistics keys.

    fps, busy_fraction and queue_depth add up across engines (a core running two models at 40 % each is
    80 % busy); percentiles are over all the engines' latencies together.
    """
    now = time.monotonic() if now is None else now
    latencies, fps, busy, depth = [], 0.0, 0.0, 0
    counts = dict.fromkeys(COUNTERS, 0)
    engines = []
    for stats, queue_depth, name in parts:
        window, busy_s, span = stats.window(now)
        latencies.append(window)
        fps += len(window) / span
        busy += busy_s / span
        depth += queue_depth
        for key in COUNTERS:
            counts[key] += getattr(stats, key)
        engines.append(name)
    merged = np.concatenate(latencies) if latencies else np.empty(0)
    if merged.size:
        p50, p90, p99 = (float(v) * 1e3 for v in np.percentile(merged, [50, 90, 99]))
        latency_max = float(merged.max()) * 1e3
    else:
        p50 = p90 = p99 = latency_max = 0.0
    return {
        "inferences": counts["inferences"],
        "fps": fps,
        "latency_p50_ms": p50,
        "latency_p90_ms": p90,
        "latency_p99_ms": p99,
        "latency_max_ms": latency_max,
        "queue_depth": depth,
        "busy_fraction": busy,
        "errors": counts["errors"],
        "drops": counts["drops"],
        "engines": engines,
        "drops_stale": counts["drops_stale"],
        "deadline_misses": counts["deadline_misses"],
        "late_answers": counts["late_answers"],
    }
