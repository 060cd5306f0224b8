"""A processing node's camera stream in the shared engine manager, and the manager node's stream statuses.

The node translates its parameters (priority, max_rate_hz, min_rate_hz, stream_deadline_ms) into the
runtime's StreamSettings and hands its pipeline a StreamView, so every request of the pipeline is scheduled
as its camera's (runtime/streams.py). A frame the rate cap would drop is dropped before it is decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dla_perception.nodes.diagnostics import OK, WARN, Status
from dla_perception.runtime.streams import StreamSettings, StreamView

STREAM_PARAMETERS = ("priority", "max_rate_hz", "min_rate_hz", "stream_deadline_ms")


def stream_name(camera: str, task: str) -> str:
    """`front/proximity`; `proximity` for the unnamed camera."""
    return f"{camera}/{task}" if camera else task


class CameraStream:
    """One node's stream: its name, its settings from the node's parameters, the view its pipeline uses."""

    def __init__(self, node: Any, camera: str, task: str) -> None:
        self._node = node
        self.camera = camera
        self.name = stream_name(camera, task)
        self.view: StreamView | None = None

    def settings(self, changes: Mapping[str, Any] | None = None) -> StreamSettings:
        values = {name: (changes or {}).get(name, self._node.param(name)) for name in STREAM_PARAMETERS}
        return StreamSettings.from_mapping({"priority": values["priority"],
                                            "max_rate_hz": values["max_rate_hz"],
                                            "min_rate_hz": values["min_rate_hz"],
                                            "deadline_ms": values["stream_deadline_ms"]})

    def bind(self, manager: Any) -> Any:
        """The manager as this stream sees it (a manager without streams, e.g. a test double: itself)."""
        if not hasattr(manager, "configure_stream"):
            self.view = None
            return manager
        manager.configure_stream(self.name, self.settings())
        self.view = StreamView(manager, self.name)
        return self.view

    def reconfigure(self, changes: Mapping[str, Any]) -> str | None:
        """Apply changed stream parameters; the reason they do not fit together, or None."""
        if not set(changes) & set(STREAM_PARAMETERS):
            return None
        try:
            settings = self.settings(changes)
        except ValueError as exc:
            return str(exc)
        view = self.view
        if view is not None:
            view.configure_stream(self.name, settings)
        return None

    def admit(self, frame_id: str) -> bool:
        """False when the rate cap would drop a frame now (counted dropped_rate_cap)."""
        view = self.view
        if view is None:
            return True
        view.state.frame_id = view.state.frame_id or frame_id
        if view.rate_allows():
            return True
        view.note_rate_capped()
        return False

    def dropped_busy(self) -> None:
        if self.view is not None:
            self.view.note_dropped_busy()

    def host_time(self, cpu_ms: float) -> None:
        """The node's CPU time for one computed frame (its worker thread's; inference runs on the manager's
        threads): per-stream statistics keep its median for `dla-perception plan`."""
        if self.view is not None:
            self.view.note_host_time(cpu_ms)


def stream_statuses(streams: Mapping[str, Mapping[str, Any]], prefix: str) -> list[Status]:
    """diagnostic_updater's `<node>: stream <name>` per stream, the camera frame as hardware_id; WARN while
    a stream is below its minimum rate."""
    statuses = []
    for name, summary in streams.items():
        target = summary.get("max_rate_hz")
        floor = summary.get("min_rate_hz")
        achieved = float(summary["achieved_rate_hz"])
        status = Status(f"{prefix}: stream {name}", summary.get("frame_id") or name, OK,
                        f"{achieved:.1f} Hz" + (f" of {target:g} Hz" if target else ""))
        if summary.get("below_min_rate"):
            status.escalate(WARN, f"{achieved:.1f} Hz, below its minimum {floor:g} Hz")
        status.values.update({
            "achieved_rate_hz": f"{achieved:.2f}", "target_rate_hz": f"{target or 0.0:g}",
            "min_rate_hz": f"{floor or 0.0:g}", "priority": str(summary["priority"]),
            "delivered": str(summary["delivered"]), "failed": str(summary["failed"]),
            "dropped_busy": str(summary["dropped_busy"]), "dropped_stale": str(summary["dropped_stale"]),
            "dropped_rate_cap": str(summary["dropped_rate_cap"]),
            "latency_p50_ms": f"{summary['latency_p50_ms']:.1f}",
            "latency_p99_ms": f"{summary['latency_p99_ms']:.1f}",
            "host_cpu_ms_p50": f"{summary.get('host_cpu_ms_p50', 0.0):.1f}",
            "cores": ",".join(f"{core}:{count}" for core, count in sorted(summary["cores"].items())),
            "entry_model": summary.get("entry_model", ""),
        })
        statuses.append(status)
    return statuses
