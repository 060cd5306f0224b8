"""EngineManager statistics -> diagnostic statuses, following diagnostic_updater's conventions.

`DiagnosticsReport` is pure (dicts in, dicts out) so it is tested without ROS; `diagnostic_array` turns its
output into a diagnostic_msgs/DiagnosticArray. Status names are diagnostic_updater's `<node>: <task>`:
`<node>: core <core>` and `<node>: engine <model>@<core>`, where `<node>` is the publishing node's name (or
its fully qualified name with `diagnostic_updater.use_fqn`), hardware_id the core; keys are those of
design.md and stay stable because dashboards and diagnostic_aggregator analyzers key on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}
PREFIX = "dla_perception"

# The keys every core status carries, in this order (design.md), then the extras.
CORE_KEYS = (
    "inferences", "fps", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms",
    "queue_depth", "errors", "engines",
)
EXTRA_KEYS = ("busy_fraction", "drops", "drops_stale", "deadline_misses", "late_answers")
ENGINE_HEALTH_KEYS = ("stuck", "stuck_since", "deadline_ms", "times_stuck", "in_rotation")
BUDGET_PERCENTILE_KEY = "latency_p90_ms"  # compared with the core's budget: WARN above, ERROR above twice


@dataclass
class Status:
    """One DiagnosticStatus as plain data."""

    name: str
    hardware_id: str
    level: int = OK
    message: str = "OK"
    values: dict[str, str] = field(default_factory=dict)

    def escalate(self, level: int, reason: str) -> None:
        """Raise the level to at least `level`, collecting every reason in the message."""
        if level > OK:
            self.message = reason if self.level == OK else f"{self.message}; {reason}"
        self.level = max(self.level, level)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


class DiagnosticsReport:
    """Builds statuses from successive `statistics()`/`placements()` snapshots.

    Error and drop counts are cumulative in the manager, so levels compare against the previous snapshot:
    new errors in the last period -> WARN, only errors and no successful inference -> ERROR. A stuck engine
    (a run past its deadline, no probe answered since) is ERROR on its engine and on its core.
    """

    def __init__(self, latency_budget_ms: Mapping[str, float] | None = None) -> None:
        self.latency_budget_ms = dict(latency_budget_ms or {})
        self._previous: dict[str, tuple[int, ...]] = {}

    def statuses(
        self, statistics: Mapping[str, Any], placements: Sequence[Mapping[str, Any]], prefix: str = PREFIX
    ) -> list[Status]:
        """One status per core in use, per requested-but-absent core, per engine; named `<prefix>: ...`."""
        statuses = [
            self._status(f"{prefix}: core {core}", core, core, values)
            for core, values in sorted(statistics.get("cores", {}).items())
        ]
        reported = {status.hardware_id for status in statuses}
        statuses.extend(self._fallback_statuses(placements, reported, prefix))
        for key, values in sorted(statistics.get("engines", {}).items()):
            core = str(values.get("core", key.rpartition("@")[2]))
            status = self._status(f"{prefix}: engine {key}", core, key, values)
            status.values["engines"] = key
            for extra in ("model", "core", "precision", *ENGINE_HEALTH_KEYS):
                if extra in values:
                    status.values[extra] = _format(values[extra])
            if values.get("stuck"):
                status.escalate(ERROR, f"{values.get('model', key)} stuck on {core} since "
                                       f"{values.get('stuck_since')}: no answer within its "
                                       f"{float(values.get('deadline_ms', 0.0)):g} ms deadline; out of "
                                       "rotation until a probe answers")
            statuses.append(status)
        return statuses

    def _status(self, name: str, core: str, key: str, values: Mapping[str, Any]) -> Status:
        status = Status(name=name, hardware_id=core)
        for item in CORE_KEYS + EXTRA_KEYS:
            status.values[item] = _format(values.get(item, [] if item == "engines" else 0))
        counted = ("inferences", "errors", "drops", "drops_stale", "deadline_misses")
        now = tuple(int(values.get(k, 0) or 0) for k in counted)
        before = self._previous.get(key, (0,) * len(counted))
        self._previous[key] = now
        grown = (after - earlier for after, earlier in zip(now, before, strict=True))
        new_inferences, new_errors, new_drops, new_stale, new_misses = grown
        inferences = now[0]
        if new_errors > 0:
            level = ERROR if new_inferences <= 0 else WARN
            status.escalate(level, f"{new_errors} failed inference(s) in the last period")
        if new_drops > 0:
            status.escalate(WARN, f"{new_drops} request(s) dropped in the last period")
        if new_misses > 0:
            status.escalate(WARN, f"{new_misses} request(s) missed their deadline in the last period"
                            + (f", {new_stale} dropped unrun as stale" if new_stale else ""))
        stuck = values.get("stuck_engines") or []
        if "stuck_engines" in values:
            status.values["stuck_engines"] = _format(stuck)
        if stuck:
            status.escalate(ERROR, f"stuck past the deadline: {_format(stuck)}")
        budget = self.latency_budget_ms.get(core)
        latency = float(values.get(BUDGET_PERCENTILE_KEY, 0.0) or 0.0)
        if budget and inferences > 0:
            status.values["latency_budget_ms"] = _format(float(budget))
            if latency > 2 * budget:
                status.escalate(ERROR, f"p90 latency {latency:.1f} ms is over twice the {budget:g} ms budget")
            elif latency > budget:
                status.escalate(WARN, f"p90 latency {latency:.1f} ms is over the {budget:g} ms budget")
        return status

    @staticmethod
    def _fallback_statuses(placements: Sequence[Mapping[str, Any]], reported: set[str],
                           prefix: str = PREFIX) -> list[Status]:
        """WARN for each requested core that is absent, naming the core used instead."""
        absent: dict[str, list[str]] = {}
        for placement in placements:
            for fallback in placement.get("fallbacks", []):
                requested = str(fallback.get("requested"))
                used = fallback.get("used")
                reason = fallback.get("reason", "")
                absent.setdefault(requested, []).append(
                    f"{placement.get('model')} fell back to {used}" + (f" ({reason})" if reason else "")
                )
        statuses = []
        for core, notes in sorted(absent.items()):
            if core in reported:  # present but a model could not use it: its core status carries the rest
                continue
            status = Status(name=f"{prefix}: core {core}", hardware_id=core)
            for item in CORE_KEYS + EXTRA_KEYS:
                status.values[item] = "" if item == "engines" else "0"
            status.values["fallback"] = "; ".join(notes)
            status.escalate(WARN, f"requested core {core} is absent: " + "; ".join(notes))
            statuses.append(status)
        return statuses


def mark_degraded(status: Status, health: Mapping[str, Mapping[str, Any]], models: Sequence[str],
                  outputs: Sequence[str]) -> None:
    """Say on a node's status which of its outputs are degraded, and why, from the manager's health().

    Every output of a frame node comes from its one pipeline, so all of them depend on each model it runs:
    WARN "outputs degraded" while a model runs on fewer cores than configured (one stuck or backing off),
    ERROR "outputs unavailable" when every core of a model is stuck. Keys `degraded_outputs` and
    `degraded_models` are always present ('' when none), so dashboards can key on them.
    """
    notes, level, degraded = [], OK, []
    for model in models:
        state = health.get(model)
        if not state or state.get("state") == "ok":
            continue
        degraded.append(model)
        stuck = ", ".join(f"{core} stuck since {since}" for core, since in state.get("stuck", {}).items())
        backing = ", ".join(f"{core} backing off after errors" for core in state.get("backing_off", []))
        reasons = "; ".join(part for part in (stuck, backing) if part)
        if state.get("state") == "unavailable":
            level = ERROR
            notes.append(f"{model}: every core is out ({reasons})")
        else:
            level = max(level, WARN)
            notes.append(f"{model}: {reasons}; running on {', '.join(state.get('serving', [])) or 'none'}")
    status.values["degraded_outputs"] = ",".join(outputs) if degraded else ""
    status.values["degraded_models"] = ",".join(degraded)
    if degraded:
        what = "unavailable" if level == ERROR else "degraded"
        status.escalate(level, f"outputs {what}: {', '.join(outputs) or 'all'} ({'; '.join(notes)})")


def status_fields(status: Status) -> dict[str, Any]:
    """A Status as the field structure of diagnostic_msgs/DiagnosticStatus (for `fill_message`)."""
    return {
        "level": bytes([status.level]),
        "name": status.name,
        "message": status.message,
        "hardware_id": status.hardware_id,
        "values": [{"key": key, "value": value} for key, value in status.values.items()],
    }


def diagnostic_array(statuses: Sequence[Status], stamp: Any) -> Any:
    """Statuses -> diagnostic_msgs/DiagnosticArray (rclpy) stamped with `stamp` (a builtin Time)."""
    from diagnostic_msgs.msg import DiagnosticArray

    from dla_perception.nodes.messages import fill_message

    msg = DiagnosticArray()
    msg.header.stamp = stamp
    return fill_message(msg, {"status": [status_fields(status) for status in statuses]})
