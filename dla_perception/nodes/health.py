"""A node's health: thread-safe counters, lasting conditions and throttled logs, as one DiagnosticStatus.

Counters that grow between two /diagnostics publications (`dropped_*`, `rejected_*` WARN; `failed_*` ERROR)
set the level of that publication; conditions (no pipeline, a refused parameter...) hold until cleared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from dla_perception.nodes.diagnostics import ERROR, OK, WARN, Status

LOG_THROTTLE_S = 5.0


class Health:
    """Thread-safe counters and per-kind throttled logging; turns into one DiagnosticStatus."""

    def __init__(self, logger: Any, throttle_s: float = LOG_THROTTLE_S) -> None:
        self._logger = logger
        self._throttle_s = throttle_s
        self._lock = threading.Lock()
        self.counters: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        self._last_log: dict[str, float] = {}
        self.conditions: dict[str, tuple[int, str]] = {}  # lasting problems (e.g. no pipeline): level, text
        self.last_problem = ""

    def count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + amount

    def problem(self, counter: str, message: str, level: int = WARN) -> None:
        """Count a problem and log it, at most once per throttle period per counter."""
        now = time.monotonic()
        with self._lock:
            self.counters[counter] = self.counters.get(counter, 0) + 1
            self.last_problem = message
            due = now - self._last_log.get(counter, -1e9) >= self._throttle_s
            if due:
                self._last_log[counter] = now
        if due:
            self._log(level, f"{counter}: {message}")

    def set_condition(self, key: str, level: int, message: str) -> None:
        with self._lock:
            changed = self.conditions.get(key, (OK, ""))[1] != message
            self.conditions[key] = (level, message)
        if changed:
            self._log(level, message)

    def _log(self, level: int, message: str) -> None:
        # Two call sites on purpose: rclpy refuses one call site logging at different severities.
        if level >= ERROR:
            self._logger.error(message)
        else:
            self._logger.warning(message)

    def clear_condition(self, key: str) -> None:
        with self._lock:
            self.conditions.pop(key, None)

    def status(self, name: str, hardware_id: str, warn_prefixes: Sequence[str] = ("dropped", "rejected"),
               error_prefixes: Sequence[str] = ("failed",)) -> Status:
        """Counters as a status; WARN/ERROR when the matching counters grew since the previous call."""
        with self._lock:
            counters = dict(self.counters)
            grown = {k: v - self._reported.get(k, 0) for k, v in counters.items()
                     if v > self._reported.get(k, 0)}
            self._reported = counters
            conditions = dict(self.conditions)
            last = self.last_problem
        status = Status(name=name, hardware_id=hardware_id)
        for key in sorted(counters):
            status.values[key] = str(counters[key])
        status.values["last_problem"] = last
        for key, amount in sorted(grown.items()):
            if key.startswith(tuple(error_prefixes)):
                status.escalate(ERROR, f"{key} +{amount}")
            elif key.startswith(tuple(warn_prefixes)):
                status.escalate(WARN, f"{key} +{amount}")
        for level, message in conditions.values():
            status.escalate(level, message)
        return status
