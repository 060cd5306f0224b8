"""perception_container: engine_manager, proximity_segmentation and detection in one process.

One EngineManager (the engine_manager node's) serves both pipelines, so the DLA cores are scheduled in one
place; the nodes follow it across ~/reload. A multi-threaded executor delivers messages while the nodes'
workers run the networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dla_perception.nodes.base import spin_nodes
from dla_perception.nodes.detection import DetectionNode
from dla_perception.nodes.engine_manager import EngineManagerNode
from dla_perception.nodes.proximity import ProximitySegmentationNode


@dataclass
class PerceptionContainer:
    engine_manager: EngineManagerNode
    proximity: ProximitySegmentationNode
    detection: DetectionNode

    @property
    def nodes(self) -> list[Any]:
        return [self.engine_manager, self.proximity, self.detection]

    def destroy(self) -> None:
        """Processing nodes first (they use the manager), the engine manager (which closes it) last."""
        for node in reversed(self.nodes):
            node.destroy_node()


def build_container(**node_kwargs: Any) -> PerceptionContainer:
    """The three nodes sharing one manager; node_kwargs (context, namespace, ...) go to every node.

    The processing nodes take the engine_manager node's manager when they are configured (at once, or
    with `lifecycle: true` when their lifecycle manager says so: engine_manager first).
    """
    engine_manager = EngineManagerNode(**node_kwargs)
    shared = lambda: engine_manager.manager  # noqa: E731
    try:
        proximity = ProximitySegmentationNode(manager=shared, **node_kwargs)
        detection = DetectionNode(manager=shared, **node_kwargs)
    except BaseException:
        engine_manager.destroy_node()
        raise
    engine_manager.add_manager_listener(proximity.set_manager)
    engine_manager.add_manager_listener(detection.set_manager)
    return PerceptionContainer(engine_manager, proximity, detection)


def main(args: Sequence[str] | None = None) -> int:
    """`ros2 run dla_perception perception_container` (what launch/robot.launch.py starts)."""

    def build() -> tuple[list[Any], Callable[[], None]]:
        container = build_container()
        return container.nodes, container.destroy

    return spin_nodes(build, args)
