"""launch_testing test of launch/robot.launch.py, for robots (`colcon test --packages-select dla_perception`).

It launches the real file with a namespace and camera remaps, then checks that the three nodes come up in
one container, that the remapped inputs are subscribed, that /diagnostics carries the engine manager's
status, that ~/describe answers JSON, and that everything exits cleanly. Where launch_testing is not
installed (the PyPI-only venv) the module is skipped; test/test_launch_graph.py covers the same graph
there with real processes.
"""

# ruff: noqa: E402, I001  (imports follow the skip; ruff takes the repository's launch/ folder for `launch`)
import json
import time
import unittest
from pathlib import Path

import pytest

for _module in ("launch_testing", "launch_ros"):
    pytest.importorskip(_module, reason=f"{_module} is not installable from PyPI; this test runs on robots")

import launch_testing.actions
import launch_testing.asserts
import rclpy
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from std_srvs.srv import Trigger

NAMESPACE = "launch_test"
REMAPS = {"left_image": "/cam/left/image_rect", "right_image": "/cam/right/image_rect",
          "image": "/cam/left/image_rect"}


@pytest.mark.launch_test
def generate_test_description():
    launch_file = Path(get_package_share_directory("dla_perception")) / "launch" / "robot.launch.py"
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(launch_file)),
            launch_arguments={"namespace": NAMESPACE, "log_level": "info", **REMAPS}.items(),
        ),
        launch_testing.actions.ReadyToTest(),
    ])


class TestRobotLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("robot_launch_probe")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if predicate():
                return True
        return False

    def test_three_nodes_in_the_namespace(self):
        wanted = {("engine_manager", f"/{NAMESPACE}"), ("proximity_segmentation", f"/{NAMESPACE}"),
                  ("detection", f"/{NAMESPACE}")}
        self.assertTrue(self._spin_until(
            lambda: wanted <= set(self.node.get_node_names_and_namespaces())))

    def test_remapped_inputs_are_subscribed(self):
        for topic in set(REMAPS.values()):
            subscribed = lambda topic=topic: self.node.count_subscribers(topic) > 0  # noqa: E731
            self.assertTrue(self._spin_until(subscribed), topic)

    def test_diagnostics_and_describe(self):
        seen = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
        self.assertTrue(self._spin_until(lambda: any(
            status.name == "dla_perception: engine_manager" for msg in seen for status in msg.status)))
        client = self.node.create_client(Trigger, f"/{NAMESPACE}/engine_manager/describe")
        self.assertTrue(client.wait_for_service(timeout_sec=30.0))
        future = client.call_async(Trigger.Request())
        self.assertTrue(self._spin_until(future.done))
        self.assertTrue(future.result().success)
        self.assertIn("models", json.loads(future.result().message))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
