"""Input streams as diagnostics: counters, arrival rates and the two ways a camera input silently fails.

A stereo input fails silently when images keep arriving but never pair (the two drivers stamp differently,
a side is remapped to the wrong topic), and any input when the transport loses frames (best-effort QoS
across processes, a saturated link): both leave the node's own counters quiet. `StreamMonitor` is pure
(no rclpy: times are passed in or read from a monotonic clock) and gives one `Status` per input, named
`<node>: input <kind>` with the camera frame as hardware_id.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from dla_perception.nodes.diagnostics import OK, WARN, Status


def image_input(node: Any, topic: str) -> tuple[type, str]:
    """(message type, topic) of an image input under the node's `image_transport` parameter.

    compressed: sensor_msgs/CompressedImage on the *resolved* topic plus /compressed, as image_transport
    does, so a remap of `left/image_rect` also moves `left/image_rect/compressed`.
    """
    from sensor_msgs.msg import CompressedImage, Image

    if node.get_parameter("image_transport").value == "compressed":
        return CompressedImage, node.resolve_topic_name(topic) + "/compressed"
    return Image, topic


PAIRING_TIMEOUT_S = 1.0  # images arriving without a pair for longer than this: WARN
RATE_WINDOW_S = 2.0  # arrival rates are counted over this much recent time


class StreamMonitor:
    """Counts images per side and pairs, measures arrival rates, and says what is wrong with the input."""

    def __init__(self, sides: Sequence[str] = ("image",), *, expected_rate_hz: float = 0.0,
                 pairing_timeout_s: float = PAIRING_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sides = tuple(sides)
        self.expected_rate_hz = float(expected_rate_hz)
        self.pairing_timeout_s = pairing_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self.images = {side: 0 for side in self.sides}
        self._arrivals = {side: deque() for side in self.sides}
        self._last_image: dict[str, float] = {}
        self._last_stamp_ns: dict[str, int] = {}
        self.frame_id = ""
        self.pairs = 0
        self._last_pair: float | None = None
        self._waiting_since: float | None = None  # first image after the last pair

    @property
    def stereo(self) -> bool:
        return len(self.sides) > 1

    def image(self, side: str, stamp_ns: int, frame_id: str) -> None:
        now = self._clock()
        with self._lock:
            self.images[side] += 1
            arrivals = self._arrivals[side]
            arrivals.append(now)
            while arrivals and now - arrivals[0] > RATE_WINDOW_S:
                arrivals.popleft()
            self._last_image[side] = now
            self._last_stamp_ns[side] = stamp_ns
            if frame_id and (side == self.sides[0] or not self.frame_id):
                self.frame_id = frame_id
            if self._waiting_since is None:
                self._waiting_since = now

    def paired(self) -> None:
        with self._lock:
            self.pairs += 1
            self._last_pair = self._clock()
            self._waiting_since = None

    def rate_hz(self, side: str, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        with self._lock:
            recent = [t for t in self._arrivals[side] if now - t <= RATE_WINDOW_S]
        span = min(RATE_WINDOW_S, now - self._started)
        return len(recent) / span if span > 0 else 0.0

    def problems(self, slop_s: float | None = None) -> list[str]:
        """What is wrong with the input now (empty when nothing): pairing stalled, rate too low."""
        now = self._clock()
        found = []
        with self._lock:
            waiting, last = self._waiting_since, dict(self._last_image)
            stamps = dict(self._last_stamp_ns)
        if self.stereo and waiting is not None and now - waiting > self.pairing_timeout_s:
            recent = [side for side in self.sides if now - last.get(side, -1e18) <= self.pairing_timeout_s]
            if recent:
                found.append(self._pairing_problem(now - waiting, recent, stamps, slop_s))
        if self.expected_rate_hz > 0 and now - self._started >= RATE_WINDOW_S:
            rates = {side: self.rate_hz(side, now) for side in self.sides}
            slow = {side: rate for side, rate in rates.items() if rate < self.expected_rate_hz}
            if slow:
                measured = ", ".join(f"{side} {rate:.1f} Hz" for side, rate in slow.items())
                found.append(f"input rate below expected_rate_hz {self.expected_rate_hz:g}: {measured} "
                             f"over the last {RATE_WINDOW_S:g} s (frames lost in transport? reliable QoS?)")
        return found

    def _pairing_problem(self, waited_s: float, recent: list[str], stamps: dict[str, int],
                         slop_s: float | None) -> str:
        if len(recent) < len(self.sides):
            silent = [side for side in self.sides if side not in recent]
            return (f"{' and '.join(recent)} images arrive but no {' or '.join(silent)} image in the last "
                    f"{self.pairing_timeout_s:g} s: no pair for {waited_s:.1f} s")
        apart_ms = abs(stamps[self.sides[0]] - stamps[self.sides[1]]) / 1e6
        slop = f" (sync_slop_s {slop_s * 1e3:g} ms)" if slop_s is not None else ""
        return (f"images arrive on both sides but have not paired for {waited_s:.1f} s: the latest stamps "
                f"are {apart_ms:.1f} ms apart{slop}")

    def status(self, name: str, counters: dict[str, int] | None = None,
               slop_s: float | None = None) -> Status:
        """The stream's status: counters, rates and a WARN with the reason while a problem lasts.

        counters: more values to report (the pairer's unpaired_images, stream_restarts, ...).
        """
        status = Status(name=name, hardware_id=self.frame_id)
        now = self._clock()
        with self._lock:
            for side in self.sides:
                status.values[f"images_{side}" if self.stereo else "images"] = str(self.images[side])
            if self.stereo:
                status.values["pairs"] = str(self.pairs)
        for key, value in (counters or {}).items():
            status.values[key] = str(value)
        for side in self.sides:
            status.values[f"rate_{side}_hz" if self.stereo else "rate_hz"] = f"{self.rate_hz(side, now):.2f}"
        status.values["expected_rate_hz"] = f"{self.expected_rate_hz:g}"
        status.values["frame_id"] = self.frame_id
        for problem in self.problems(slop_s):
            status.escalate(WARN, problem)
        if status.level == OK:
            status.message = "OK"
        return status
