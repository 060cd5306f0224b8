"""TensorRT 10 engine for the GPU or a DLA core: build from ONNX, cache the plan, run, report placement.

Written against the TensorRT 10.3 Python API that JetPack 6 ships (see docs/dla-tensorrt.md in the shared
docs): explicit-batch networks, `build_serialized_network`, `runtime.DLA_core` set before
`deserialize_cuda_engine`, I/O by tensor name with `set_tensor_address`, and `execute_async_v3` on the
engine's own CUDA stream. CUDA streams and buffers come from polygraphy.cuda (pure Python over libcudart).
On TensorRT 11 only strongly typed networks build: FP16/INT8 builder flags and calibrators are gone there,
so those requests fail with a plain message instead of an AttributeError deep inside a build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import EngineError

log = logging.getLogger(__name__)

DEFAULT_DLA_SRAM_BYTES = 1 << 20  # each Orin DLA core has 1 MiB of its own SRAM
FOREIGN_NODE_PREFIX = "{ForeignNode["  # how the engine inspector names a DLA subgraph


def import_tensorrt() -> ModuleType:
    """The real `tensorrt` module, or EngineError saying plainly why not."""
    try:
        import tensorrt as trt
    except Exception as exc:  # the registry's stub packages raise on import
        raise EngineError(f"TensorRT is not available ({exc}); on a Jetson it comes with JetPack "
                          "(python3-libnvinfer)") from exc
    if not hasattr(trt, "Builder"):
        raise EngineError("the installed 'tensorrt' module has no Builder (a stub package?)")
    return trt


def tensorrt_major(trt: ModuleType) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except (AttributeError, ValueError):
        return 0


def check_supported(trt: ModuleType, core: str, precision: str) -> None:
    """Refuse combinations this TensorRT cannot build, with a message a user can act on."""
    major = tensorrt_major(trt)
    if major < 10:
        raise EngineError(f"TensorRT {trt.__version__} is too old: dla_perception needs TensorRT 10 "
                          "(JetPack 6) or newer")
    if major >= 11 and precision != "fp32":
        dla_note = ""
        if core.startswith("dla"):
            dla_note = "; DLA needs TensorRT 11.4.1+ on AGX Orin with JetPack 7.2.2+"
        raise EngineError(
            f"TensorRT {trt.__version__} builds strongly typed networks only: the FP16/INT8 builder flags "
            f"and INT8 calibrators are gone, so precision '{precision}' cannot be requested. Export the ONNX "
            "in the precision you want (FP16 weights, or Q/DQ nodes for INT8) and use precision fp32 "
            f"(= as typed){dla_note}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- build options and placement report -------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    core: str
    precision: str = "fp16"
    gpu_fallback: bool = True
    calibration_cache: Path | None = None
    dla_sram_bytes: int = DEFAULT_DLA_SRAM_BYTES
    dla_native_io: bool = False

    @property
    def dla_index(self) -> int | None:
        return int(self.core[3:]) if self.core.startswith("dla") else None


def placement_report(layer_names: Iterable[str], dla_layers: int | None = None) -> dict[str, Any]:
    """Where an engine's layers run, in the dla-check vocabulary: "DLA", "GPU", "subgraphs".

    `layer_names` come from the engine inspector, which shows each DLA subgraph as one ForeignNode;
    `dla_layers` is the builder's count of network layers placed on DLA at build time (None if unknown).
    "GPU" counts engine layers on the GPU, reformats (copies around DLA subgraphs) apart.
    """
    subgraphs, gpu_layers, reformats = [], [], []
    for name in layer_names:
        if name.startswith(FOREIGN_NODE_PREFIX):
            subgraphs.append(name)
        elif "Reformatting CopyNode" in name or name.startswith("Reformat"):
            reformats.append(name)
        else:
            gpu_layers.append(name)
    report: dict[str, Any] = {
        "DLA": dla_layers if dla_layers is not None else (None if subgraphs else 0),
        "GPU": len(gpu_layers),
        "subgraphs": len(subgraphs),
        "reformats": len(reformats),
        "dla_subgraph_names": subgraphs,
        "gpu_layer_names": gpu_layers,
    }
    report["verdict"] = _verdict(report)
    return report


def _verdict(report: Mapping[str, Any]) -> str:
    if not report["subgraphs"]:
        return f"GPU: {report['GPU']} layer(s) on the GPU, none on DLA"
    on_dla = f"{report['DLA']} layer(s)" if report["DLA"] is not None else "layers"
    if not report["GPU"] and not report["reformats"]:
        return f"DLA: {on_dla} on DLA in {report['subgraphs']} subgraph(s), no GPU fallback"
    return (f"GPU FALLBACK: {on_dla} on DLA in {report['subgraphs']} subgraph(s); {report['GPU']} layer(s) "
            f"and {report['reformats']} reformat(s) on the GPU")


def format_report(report: Mapping[str, Any]) -> str:
    """Human-readable placement report for `dla-perception build-engine`."""
    lines = [report["verdict"]]
    lines += [f"  DLA  {name}" for name in report["dla_subgraph_names"]]
    lines += [f"  GPU  {name}" for name in report["gpu_layer_names"]]
    if report["reformats"]:
        lines.append(f"  {report['reformats']} reformat layer(s) around DLA subgraphs run on the GPU")
    return "\n".join(lines)


def inspector_layer_names(trt: ModuleType, engine: Any) -> list[str]:
    """Layer names from the engine inspector (dicts with DETAILED verbosity, plain strings otherwise)."""
    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    names = []
    for layer in info.get("Layers", []):
        names.append(str(layer.get("Name", "")) if isinstance(layer, dict) else str(layer))
    return names


def inspect_plan(trt: ModuleType, plan: bytes, core: str, dla_layers: int | None = None) -> dict[str, Any]:
    """Deserialize `plan` on its core (no buffers, no context) and return its placement report."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if core.startswith("dla"):
        runtime.DLA_core = int(core[3:])
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineError(f"TensorRT could not deserialize the plan it built for {core}")
    return placement_report(inspector_layer_names(trt, engine), dla_layers)


