"""Diagnostics that aggregate: two perception containers in /front and /rear publish distinct status names
(diagnostic_updater's `<node>: <task>` with use_fqn, as config/robot.yaml sets it), hardware ids name the
device or camera, and config/diagnostics_analyzers.yaml sorts every status into exactly one group.

diagnostic_aggregator is not installable here, so its GenericAnalyzer matching (name, startswith, contains,
regex) is applied by hand to what the real nodes publish on /diagnostics.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import yaml
from conftest import REPO_ROOT, ros_domain_id

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from test_nodes import build_models  # noqa: E402

DOMAIN_ID = ros_domain_id(6)
ANALYZERS = REPO_ROOT / "config" / "diagnostics_analyzers.yaml"
EXPECTED = {"engine_manager: manager", "engine_manager: core cpu", "engine_manager: core dla0",
            "engine_manager: engine proximity_head@cpu", "proximity_segmentation: pipeline",
            "proximity_segmentation: input stereo", "detection: pipeline", "detection: input image"}


def analyzer_groups() -> dict[str, dict]:
    document = yaml.safe_load(ANALYZERS.read_text())["analyzers"]["ros__parameters"]
    return {name: spec for name, spec in document.items() if isinstance(spec, dict)}


def matches(spec: dict, name: str) -> bool:
    """diagnostic_aggregator's GenericAnalyzer: any of name / startswith / contains / regex."""
    return (name in spec.get("name", []) or any(name.startswith(p) for p in spec.get("startswith", []))
            or any(part in name for part in spec.get("contains", []))
            or any(re.search(pattern, name) for pattern in spec.get("regex", [])))


@pytest.fixture(scope="module")
def two_robots(tmp_path_factory):
    """Containers in /front and /rear (one context, as two robots' cameras on one machine would be) and the
    statuses heard on /diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray

    from dla_perception.nodes.container import build_container

    engines = build_models(tmp_path_factory.mktemp("diagnostics"))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    overrides = [Parameter("engines_file", value=str(engines)), Parameter("diagnostics_period_s", value=0.2),
                 Parameter("diagnostic_updater.use_fqn", value=True)]
    containers = {ns: build_container(context=context, namespace=ns, parameter_overrides=overrides)
                  for ns in ("front", "rear")}
    listener = rclpy.create_node("aggregator_stand_in", context=context)
    heard: dict[str, object] = {}
    lock = threading.Lock()

    def record(msg: DiagnosticArray) -> None:
        with lock:
            heard.update({status.name: status for status in msg.status})

    listener.create_subscription(DiagnosticArray, "/diagnostics", record, 50)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    for container in containers.values():
        for node in container.nodes:
            executor.add_node(node)
    executor.add_node(listener)
    threading.Thread(target=executor.spin, daemon=True).start()
    deadline = time.monotonic() + 30.0  # every node publishes every 0.2 s; a loaded machine is slow
    wanted = {f"/{ns}/{name}" for ns in containers for name in EXPECTED}
    while time.monotonic() < deadline and not wanted <= set(heard):
        time.sleep(0.1)
    with lock:
        statuses = dict(heard)
    yield statuses
    executor.shutdown(timeout_sec=5.0)
    for container in containers.values():
        container.destroy()
    listener.destroy_node()
    rclpy.shutdown(context=context)


def test_two_namespaces_give_distinct_status_names(two_robots) -> None:
    front = {name for name in two_robots if name.startswith("/front/")}
    rear = {name for name in two_robots if name.startswith("/rear/")}
    assert {f"/front/{name}" for name in EXPECTED} <= front
    assert {name.removeprefix("/front/") for name in front} == {name.removeprefix("/rear/") for name in rear}
    assert not front & rear


def test_hardware_ids_name_the_device(two_robots) -> None:
    assert two_robots["/front/engine_manager: core cpu"].hardware_id == "cpu"
    assert two_robots["/front/engine_manager: core dla0"].hardware_id == "dla0"  # requested, absent: WARN
    assert two_robots["/rear/engine_manager: engine proximity_head@cpu"].hardware_id == "cpu"


def test_every_status_falls_into_exactly_one_analyzer_group(two_robots) -> None:
    groups = analyzer_groups()
    assert {"cores", "engines", "streams", "nodes"} <= set(groups)
    for spec in groups.values():
        assert spec["type"] == "diagnostic_aggregator/GenericAnalyzer" and spec["path"]
    placed = {name: [group for group, spec in groups.items() if matches(spec, name)] for name in two_robots}
    assert all(len(found) == 1 for found in placed.values()), placed
    by_group = {group: {n for n, found in placed.items() if found == [group]} for group in groups}
    assert "/front/engine_manager: core cpu" in by_group["cores"]
    assert "/rear/engine_manager: engine proximity_head@cpu" in by_group["engines"]
    assert "/front/proximity_segmentation: input stereo" in by_group["streams"]
    assert "/rear/detection: pipeline" in by_group["nodes"]


def test_without_use_fqn_the_names_are_diagnostic_updaters_plain_ones() -> None:
    from dla_perception.nodes.diagnostics import DiagnosticsReport

    report = DiagnosticsReport({"cpu": 100.0})
    (status,) = report.statuses({"cores": {"cpu": {"inferences": 1}}}, [], prefix="engine_manager")
    assert status.name == "engine_manager: core cpu" and status.hardware_id == "cpu"
    assert matches(analyzer_groups()["cores"], status.name)
