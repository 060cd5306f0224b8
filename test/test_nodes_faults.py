"""A node's own status when a core its pipeline needs is stuck: which outputs are degraded, and why.

The detection node runs the test detector of test_nodes.py on an engine manager with two cores, whose
engines are real onnxruntime sessions that the test can make hang inside `run` (as a wedged DLA would).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import ros_domain_id

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402
from test_nodes import build_models  # noqa: E402
from test_runtime_faults import HealthLog  # noqa: E402

from dla_perception.runtime.config import EnginesConfig, ModelSpec  # noqa: E402
from dla_perception.runtime.engine import Engine  # noqa: E402
from dla_perception.runtime.errors import DeadlineExceeded  # noqa: E402
from dla_perception.runtime.manager import EngineManager  # noqa: E402
from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine  # noqa: E402

DOMAIN_ID = ros_domain_id(4)


class HangingEngine(Engine):
    """A real onnxruntime engine whose next run blocks until released, once armed."""

    def __init__(self, inner: OnnxRuntimeEngine, core: str) -> None:
        self.inner, self.model, self.core = inner, inner.model, core
        self.precision, self.backend = inner.precision, inner.backend
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def input_specs(self):
        return self.inner.input_specs()

    def output_specs(self):
        return self.inner.output_specs()

    def run(self, inputs):
        if not self.gate.is_set():
            self.entered.set()
            self.gate.wait()
        return self.inner.run(inputs)


def test_detection_status_names_its_degraded_outputs_while_a_core_is_stuck(tmp_path: Path) -> None:
    from dla_perception.nodes.detection import DetectionNode
    from dla_perception.nodes.diagnostics import ERROR, OK, WARN

    build_models(tmp_path)
    engines: dict[str, HangingEngine] = {}

    def factory(spec: ModelSpec, core: str) -> HangingEngine:
        engines[core] = HangingEngine(OnnxRuntimeEngine(spec.onnx, model=spec.name, intra_op_threads=1), core)
        return engines[core]

    spec = ModelSpec("detector", tmp_path / "detector.onnx", ("dla0", "dla1"), precision="fp16",
                     policy="round_robin", deadline_ms=300.0)
    config = EnginesConfig({"detector": spec}, tmp_path / "cache", {})
    manager = EngineManager(config, ["dla0", "dla1", "cpu"], engine_factory=factory, initial_backoff_s=0.05,
                            close_timeout_s=2.0)
    health = HealthLog(manager)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = DetectionNode(manager=manager, context=context, namespace="faults",
                         parameter_overrides=[Parameter("model", value=str(tmp_path / "detector.yaml"))])
    image = {"images": np.zeros((1, 3, 64, 64), np.float32)}
    try:
        assert node.models_in_use() == ["detector"]
        status = node.diagnostic_statuses()[0]
        assert status.level == OK and status.values["degraded_outputs"] == ""

        engines["dla0"].gate.clear()
        while not engines["dla0"].entered.is_set():  # round robin: at most two frames until dla0 hangs
            manager.infer("detector", image)  # answered by dla1 after dla0's deadline
        health.wait("stuck", "dla0")
        status = node.diagnostic_statuses()[0]
        assert status.level == WARN, status
        assert status.values["degraded_models"] == "detector"
        assert "/faults/detections/image" in status.values["degraded_outputs"].split(",")
        assert "outputs degraded" in status.message and "dla0 stuck since" in status.message
        assert "running on dla1" in status.message

        engines["dla1"].gate.clear()
        with pytest.raises(DeadlineExceeded, match="no other core"):
            manager.infer("detector", image)  # dla1 hangs too, and no core is left to retry on
        health.wait("stuck", "dla1")
        status = node.diagnostic_statuses()[0]
        assert status.level == ERROR and "outputs unavailable" in status.message

        for engine in engines.values():
            engine.gate.set()
        health.wait("restored", "dla0")
        health.wait("restored", "dla1")
        assert node.diagnostic_statuses()[0].values["degraded_outputs"] == ""
    finally:
        for engine in engines.values():
            engine.gate.set()
        node.destroy_node()
        manager.close()
        rclpy.shutdown(context=context)
