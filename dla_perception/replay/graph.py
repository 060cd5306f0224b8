"""The perception graph, in-process, as the replay runs it: its own rclpy context, one engine manager.

The nodes are the real ones (dla_perception.nodes), configured exactly as on a robot: the robot config
(ROS parameters file) is handed to rcl with `--params-file`, `use_sim_time` is on, and the detection
node's `image` input is remapped to the left camera for stereo bags, as robot.launch.py does; `-p`
overrides come after the file, as with `ros2 run`. The context gets its own DDS domain and discovers no
other process (ROS_AUTOMATIC_DISCOVERY_RANGE=OFF for its participant), so a replay never hears, or
disturbs, a live robot or another replay. The engine manager comes from the caller (an engine_cache entry,
possibly used by earlier replays of the same process); the graph never closes it.

DDS domain ids: Fast DDS and Cyclone DDS derive UDP ports from the id (7400 + 250 * id + ...). Ids 0-101
and 215-232 keep every port of a domain out of Linux's ephemeral range (32768-60999, which other
programs' outgoing connections take at random); ids in between can fail to bind at random. See "The
ROS_DOMAIN_ID" in the ROS 2 documentation.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dla_perception.replay.engine_cache import CachedEngines
from dla_perception.replay.timing import RunLog

PROXIMITY_OUTPUTS = ("proximity/mask", "proximity/disparity", "proximity/range")
# Recorded when the node publishes them (design.md's names; point cloud and floor grid).
PROXIMITY_EXTRA_OUTPUTS = ("proximity/points", "proximity/occupancy")
DETECTION_OUTPUTS = ("detections",)
DIAGNOSTICS = "diagnostics"  # /diagnostics; recorded, never waited for
NODE_CHOICES = ("proximity", "detection")  # the frame nodes a replay can run
SAFE_DOMAIN_IDS = (*range(0, 102), *range(215, 233))  # clear of Linux's ephemeral ports (module docstring)


class GraphError(Exception):
    """The graph cannot start (missing node code, engines file, models): a message for the user."""


def package_file(relative: str) -> Path:
    """A file installed under share/dla_perception (ament index, else this prefix), else the source tree's."""
    from dla_perception.share import share_path

    return share_path(relative)


@dataclass
class GraphNode:
    """One started node, the output topics the replay waits for, and those it only records."""

    name: str
    node: Any
    required: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)

    @property
    def answers_frames(self) -> bool:
        """Whether the node processes frames (the engine manager node only reports)."""
        return bool(self.required)


