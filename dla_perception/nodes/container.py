"""perception_container: engine_manager, one proximity_segmentation per camera and detection in one process.

One EngineManager (the engine_manager node's) serves every pipeline, so the DLA cores are scheduled in one
place across cameras (runtime/streams.py); the nodes follow it across ~/reload. The engine_manager node's
`cameras` parameter names the cameras: one proximity node per camera in `<container namespace>/<camera>`
(its topics `<camera>/left/image_rect`, ...; its parameters from the params file under that node's name),
and `detection_camera` the camera the detection node runs in. The default, one unnamed camera, is the
single-camera graph on the container's own topics.
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
    cameras: dict[str, ProximitySegmentationNode]
    detection: DetectionNode

    @property
    def proximity(self) -> ProximitySegmentationNode:
        """The first camera's node (the only one by default)."""
        return next(iter(self.cameras.values()))

    @property
    def nodes(self) -> list[Any]:
        return [self.engine_manager, *self.cameras.values(), self.detection]

    def destroy(self) -> None:
        """Processing nodes first (they use the manager), the engine manager (which closes it) last."""
        for node in reversed(self.nodes):
            node.destroy_node()


def camera_names(values: Sequence[str]) -> list[str]:
    """The `cameras` parameter checked: names usable as a namespace part, each once ([""]: one unnamed)."""
    names = [str(name).strip("/") for name in values] or [""]
    if len(names) > 1 and "" in names:
        raise ValueError(f"cameras {list(values)}: an unnamed camera cannot share a container with others")
    if len(set(names)) != len(names):
        raise ValueError(f"cameras {list(values)}: a camera is listed twice")
    for name in names:
        if name and not all(part.replace("_", "a").isalnum() and not part[0].isdigit()
                            for part in name.split("/")):
            raise ValueError(f"camera '{name}' is not a valid namespace name (letters, digits, _)")
    return names


def _in_camera(node_kwargs: dict[str, Any], namespace: str, camera: str) -> dict[str, Any]:
    """node_kwargs for a node in `<namespace>/<camera>`: a node-local `__ns` remap, which wins over the
    container's own (a launch file's namespace is a process-wide `__ns` remap)."""
    if not camera:
        return dict(node_kwargs)
    kwargs = dict(node_kwargs)
    kwargs.pop("namespace", None)
    full = f"{namespace.rstrip('/')}/{camera}"
    kwargs["cli_args"] = [*kwargs.get("cli_args", []), "--ros-args", "-r", f"__ns:={full}"]
    return kwargs


def build_container(**node_kwargs: Any) -> PerceptionContainer:
    """The nodes sharing one manager; node_kwargs (context, namespace, ...) go to every node.

    The processing nodes take the engine_manager node's manager when they are configured (at once, or
    with `lifecycle: true` when their lifecycle manager says so: engine_manager first).
    """
    engine_manager = EngineManagerNode(**node_kwargs)
    shared = lambda: engine_manager.manager  # noqa: E731
    built: list[Any] = []
    try:
        cameras = camera_names(engine_manager.param("cameras"))
        detection_camera = engine_manager.param("detection_camera").strip("/") or cameras[0]
        if detection_camera not in cameras:
            raise ValueError(f"detection_camera '{detection_camera}' is not one of cameras {cameras}")
        namespace = engine_manager.get_namespace()
        proximity = {}
        for camera in cameras:
            proximity[camera] = ProximitySegmentationNode(manager=shared, camera=camera,
                                                          **_in_camera(node_kwargs, namespace, camera))
            built.append(proximity[camera])
        detection = DetectionNode(manager=shared, camera=detection_camera,
                                  **_in_camera(node_kwargs, namespace, detection_camera))
    except BaseException:
        for node in reversed(built):
            node.destroy_node()
        engine_manager.destroy_node()
        raise
    for node in [*proximity.values(), detection]:
        engine_manager.add_manager_listener(node.set_manager)
    return PerceptionContainer(engine_manager, proximity, detection)


def main(args: Sequence[str] | None = None) -> int:
    """`ros2 run dla_perception perception_container` (what launch/robot.launch.py starts)."""

    def build() -> tuple[list[Any], Callable[[], None]]:
        container = build_container()
        return container.nodes, container.destroy

    return spin_nodes(build, args)
