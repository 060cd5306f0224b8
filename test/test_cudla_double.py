"""The second sanctioned double against the real `cuda.bindings.cudla` (cuda-bindings 13.x, x86 wheel), and
the cudla.h rules it enforces. If one of these fails the double drifted from cuDLA: fix the double against
the cited source, not the test."""

from __future__ import annotations

import enum
import inspect
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cudla_double
import cudla_double_runtime

real_cudla = pytest.importorskip(
    "cuda.bindings.cudla", reason="cuda-bindings 13.x (requirements/dev.txt) not installed: no real surface"
)
real_runtime = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings 13.x is not installed")
DOUBLE_ONLY = {"double_state", "double_enqueue", "double_owner", "runtime"}


def _public(module) -> dict:
    return {name: value for name, value in vars(module).items() if not name.startswith("_")
            and name not in DOUBLE_ONLY}


def _params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _compare(double, real) -> int:
    """Every public name of `double` exists in `real` with the same kind and shape; returns how many."""
    checked = 0
    for name, value in _public(double).items():
        assert hasattr(real, name), f"{real.__name__} has no {name}"
        reference = getattr(real, name)
        if isinstance(value, type) and issubclass(value, enum.Enum):
            subset = {m.name: int(m.value) for m in value}
            assert subset == {m: int(getattr(reference, m)) for m in subset}, name
        elif isinstance(value, np.dtype):
            assert value == reference, name
        elif isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(reference, BaseException), name
        elif isinstance(value, type):  # a struct: the same public fields and constructors
            ours = {a for a in dir(value) if not a.startswith("_")}
            theirs = {a for a in dir(reference) if not a.startswith("_")}
            assert ours == theirs, (name, ours ^ theirs)
        elif callable(value):
            assert _params(value) == _params(reference), name
        else:
            assert value == reference, name
        checked += 1
    return checked


def test_every_function_enum_and_struct_matches_the_real_cudla_binding():
    double = cudla_double.make_cudla(cudla_double_runtime.make_runtime())
    assert _compare(double, real_cudla) >= 25
    assert str(double.CudlaError(13)) == str(real_cudla.CudlaError(13)) == "ERROR_UNSUPPORTED_OPERATION (13)"
    with pytest.raises(double.CudlaError):
        double.check_status(3)


def test_the_runtime_half_matches_cuda_bindings_runtime():
    assert _compare(cudla_double_runtime.make_runtime(), real_runtime) >= 20
    assert {m.name: int(m) for m in cudla_double_runtime.cudaMemcpyKind} == {
        m.name: int(m) for m in real_runtime.cudaMemcpyKind}


def test_task_struct_writes_the_same_bytes_as_the_real_binding():
    """Counts and pointers land where the real Task puts them (the double's submit reads them there)."""
    ours, theirs = cudla_double.Task(), real_cudla.Task()
    for task in (ours, theirs):
        task.module_handle = 0x1234
        task.input_tensor = [11, 12]
        task.output_tensor = [21]
    mine = np.frombuffer(bytes(np.frombuffer(ours._data.tobytes(), np.uint8)), real_cudla.task_dtype)[0]
    real = np.frombuffer(bytes(memoryview(theirs)), real_cudla.task_dtype)[0]
    for field in ("module_handle", "num_input_tensors", "num_output_tensors", "wait_events", "signal_events"):
        assert mine[field] == real[field], field
    assert list(theirs.input_tensor) == list(ours.input_tensor) == [11, 12]


def test_descriptor_fields_read_back_like_the_real_struct():
    ours, theirs = cudla_double.ModuleTensorDescriptor(), real_cudla.ModuleTensorDescriptor()
    for descriptor in (ours, theirs):
        descriptor.name, descriptor.size_, descriptor.c, descriptor.data_format = "x", 4096, 24, 3
        descriptor.stride = [2, 2560, 153600, 0, 0, 0, 0, 0]
    dtype = real_cudla.module_tensor_descriptor_dtype
    mine = np.frombuffer(ours._data.tobytes(), dtype)[0]
    real = np.frombuffer(bytes(memoryview(theirs)), dtype)[0]
    for field in ("size_", "c", "data_format"):
        assert mine[field] == real[field], field
    assert list(mine["stride"]) == list(real["stride"]) and ours.name == theirs.name == "x"


