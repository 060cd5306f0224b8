"""Which backend runs a model on a core: the one place where that is decided.

    cpu        -> onnxruntime (CPU execution provider)
    gpu        -> native TensorRT, else onnxruntime's TensorRT EP, else its CUDA EP
    dla0       -> native TensorRT, else onnxruntime's TensorRT EP
    dla1       -> native TensorRT only: onnxruntime's TensorRT EP never sets the runtime's DLA core, so its
                  cached engines run on DLA core 0 (microsoft/onnxruntime#26680); it is refused there

Backends are tried in that order; every refusal becomes one reason of the EngineError that the manager
falls back from (and shows in `placements()`). A new backend (issue 22's cuDLA runner for DLA standalone
loadables) is one more entry in `BACKENDS`, sharing the plan cache (`runtime.plan_cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dla_perception.runtime.engine import Engine, tensorrt_importable
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.plan_cache import DEFAULT_PLANS_TO_KEEP


@dataclass(frozen=True)
class BuildContext:
    """What every backend may need besides the model and the core."""

    cache_dir: Path | None = None
    plans_to_keep: int = DEFAULT_PLANS_TO_KEEP


@dataclass(frozen=True)
class Backend:
    name: str
    cores: tuple[str, ...]
    unavailable: Callable[[str], str | None]  # core -> why this backend cannot serve it here (None: it can)
    create: Callable[[Any, str, BuildContext], Engine]


def _tensorrt_unavailable(core: str) -> str | None:
    return None if tensorrt_importable() else "python module 'tensorrt' not importable"


def _create_tensorrt(spec: Any, core: str, context: BuildContext) -> Engine:
    from dla_perception.runtime.tensorrt_engine import TensorRTEngine

    return TensorRTEngine.from_spec(
        spec, core, cache_dir=context.cache_dir, plans_to_keep=context.plans_to_keep
    )


def _onnxruntime_unavailable(core: str) -> str | None:
    from dla_perception.runtime.onnxruntime_engine import onnxruntime_providers, refused_core

    providers = onnxruntime_providers()
    if not providers:
        return "onnxruntime is not installed"
    if core == "cpu":
        return None
    reason = refused_core(core)
    if reason:
        return reason
    if "TensorrtExecutionProvider" in providers or (core == "gpu" and "CUDAExecutionProvider" in providers):
        return None
    wanted = "CUDA/TensorRT" if core == "gpu" else "TensorRT"
    return f"no {wanted} execution provider (has {', '.join(providers)})"


def _create_onnxruntime(spec: Any, core: str, context: BuildContext) -> Engine:
    from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine

    if core == "cpu":
        return OnnxRuntimeEngine(
            spec.onnx, model=spec.name, core="cpu", intra_op_threads=spec.intra_op_threads
        )
    return OnnxRuntimeEngine(
        spec.onnx,
        model=spec.name,
        core=core,
        precision=spec.precision,
        cache_dir=context.cache_dir,
        calibration_cache=spec.calibration_cache,
    )


BACKENDS: tuple[Backend, ...] = (
    Backend("TensorRT", ("gpu", "dla0", "dla1"), _tensorrt_unavailable, _create_tensorrt),
    Backend("onnxruntime", ("gpu", "dla0", "dla1", "cpu"), _onnxruntime_unavailable, _create_onnxruntime),
)


def backends_for(core: str) -> list[Backend]:
    """The backends that may serve `core`, in order of preference."""
    return [backend for backend in BACKENDS if core in backend.cores]


def create_engine(
    spec: Any, core: str, *, cache_dir: Path | None = None, plans_to_keep: int = DEFAULT_PLANS_TO_KEEP
) -> Engine:
    """Make `spec` (a ModelSpec) runnable on `core`, or raise EngineError naming every backend's reason."""
    context = BuildContext(cache_dir=cache_dir, plans_to_keep=plans_to_keep)
    reasons = []
    for backend in backends_for(core):
        why_not = backend.unavailable(core)
        if why_not:
            reasons.append(f"{backend.name}: {why_not}")
            continue
        try:
            return backend.create(spec, core, context)
        except EngineError as exc:
            reasons.append(f"{backend.name}: {exc}")
    if not reasons:
        raise EngineError(f"cannot run '{spec.name}' on {core}: no backend serves that core")
    raise EngineError(f"cannot run '{spec.name}' on {core}: " + "; ".join(reasons))
