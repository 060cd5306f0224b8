"""`ros2 launch dla_perception robot.launch.py`: the perception graph on a robot.

Starts perception_container (engine_manager, proximity_segmentation and detection sharing one engine
manager) with config/robot.yaml and config/engines.yaml, or one process per node with container:=false.
A thin translation of dla_perception.nodes.graph, which the tests check against the package.

    ros2 launch dla_perception robot.launch.py namespace:=front left_image:=/zed/left/image_rect_color \
        right_image:=/zed/right/image_rect_color image:=/zed/left/image_rect_color use_sim_time:=true
"""

# ruff sees the launch/ folder as first-party; these are the ROS launch packages.
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from dla_perception.nodes import graph


def generate_launch_description() -> LaunchDescription:
    actions = []
    for argument in graph.ARGUMENTS:
        default = argument.default
        if argument.name == "robot_config":
            default = PathJoinSubstitution([FindPackageShare(graph.PACKAGE), *graph.ROBOT_CONFIG.split("/")])
        actions.append(DeclareLaunchArgument(argument.name, default_value=default,
                                             description=argument.description))

    parameters = [
        LaunchConfiguration("robot_config"),
        {name: ParameterValue(LaunchConfiguration(argument), value_type=value_type)
         for name, argument, value_type in graph.ARGUMENT_PARAMETERS},
    ]
    remappings = [(topic, LaunchConfiguration(name)) for topic, name in graph.REMAPS]
    in_container = LaunchConfiguration("container")
    for process in graph.PROCESSES:
        actions.append(Node(
            package=graph.PACKAGE,
            executable=process.executable,
            # A name would rename every node of the container; single-node processes keep theirs.
            name=None if process.container else process.nodes[0],
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            remappings=remappings,
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
            output="screen",
            emulate_tty=True,
            condition=IfCondition(in_container) if process.container else UnlessCondition(in_container),
        ))
    return LaunchDescription(actions)
