"""engine_manager: owns the process's EngineManager, publishes /diagnostics, offers ~/reload and ~/describe.

With `statistics_file` set it also keeps the manager's statistics in that file (rewritten whole, atomically,
every diagnostics period and at shutdown): the latencies a running robot measured, for `dla-perception plan
--profile`.

In the perception container the other nodes share this node's manager and follow it across reloads
(`add_manager_listener`). A reload that fails keeps the running manager, so a typo in the engines file
never takes perception down.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from std_srvs.srv import Trigger

from dla_perception.nodes.base import PerceptionNode, open_engine_manager, share_path, spin_node
from dla_perception.nodes.camera_streams import stream_statuses
from dla_perception.nodes.diagnostics import ERROR, WARN, Status
from dla_perception.nodes.parameters import ENGINE_MANAGER
from dla_perception.runtime.power import PowerRails


class EngineManagerNode(PerceptionNode):
    PARAMETERS = ENGINE_MANAGER
    STATUS_TASK = "manager"

    def __init__(self, *, manager: Any = None, **node_kwargs: Any) -> None:
        self._power = PowerRails()  # INA3221 rails in watts where the board has them (docs/doctor.md)
        super().__init__("engine_manager", manager, **node_kwargs)
        self._listeners: list[Callable[[Any], None]] = []
        self._reload_lock = threading.Lock()
        self.create_service(Trigger, "~/reload", self._on_reload)
        self.create_service(Trigger, "~/describe", self._on_describe)
        self._start()

    def add_manager_listener(self, listener: Callable[[Any], None]) -> None:
        """Call `listener(new_manager)` after every successful reload (None: the engines were released)."""
        self._listeners.append(listener)

    # -- lifecycle: the engines are built at configure, released at cleanup --------------------------------
    def _configure(self, strict: bool) -> str | None:
        reason = super()._configure(strict)
        if reason is None:
            self._log_placements()
            self._notify(self.manager)
        return reason

    def _cleanup(self) -> None:
        had = self.manager is not None
        self.write_statistics()
        super()._cleanup()
        if had:
            self._notify(None)

    def _notify(self, manager: Any) -> None:
        for listener in list(self._listeners):
            listener(manager)

    @property
    def engines_file(self) -> str:
        return self.param("engines_file") or str(share_path("config/engines.yaml"))

    @property
    def problems(self) -> list[str]:
        """What could not be loaded from the engines file at start or at the last reload."""
        return list(self._manager_problems)

    def _log_placements(self) -> None:
        """Where each model runs; the manager itself already warned about each fallback (forwarded log)."""
        for placement in self.manager.placements():
            self.get_logger().info(f"model {placement['model']} on {', '.join(placement['active'])}")

    # -- services -----------------------------------------------------------------------------------------
    def reload(self) -> tuple[bool, str]:
        """Re-read engines_file; switch to the new manager only if it loaded completely (or the running
        one is incomplete too). Returns (switched, message)."""
        with self._reload_lock:
            if self.manager is None:
                return False, f"not reloaded: the node is {self.lifecycle_state()} (configure it first)"
            manager, problems = open_engine_manager(self.param("engines_file"))
            if problems and not self._manager_problems:
                manager.close()
                message = "reload refused, still running the previous engines: " + "; ".join(problems)
                self.health.problem("rejected_reload", message)
                return False, message
            previous, owned = self.manager, self._owns_manager
            with self._manager_lock:
                self._manager, self._owns_manager = manager, True
                self._manager_problems = problems
                self._report = type(self._report)(manager.config.latency_budget_ms)
            for key in [k for k in list(self.health.conditions) if k.startswith("engines:")]:
                self.health.clear_condition(key)
            for problem in problems:
                self.health.set_condition(f"engines:{problem}", WARN, problem)
            self._notify(manager)
            if owned and previous is not manager:
                previous.close()
            self.health.count("reloads")
            self._log_placements()
            message = f"reloaded {self.engines_file}: models {', '.join(manager.model_names) or 'none'}"
            if problems:
                message += "; problems: " + "; ".join(problems)
            return True, message

    def _on_reload(self, request: Any, response: Any) -> Any:
        try:
            response.success, response.message = self.reload()
        except Exception as exc:  # a service must answer, never crash the node
            self.health.problem("failed_reload", f"reload failed: {exc!r}", ERROR)
            response.success, response.message = False, f"reload failed: {exc!r}"
        return response

    def describe(self) -> dict[str, Any]:
        """The manager's description plus where it came from and what could not be loaded."""
        manager = self.manager
        described = manager.describe() if manager is not None else {"models": {}, "engines": {}}
        return {"engines_file": self.engines_file, "problems": self.problems,
                "lifecycle_state": self.lifecycle_state(), **described}

    def _on_describe(self, request: Any, response: Any) -> Any:
        try:
            response.message = json.dumps(self.describe(), default=str)
            response.success = True
        except Exception as exc:
            response.success, response.message = False, f"describe failed: {exc!r}"
        return response

    # -- statistics file -------------------------------------------------------------------------------
    def write_statistics(self) -> Path | None:
        """The manager's statistics (and its streams') into `statistics_file`; None when not configured."""
        target, manager = self.param("statistics_file"), self.manager
        if not target or manager is None or manager.closed:
            return None
        path = Path(target).expanduser()
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            document = {"engines_file": self.engines_file, **manager.statistics()}
            if hasattr(manager, "stream_statistics"):
                document["streams"] = manager.stream_statistics()
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(document, indent=1, default=str))
            os.replace(partial, path)  # a reader never sees half a file
        except Exception as exc:  # a full disk or a closing manager must not take the node down
            self.health.problem("statistics_file_errors", f"could not write {path}: {exc!r}", WARN)
            return None
        return path

    def publish_diagnostics(self) -> None:
        super().publish_diagnostics()
        self.write_statistics()

    def destroy_node(self) -> None:
        self.write_statistics()
        super().destroy_node()

    # -- diagnostics --------------------------------------------------------------------------------------
    def diagnostic_statuses(self) -> list[Status]:
        """This node's status, one per core in use (or requested and absent), one per engine, one per camera
        stream (`<node>: stream front/proximity`, WARN below its minimum rate), power rails."""
        statuses = [self.health.status(self.status_name(self.STATUS_TASK), self.hardware_id())]
        statuses[0].values["lifecycle_state"] = self.lifecycle_state()
        manager = self.manager
        if manager is not None and not manager.closed:
            statuses.extend(self._report.statuses(manager.statistics(), manager.placements(),
                                                  prefix=self.status_prefix()))
            if hasattr(manager, "stream_statistics"):
                statuses.extend(stream_statuses(manager.stream_statistics(), self.status_prefix()))
        if power := self._power.values():
            statuses.append(Status(self.status_name("power"), "ina3221", message="watts per rail",
                                   values=power))
        return statuses


def main(args: list[str] | None = None) -> int:
    """`ros2 run dla_perception engine_manager`."""
    return spin_node(EngineManagerNode, args)
