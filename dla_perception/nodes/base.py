"""What every dla_perception node shares: parameters from a table, health counters (nodes/health.py),
/diagnostics, per-frame outcome listeners, the lifecycle (nodes/lifecycle.py) and the engine manager it
uses. The frame-processing base, FrameNode, is in nodes/frames.py.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy.logging
from lifecycle_msgs.msg import State

from dla_perception.nodes.diagnostics import (
    ERROR,
    WARN,
    DiagnosticsReport,
    Status,
    diagnostic_array,
    mark_degraded,
)
from dla_perception.nodes.health import Health
from dla_perception.nodes.lifecycle import ManagedNode
from dla_perception.nodes.parameters import ParamSpec, declare_all, validate
from dla_perception.nodes.qos import OUTPUT_DEPTH, describe, input_profile, output_profile, overriding_options
from dla_perception.nodes.spinning import spin_node, spin_nodes  # noqa: F401 - the executables' main()
from dla_perception.share import share_path

PACKAGE = "dla_perception"
USE_FQN = "diagnostic_updater.use_fqn"
DIAGNOSTICS_TOPIC = "/diagnostics"
RETRY_S = 5.0


def open_engine_manager(engines_file: str) -> tuple[Any, list[str]]:
    """An EngineManager with every model of the engines file that could be built, and what could not.

    A missing engines file or model leaves the others working (and an empty manager at worst), so a node
    keeps running and says why in diagnostics instead of dying at start.
    """
    from dla_perception.runtime.config import EnginesConfig, load_engines_config
    from dla_perception.runtime.manager import EngineManager

    forward_core_logging()
    path = Path(engines_file) if engines_file else share_path("config/engines.yaml")
    try:
        config = load_engines_config(path, require_files=False)
    except (OSError, ValueError) as exc:
        manager, _ = EngineManager.build_available(EnginesConfig())
        return manager, [f"engines file {path}: {exc}"]
    return EngineManager.build_available(config)


class RosLogHandler(logging.Handler):
    """Sends the ROS-free core's `logging` records to the ROS logger of the same name.

    Core warnings (a core fallen back, a failing engine out of rotation, a request retried elsewhere) then
    reach the ROS console and log files (~/.ros/log) formatted like the nodes' own messages, instead of
    bare lines on stderr. (They are not on /rosout: only loggers of a node publish there.)
    """

    def emit(self, record: logging.LogRecord) -> None:
        logger = rclpy.logging.get_logger(record.name)
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            logger.error(message)
        elif record.levelno >= logging.WARNING:
            logger.warning(message)
        elif record.levelno >= logging.INFO:
            logger.info(message)
        else:
            logger.debug(message)


def forward_core_logging() -> None:
    """Install RosLogHandler on the `dla_perception` logger once per process (INFO and up)."""
    core = logging.getLogger(PACKAGE)
    if not any(isinstance(handler, RosLogHandler) for handler in core.handlers):
        core.addHandler(RosLogHandler())
        core.setLevel(logging.INFO)


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


class PerceptionNode(ManagedNode):
    """Base of the three nodes: parameters from PARAMETERS, health, /diagnostics, the engine manager.

    `manager`: None (the node opens its own from `engines_file` when configured), an EngineManager (shared,
    the caller's), or a callable returning the shared one at configure time (the container's engine_manager
    node, which may itself be configured later). Concrete classes call `_start()` at the end of __init__.
    """

    PARAMETERS: tuple[ParamSpec, ...] = ()

    def __init__(self, default_name: str, manager: Any = None, **node_kwargs: Any) -> None:
        name = node_kwargs.pop("node_name", default_name)
        super().__init__(name, **node_kwargs)
        self.health = Health(self.get_logger())
        self._frame_listeners: list[Callable[[FrameOutcome], None]] = []
        self._manager_lock = threading.RLock()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for name, problem in declare_all(self, self.PARAMETERS).items():  # counted by the validator
            self.health.set_condition(f"parameter:{name}", WARN, problem)
        forward_core_logging()
        self._manager_source = manager
        self._owns_manager = manager is None
        self._manager_problems: list[str] = []
        self._manager: Any = None
        self._report = _report_for(None)
        self._diagnostics = self.advertise_output(_diagnostic_array_type(), DIAGNOSTICS_TOPIC, depth=10,
                                                  lifecycle=False)
        period = self.param("diagnostics_period_s")
        self._diagnostics_timer = self.create_timer(period, self.publish_diagnostics)

    # -- topics (QoS: nodes/qos.py) ------------------------------------------------------------------------
    def subscribe_input(self, msg_type: type, topic: str, callback: Callable[[Any], None]) -> Any:
        """A camera-input subscription: the `input_qos` profile, the user's qos_overrides on top."""
        from rclpy.event_handler import SubscriptionEventCallbacks

        events = SubscriptionEventCallbacks(incompatible_qos=self._incompatible_qos("subscription", topic),
                                            use_default_callbacks=False)
        return self._create_with_overrides(
            "subscription", topic, lambda: input_profile(self.param("input_qos")),
            lambda qos, **kw: self.create_subscription(msg_type, topic, callback, qos, event_callbacks=events,
                                                       **kw))

    def advertise_output(self, msg_type: type, topic: str, depth: int = OUTPUT_DEPTH,
                         lifecycle: bool = True) -> Any:
        """An output publisher (a lifecycle one unless `lifecycle` is False): reliable, keep_last `depth`,
        the user's qos_overrides on top."""
        from rclpy.event_handler import PublisherEventCallbacks

        events = PublisherEventCallbacks(incompatible_qos=self._incompatible_qos("publisher", topic),
                                         use_default_callbacks=False)
        create = self.create_lifecycle_publisher if lifecycle else self.create_publisher
        return self._create_with_overrides(
            "publisher", topic, lambda: output_profile(depth),
            lambda qos, **kw: create(msg_type, topic, qos, event_callbacks=events, **kw))

    def _create_with_overrides(self, kind: str, topic: str, profile: Callable[[], Any],
                               create: Callable[..., Any]) -> Any:
        """`create(profile)` accepting qos_overrides.<topic>.<kind>.*; an unreadable override (a typo such as
        `reliability: sometimes`) is an ERROR condition and the default profile is used, never a crash."""
        try:
            entity = create(profile(), qos_overriding_options=overriding_options())
        except Exception as exc:  # rclpy raises RuntimeError, InvalidQosOverridesError, parameter errors
            default = profile()
            self.health.set_condition(
                f"qos:{kind}:{topic}", ERROR,
                f"qos_overrides of {kind} {self.resolve_topic_name(topic)} refused ({exc}); using "
                f"{describe(default)}")
            entity = create(default)
        self.get_logger().debug(f"{kind} {entity.topic_name}: {describe(entity.qos_profile)}")
        return entity

    def _incompatible_qos(self, kind: str, topic: str) -> Callable[[Any], None]:
        """The middleware's "incompatible QoS" event as a counted, logged WARN: no data flows on that link.

        Only this event is watched (rclpy's defaults add a type-mismatch handler per topic too): each one
        is a waitable the executor re-checks on every wake-up, i.e. CPU on every message.
        """

        def report(event: Any) -> None:
            from rclpy.qos import qos_policy_name_from_kind

            policy = qos_policy_name_from_kind(event.last_policy_kind)
            self.health.problem(
                "rejected_incompatible_qos",
                f"{kind} {self.resolve_topic_name(topic)}: a peer with incompatible QoS ({policy}) was "
                "discovered, no messages flow between them; see input_qos and qos_overrides (docs/ros.md)")

        return report

    # -- parameters ------------------------------------------------------------------------------------
    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _on_set_parameters(self, parameters: Sequence[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        for parameter in parameters:
            reason = validate(self.PARAMETERS, parameter.name, parameter.value)
            if reason is not None:
                self.health.problem("rejected_parameter", f"{parameter.name}: {reason}")
                return SetParametersResult(successful=False, reason=f"{parameter.name} {reason}")
        self._parameters_changed({p.name: p.value for p in parameters})
        return SetParametersResult(successful=True)

    def _parameters_changed(self, values: dict[str, Any]) -> None:
        """Hook for subclasses: accepted values (the node's parameters are not updated yet)."""

    # -- lifecycle (nodes/lifecycle.py) ------------------------------------------------------------------
    def _configure(self, strict: bool) -> str | None:
        """The engine manager: opened from engines_file, or the shared one. strict: problems fail."""
        with self._manager_lock:
            if self._manager is not None:
                return None
            if self._manager_source is None:
                manager, problems = open_engine_manager(self.param("engines_file"))
                if problems and strict:
                    manager.close()
                    return "; ".join(problems)
                self._manager_problems = problems
                for problem in problems:
                    self.health.set_condition(f"engines:{problem}", WARN, problem)
                self._owns_manager = True
            else:
                source = self._manager_source
                manager = source() if callable(source) else source
                if manager is None:
                    return "no engine manager yet: configure engine_manager first"
                self._owns_manager = False
            self._manager = manager
            self._report = _report_for(manager)
        return None

    def _cleanup(self) -> None:
        """Close the engines this node owns; a shared manager is its owner's to close."""
        with self._manager_lock:
            if self._owns_manager and self._manager is not None:
                self._manager.close()
            self._manager = None

    # -- engine manager --------------------------------------------------------------------------------
    @property
    def manager(self) -> Any:
        """The engine manager in use; None while unconfigured."""
        return self._manager

    def set_manager(self, manager: Any) -> None:
        """Use another (shared) manager from now on, e.g. after the engine manager node reloaded (None: it
        released its engines). An unconfigured node ignores it: it takes the manager when configured."""
        with self._manager_lock:
            if self._in_state(State.PRIMARY_STATE_UNCONFIGURED):
                return
            if self._owns_manager and self._manager is not None and self._manager is not manager:
                self._manager.close()
            self._manager = manager
            self._owns_manager = False
            self._report = _report_for(manager)
            self._manager_changed()

    def _manager_changed(self) -> None:
        """Hook for subclasses: drop what was built on the previous manager."""

    # -- frames ----------------------------------------------------------------------------------------
    def add_frame_listener(self, listener: Callable[[FrameOutcome], None]) -> None:
        """Call `listener(outcome)` once per input frame, after its outputs (if any) were published."""
        self._frame_listeners.append(listener)

    def remove_frame_listener(self, listener: Callable[[FrameOutcome], None]) -> None:
        self._frame_listeners.remove(listener)

    def _finish(self, outcome: FrameOutcome) -> None:
        self.health.count(f"frames_{outcome.status}")
        for listener in list(self._frame_listeners):
            try:
                listener(outcome)
            except Exception as exc:  # a listener's bug must not stop the node
                self.health.problem("listener_errors", f"frame listener raised: {exc!r}", ERROR)

    # -- diagnostics -----------------------------------------------------------------------------------
    STATUS_TASK = "node"  # the task name of the node's own status: `<node>: <task>`

    def status_prefix(self) -> str:
        """The node part of status names: its name, or its fully qualified name with use_fqn."""
        fqn = self.has_parameter(USE_FQN) and self.get_parameter(USE_FQN).value
        return self.get_fully_qualified_name() if fqn else self.get_name()

    def status_name(self, task: str) -> str:
        """diagnostic_updater's `<node name>: <task>`."""
        return f"{self.status_prefix()}: {task}"

    def hardware_id(self) -> str:
        """What the node's own status is about: this host (processing nodes: their camera frame)."""
        return socket.gethostname()

    def diagnostic_statuses(self) -> list[Status]:
        """This node's status, plus its manager's cores and engines when the manager is private."""
        statuses = [self.health.status(self.status_name(self.STATUS_TASK), self.hardware_id())]
        statuses[0].values["lifecycle_state"] = self.lifecycle_state()
        manager = self._manager
        if manager is not None and not manager.closed and hasattr(manager, "health"):
            internal = (DIAGNOSTICS_TOPIC, "/rosout", "/parameter_events")  # and the lifecycle's events
            outputs = sorted(pub.topic_name for pub in self.publishers if pub.topic_name not in internal
                             and not pub.topic_name.endswith("/transition_event"))
            mark_degraded(statuses[0], manager.health(), self.models_in_use(), outputs)
        if self._owns_manager and self._manager is not None and not self._manager.closed:
            statuses.extend(self._report.statuses(self._manager.statistics(), self._manager.placements(),
                                                  prefix=self.status_prefix()))
        return statuses

    def models_in_use(self) -> list[str]:
        """The manager's models this node's outputs depend on (their stuck cores degrade the outputs)."""
        return []

    def publish_diagnostics(self) -> None:
        try:
            statuses = self.diagnostic_statuses()
            self._diagnostics.publish(diagnostic_array(statuses, self.get_clock().now().to_msg()))
        except Exception as exc:  # diagnostics must never take the node down
            self.health.problem("diagnostics_errors", f"could not publish diagnostics: {exc!r}", ERROR)

    def destroy_node(self) -> None:
        if self._owns_manager and self._manager is not None:
            self._manager.close()
        super().destroy_node()


def _report_for(manager: Any) -> DiagnosticsReport:
    """A report with the latency budgets of the manager's engines file (none when it has no config)."""
    return DiagnosticsReport(getattr(getattr(manager, "config", None), "latency_budget_ms", {}))


def _diagnostic_array_type() -> type:
    from diagnostic_msgs.msg import DiagnosticArray

    return DiagnosticArray