def test_the_real_binding_fails_without_libcudla_as_the_backend_expects():
    """Here (no Jetson) every call of the real module fails to find libcudla.so.1."""
    with pytest.raises(Exception, match="libcudla"):
        real_cudla.device_get_count()
    with pytest.raises(real_cudla.CudlaError, match="ERROR_UNSUPPORTED_OPERATION"):
        real_cudla.create_device(0, real_cudla.Mode.STANDALONE)  # refused before the library is loaded


@pytest.fixture
def pair():
    runtime = cudla_double_runtime.make_runtime()
    return cudla_double.make_cudla(runtime), runtime


def test_cudla_h_rules(pair):
    cudla, runtime = pair
    with pytest.raises(cudla.CudlaError, match="UNSUPPORTED_OPERATION"):
        cudla.create_device(0, cudla.Mode.STANDALONE)
    with pytest.raises(cudla.CudlaError, match="INVALID_DEVICE"):
        cudla.create_device(2, cudla.Mode.CUDA_DLA)
    handle = cudla.create_device(1, cudla.Mode.CUDA_DLA)
    with pytest.raises(cudla.CudlaError, match="ERROR_UMD"):
        cudla.module_load_from_memory(handle, b"not a loadable", 14, 0)
    _, host = runtime.cudaMallocHost(64)
    _, device = runtime.cudaMalloc(64)
    with pytest.raises(cudla.CudlaError, match="INVALID_ADDRESS"):
        cudla.mem_register(handle, host, 64, 0)  # host memory: not "the CUDA pointer"
    with pytest.raises(cudla.CudlaError, match="INVALID_ADDRESS"):
        cudla.mem_register(handle, device + 8, 32, 0)  # not 32-byte aligned
    with pytest.raises(cudla.CudlaError, match="INVALID_PARAM"):
        cudla.mem_register(handle, device, 64, 1)  # flags "Must be set to 0"
    mapping = cudla.mem_register(handle, device, 64, 0)
    assert mapping != device
    with pytest.raises(cudla.CudlaError, match="MEMORY_REGISTERED"):
        cudla.mem_register(handle, device, 64, 0)
    for bad in (0, 1_000_001):
        with pytest.raises(cudla.CudlaError, match="INVALID_PARAM"):
            cudla.set_task_timeout_in_ms(handle, bad)
    assert cudla.device_get_attribute(handle, cudla.DevAttributeType.DEVICE_VERSION).device_version == 2
    assert cudla.get_last_error(handle) == 0
    cudla.mem_unregister(handle, mapping)
    cudla.destroy_device(handle)


def test_a_stream_runs_in_order_and_an_event_says_when(pair):
    _, runtime = pair
    _, stream = runtime.cudaStreamCreateWithFlags(runtime.cudaStreamNonBlocking)
    _, event = runtime.cudaEventCreateWithFlags(runtime.cudaEventDisableTiming)
    assert runtime.cudaEventQuery(event) == (runtime.cudaError_t.cudaSuccess,)  # never recorded: complete
    gate = threading.Event()
    runtime.double_enqueue(stream, "gate", gate.wait)
    _, device = runtime.cudaMalloc(16)
    source = np.arange(16, dtype=np.uint8)
    kind = runtime.cudaMemcpyKind
    right = runtime.cudaMemcpyAsync(device, source.ctypes.data, 16, kind.cudaMemcpyHostToDevice, stream)
    assert right[0] == 0
    wrong = runtime.cudaMemcpyAsync(device, source.ctypes.data, 16, kind.cudaMemcpyDeviceToHost, stream)
    assert wrong[0] == runtime.cudaError_t.cudaErrorInvalidValue  # the pointers say the other direction
    runtime.cudaEventRecord(event, stream)
    assert runtime.cudaEventQuery(event)[0] == runtime.cudaError_t.cudaErrorNotReady
    gate.set()
    runtime.cudaStreamSynchronize(stream)
    assert runtime.cudaEventQuery(event)[0] == 0
    ops = [name for name, _ in runtime.double_state["ops"]]
    assert ops == ["gate", "cudaMemcpyHostToDevice", "cudaEventRecord"]
    runtime.cudaStreamDestroy(stream)
