"""`ros2 launch dla_perception robot.launch.py`: the perception graph on a robot.

Starts perception_container (engine_manager, one proximity_segmentation per camera of `cameras`, and
detection, sharing one engine manager) with config/robot.yaml and config/engines.yaml, or one process per
node with container:=false.
A thin translation of dla_perception.nodes.graph.launch_plan, which the tests check against the package;
`ros2 launch dla_perception robot.launch.py --show-args` lists every argument with its description.

    ros2 launch dla_perception robot.launch.py namespace:=front left_image:=/zed/left/image_rect_color \\
        right_image:=/zed/right/image_rect_color use_sim_time:=true   # detection follows left_image
    ros2 launch dla_perception robot.launch.py cameras:=front,rear,left,right \\
        robot_config:=$(ros2 pkg prefix dla_perception)/share/dla_perception/config/four_cameras.yaml
"""

# ruff sees the launch/ folder as first-party; these are the ROS launch packages.
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from dla_perception.nodes import graph


def _nodes(context, *args, **kwargs):
    """The Node actions of graph.launch_plan for the arguments as given (resolved at launch time)."""
    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in graph.ARGUMENTS}
    return [
        Node(package=graph.PACKAGE, executable=process.executable, name=process.name,
             namespace=process.namespace, parameters=process.parameters, remappings=process.remappings,
             ros_arguments=process.ros_arguments, output="screen", emulate_tty=True)
        for process in graph.launch_plan(values)
    ]


def generate_launch_description() -> LaunchDescription:
    actions = []
    for argument in graph.ARGUMENTS:
        default = argument.default
        if argument.name == "robot_config":
            default = PathJoinSubstitution([FindPackageShare(graph.PACKAGE), *graph.ROBOT_CONFIG.split("/")])
        extra = {"choices": list(argument.choices)} if argument.choices else {}
        actions.append(DeclareLaunchArgument(argument.name, default_value=default,
                                             description=argument.description, **extra))
    actions.append(OpaqueFunction(function=_nodes))
    return LaunchDescription(actions)
