"""The perception graph, in-process, as the replay runs it: its own rclpy context, one engine manager.

The nodes are the real ones (dla_perception.nodes), configured exactly as on a robot: the robot config
(ROS parameters file) is handed to rcl with `--params-file`, `use_sim_time` is on, and the detection
node's `image` input is remapped to the left camera for stereo bags, as robot.launch.py does. The
context gets its own DDS domain and discovers no other process (ROS_AUTOMATIC_DISCOVERY_RANGE=OFF for its
participant), so a replay never hears, or disturbs, a live robot or another replay.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dla_perception.replay.timing import RunLog, recording_factory

PROXIMITY_OUTPUTS = ("proximity/mask", "proximity/disparity", "proximity/range")
DETECTION_OUTPUTS = ("detections",)
DIAGNOSTICS = "diagnostics"  # /diagnostics; recorded, never waited for
NODE_CHOICES = ("proximity", "detection")  # the frame nodes a replay can run


class GraphError(Exception):
    """The graph cannot start (missing node code, engines file, models): a message for the user."""


def package_file(relative: str) -> Path:
    """A file installed under share/dla_perception, else the source tree's copy."""
    try:
        from ament_index_python.packages import get_package_share_directory

        candidate = Path(get_package_share_directory("dla_perception")) / relative
        if candidate.exists():
            return candidate
    except Exception:  # not installed as a ROS package: use the source tree
        pass
    return Path(__file__).resolve().parents[2] / relative


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

    def __init__(self, mode: str, engines_file: Path, robot_config: Path | None,
                 selection: Sequence[str] | None = None, domain_id: int | None = None) -> None:
        from dla_perception.nodes.spinning import isolated_context

        self.mode = mode
        self.selection = _checked_selection(mode, selection)
        self.run_log = RunLog()
        self.problems: list[str] = []
        self.nodes: list[GraphNode] = []
        self.manager = None
        self.domain_id = domain_id if domain_id is not None else _private_domain_id()
        # Deaf to every other process: foreign frames or outputs would break lock-step (issue 15).
        self.context = isolated_context(self.domain_id)
        try:
            self.manager = self._open_manager(engines_file)
            self._start_nodes(robot_config)
        except BaseException:
            self.close()
            raise

    # -- construction ---------------------------------------------------------------------------------

    def _open_manager(self, engines_file: Path) -> Any:
        from dla_perception.nodes.base import forward_core_logging
        from dla_perception.runtime.config import load_engines_config
        from dla_perception.runtime.manager import EngineManager

        try:  # missing model files are reported per model, like the nodes do
            config = load_engines_config(engines_file, require_files=False)
        except (OSError, ValueError) as exc:
            raise GraphError(str(exc)) from exc
        forward_core_logging()
        manager, problems = EngineManager.build_available(
            config, engine_factory=recording_factory(self.run_log, config.cache_dir))
        self.problems.extend(problems)
        return manager

    def _node_arguments(self, robot_config: Path | None, remaps: dict[str, str]) -> list[str]:
        arguments = ["--ros-args"]
        if robot_config is not None:
            arguments += ["--params-file", str(robot_config)]
        arguments += ["-p", "use_sim_time:=true"]  # after the file: the bag's clock always rules
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
        arguments = self._node_arguments(robot_config, {})
        node = EngineManagerNode(manager=self.manager, cli_args=arguments, **kwargs)
        self.nodes.append(GraphNode("engine_manager", node, [], [DIAGNOSTICS]))
        if "proximity" in self.selection:
            node = ProximitySegmentationNode(manager=self.manager, cli_args=arguments, **kwargs)
            self.nodes.append(GraphNode("proximity_segmentation", node, list(PROXIMITY_OUTPUTS),
                                        [DIAGNOSTICS]))
        if "detection" not in self.selection:
            return
        detection_remaps = {"image": "left/image_rect"} if self.mode == "stereo" else {}
        try:
            node = DetectionNode(
                manager=self.manager, cli_args=self._node_arguments(robot_config, detection_remaps), **kwargs
            )
        except Exception as exc:  # stereo replays stay useful without a detector; a mono one does not
            if self.mode != "stereo":
                raise GraphError(f"the detection node did not start: {exc}") from exc
            self.problems.append(f"detection node not started: {exc}")
        else:
            self.nodes.append(GraphNode("detection", node, list(DETECTION_OUTPUTS),
                                        ["detections/image", DIAGNOSTICS]))

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
        if self.manager is not None:
            self.manager.close()
            self.manager = None
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


def _private_domain_id() -> int:
    """A DDS domain of its own for this replay (a fixed one would collide with neighbours; random rarely)."""
    override = os.environ.get("DLA_PERCEPTION_REPLAY_DOMAIN_ID")
    if override:
        return int(override)
    return random.Random(os.getpid()).randint(100, 200)
