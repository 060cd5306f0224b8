"""onnxruntime engine: the embedded default (CPU), and GPU/DLA through onnxruntime's execution providers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.plan_cache import warn_once

# onnxruntime's type strings -> numpy dtypes (the element types a perception model uses).
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def onnxruntime_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


ORT_ISSUE_DLA_CORE = "microsoft/onnxruntime#26680"
CPUINFO = Path("/proc/cpuinfo")


def refused_core(core: str) -> str | None:
    """Why onnxruntime's TensorRT EP must not serve `core` (None when it may).

    The EP sets `trt_dla_core` on the builder config only, never on the runtime that deserialises its
    engines, so every cached engine runs on DLA core 0 whatever was asked (microsoft/onnxruntime#26680,
    JetPack 6.2 / TensorRT 10.3; the fix, onnxruntime PR 28364, is not released): a "dla1" engine would
    compete with dla0 while the manager reported dla1.
    """
    if core == "dla1":
        return (f"onnxruntime's TensorRT execution provider cannot target dla1: it never sets the runtime's "
                f"DLA core, so its engines run on DLA core 0 ({ORT_ISSUE_DLA_CORE}); use the native TensorRT "
                "backend (python3-libnvinfer) for dla1")
    return None


def int8_kernels_saturate() -> bool:
    """True on an x86 CPU without VNNI, where onnxruntime's fused int8 Conv/MatMul kernels (u8s8 through
    AVX2's vpmaddubsw) saturate their 16-bit intermediate sums and lose accuracy ("saturation issue",
    onnxruntime's quantization docs). VNNI CPUs and aarch64 (Jetson's dot-product kernels) do not."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"):
        return False
    try:
        flags = next((line for line in CPUINFO.read_text().splitlines()
                      if line.startswith("flags")), "").split()
    except OSError:
        return False
    return not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def has_qdq_nodes(onnx_path: Path) -> bool:
    try:
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception:
        return False
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)


def default_intra_op_threads() -> int:
    """min(4, CPU count): enough for one model, without oversubscribing a small board running several."""
    return max(1, min(4, os.cpu_count() or 1))


class OnnxRuntimeEngine(Engine):
    """One onnxruntime InferenceSession on `core`.

    On cpu, `intra_op_threads` sets the session's thread pool (spinning off, so idle pools do not burn
    the cores other engines need). On gpu/dla the matching execution provider is required: onnxruntime
    would otherwise fall back to CPU silently, so a missing provider is an EngineError here.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        model: str = "",
        core: str = "cpu",
        precision: str = "fp32",
        intra_op_threads: int | None = None,
        cache_dir: Path | None = None,
        calibration_cache: Path | None = None,
    ) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise EngineError("onnxruntime is not installed (pip install onnxruntime)") from exc
        self.model = model or Path(onnx_path).stem
        self.core = core
        self.onnx_path = Path(onnx_path)
        options = onnxruntime.SessionOptions()
        self.qdq_unfused = False
        options.log_severity_level = 3
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        self.intra_op_threads = intra_op_threads or default_intra_op_threads()
        options.intra_op_num_threads = self.intra_op_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if core == "cpu" and int8_kernels_saturate() and has_qdq_nodes(self.onnx_path):
            # Run Q/DQ as written (DequantizeLinear -> float op -> QuantizeLinear): the int8 model's own
            # numbers, as TensorRT computes them, instead of kernels that saturate on this CPU.
            options.add_session_config_entry("session.disable_quant_qdq", "1")
            self.qdq_unfused = True
            warn_once(self.onnx_path, "int8-unfused", "%s: this x86 CPU has no VNNI, so onnxruntime's fused "
                      "int8 kernels would saturate; its Q/DQ nodes run unfused (int8 numbers, float speed)",
                      self.onnx_path.name)
        providers, wanted = self._providers(core, precision, cache_dir, calibration_cache)
        try:
            self._session = onnxruntime.InferenceSession(str(self.onnx_path), sess_options=options,
                                                         providers=providers)
        except Exception as exc:
            raise EngineError(f"onnxruntime cannot load {self.onnx_path}: {exc}") from exc
        if wanted not in self._session.get_providers():
            raise EngineError(f"onnxruntime did not enable {wanted} for {core} "
                              f"(active: {self._session.get_providers()})")
        # onnxruntime on CPU computes in the model's own types whatever the requested precision.
        self.precision = precision if core != "cpu" else "fp32"
        self._inputs = [self._spec(arg) for arg in self._session.get_inputs()]
        self._outputs = [self._spec(arg) for arg in self._session.get_outputs()]
        self._output_names = [spec.name for spec in self._outputs]

    @staticmethod
    def _providers(core: str, precision: str, cache_dir: Path | None,
                   calibration_cache: Path | None) -> tuple[list[Any], str]:
        available = onnxruntime_providers()
        if core == "cpu":
            return ["CPUExecutionProvider"], "CPUExecutionProvider"
        reason = refused_core(core)
        if reason:
            raise EngineError(reason)
        # CUDA between TensorRT and CPU: nodes the TensorRT EP declines run on the GPU, not the CPU.
        cuda = [("CUDAExecutionProvider", {})] if "CUDAExecutionProvider" in available else []
        if core == "gpu" and "TensorrtExecutionProvider" not in available:
            return [*cuda, "CPUExecutionProvider"], "CUDAExecutionProvider"
        options: dict[str, Any] = {
            "trt_fp16_enable": precision in ("fp16", "int8"),
            "trt_int8_enable": precision == "int8",
        }
        if core.startswith("dla"):
            options.update(trt_dla_enable=True, trt_dla_core=int(core[3:]))
        if precision == "int8" and calibration_cache is not None:
            options.update(trt_int8_calibration_table_name=str(calibration_cache),
                           trt_int8_use_native_calibration_table=True)
        if cache_dir is not None:
            path = Path(cache_dir).expanduser() / "onnxruntime-trt" / core
            try:
                path.mkdir(parents=True, exist_ok=True)
                options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(path))
            except OSError as exc:  # a broken cache folder costs rebuilds, not the engine
                warn_once(path, "ort-cache", "onnxruntime's TensorRT engine cache %s is not usable (%s): "
                          "engines are rebuilt at every start", path, exc)
        providers = [("TensorrtExecutionProvider", options), *cuda, "CPUExecutionProvider"]
        return providers, "TensorrtExecutionProvider"

    @staticmethod
    def _spec(arg: Any) -> TensorSpec:
        if arg.type not in _ORT_DTYPES:
            raise EngineError(f"tensor '{arg.name}' has unsupported type {arg.type}")
        shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (arg.shape or []))
        return TensorSpec(arg.name, shape, np.dtype(_ORT_DTYPES[arg.type]))

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._output_names, inputs)
        except Exception as exc:
            raise EngineError(f"onnxruntime failed running '{self.model}' on {self.core}: {exc}") from exc
        return dict(zip(self._output_names, values, strict=True))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(onnx=str(self.onnx_path), providers=self._session.get_providers())
        if self.core == "cpu":
            info["intra_op_threads"] = self.intra_op_threads
        return info
