"""robot.launch.py's graph against the package: entry points, config/robot.yaml, declared parameters,
subscriptions, launch arguments; and the executables started as real processes.

`launch`/`launch_ros` are not installable here, so the launch file is a thin translation of
dla_perception.nodes.graph, checked here; test/launch/test_robot_launch.py runs it for real on robots.
"""

from __future__ import annotations

import ast
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, ros_domain_id

from dla_perception.nodes import graph
from dla_perception.nodes.parameters import NODE_PARAMETERS

rclpy = pytest.importorskip("rclpy")

DOMAIN_ID = ros_domain_id(2)
LAUNCH_FILE = REPO_ROOT / "launch" / "robot.launch.py"


def console_scripts() -> dict[str, str]:
    """setup.py's console_scripts as {name: "module:function"}, read from the source (not the install)."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = ast.literal_eval(value)
                    return dict(tuple(part.strip() for part in entry.split("=", 1)) for entry in entries)
    raise AssertionError("setup.py has no console_scripts")


def test_every_executable_is_an_entry_point_with_a_main() -> None:
    scripts = console_scripts()
    for process in graph.PROCESSES:
        assert scripts.get(process.executable) == graph.ENTRY_POINTS[process.executable], process
    for target in graph.ENTRY_POINTS.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_container_and_standalone_processes_cover_every_node_once() -> None:
    for container in (True, False):
        nodes = [node for process in graph.processes(container) for node in process.nodes]
        assert sorted(nodes) == sorted(graph.NODE_NAMES)


def _flat(parameters: dict, prefix: str = "") -> dict:
    """ROS params YAML nests dotted names ({diagnostic_updater: {use_fqn: true}}): flatten them back."""
    flat = {}
    for name, value in parameters.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def test_robot_yaml_sets_only_declared_parameters_with_matching_types() -> None:
    document = yaml.safe_load((REPO_ROOT / graph.ROBOT_CONFIG).read_text())
    seen = set()
    for key, section in document.items():
        # A `/**:` section would make rcl apply the per-node sections after `-p` command-line overrides.
        assert key.startswith("/**/"), f"{key}: name the node"
        node = key.removeprefix("/**/")
        assert node in NODE_PARAMETERS, f"{key} is not a node of the graph"
        seen.add(node)
        _check_section(node, _flat(section["ros__parameters"]))
    assert seen == set(graph.NODE_NAMES)


def _check_section(node: str, parameters: dict) -> None:
    declared = {spec.name: spec for spec in NODE_PARAMETERS[node]}
    for name, value in parameters.items():
        assert name in declared, f"{node} does not declare {name}"
        default = declared[name].default
        assert type(value) is type(default), f"{node}.{name}: {value!r} is not a {type(default).__name__}"
        if isinstance(default, list):
            assert {type(v) for v in value} <= {type(v) for v in default}, f"{node}.{name} element types"
        if declared[name].validate is not None:
            assert declared[name].validate(value) is None, f"{node}.{name}={value!r} is invalid"


def test_launch_arguments_remaps_and_parameters_are_consistent() -> None:
    names = {argument.name for argument in graph.ARGUMENTS}
    assert {"namespace", "robot_config", "engines_file", "use_sim_time", "log_level", "container"} <= names
    for argument in graph.ARGUMENTS:  # what `ros2 launch ... --show-args` prints
        assert argument.description.strip().endswith((".", ")")), argument
        assert not argument.choices or argument.default in argument.choices, argument
    subscribed = {topic for topics in graph.SUBSCRIPTIONS.values() for topic in topics}
    assert {topic for topic, _ in graph.REMAPS} == subscribed  # every input can be remapped
    for topic, name in graph.REMAPS:
        assert name in names and graph.argument(name).default in (topic, "")
    for parameter, (name, value_type, nodes) in graph.ARGUMENT_PARAMETERS.items():
        assert name in names
        for node in nodes:
            declared = {s.name: s.default for s in NODE_PARAMETERS[node]} | {"use_sim_time": False}
            assert isinstance(declared.get(parameter), value_type), (node, parameter)


def test_the_default_launch_is_one_container_with_only_the_detection_remap() -> None:
    (process,) = graph.launch_plan({})
    assert process.executable == "perception_container" and process.name is None
    assert process.nodes == graph.NODE_NAMES and process.namespace == ""
    assert process.remappings == [("image", "left/image_rect")]  # detection follows the left camera
    assert process.ros_arguments == ["--log-level", "info"]  # as ros_arguments, not a second --ros-args
    config, overrides = process.parameters
    assert config == graph.ROBOT_CONFIG
    assert overrides == {"engines_file": "", "use_sim_time": False, "lifecycle": False,
                         "image_transport": "raw"}


def test_container_false_gives_three_processes_each_with_every_argument() -> None:
    values = {"container": "false", "use_sim_time": "true", "engines_file": "/robot/engines.yaml",
              "namespace": "front", "log_level": "debug", "left_image": "/zed/left/image_rect_color",
              "image_transport": "compressed"}
    plan = graph.launch_plan(values)
    assert sorted(p.executable for p in plan) == sorted(graph.NODE_NAMES)
    for process in plan:
        assert process.name == process.executable and process.namespace == "front"
        overrides = process.parameters[1]
        assert overrides["use_sim_time"] is True and overrides["engines_file"] == "/robot/engines.yaml"
        assert process.ros_arguments == ["--log-level", "debug"]
        assert ("image_transport" in overrides) == (process.executable != "engine_manager")
    remaps = {p.executable: dict(p.remappings) for p in plan}
    assert remaps["proximity_segmentation"] == {"left/image_rect": "/zed/left/image_rect_color"}
    assert remaps["detection"] == {"image": "/zed/left/image_rect_color"}  # follows left_image
    assert remaps["engine_manager"] == {}
    identity = [(a, b) for p in plan for a, b in p.remappings if a == b]
    assert not identity


def test_bad_argument_values_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="container must be one of true, false"):
        graph.launch_plan({"container": "maybe"})
    with pytest.raises(ValueError, match="log_level"):
        graph.launch_plan({"log_level": "loud"})


def test_live_nodes_declare_exactly_the_table_and_subscribe_to_the_graph_topics(tmp_path) -> None:
    from dla_perception.nodes.detection import DetectionNode
    from dla_perception.nodes.engine_manager import EngineManagerNode
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        engines = tmp_path / "engines.yaml"
        engines.write_text("models: {}\n")
        overrides = [rclpy.parameter.Parameter("engines_file", value=str(engines))]
        for node_class in (EngineManagerNode, ProximitySegmentationNode, DetectionNode):
            node = node_class(context=context, parameter_overrides=overrides)
            try:
                name = node.get_name()
                declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}
                qos_overrides = {p for p in declared if p.startswith("qos_overrides.")}  # rclpy declares them
                declared -= qos_overrides
                assert declared == {spec.name for spec in NODE_PARAMETERS[name]}
                for entity in [*node.subscriptions, *node.publishers]:  # every one accepts QoS overrides
                    kind = "subscription" if entity in node.subscriptions else "publisher"
                    if entity.topic_name in ("/rosout", "/parameter_events", "/clock"):  # rclpy's own
                        continue
                    assert f"qos_overrides.{entity.topic_name}.{kind}.reliability" in qos_overrides, entity
                for parameter in declared:
                    descriptor = node.describe_parameter(parameter)
                    assert descriptor.description and descriptor.type != 0, (name, parameter)
                topics = {sub.topic_name.lstrip("/") for sub in node.subscriptions}
                assert set(graph.SUBSCRIPTIONS[name]) <= topics
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_relative_topics_follow_namespace_and_remaps(tmp_path) -> None:
    from dla_perception.nodes.proximity import ProximitySegmentationNode

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        engines = tmp_path / "engines.yaml"
        engines.write_text("models: {}\n")
        node = ProximitySegmentationNode(
            context=context, namespace="front",
            cli_args=["--ros-args", "-p", f"engines_file:={engines}",
                      "-r", "left/image_rect:=/zed/left/image"],
        )
        try:
            subscribed = {sub.topic_name for sub in node.subscriptions}
            assert {"/zed/left/image", "/front/right/image_rect", "/front/left/camera_info"} <= subscribed
            published = {pub.topic_name for pub in node.publishers}
            assert {"/front/proximity/mask", "/front/proximity/range", "/diagnostics"} <= published
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# -- the executables, as processes -------------------------------------------------------------------
def _run_until_diagnostics(target: str, ros_args: list[str], expect: str, timeout: float = 30.0) -> str:
    """Start `target` (module:function) as a process, wait for a /diagnostics status named `expect`,
    then SIGINT it; returns its output. The exit code must be 0."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    module, function = target.split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", code, "--ros-args", *ros_args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    seen = threading.Event()
    node = rclpy.create_node("launch_probe", context=context)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        if any(status.name == expect for status in msg.status):
            seen.set()

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout
        while not seen.is_set() and time.monotonic() < deadline and process.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert seen.is_set(), f"no '{expect}' status on /diagnostics; exit {process.poll()}"
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("did not exit on SIGINT:\n" + process.communicate()[0][-4000:]) from None
        assert process.returncode == 0, output
        return output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_perception_container_runs_with_robot_yaml(tmp_path) -> None:
    engines = tmp_path / "engines.yaml"
    engines.write_text("models: {}\n")
    output = _run_until_diagnostics(
        graph.ENTRY_POINTS["perception_container"],
        ["--params-file", str(REPO_ROOT / graph.ROBOT_CONFIG), "-p", f"engines_file:={engines}",
         "-r", "__ns:=/robot", "-p", "diagnostics_period_s:=0.2"],
        "/robot/engine_manager: manager",  # robot.yaml sets diagnostic_updater.use_fqn
    )
    assert "[robot.proximity_segmentation]" in output or "proximity" in output


