"""The perception graph that launch/robot.launch.py starts, as plain data and one pure function.

The launch file declares ARGUMENTS and hands their resolved values to `launch_plan`, which says which
processes to start with which parameters, remaps and ROS arguments; the launch file only turns that into
launch_ros `Node` actions. So everything that can drift (executables vs setup.py entry points, config keys
vs declared parameters, remapped topics vs subscriptions, what each argument does) is checked here, where
launch is not installable, by test/test_launch_graph.py, and for real on robots by test/launch/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PACKAGE = "dla_perception"


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Process:
    """One executable; `nodes` are the node names it creates (several for the container)."""

    executable: str
    nodes: tuple[str, ...]
    container: bool  # started when the `container` launch argument is true (else when false)


@dataclass(frozen=True)
class NodeLaunch:
    """What the launch file starts for one process: a launch_ros Node's arguments, resolved."""

    executable: str
    name: str | None  # None for the container: a name would rename each of its nodes
    namespace: str
    parameters: list[Any] = field(default_factory=list)  # [params file path, {name: value}]
    remappings: list[tuple[str, str]] = field(default_factory=list)
    ros_arguments: list[str] = field(default_factory=list)
    nodes: tuple[str, ...] = ()


# Launch arguments. Defaults that are share paths are given relative to share/dla_perception.
ROBOT_CONFIG = "config/robot.yaml"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
ARGUMENTS = (
    LaunchArgument("namespace", "", "Namespace of every node; all their topics are relative to it."),
    LaunchArgument("robot_config", ROBOT_CONFIG, "Node parameters file (ROS params YAML; default: the "
                   "installed config/robot.yaml, whose camera mount you should measure and set)."),
    LaunchArgument("engines_file", "", "Engines configuration (YAML); empty: the installed "
                   "config/engines.yaml. Set on every node, after robot_config."),
    LaunchArgument("use_sim_time", "false", "Take time from /clock (bag replay, simulation); set on every "
                   "node.", ("true", "false")),
    LaunchArgument("log_level", "info", "Log level of every node, given as --log-level in ros_arguments.",
                   LOG_LEVELS),
    LaunchArgument("container", "true", "true: the three nodes in one process sharing one engine manager; "
                   "false: one process per node, each with a private engine manager.", ("true", "false")),
    LaunchArgument("lifecycle", "false", "true: managed nodes that wait unconfigured for a lifecycle manager "
                   "(Nav2 lifecycle_manager: configure builds the engines, activate subscribes); false: they "
                   "start active.", ("true", "false")),
    LaunchArgument("image_transport", "raw", "raw: sensor_msgs/Image inputs; compressed: CompressedImage on "
                   "<image topic>/compressed (jpeg/png).", ("raw", "compressed")),
    LaunchArgument("left_image", "left/image_rect", "Left rectified image topic (remaps left/image_rect)."),
    LaunchArgument("right_image", "right/image_rect", "Right rectified image topic (remaps "
                   "right/image_rect)."),
    LaunchArgument("left_camera_info", "left/camera_info", "Left camera_info topic."),
    LaunchArgument("right_camera_info", "right/camera_info", "Right camera_info topic."),
    LaunchArgument("image", "", "Detection input image topic; empty: the left image (left_image)."),
    LaunchArgument("cameras", "", "Comma-separated camera names (e.g. front,rear,left,right): one "
                   "proximity_segmentation per camera in <namespace>/<camera>, all on the container's one "
                   "engine manager (needs container:=true; each camera's topics are its namespace's, so the "
                   "topic arguments above must stay unset). Empty: one unnamed camera."),
)

# Topic (as the nodes name it) -> the launch argument it is remapped to; a remap is only given when the
# value differs from the topic. `image` falls back to the left image's value.
REMAPS = (
    ("left/image_rect", "left_image"),
    ("right/image_rect", "right_image"),
    ("left/camera_info", "left_camera_info"),
    ("right/camera_info", "right_camera_info"),
    ("image", "image"),
)
FALLBACKS = {"image": "left_image"}

