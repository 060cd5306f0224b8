"""A frame's way through a node: one in flight on the node's own worker thread, and what became of it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FrameOutcome:
    """What became of one input frame; listeners get one per frame, after its outputs were published.

    status: "published" (outputs sent), "dropped" (busy with the previous frame), "rejected" (bad input),
    "failed" (the pipeline raised). `outputs` maps output topic -> the message (or, for `detections`
    without vision_msgs, its field structure as nested dicts).
    """

    node: str
    stamp_ns: int
    frame_id: str
    status: str
    reason: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    result: Any = None


class FrameSlot:
    """At most one frame in flight, on one worker thread; `offer` refuses while busy (never queues)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()

    def offer(self, work: Callable[[], None]) -> bool:
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            self._idle.clear()
        try:
            self._executor.submit(work)
        except RuntimeError:  # shut down
            self.release()
            return False
        return True

    def release(self) -> None:
        """Called once the inference is done: the next frame may start while this one publishes."""
        with self._lock:
            self._busy = False
            self._idle.set()

    @property
    def busy(self) -> bool:
        return self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
