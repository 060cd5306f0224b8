"""Managed nodes: the container's three nodes with `lifecycle: true`, driven through their real lifecycle
services (lifecycle_msgs/srv/ChangeState, GetState) from another node, as Nav2's lifecycle_manager does.

Checked: they start unconfigured with no input subscribed and no output advertised; configure builds the
engines (the shared manager) and the pipelines, and a processing node configured before the engine manager
fails with the reason and stays unconfigured; activate subscribes and frames produce outputs; deactivate
unsubscribes but keeps the engines and the pipeline (a second activate reuses them); cleanup releases them;
shutdown finalizes. Also a failed configure of the engine manager (engines file missing) and the default
(`lifecycle: false`): active at once.
"""

from __future__ import annotations

import threading

import pytest
from conftest import ros_domain_id

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from test_nodes import Outcomes, StereoSource, build_models, send_info_until_ready, wait_until  # noqa: E402

DOMAIN_ID = ros_domain_id(4)
TIMEOUT = 15.0


class LifecycleManagerStandIn:
    """What Nav2's lifecycle_manager does, through the same services: change_state and get_state."""

    def __init__(self, node) -> None:
        self.node = node
        self._clients: dict[str, tuple] = {}

    def _pair(self, name: str):
        from lifecycle_msgs.srv import ChangeState, GetState

        if name not in self._clients:
            self._clients[name] = (self.node.create_client(ChangeState, f"/{name}/change_state"),
                                   self.node.create_client(GetState, f"/{name}/get_state"))
        return self._clients[name]

    def _call(self, client, request):
        assert client.wait_for_service(timeout_sec=TIMEOUT), client.srv_name
        future = client.call_async(request)
        wait_until(future.done, TIMEOUT)
        return future.result()

    def change(self, name: str, transition: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        request = ChangeState.Request()
        request.transition.id = ids[transition]
        return self._call(self._pair(name)[0], request).success

    def state(self, name: str) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(self._pair(name)[1], GetState.Request()).current_state.label


class ManagedGraph:
    def __init__(self, tmp, lifecycle: bool = True, engines=None) -> None:
        from dla_perception.nodes.container import build_container

        self.engines = engines or build_models(tmp)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        overrides = [Parameter("engines_file", value=str(self.engines)),
                     Parameter("model", value=str(tmp / "detector.yaml")),
                     Parameter("planes_m", value=[1.0, 2.0]), Parameter("lifecycle", value=lifecycle)]
        self.container = build_container(context=self.context, parameter_overrides=overrides)
        self.tester = rclpy.create_node("lifecycle_manager_stand_in", context=self.context)
        self.manager = LifecycleManagerStandIn(self.tester)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        for node in (*self.container.nodes, self.tester):
            self.executor.add_node(node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.container.destroy()
        self.tester.destroy_node()
        rclpy.shutdown(context=self.context)


def subscribed(graph, topic: str) -> int:
    return graph.tester.count_subscribers(topic)


def test_the_transitions_through_the_lifecycle_services(tmp_path) -> None:
    graph = ManagedGraph(tmp_path)
    try:
        lifecycle, container = graph.manager, graph.container
        for name in ("engine_manager", "proximity_segmentation", "detection"):
            assert lifecycle.state(name) == "unconfigured"
        assert container.engine_manager.manager is None
        assert subscribed(graph, "/left/image_rect") == 0
        assert graph.tester.count_publishers("/proximity/mask") == 0

        # Out of order: the engines are not there yet. Refused, with the reason, and still unconfigured.
        assert not lifecycle.change("proximity_segmentation", "configure")
        assert lifecycle.state("proximity_segmentation") == "unconfigured"
        status = container.proximity.diagnostic_statuses()[0]
        assert status.level == 2 and "configure engine_manager first" in status.message
        assert status.values["lifecycle_state"] == "unconfigured"

        for name in ("engine_manager", "proximity_segmentation", "detection"):  # lifecycle_manager's order
            assert lifecycle.change(name, "configure"), name
            assert lifecycle.state(name) == "inactive"
        manager = container.engine_manager.manager
        assert manager is not None and container.proximity.manager is manager
        pipeline = container.proximity._pipeline
        assert pipeline is not None  # built at configure: the long part is done before activate
        assert container.proximity.diagnostic_statuses()[0].level == 0  # the failed configure is forgotten
        assert subscribed(graph, "/left/image_rect") == 0  # inactive: nothing subscribed yet
        assert graph.tester.count_publishers("/proximity/mask") == 1  # advertised, silent until active

        for name in ("engine_manager", "proximity_segmentation", "detection"):
            assert lifecycle.change(name, "activate"), name
        wait_until(lambda: subscribed(graph, "/left/image_rect") == 1 and subscribed(graph, "/image") == 1)
        source = StereoSource(graph)
        send_info_until_ready(container.proximity, source)
        outcomes = Outcomes(container.proximity)
        assert outcomes.wait(source.send_pair()).status == "published"

        assert lifecycle.change("proximity_segmentation", "deactivate")
        assert lifecycle.state("proximity_segmentation") == "inactive"
        wait_until(lambda: subscribed(graph, "/left/image_rect") == 0)
        assert not manager.closed and container.proximity._pipeline is pipeline  # engines kept
        assert lifecycle.change("proximity_segmentation", "activate")
        wait_until(lambda: subscribed(graph, "/left/image_rect") == 1)
        source = StereoSource(graph)
        send_info_until_ready(container.proximity, source)
        assert outcomes.wait(source.send_pair()).status == "published"
        assert container.proximity._pipeline is pipeline  # no rebuild on the second activate

        for name in ("proximity_segmentation", "detection", "engine_manager"):
            assert lifecycle.change(name, "deactivate") and lifecycle.change(name, "cleanup"), name
            assert lifecycle.state(name) == "unconfigured"
        assert manager.closed and container.engine_manager.manager is None  # released
        assert container.proximity._pipeline is None and container.proximity.manager is None
        assert graph.tester.count_publishers("/proximity/mask") == 0

        assert lifecycle.change("detection", "shutdown")
        assert lifecycle.state("detection") == "finalized"
    finally:
        graph.close()


def test_a_failed_configure_says_why_and_stays_unconfigured(tmp_path) -> None:
    graph = ManagedGraph(tmp_path, engines=tmp_path / "absent.yaml")
    try:
        assert not graph.manager.change("engine_manager", "configure")
        assert graph.manager.state("engine_manager") == "unconfigured"
        status = graph.container.engine_manager.diagnostic_statuses()[0]
        assert status.level == 2 and "absent.yaml" in status.message
        assert "still unconfigured" in status.message
    finally:
        graph.close()


def test_without_lifecycle_the_nodes_are_active_at_once(tmp_path) -> None:
    graph = ManagedGraph(tmp_path, lifecycle=False)
    try:
        for name in ("engine_manager", "proximity_segmentation", "detection"):
            assert graph.manager.state(name) == "active"
        wait_until(lambda: subscribed(graph, "/left/image_rect") == 1)
        assert graph.container.proximity._pipeline is not None
    finally:
        graph.close()
