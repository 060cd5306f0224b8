"""The perception graph that launch/robot.launch.py starts, as plain data.

The launch file is a thin translation of this description into launch/launch_ros actions, so everything
that can drift (executables vs setup.py entry points, config keys vs declared parameters, remapped topics
vs subscriptions) is checked here, where launch is not installable, by test/test_launch_graph.py.
"""

from __future__ import annotations

from dataclasses import dataclass

PACKAGE = "dla_perception"


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


@dataclass(frozen=True)
class Process:
    """One executable; `nodes` are the node names it creates (several for the container)."""

    executable: str
    nodes: tuple[str, ...]
    container: bool  # started when the `container` launch argument is true (else when false)


# Launch arguments. Defaults that are share paths are given relative to share/dla_perception.
ROBOT_CONFIG = "config/robot.yaml"
ARGUMENTS = (
    LaunchArgument("namespace", "", "Namespace of every node (topics are relative to it)."),
    LaunchArgument("robot_config", ROBOT_CONFIG, "Node parameters file (default: the installed one)."),
    LaunchArgument("engines_file", "", "Engines configuration; empty: the installed config/engines.yaml."),
    LaunchArgument("use_sim_time", "false", "Use /clock (bag replay, simulation)."),
    LaunchArgument("log_level", "info", "Log level: debug, info, warn, error, fatal."),
    LaunchArgument("container", "true", "true: the three nodes in one process sharing one engine manager; "
                   "false: one process per node, each with a private engine manager."),
    LaunchArgument("left_image", "left/image_rect", "Left rectified image topic."),
    LaunchArgument("right_image", "right/image_rect", "Right rectified image topic."),
    LaunchArgument("left_camera_info", "left/camera_info", "Left camera_info topic."),
    LaunchArgument("right_camera_info", "right/camera_info", "Right camera_info topic."),
    LaunchArgument("image", "image", "Detection input image topic."),
)

# Topic (as the nodes name it) -> the launch argument it is remapped to.
REMAPS = (
    ("left/image_rect", "left_image"),
    ("right/image_rect", "right_image"),
    ("left/camera_info", "left_camera_info"),
    ("right/camera_info", "right_camera_info"),
    ("image", "image"),
)

# Parameters set on every node from launch arguments (after robot_config, so they win), with their type
# (given explicitly so that an empty path stays "" instead of being read as YAML null).
ARGUMENT_PARAMETERS = (("engines_file", "engines_file", str), ("use_sim_time", "use_sim_time", bool))

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

# What each node subscribes to (relative names), for checking the remaps.
SUBSCRIPTIONS = {
    "engine_manager": (),
    "proximity_segmentation": (
        "left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info",
    ),
    "detection": ("image",),
}


def argument(name: str) -> LaunchArgument:
    for item in ARGUMENTS:
        if item.name == name:
            return item
    raise KeyError(f"no launch argument {name!r}")


def processes(container: bool) -> list[Process]:
    """The processes started for a value of the `container` argument."""
    return [process for process in PROCESSES if process.container == container]
