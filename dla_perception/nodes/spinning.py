"""How the nodes are spun: each node on its own single-threaded executor and thread.

This is rclcpp's `component_container_isolated` layout, chosen because the nodes never block in a callback
(a frame is handed to the node's own worker thread), so a callback only needs a thread that is free when
the message arrives. rclpy's MultiThreadedExecutor is not used: up to rclpy 7.1 (Jazzy) it re-submits a
task that waits in its thread pool's queue on every wake-up (ros2/rclpy#1452, fixed upstream by #1547),
so under load the queue fills with hundreds of copies and message delivery stalls for hundreds of ms —
the stalls measured in issue 15 (docs/ros.md, "Latency"). One executor per node also means a slow
callback of one node (the engine manager's ~/reload) never delays another node's images.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.node import Node

JOIN_TIMEOUT_S = 5.0
# What rcl reads at init to decide which other participants this one discovers (ROS 2 Iron and later).
_DISCOVERY_VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY")
_environment_lock = threading.Lock()


def isolated_context(domain_id: int) -> Any:
    """A started rclpy Context whose nodes talk to each other only: no other process discovers them.

    For a graph that must hear nothing but itself (a lock-step replay: another replay, a robot or a bag
    player on the same DDS domain would feed its nodes foreign frames and its recorder foreign outputs).
    rcl reads the discovery settings from the environment at init, so they are set to
    ROS_AUTOMATIC_DISCOVERY_RANGE=OFF (without static peers or the older ROS_LOCALHOST_ONLY, which would
    override it) for that call only, under a lock, and restored at once.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    context = Context()
    with _environment_lock:
        saved = {name: os.environ.get(name) for name in _DISCOVERY_VARIABLES}
        try:
            for name in _DISCOVERY_VARIABLES:
                os.environ.pop(name, None)
            os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "OFF"
            rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return context


class IsolatedSpinner:
    """Spins each node on its own SingleThreadedExecutor in its own daemon thread.

    `start()` starts every thread; `alive` is False once any of them stopped (a callback raised: the
    caller should shut down rather than keep a half-dead graph); `shutdown()` stops and joins them all.
    """

    def __init__(self, nodes: Sequence[Node], context: Any = None) -> None:
        self._context = context
        self._executors: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._started = False
        self.errors: list[BaseException] = []
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> Node:
        """Spin one more node (at once when already started)."""
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self._context or node.context)
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(executor,), name=f"spin {node.get_name()}",
                                  daemon=True)
        self._executors.append(executor)
        self._threads.append(thread)
        if self._started:
            thread.start()
        return node

    def _spin(self, executor: Any) -> None:
        try:
            executor.spin()
        except BaseException as exc:  # kept for the caller, which decides to stop
            from rclpy.executors import ExternalShutdownException

            if not isinstance(exc, ExternalShutdownException):
                self.errors.append(exc)

    def start(self) -> IsolatedSpinner:
        self._started = True
        for thread in self._threads:
            thread.start()
        return self

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def shutdown(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        for executor in self._executors:
            executor.shutdown(timeout_sec=0)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)

    def __enter__(self) -> IsolatedSpinner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def spin_nodes(build: Callable[[], tuple[Sequence[Node], Callable[[], None]]],
               args: Sequence[str] | None = None) -> int:
    """main() body of the executables: build the nodes, spin them until SIGINT/SIGTERM, clean up.

    `build()` returns (nodes, destroy). The signals are handled here rather than by rclpy, so that the
    executors stop and the nodes are destroyed while the context is still valid: destroying publishers
    after rclpy's own handler has shut the context down crashes now and then (ros2/rclpy#178, #253).
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    destroy: Callable[[], None] | None = None
    try:
        nodes, destroy = build()
        spinner = IsolatedSpinner(nodes).start()
        while not stop.wait(0.2) and spinner.alive:
            pass
        spinner.shutdown()
        for error in spinner.errors:
            nodes[0].get_logger().error(f"a callback raised, shutting down: {error!r}")
    finally:
        if destroy is not None:
            destroy()
        rclpy.try_shutdown()
    return 1 if spinner.errors else 0


def spin_node(node_factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """spin_nodes for one node."""

    def build() -> tuple[list[Node], Callable[[], None]]:
        node = node_factory()
        return [node], node.destroy_node

    return spin_nodes(build, args)