NODE_NAMES = ("engine_manager", "proximity_segmentation", "detection")
PROCESSES = (
    Process("perception_container", NODE_NAMES, container=True),
    *(Process(name, (name,), container=False) for name in NODE_NAMES),
)

# Console scripts of setup.py: executable -> "module:function".
ENTRY_POINTS = {
    "engine_manager": "dla_perception.nodes.engine_manager:main",
    "proximity_segmentation": "dla_perception.nodes.proximity:main",
    "detection": "dla_perception.nodes.detection:main",
    "perception_container": "dla_perception.nodes.container:main",
}

# What each node subscribes to (relative names, raw transport), for checking the remaps.
SUBSCRIPTIONS = {
    "engine_manager": (),
    "proximity_segmentation": (
        "left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info",
    ),
    "detection": ("image",),
}

# Parameters set from launch arguments, after robot_config (so they win): name -> (argument, type, the
# nodes that declare it).
ARGUMENT_PARAMETERS = {
    "engines_file": ("engines_file", str, NODE_NAMES),
    "use_sim_time": ("use_sim_time", bool, NODE_NAMES),
    "lifecycle": ("lifecycle", bool, NODE_NAMES),
    "image_transport": ("image_transport", str, ("proximity_segmentation", "detection")),
}


def argument(name: str) -> LaunchArgument:
    for item in ARGUMENTS:
        if item.name == name:
            return item
    raise KeyError(f"no launch argument {name!r}")


def processes(container: bool) -> list[Process]:
    """The processes started for a value of the `container` argument."""
    return [process for process in PROCESSES if process.container == container]


def _flag(value: str, name: str) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"launch argument {name} must be true or false, got {value!r}")
    return text == "true"


def launch_plan(values: dict[str, str]) -> list[NodeLaunch]:
    """The processes for resolved launch argument values (strings, as launch gives them; missing ones take
    their defaults). ValueError for a value outside an argument's choices."""
    resolved = {item.name: str(values.get(item.name, item.default)) for item in ARGUMENTS}
    for item in ARGUMENTS:
        if item.choices and resolved[item.name].lower() not in item.choices:
            raise ValueError(f"launch argument {item.name} must be one of {', '.join(item.choices)}, "
                             f"got {resolved[item.name]!r}")
    typed = {"engines_file": resolved["engines_file"],
             "use_sim_time": _flag(resolved["use_sim_time"], "use_sim_time"),
             "lifecycle": _flag(resolved["lifecycle"], "lifecycle"),
             "image_transport": resolved["image_transport"]}
    cameras = [name.strip() for name in resolved["cameras"].split(",") if name.strip()]
    if cameras and not _flag(resolved["container"], "container"):
        raise ValueError("launch argument cameras needs container:=true (one engine manager for all cameras)")
    remapped = [name for _, name in REMAPS if resolved[name] != argument(name).default]
    if cameras and remapped:
        raise ValueError(f"launch argument cameras: each camera subscribes in its own namespace; remap "
                         f"with a params file or per-camera drivers, not {', '.join(remapped)}")
    remappings = []
    for topic, name in REMAPS:
        target = resolved[name] or resolved.get(FALLBACKS.get(name, ""), "") or topic
        if target != topic:  # an identity remap is noise in `ros2 node info` and in logs
            remappings.append((topic, target))
    plan = []
    for process in processes(_flag(resolved["container"], "container")):
        overrides = {parameter: typed[parameter] for parameter, (_, _, nodes) in ARGUMENT_PARAMETERS.items()
                     if set(nodes) & set(process.nodes)}
        if cameras:  # read by the container from its engine_manager node (nodes/container.py)
            overrides["cameras"] = cameras
        subscribed = {topic for node in process.nodes for topic in SUBSCRIPTIONS[node]}
        plan.append(NodeLaunch(
            executable=process.executable,
            name=None if process.container else process.nodes[0],
            namespace=resolved["namespace"],
            parameters=[resolved["robot_config"], overrides],
            remappings=[(topic, target) for topic, target in remappings if topic in subscribed],
            ros_arguments=["--log-level", resolved["log_level"].lower()],
            nodes=process.nodes,
        ))
    return plan