# -- INT8 calibration -------------------------------------------------------------------------------


def make_entropy_calibrator(trt: ModuleType, cache_path: Path | None,
                            batches: Iterable[Mapping[str, np.ndarray]] | None = None,
                            cuda: Any = None) -> Any:
    """An IInt8EntropyCalibrator2 (the calibrator DLA needs) that reads/writes `cache_path`.

    With a cache file present TensorRT takes the ranges from it and never asks for data; otherwise
    `batches` (dicts of input name -> array, one calibration batch each) are uploaded one at a time.
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2 (removed in 11.0)")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches: Iterator[Mapping[str, np.ndarray]] = iter(batches or ())
            self._buffers: dict[str, Any] = {}
            self.batches_used = 0

        def get_batch_size(self) -> int:
            return 1  # explicit-batch networks: the batch lives in the tensor shapes

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            if cuda is None:
                raise EngineError("calibration data needs CUDA buffers (polygraphy.cuda)")
            pointers = []
            for name in names:
                if name not in batch:
                    raise EngineError(f"calibration batch has no input '{name}' (has {sorted(batch)})")
                array = np.ascontiguousarray(batch[name])
                buffer = self._buffers.get(name)
                if buffer is None:
                    buffer = self._buffers[name] = cuda.DeviceArray(shape=array.shape, dtype=array.dtype)
                buffer.resize(array.shape)
                buffer.copy_from(array)
                pointers.append(int(buffer.ptr))
            self.batches_used += 1
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            if cache_path is not None and cache_path.is_file():
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is not None:
                atomic_write(cache_path, bytes(cache))

        def free(self) -> None:
            for buffer in self._buffers.values():
                buffer.free()
            self._buffers.clear()

    return EntropyCalibrator()


# -- building ---------------------------------------------------------------------------------------


def build_plan(trt: ModuleType, onnx_path: Path, options: BuildOptions, *,
               calibration_batches: Iterable[Mapping[str, np.ndarray]] | None = None,
               cuda: Any = None) -> tuple[bytes, dict[str, Any]]:
    """Build a serialized plan for one core; returns (plan bytes, build facts kept with the cached plan)."""
    check_supported(trt, options.core, options.precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    dla = options.dla_index
    if dla is not None and dla >= int(builder.num_DLA_cores):
        raise EngineError(f"{options.core} requested but TensorRT reports {builder.num_DLA_cores} "
                          "DLA core(s)")
    flags = 0
    if tensorrt_major(trt) >= 11:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(index).desc()) for index in range(parser.num_errors))
        raise EngineError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors or 'no detail'}")
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if any(int(dim) < 0 for dim in tensor.shape):
            raise EngineError(f"input '{tensor.name}' has dynamic shape {tuple(tensor.shape)}: TensorRT "
                              "engines here need static shapes (DLA requires them); export the ONNX with "
                              "fixed sizes")

    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    calibrator = None
    if options.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers DLA cannot keep in INT8 run in FP16
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        cache = options.calibration_cache
        if (cache is None or not cache.is_file()) and calibration_batches is None:
            raise EngineError(f"INT8 needs a calibration cache ({cache or 'none given'} not found) or "
                              "calibration data")
        calibrator = make_entropy_calibrator(trt, cache, calibration_batches, cuda)
        config.int8_calibrator = calibrator
    predicted = None
    if dla is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK if options.gpu_fallback else trt.BuilderFlag.DIRECT_IO)
        config.set_memory_pool_limit(trt.MemoryPoolType.DLA_MANAGED_SRAM, options.dla_sram_bytes)
        layers = [network.get_layer(index) for index in range(network.num_layers)]
        predicted = sum(1 for layer in layers if config.can_run_on_DLA(layer))
        if options.dla_native_io:
            _set_dla_native_io(trt, network, options.precision)
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if plan is None:
        hint = ""
        if dla is not None and not options.gpu_fallback:
            hint = " (GPU fallback is off: a layer DLA cannot run?)"
        raise EngineError(f"TensorRT could not build {onnx_path} for {options.core}{hint}; see the log "
                          "above")
    return bytes(plan), {"dla_layers": predicted, "network_layers": network.num_layers}


def _set_dla_native_io(trt: ModuleType, network: Any, precision: str) -> None:
    """DLA-native I/O (no GPU reformat around the DLA call): what trtexec's --inputIOFormats does."""
    dtype = trt.DataType.INT8 if precision == "int8" else trt.DataType.HALF
    layout = trt.TensorFormat.CHW32 if precision == "int8" else trt.TensorFormat.CHW16
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        tensor.dtype = dtype
        tensor.allowed_formats = 1 << int(trt.TensorFormat.DLA_LINEAR)
    for index in range(network.num_outputs):
        tensor = network.get_output(index)
        tensor.dtype = dtype
        tensor.allowed_formats = 1 << int(layout)


