"""launch_testing test of launch/robot.launch.py, for robots (`colcon test --packages-select dla_perception`).

It launches the real file twice (container:=true and container:=false) with a namespace, camera remaps,
use_sim_time:=true and an engines_file override, then checks: one process (the container) or three, the
three nodes in the namespace, the remapped inputs subscribed, `use_sim_time` true on every node (through
each node's parameter service), the engines file each engine manager loaded is the override (its
~/describe), /diagnostics carrying the engine manager's status once /clock ticks, and a clean exit. Where
launch_testing is not installed (the PyPI-only venv) the module is skipped; test/test_launch_graph.py
checks the same plan (graph.launch_plan) there and starts the executables as real processes.
"""

# ruff: noqa: E402, I001  (imports follow the skip; ruff takes the repository's launch/ folder for `launch`)
import json
import tempfile
import time
import unittest
from pathlib import Path

import pytest

for _module in ("launch_testing", "launch_ros"):
    pytest.importorskip(_module, reason=f"{_module} is not installable from PyPI; this test runs on robots")

import launch_testing
import launch_testing.actions
import launch_testing.asserts
import rclpy
from ament_index_python.packages import get_package_share_directory
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rcl_interfaces.srv import GetParameters
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

NAMESPACE = "launch_test"
NODES = ("engine_manager", "proximity_segmentation", "detection")
REMAPS = {"left_image": "/cam/left/image_rect", "right_image": "/cam/right/image_rect"}
ENGINES = Path(tempfile.mkdtemp(prefix="dla_launch_test_")) / "engines.yaml"
ENGINES.write_text("models: {}\n")  # no engines: the nodes start at once and say so in diagnostics


@pytest.mark.launch_test
@launch_testing.parametrize("container", ["true", "false"])
def generate_test_description(container):
    launch_file = Path(get_package_share_directory("dla_perception")) / "launch" / "robot.launch.py"
    arguments = {"namespace": NAMESPACE, "container": container, "use_sim_time": "true",
                 "engines_file": str(ENGINES), "log_level": "info", **REMAPS}
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(launch_file)),
                                 launch_arguments=arguments.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestRobotLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("robot_launch_probe")
        cls.clock = cls.node.create_publisher(Clock, "/clock", 10)
        cls.ticks = 0

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            type(self).ticks += 1  # simulated time for the nodes' timers (use_sim_time:=true)
            self.clock.publish(Clock(clock=Time(sec=1000 + self.ticks // 10, nanosec=0)))
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if predicate():
                return True
        return False

    def _call(self, service_type, name, request):
        client = self.node.create_client(service_type, name)
        self.assertTrue(client.wait_for_service(timeout_sec=30.0), name)
        future = client.call_async(request)
        self.assertTrue(self._spin_until(future.done), name)
        return future.result()

    def test_the_nodes_are_up_in_the_namespace(self):
        wanted = {(name, f"/{NAMESPACE}") for name in NODES}
        self.assertTrue(self._spin_until(lambda: wanted <= set(self.node.get_node_names_and_namespaces())))

    def test_one_process_in_the_container_three_without(self, proc_info, container):
        self._spin_until(lambda: False, timeout=3.0)  # let every process start
        expected = 1 if container == "true" else 3
        self.assertEqual(len(proc_info.process_names()), expected, proc_info.process_names())

    def test_use_sim_time_reaches_every_node(self):
        for name in NODES:
            response = self._call(GetParameters, f"/{NAMESPACE}/{name}/get_parameters",
                                  GetParameters.Request(names=["use_sim_time"]))
            self.assertTrue(response.values[0].bool_value, name)

    def test_the_engines_file_override_takes_effect(self, container):
        # In the container only the engine manager loads it; alone, every node has its own manager, and the
        # engine manager node is the one with ~/describe.
        response = self._call(Trigger, f"/{NAMESPACE}/engine_manager/describe", Trigger.Request())
        self.assertTrue(response.success)
        self.assertEqual(json.loads(response.message)["engines_file"], str(ENGINES))

    def test_remapped_inputs_are_subscribed(self):
        for topic in REMAPS.values():  # detection follows left_image by default
            subscribed = lambda topic=topic: self.node.count_subscribers(topic) > 0  # noqa: E731
            self.assertTrue(self._spin_until(subscribed), topic)
        self.assertTrue(self._spin_until(lambda: self.node.count_subscribers(REMAPS["left_image"]) >= 2))

    def test_diagnostics_carry_the_fully_qualified_names(self):
        seen = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
        name = f"/{NAMESPACE}/engine_manager: manager"  # robot.yaml sets diagnostic_updater.use_fqn
        self.assertTrue(self._spin_until(lambda: any(s.name == name for msg in seen for s in msg.status)))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
