"""Which backend runs a model on a core: the one place where that is decided.

    cpu        -> onnxruntime (CPU execution provider)
    gpu        -> native TensorRT, else onnxruntime's TensorRT EP, else its CUDA EP
    dla0       -> native TensorRT, else onnxruntime's TensorRT EP
    dla1       -> native TensorRT only: onnxruntime's TensorRT EP never sets the runtime's DLA core, so its
                  cached engines run on DLA core 0 (microsoft/onnxruntime#26680); it is refused there

    dla0/dla1 with `backend: cudla` -> cuDLA first (a DLA standalone loadable, no TensorRT runtime, no GPU
                  reformat), then the two above

Backends are tried in that order (a model's `backend` moves its choice to the front; cuDLA is tried only when
asked for); every refusal becomes one reason of the EngineError that the manager falls back from (and
shows in `placements()`). A backend refused in favour of another on the same core is logged as a WARNING
and kept on the engine as `backend_fallback`, which statistics and /diagnostics show. The cuDLA backend
caches its loadables like plans (`runtime.plan_cache`, the same key, `.dla` files).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dla_perception.runtime.engine import Engine, tensorrt_importable
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.plan_cache import DEFAULT_PLANS_TO_KEEP

log = logging.getLogger(__name__)


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


def _cudla_unavailable(core: str) -> str | None:
    from dla_perception.runtime.cudla_engine import cudla_unavailable

    return cudla_unavailable(core)


def _create_cudla(spec: Any, core: str, context: BuildContext) -> Engine:
    from dla_perception.runtime.cudla_engine import CudlaEngine

    return CudlaEngine.from_spec(spec, core, cache_dir=context.cache_dir, plans_to_keep=context.plans_to_keep)


BACKENDS: tuple[Backend, ...] = (
    Backend("TensorRT", ("gpu", "dla0", "dla1"), _tensorrt_unavailable, _create_tensorrt),
    Backend("onnxruntime", ("gpu", "dla0", "dla1", "cpu"), _onnxruntime_unavailable, _create_onnxruntime),
    Backend("cuDLA", ("dla0", "dla1"), _cudla_unavailable, _create_cudla),
)
OPT_IN = ("cuDLA",)  # tried only for a model that asks for it (`backend: cudla`)
CONFIG_NAMES = {"tensorrt": "TensorRT", "onnxruntime": "onnxruntime", "cudla": "cuDLA"}


def backends_for(core: str, preferred: str = "auto") -> list[Backend]:
    """The backends serving `core`, in order, the engines.yaml `backend` first."""
    first = CONFIG_NAMES.get(preferred)
    serving = [b for b in BACKENDS if core in b.cores and (b.name not in OPT_IN or b.name == first)]
    return sorted(serving, key=lambda backend: backend.name != first)


def create_engine(
    spec: Any, core: str, *, cache_dir: Path | None = None, plans_to_keep: int = DEFAULT_PLANS_TO_KEEP
) -> Engine:
    """Make `spec` (a ModelSpec) runnable on `core`, or raise EngineError naming every backend's reason."""
    context = BuildContext(cache_dir=cache_dir, plans_to_keep=plans_to_keep)
    reasons = []
    preferred = getattr(spec, "backend", "auto")
    candidates = backends_for(core, preferred)
    wanted = CONFIG_NAMES.get(preferred)
    wanted = wanted if any(backend.name == wanted for backend in candidates) else None
    for backend in candidates:
        why_not = backend.unavailable(core)
        if why_not:
            reasons.append(f"{backend.name}: {why_not}")
            continue
        try:
            engine = backend.create(spec, core, context)
        except EngineError as exc:
            reasons.append(f"{backend.name}: {exc}")
            continue
        if wanted and backend.name != wanted:
            engine.backend_fallback = f"{wanted} refused, {backend.name} used: {'; '.join(reasons)}"
            log.warning("model '%s' on %s: backend %s refused, falling back to %s: %s", spec.name, core,
                        wanted, backend.name, "; ".join(reasons))
        return engine
    if not reasons:
        raise EngineError(f"cannot run '{spec.name}' on {core}: no backend serves that core")
    raise EngineError(f"cannot run '{spec.name}' on {core}: " + "; ".join(reasons))
