"""Nodes that turn input frames into outputs: one frame in flight on the node's own worker thread.

FrameNode is the base of proximity_segmentation and detection: the pipeline is built on the current engine
manager when the node is configured (and rebuilt, at most every RETRY_S s, while unavailable), the outputs
are lifecycle publishers made at configure, the inputs subscriptions made at activate (nodes/lifecycle.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dla_perception.nodes.base import RETRY_S, FrameOutcome, PerceptionNode
from dla_perception.nodes.diagnostics import ERROR


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


class FrameNode(PerceptionNode):
    """A node that turns input frames into outputs with a pipeline: one frame in flight on its own worker,
    the pipeline built on the current manager and rebuilt (at most every RETRY_S s) while unavailable."""

    PIPELINE = "pipeline"  # its name in logs and diagnostics
    STATUS_TASK = "pipeline"

    def hardware_id(self) -> str:
        """The camera this node processes (its input's frame id), once it has seen one."""
        stream = getattr(self, "_stream", None)
        return (stream.frame_id if stream is not None else "") or super().hardware_id()

    def __init__(self, default_name: str, manager: Any = None, **node_kwargs: Any) -> None:
        super().__init__(default_name, manager, **node_kwargs)
        self._slot = FrameSlot(default_name)
        self._pipeline: Any = None
        self._pipeline_attempt = -math.inf
        self._pipeline_error = ""
        self._input_subscriptions: list[Any] = []

    def _create_pipeline(self) -> Any:
        raise NotImplementedError

    def _create_outputs(self) -> None:
        """Hook: the output publishers (lifecycle publishers: they publish only while active)."""

    def _destroy_outputs(self) -> None:
        """Hook: destroy what _create_outputs made."""

    def _create_inputs(self) -> list[Any]:
        """Hook: the input subscriptions."""
        return []

    # -- lifecycle: engines and pipeline at configure, inputs at activate ---------------------------------
    def _configure(self, strict: bool) -> str | None:
        reason = super()._configure(strict)
        if reason:
            return reason
        self._create_outputs()
        with self._manager_lock:
            self._pipeline_attempt = -math.inf  # now, not RETRY_S after an earlier failure
        if self._ensure_pipeline() is None and strict:
            return self._pipeline_error
        self._warm_up()
        return None

    def _activate(self) -> None:
        self._input_subscriptions = self._create_inputs()

    def _deactivate(self) -> None:
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions = []
        self._slot.wait_idle(RETRY_S)  # the frame in flight publishes (or is refused) before we return

    def _cleanup(self) -> None:
        with self._manager_lock:
            close = getattr(self._pipeline, "close", None)
            if close is not None:
                close()
            self._pipeline = None
        self._destroy_outputs()
        super()._cleanup()

    def _ensure_pipeline(self) -> Any:
        """The pipeline, or None while it cannot be built (the reason is a diagnostics condition)."""
        with self._manager_lock:
            if self._pipeline is not None:
                return self._pipeline
            if self._manager is None:
                self._pipeline_error = f"{self.PIPELINE} unavailable: not configured (no engine manager)"
                return None
            now = time.monotonic()
            if now - self._pipeline_attempt < RETRY_S:
                return None
            self._pipeline_attempt = now
            try:
                self._pipeline = self._create_pipeline()
            except Exception as exc:
                self._pipeline_error = f"{self.PIPELINE} unavailable: {exc}"
                self.health.set_condition("pipeline", ERROR, self._pipeline_error)
                return None
            self.health.clear_condition("pipeline")
            return self._pipeline

    def _warm_up(self) -> None:
        """Run the pipeline once on a blank frame, before any real one.

        The engines' first run allocates and picks kernels (onnxruntime; TensorRT likewise) and the first
        decode imports its libraries: in `make demo` the first frame took 350 ms against a 110 ms median.
        A failure here is only logged: the frame path reports real ones.
        """
        pipeline = self._ensure_pipeline()
        if pipeline is None:
            return
        started = time.monotonic()
        try:
            self._blank_run(pipeline)
        except Exception as exc:
            self.get_logger().warning(f"{self.PIPELINE} warm-up failed ({exc!r}); the first frame is slower")
            return
        self.get_logger().debug(f"{self.PIPELINE} warmed up in {(time.monotonic() - started) * 1e3:.0f} ms")

    def _blank_run(self, pipeline: Any) -> None:
        """Hook: one pipeline run on blank input of the network's size."""

    def models_in_use(self) -> list[str]:
        """The current pipeline's models (attributes of ProximityPipeline and DetectionPipeline)."""
        pipeline = self._pipeline
        names = (getattr(pipeline, name, None) for name in ("features_model", "head_model", "model_name"))
        return [name for name in names if isinstance(name, str)]

    def _manager_changed(self) -> None:
        self._pipeline = None
        self._pipeline_attempt = -math.inf
        if self._manager is not None:
            self._warm_up()  # new engines: their first run is slow again

    def _no_pipeline(self, stamp_ns: int, frame_id: str) -> FrameOutcome:
        reason = self._pipeline_error or f"{self.PIPELINE} unavailable"
        self.health.problem("failed_no_pipeline", reason, ERROR)
        return FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", reason)

    def _drop(self, stamp_ns: int, frame_id: str) -> None:
        self.health.problem("dropped_busy", "frame dropped: the previous one is still in flight")
        self._finish(FrameOutcome(self.get_name(), stamp_ns, frame_id, "dropped", "previous frame in flight"))

    def destroy_node(self) -> None:
        self._slot.shutdown()
        close = getattr(self._pipeline, "close", None)
        if close is not None:
            close()
        super().destroy_node()