class PerceptionGraph:
    """Builds the manager and the nodes; `close()` tears everything down (safe after a failed start)."""

    def __init__(self, mode: str, engines: CachedEngines, robot_config: Path | None,
                 selection: Sequence[str] | None = None, domain_id: int | None = None,
                 parameters: Sequence[str] = (), image_transport: str = "raw") -> None:
        from dla_perception.nodes.spinning import isolated_context

        self.mode = mode
        self.image_transport = image_transport  # the bag's camera images: raw or compressed
        self.selection = _checked_selection(mode, selection)
        self.overrides = parse_parameters(parameters)
        self.run_log = RunLog()
        self.engines = engines
        self.manager = engines.manager
        self.problems: list[str] = list(engines.problems)
        self.nodes: list[GraphNode] = []
        self.drops_before = _drops(self.manager)
        self.domain_id = domain_id if domain_id is not None else private_domain_id()
        # Deaf to every other process: foreign frames or outputs would break lock-step (issue 15).
        self.context = isolated_context(self.domain_id)
        engines.target.log = self.run_log
        try:
            self._start_nodes(robot_config)
            self._check_overrides()
        except BaseException:
            self.close()
            raise

    # -- construction ---------------------------------------------------------------------------------

    def _node_arguments(self, robot_config: Path | None, remaps: dict[str, str], node_name: str) -> list[str]:
        arguments = ["--ros-args"]
        if robot_config is not None:
            arguments += ["--params-file", str(robot_config)]
        for target, name, value in self.overrides:  # after the file, as `ros2 run ... -p` would be
            if target in (None, node_name):
                arguments += ["-p", f"{name}:={value}"]
        if node_name != "engine_manager":  # the bag's images decide, as the camera driver would
            arguments += ["-p", f"image_transport:={self.image_transport}"]
        arguments += ["-p", "use_sim_time:=true"]  # last: the bag's clock always rules
        for source, target in remaps.items():
            arguments += ["-r", f"{source}:={target}"]
        return arguments

    def _start_nodes(self, robot_config: Path | None) -> None:
        try:
            from dla_perception.nodes.detection import DetectionNode
            from dla_perception.nodes.engine_manager import EngineManagerNode
            from dla_perception.nodes.proximity import ProximitySegmentationNode
        except ImportError as exc:
            raise GraphError(f"the perception nodes are not importable: {exc}") from exc
        kwargs = {"context": self.context}
        arguments = self._node_arguments(robot_config, {}, "engine_manager")
        node = EngineManagerNode(manager=self.manager, cli_args=arguments, **kwargs)
        self.nodes.append(GraphNode("engine_manager", node, [], [DIAGNOSTICS]))
        if "proximity" in self.selection:
            arguments = self._node_arguments(robot_config, {}, "proximity_segmentation")
            node = ProximitySegmentationNode(manager=self.manager, cli_args=arguments, **kwargs)
            self.nodes.append(GraphNode("proximity_segmentation", node, list(PROXIMITY_OUTPUTS),
                                        [*PROXIMITY_EXTRA_OUTPUTS, DIAGNOSTICS]))
        if "detection" not in self.selection:
            return
        detection_remaps = {"image": "left/image_rect"} if self.mode == "stereo" else {}
        try:
            arguments = self._node_arguments(robot_config, detection_remaps, "detection")
            node = DetectionNode(manager=self.manager, cli_args=arguments, **kwargs)
        except Exception as exc:  # stereo replays stay useful without a detector; a mono one does not
            if self.mode != "stereo":
                raise GraphError(f"the detection node did not start: {exc}") from exc
            self.problems.append(f"detection node not started: {exc}")
        else:
            self.nodes.append(GraphNode("detection", node, list(DETECTION_OUTPUTS),
                                        ["detections/image", DIAGNOSTICS]))

    def _check_overrides(self) -> None:
        """A `-p` that no node declares is a typo, not a silent no-op."""
        for target, name, _ in self.overrides:
            nodes = [n for n in self.nodes if target in (None, n.name)]
            if target is not None and not nodes:
                raise GraphError(f"-p {target}:{name}: no node {target} in this replay "
                                 f"(nodes: {', '.join(n.name for n in self.nodes)})")
            if not any(n.node.has_parameter(name) for n in nodes):
                declared = sorted({p for n in nodes for p in n.node.get_parameters_by_prefix("")
                                   if not p.startswith("qos_overrides")})
                raise GraphError(f"-p {name}: no {'node' if target is None else target} declares it; "
                                 f"parameters: {', '.join(declared)}")

    def drops(self) -> dict[str, int]:
        """Requests dropped from full queues during this replay, per core (the manager may be older)."""
        now = _drops(self.manager)
        return {core: count - self.drops_before.get(core, 0) for core, count in now.items()}

    # -- what the replay needs to know ----------------------------------------------------------------

    def parameter(self, node_name: str, name: str, default: Any = None) -> Any:
        for graph_node in self.nodes:
            if graph_node.name == node_name and graph_node.node.has_parameter(name):
                return graph_node.node.get_parameter(name).value
        return default

    def frame_nodes(self) -> list[GraphNode]:
        """The nodes that answer each frame (the replay waits for these)."""
        return [graph_node for graph_node in self.nodes if graph_node.answers_frames]

    def rcl_nodes(self) -> list[Any]:
        return [graph_node.node for graph_node in self.nodes]

    # -- teardown -------------------------------------------------------------------------------------

    def close(self) -> None:
        import rclpy

        for graph_node in self.nodes:
            try:
                graph_node.node.destroy_node()
            except Exception:  # teardown continues whatever one node does
                pass
        self.nodes = []
        if self.engines.target.log is self.run_log:
            self.engines.target.log = None
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def _checked_selection(mode: str, selection: Sequence[str] | None) -> tuple[str, ...]:
    """Which frame nodes to run: the requested ones, or every one the bag can feed."""
    available = ("proximity", "detection") if mode == "stereo" else ("detection",)
    if not selection:
        return available
    unknown = [name for name in selection if name not in NODE_CHOICES]
    if unknown:
        raise GraphError(f"unknown node(s) {unknown}; choose from {', '.join(NODE_CHOICES)}")
    unfed = [name for name in selection if name not in available]
    if unfed:
        raise GraphError(f"this {mode} bag cannot feed {', '.join(unfed)} (it needs the stereo topics)")
    return tuple(dict.fromkeys(selection))


def parse_parameters(parameters: Sequence[str]) -> list[tuple[str | None, str, str]]:
    """`-p name:=value` (every node) or `-p node:name:=value` (one node) as (node or None, name, value)."""
    parsed = []
    for text in parameters:
        key, separator, value = text.partition(":=")
        node, _, name = key.rpartition(":")
        if not separator or not name.strip() or not value.strip():
            raise GraphError(f"bad parameter {text!r}: expected NAME:=VALUE or NODE:NAME:=VALUE, "
                             "e.g. -p alert_distance_m:=1.5")
        parsed.append((node.strip() or None, name.strip(), value.strip()))
    return parsed


def _drops(manager: Any) -> dict[str, int]:
    cores = manager.statistics().get("cores", {}) if manager is not None else {}
    return {core: int((stats or {}).get("drops", 0)) for core, stats in cores.items()}


def checked_domain_id(domain_id: int) -> int:
    if domain_id not in SAFE_DOMAIN_IDS:
        raise GraphError(f"DDS domain id {domain_id} is outside 0-101 and 215-232, where its ports would "
                         "overlap Linux's ephemeral port range")
    return domain_id


def domain_ids(base: int, count: int) -> list[int]:
    """`count` distinct safe domain ids from `base` on (215-232 follow 101; wraps after 232)."""
    start = SAFE_DOMAIN_IDS.index(checked_domain_id(base))
    if count > len(SAFE_DOMAIN_IDS):
        raise GraphError(f"{count} workers on one machine need more than the {len(SAFE_DOMAIN_IDS)} safe "
                         "DDS domain ids")
    return [SAFE_DOMAIN_IDS[(start + k) % len(SAFE_DOMAIN_IDS)] for k in range(count)]


def private_domain_id() -> int:
    """A DDS domain of its own for this replay: DLA_PERCEPTION_REPLAY_DOMAIN_ID, else one of 215-232.

    Those 18 ids are rarely a robot's (the default is 0) and safe for ports; two replays started at once
    without the variable may still meet (one chance in 18): give each its own id, or use `--workers`.
    """
    override = os.environ.get("DLA_PERCEPTION_REPLAY_DOMAIN_ID")
    if override:
        return checked_domain_id(int(override))
    live = os.environ.get("ROS_DOMAIN_ID", "0")
    choices = [d for d in range(215, 233) if str(d) != live]
    return random.Random(os.getpid()).choice(choices)
