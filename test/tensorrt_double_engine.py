"""Part of THE ONE SANCTIONED TEST DOUBLE (see tensorrt_double.py): the plan, the engine, the execution
context and the engine inspector (its JSON shape is described in tensorrt_double_build.py)."""

from __future__ import annotations

import ctypes
import json
import types
from typing import Any

import numpy as np
import onnxruntime
from tensorrt_double_types import DataType, Severity, Strict, TensorFormat, TensorIOMode, nptype

PLAN_MAGIC = b"TRT-DOUBLE-PLAN\n"


def _emit(logger: Any, severity: Severity, message: str) -> None:
    logger.log(Severity(severity), message)


def deserialize(module: types.ModuleType, logger: Any, data: bytes, runtime_core: int) -> ICudaEngine | None:
    state = module.double_state
    state["deserialized_on_dla_core"].append(runtime_core)
    if not data.startswith(PLAN_MAGIC):
        _emit(
            logger,
            Severity.ERROR,
            "1: [runtime.cpp::deserializeCudaEngine] Error Code 1: Serialization "
            "(Serialization assertion failed: magic tag does not match)",
        )
        return None
    try:
        plan = json.loads(data[len(PLAN_MAGIC) :])
    except ValueError:
        _emit(logger, Severity.ERROR, "Serialization: corrupt plan")
        return None
    core = None
    if plan["built_for_dla_core"] is not None:
        core = runtime_core if runtime_core >= 0 else 0  # unset (-1): the engine lands on DLA core 0
    return ICudaEngine(plan, core, module)


class ICudaEngine(Strict):
    __slots__ = ("_plan", "dla_core", "_module", "_io", "_session")

    def __init__(self, plan: dict[str, Any], dla_core: int | None, module: types.ModuleType) -> None:
        self._plan, self.dla_core, self._module = plan, dla_core, module  # dla_core: the double's record
        self._io = {
            name: (tuple(shape), DataType[dtype], TensorFormat[fmt], mode)
            for mode, key in ((TensorIOMode.INPUT, "inputs"), (TensorIOMode.OUTPUT, "outputs"))
            for name, shape, dtype, fmt in plan[key]
        }
        self._session = onnxruntime.InferenceSession(
            bytes.fromhex(plan["onnx"]), providers=["CPUExecutionProvider"]
        )

    num_io_tensors = property(lambda self: len(self._io))
    num_layers = property(lambda self: len(self._plan["layers"]))

    def get_tensor_name(self, index: int) -> str:
        return list(self._io)[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._io[name][3] if name in self._io else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._io[name][0]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._io[name][1]

    def get_tensor_format(self, name: str) -> TensorFormat:
        return self._io[name][2]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self)


class IExecutionContext(Strict):
    __slots__ = ("engine", "_addresses")

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.engine._module.double_state["tensor_addresses"].append((name, int(memory)))
        if name not in self.engine._io or not memory:
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        return (
            self.engine.get_tensor_mode(name) == TensorIOMode.INPUT
            and tuple(shape) == self.engine._io[name][0]
        )

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.engine._module.double_state["executions"].append(int(stream_handle))
        if set(self._addresses) != set(self.engine._io):
            return False  # TensorRT refuses to run with an I/O tensor lacking an address
        feeds = {}
        for name, (shape, dtype, _, mode) in self.engine._io.items():
            if mode == TensorIOMode.INPUT:
                numpy_type = np.dtype(nptype(dtype))
                raw = ctypes.string_at(self._addresses[name], int(np.prod(shape)) * numpy_type.itemsize)
                feeds[name] = np.frombuffer(raw, dtype=numpy_type).reshape(shape)
        outputs = self.engine._session.run(None, feeds)
        for arg, value in zip(self.engine._session.get_outputs(), outputs, strict=True):
            value = np.ascontiguousarray(value, dtype=nptype(self.engine._io[arg.name][1]))
            ctypes.memmove(self._addresses[arg.name], value.ctypes.data, value.nbytes)
        return True

    def execute_v2(self, bindings: list[int]) -> bool:  # synchronous, still in TensorRT 10
        for (name, _), pointer in zip(self.engine._io.items(), bindings, strict=True):
            self._addresses[name] = int(pointer)
        return self.execute_async_v3(-1)


class EngineInspector(Strict):
    __slots__ = ("engine", "execution_context")

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine, self.execution_context = engine, None

    def get_engine_information(self, format: Any) -> str:
        layers = self.engine._plan["layers"]
        listed = layers if self.engine._plan["detailed"] else [layer["Name"] for layer in layers]
        return json.dumps({"Layers": listed, "Bindings": list(self.engine._io)})