def test_a_node_runs_alone_with_a_private_manager(tmp_path) -> None:
    output = _run_until_diagnostics(
        graph.ENTRY_POINTS["detection"],
        ["-p", f"engines_file:={tmp_path / 'absent.yaml'}", "-p", "diagnostics_period_s:=0.2"],
        "detection: pipeline",
    )
    assert "absent.yaml" in output  # says why it has no engines, and keeps running until told to stop


def test_launch_graph_executables_exist_once_installed() -> None:
    """After `make setup`, each executable is where launch_ros and `ros2 run` look: <prefix>/lib/<package>."""
    folder = Path(sys.prefix) / "lib" / graph.PACKAGE
    if not folder.is_dir():
        pytest.skip(f"{folder} missing: not `make setup`'s venv (or re-run it after setup.py changed)")
    assert {name for name in graph.ENTRY_POINTS if (folder / name).exists()} == set(graph.ENTRY_POINTS)


def test_the_launch_test_marker_is_registered() -> None:
    """With --strict-markers an unregistered `launch_test` mark fails collection wherever launch_testing is
    importable without its pytest plugin; registered, test/launch skips cleanly instead."""
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    markers = [line.split(":")[0].strip() for line in config["tool:pytest"]["markers"].splitlines() if line]
    assert "launch_test" in markers and "--strict-markers" in config["tool:pytest"]["addopts"]
