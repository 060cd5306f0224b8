"""How the nodes are spun (nodes/spinning.py): one single-threaded executor and thread per node, and the
isolated context of a lock-step replay. Real rclpy."""

from __future__ import annotations

import os
import threading

import pytest
from conftest import ros_domain_id

rclpy = pytest.importorskip("rclpy")

from sensor_msgs.msg import Range  # noqa: E402 - a message type package.xml declares
from test_nodes import wait_until  # noqa: E402

DOMAIN_ID = ros_domain_id(7)


def test_each_node_has_its_own_thread_and_a_raising_callback_stops_the_spinner_visibly() -> None:
    from dla_perception.nodes.spinning import IsolatedSpinner

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    talker = rclpy.create_node("talker", context=context)
    listener = rclpy.create_node("listener", context=context)
    threads: dict[str, str] = {}
    heard = threading.Event()

    def on_message(msg: Range) -> None:
        threads["listener"] = threading.current_thread().name
        if msg.range == 2.0:
            raise RuntimeError("a bug in a callback")
        heard.set()

    publisher = talker.create_publisher(Range, "/spin_test", 10)
    listener.create_subscription(Range, "/spin_test", on_message, 10)
    talker.create_timer(0.05, lambda: threads.setdefault("talker", threading.current_thread().name))
    spinner = IsolatedSpinner([talker, listener], context).start()
    try:
        wait_until(lambda: publisher.get_subscription_count() > 0)
        publisher.publish(Range(range=1.0))
        wait_until(heard.is_set)
        wait_until(lambda: "talker" in threads)
        assert threads == {"talker": "spin talker", "listener": "spin listener"}
        assert spinner.alive and not spinner.errors
        publisher.publish(Range(range=2.0))
        wait_until(lambda: not spinner.alive)
        assert [str(e) for e in spinner.errors] == ["a bug in a callback"]
    finally:
        spinner.shutdown()
        talker.destroy_node()
        listener.destroy_node()
        rclpy.shutdown(context=context)


def test_the_isolated_context_restores_the_discovery_environment(monkeypatch) -> None:
    from dla_perception.nodes.spinning import isolated_context

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_STATIC_PEERS", "192.0.2.1")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    context = isolated_context(DOMAIN_ID)
    try:
        assert context.ok()
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        assert os.environ["ROS_STATIC_PEERS"] == "192.0.2.1" and "ROS_LOCALHOST_ONLY" not in os.environ
    finally:
        rclpy.shutdown(context=context)
