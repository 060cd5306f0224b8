"""Streams: the camera and task a request belongs to (`front/proximity`), with its settings and counters.

The manager schedules across streams (runtime/dispatch.py): higher `priority` first, then the oldest
request; a stream below its `min_rate_hz` is served before any other (starvation-free); within a stream a
worker keeps the newest `queue_size` requests (latest-wins, the older one counted `dropped_busy`).

A stream's rate is counted on its *entry model*, the first model a frame goes through (the proximity
pipeline's features; its head requests are follow-ups of the same frame): `max_rate_hz` is a GCRA check on
entry requests (a request arriving before its slot is `dropped_rate_cap`, unrun), `delivered` and the
latency percentiles are those of answered entry requests (submission to answer). Drops and the cores used
count every model of the stream. A frame a node refuses because its previous one is still in flight is
`dropped_busy` too (`StreamView.note_dropped_busy`): it is the same latest-wins, one step earlier.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dla_perception.runtime.errors import RequestDropped

DROP_KINDS = ("busy", "stale", "rate_cap")
# GCRA tolerance as a share of the emission interval: a frame up to half an interval early still conforms
# (camera jitter), the long-run rate stays at most max_rate_hz.
RATE_TOLERANCE = 0.5


class RateCapped(RequestDropped):
    """A stream's entry request arrived before its max_rate_hz allowed another: dropped unrun."""