# -- plan cache -------------------------------------------------------------------------------------


class PlanCache:
    """Plans in one folder, named by a digest of everything that makes a plan valid.

    Key: ONNX sha256, TensorRT version, GPU name, core, precision, calibration cache sha256 and the build
    options. Each plan has a JSON sidecar recording the key and the plan's own sha256; a plan is used only
    when both match, so a truncated, corrupt or foreign file is rebuilt (with a warning), never loaded.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()

    @staticmethod
    def key(onnx_path: Path, options: BuildOptions, trt_version: str, gpu_name: str) -> dict[str, Any]:
        calibration = options.calibration_cache
        return {
            "onnx_sha256": sha256_file(onnx_path),
            "tensorrt": trt_version,
            "gpu": gpu_name,
            "core": options.core,
            "precision": options.precision,
            "calibration_sha256": sha256_file(calibration) if calibration and calibration.is_file() else None,
            "gpu_fallback": options.gpu_fallback,
            "dla_sram_bytes": options.dla_sram_bytes,
            "dla_native_io": options.dla_native_io,
        }

    def paths(self, model: str, key: Mapping[str, Any]) -> tuple[Path, Path]:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        stem = f"{model}-{key['core']}-{key['precision']}-{digest}"
        return self.directory / f"{stem}.plan", self.directory / f"{stem}.json"

    def load(self, model: str, key: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]] | None:
        plan_path, meta_path = self.paths(model, key)
        if not plan_path.exists():
            stale = sorted(self.directory.glob(f"{model}-{key['core']}-{key['precision']}-*.plan"))
            for path in stale:
                log.warning("plan %s is stale (ONNX, TensorRT, GPU, calibration or options changed): "
                            "building a new one", path)
            return None
        try:
            meta = json.loads(meta_path.read_text())
            plan = plan_path.read_bytes()
        except (OSError, ValueError) as exc:
            log.warning("plan %s has no readable record (%s): rebuilding", plan_path, exc)
            return None
        if meta.get("key") != dict(key):
            log.warning("plan %s was built for %s, not %s: rebuilding", plan_path, meta.get("key"), dict(key))
            return None
        if hashlib.sha256(plan).hexdigest() != meta.get("plan_sha256"):
            log.warning("plan %s is corrupt (sha256 differs from its record): rebuilding", plan_path)
            return None
        return plan, meta

    def store(self, model: str, key: Mapping[str, Any], plan: bytes, build_info: Mapping[str, Any]) -> Path:
        plan_path, meta_path = self.paths(model, key)
        atomic_write(plan_path, plan)
        record = {"model": model, "key": dict(key), "plan_sha256": hashlib.sha256(plan).hexdigest(),
                  "build": dict(build_info)}
        atomic_write(meta_path, json.dumps(record, indent=1, sort_keys=True).encode())
        return plan_path


# -- the engine -------------------------------------------------------------------------------------


class TensorRTEngine(Engine):
    """A deserialized plan on `core`, with its own CUDA stream and device buffers for every I/O tensor."""

    backend = "tensorrt"

    def __init__(self, plan: bytes, *, model: str, core: str, precision: str,
                 build_info: Mapping[str, Any] | None = None, trt: ModuleType | None = None,
                 cuda: Any = None, plan_path: Path | None = None) -> None:
        self.trt = trt or import_tensorrt()
        self.cuda = cuda or _polygraphy_cuda()
        self.model, self.core, self.precision = model, core, precision
        self.plan_path = plan_path
        self._stream = None
        self._buffers: dict[str, Any] = {}
        trt = self.trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if core.startswith("dla"):
            self._runtime.DLA_core = int(core[3:])  # before deserialising: it places the engine on the core
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise EngineError(f"TensorRT could not deserialize the plan for '{model}' on {core}")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"TensorRT could not create an execution context for '{model}' on {core}")
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            shape = tuple(int(dim) for dim in self._engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            if any(dim < 0 for dim in shape):
                raise EngineError(f"'{model}': tensor '{name}' has dynamic shape {shape}; plans need static "
                                  "shapes")
            if self._engine.get_tensor_format(name) != trt.TensorFormat.LINEAR:
                raise EngineError(f"'{model}': tensor '{name}' uses a DLA-native format; this engine feeds "
                                  "linear host arrays (build without --dla-native-io to run it here)")
            spec = TensorSpec(name, shape, dtype)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(spec)
        try:
            self._stream = self.cuda.Stream()  # the engine's own non-default stream
            for spec in self._inputs + self._outputs:
                self._buffers[spec.name] = self.cuda.DeviceArray(shape=spec.shape, dtype=spec.dtype)
        except Exception as exc:  # polygraphy raises its own exception type when libcudart is missing
            self.close()
            raise EngineError(f"CUDA stream/buffers for '{model}' on {core}: {exc}") from exc
        for name, buffer in self._buffers.items():
            if not self._context.set_tensor_address(name, int(buffer.ptr)):
                self.close()
                raise EngineError(f"TensorRT refused the address of tensor '{name}' of '{model}'")
        self.placement = placement_report(inspector_layer_names(trt, self._engine),
                                          dict(build_info or {}).get("dla_layers"))

    @classmethod
    def from_spec(cls, spec: Any, core: str, *, cache_dir: Path | None, gpu_name: str | None = None,
                  trt: ModuleType | None = None, cuda: Any = None) -> TensorRTEngine:
        """Load the cached plan for (spec, core) when its record matches, otherwise build and cache it."""
        trt = trt or import_tensorrt()
        options = BuildOptions(core=core, precision=spec.precision, gpu_fallback=spec.gpu_fallback,
                               calibration_cache=spec.calibration_cache)
        check_supported(trt, core, options.precision)
        if gpu_name is None:
            from dla_perception.runtime.cores import probe_cuda

            gpu_name = probe_cuda()[1] or "unknown-gpu"
        cache = PlanCache(cache_dir or Path("~/.cache/dla_perception/engines"))
        key = cache.key(spec.onnx, options, str(trt.__version__), gpu_name)
        cached = cache.load(spec.name, key)
        plan_path = cache.paths(spec.name, key)[0]
        if cached is not None:
            plan, meta = cached
            try:
                return cls(plan, model=spec.name, core=core, precision=spec.precision,
                           build_info=meta.get("build"), trt=trt, cuda=cuda, plan_path=plan_path)
            except EngineError as exc:
                log.warning("cached plan %s does not load (%s): rebuilding", plan_path, exc)
        log.info("building TensorRT plan for '%s' on %s (%s); this can take minutes", spec.name, core,
                 spec.precision)
        plan, build_info = build_plan(trt, spec.onnx, options, cuda=cuda or _polygraphy_cuda())
        cache.store(spec.name, key, plan, build_info)
        return cls(plan, model=spec.name, core=core, precision=spec.precision, build_info=build_info,
                   trt=trt, cuda=cuda, plan_path=plan_path)

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for spec in self._inputs:
            self._buffers[spec.name].copy_from(inputs[spec.name], self._stream)
        if not self._context.execute_async_v3(self._stream.ptr):
            raise EngineError(f"TensorRT execute_async_v3 failed for '{self.model}' on {self.core}")
        results = {}
        for spec in self._outputs:
            host = np.empty(spec.shape, spec.dtype)
            self._buffers[spec.name].copy_to(host, self._stream)
            results[spec.name] = host
        self._stream.synchronize()
        return results

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(tensorrt=str(self.trt.__version__), placement=self.placement,
                    plan=str(self.plan_path) if self.plan_path else None)
        return info

    def close(self) -> None:
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers.clear()
        if self._stream is not None:
            self._stream.free()
            self._stream = None


def _polygraphy_cuda() -> Any:
    try:
        from polygraphy import cuda
    except ImportError as exc:
        raise EngineError("polygraphy is needed for CUDA streams and buffers (pip install "
                          "polygraphy)") from exc
    return cuda