@dataclass(frozen=True)
class StreamSettings:
    """How a stream is scheduled. `priority`: higher first. `max_rate_hz`: a cap on entry requests
    (None: uncapped). `min_rate_hz`: served before every other stream while below it (None: no floor).
    `deadline_ms`: default deadline of its requests (None: the model's). `entry_model`: the model whose
    requests are the stream's frames (None: the first model it submits)."""

    priority: int = 0
    max_rate_hz: float | None = None
    min_rate_hz: float | None = None
    deadline_ms: float | None = None
    entry_model: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_rate_hz", "min_rate_hz", "deadline_ms"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"stream setting '{name}' must be a positive number or None, got {value!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"stream setting 'priority' must be an integer, got {self.priority!r}")
        if self.max_rate_hz and self.min_rate_hz and self.min_rate_hz > self.max_rate_hz:
            raise ValueError(f"min_rate_hz {self.min_rate_hz} is above max_rate_hz {self.max_rate_hz}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> StreamSettings:
        """From parameters or YAML: 0 (or a missing key) means unset for the rates and the deadline."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown stream setting(s) {sorted(unknown)}")
        optional = {name: (float(values[name]) if values.get(name) else None)
                    for name in ("max_rate_hz", "min_rate_hz", "deadline_ms") if name in values}
        return cls(priority=int(values.get("priority", 0)), entry_model=values.get("entry_model") or None,
                   **optional)


class StreamState:
    """One stream's settings, rate-cap and starvation state, and counters; thread-safe, O(1) per request."""

    def __init__(self, name: str, settings: StreamSettings, window_s: float, explicit: bool) -> None:
        self.name = name
        self.settings = settings
        self.window_s = window_s
        self.explicit = explicit  # named by its caller (diagnostics show only those), not a model's default
        self.entry_model = settings.entry_model
        self.frame_id = ""  # the camera's frame, when a node has told it (what diagnostics name as hardware)
        self._lock = threading.Lock()
        self._created = time.monotonic()
        self._tat = 0.0  # GCRA theoretical arrival time of the next conforming entry request
        self.last_started = self._created  # when an entry request last started running
        self.submitted = self.delivered = self.failed = 0
        self.dropped = dict.fromkeys(DROP_KINDS, 0)
        self.cores: Counter[str] = Counter()
        self._answers: deque[tuple[float, float]] = deque(maxlen=10_000)  # (finished, latency s)
        self._host: deque[tuple[float, float]] = deque(maxlen=10_000)  # (when, the node's CPU ms per frame)

    def configure(self, settings: StreamSettings) -> None:
        with self._lock:
            self.settings = settings
            self.entry_model = settings.entry_model or self.entry_model
            self._tat = 0.0

    def is_entry(self, model: str) -> bool:
        if self.entry_model is None:
            self.entry_model = model
        return model == self.entry_model

    # -- scheduling ---------------------------------------------------------------------------------
    def rate_allows(self, now: float) -> bool:
        """Would an entry request conform to max_rate_hz now? (A peek: nothing is charged.)"""
        rate = self.settings.max_rate_hz
        return rate is None or now >= self._tat - RATE_TOLERANCE / rate

    def admit(self, model: str, now: float) -> bool:
        """Charge an entry request against the rate cap; False (counted dropped_rate_cap) when early."""
        with self._lock:
            self.submitted += 1
            if not self.is_entry(model):
                return True
            rate = self.settings.max_rate_hz
            if rate is None:
                return True
            if now < self._tat - RATE_TOLERANCE / rate:
                self.dropped["rate_cap"] += 1
                return False
            self._tat = max(self._tat, now) + 1.0 / rate
            return True

    def starving(self, now: float) -> bool:
        """Below its minimum rate: no entry request started for longer than 1 / min_rate_hz."""
        floor = self.settings.min_rate_hz
        return floor is not None and now - self.last_started > 1.0 / floor

    def started(self, model: str, now: float) -> None:
        if model == self.entry_model:
            self.last_started = now

    # -- outcomes -----------------------------------------------------------------------------------
    def record_delivered(self, model: str, core: str, submitted: float, finished: float) -> None:
        with self._lock:
            self.cores[core] += 1
            if model == self.entry_model:
                self.delivered += 1
                self._answers.append((finished, finished - submitted))

    def record_host_time(self, cpu_ms: float, now: float | None = None) -> None:
        """The node's own CPU time for one frame outside inference: what a capacity plan adds per frame."""
        with self._lock:
            self._host.append((time.monotonic() if now is None else now, cpu_ms))

    def record_drop(self, kind: str) -> None:
        with self._lock:
            self.dropped[kind] += 1

    def record_failed(self) -> None:
        with self._lock:
            self.failed += 1

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """What /diagnostics shows for the stream: rates over the window, counters since start."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [latency for finished, latency in self._answers if finished > now - self.window_s]
            host = [ms for when, ms in self._host if when > now - self.window_s]
            cores = dict(self.cores)
            counts = dict(self.dropped)
            delivered, failed, submitted = self.delivered, self.failed, self.submitted
        span = max(1e-9, min(self.window_s, now - self._created))
        latencies = np.array(recent) * 1e3
        p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99])) if latencies.size else (0.0, 0.0)
        achieved = len(recent) / span
        floor = self.settings.min_rate_hz
        return {
            "stream": self.name, "frame_id": self.frame_id, **asdict(self.settings),
            "entry_model": self.entry_model or "",
            "achieved_rate_hz": achieved, "delivered": delivered, "failed": failed, "submitted": submitted,
            **{f"dropped_{kind}": counts[kind] for kind in DROP_KINDS},
            "latency_p50_ms": p50, "latency_p99_ms": p99, "cores": cores,
            "host_cpu_ms_p50": float(np.median(host)) if host else 0.0,
            # young streams are judged on what they could have delivered so far, not on a full window
            "below_min_rate": floor is not None and now - self._created > 2.0 / floor and achieved < floor,
        }


class StreamRegistry:
    """The manager's streams by name; a stream first seen at submit gets the default settings."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._streams: dict[str, StreamState] = {}

    def configure(self, name: str, settings: StreamSettings | None = None) -> StreamState:
        """Declare (or re-set) a stream; configured streams are reported even before their first frame."""
        settings = settings or StreamSettings()
        with self._lock:
            state = self._streams.get(name)
            if state is None:
                state = self._streams[name] = StreamState(name, settings, self.window_s, explicit=True)
                return state
        state.explicit = True
        state.configure(settings)
        return state

    def get(self, name: str, explicit: bool = True) -> StreamState:
        state = self._streams.get(name)
        if state is None:
            with self._lock:
                state = self._streams.setdefault(
                    name, StreamState(name, StreamSettings(), self.window_s, explicit))
        if explicit and not state.explicit:
            state.explicit = True
        return state

    def summaries(self, include_implicit: bool = False) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {name: state.summary(now) for name, state in list(self._streams.items())
                if include_implicit or state.explicit}


class StreamView:
    """An engine manager seen by one stream: infer()/submit() carry the stream, the rest is the manager's.

    What a pipeline gets in place of the manager, so it needs no notion of streams (models/ stay as they
    are) and every request it makes is scheduled as its camera's.
    """

    def __init__(self, manager: Any, stream: str) -> None:
        self._manager = manager
        self.stream = stream
        self.state: StreamState = manager.streams.get(stream)
        self.unscheduled = False  # True: requests go unnamed (a warm-up run is no frame of the stream)

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], timeout: float | None = None, *,
              deadline: float | None = None) -> dict[str, np.ndarray]:
        stream = None if self.unscheduled else self.stream
        return self._manager.infer(model, inputs, timeout, stream=stream, deadline=deadline)

    def submit(self, model: str, inputs: Mapping[str, np.ndarray], *, deadline: float | None = None) -> Any:
        stream = None if self.unscheduled else self.stream
        return self._manager.submit(model, inputs, stream=stream, deadline=deadline)

    def rate_allows(self) -> bool:
        """Would a new frame pass the rate cap now? Lets a node skip decoding a frame the cap would drop."""
        return self.state.rate_allows(time.monotonic())

    def note_rate_capped(self) -> None:
        self.state.record_drop("rate_cap")

    def note_dropped_busy(self) -> None:
        self.state.record_drop("busy")

    def note_host_time(self, cpu_ms: float) -> None:
        self.state.record_host_time(cpu_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)
