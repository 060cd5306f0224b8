"""`config/engines.yaml`: which models the process runs, on which cores, at which precision and policy.

Validation is strict (unknown keys, core names, precisions and policies are errors) because a typo in a
robot's config should stop start-up with a clear message, not silently run a model on the wrong core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dla_perception.runtime.cores import CORE_NAMES, base_core, is_core_name
from dla_perception.runtime.errors import EnginesConfigError

PRECISIONS = ("fp32", "fp16", "int8")
POLICIES = ("pinned", "round_robin", "least_loaded")
# `backend`: what a model's cores try first ("auto": TensorRT, then onnxruntime; see runtime/backends.py).
BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "cudla")
CUDLA_MODES = ("hybrid", "standalone")  # cuDLA with CUDA streams, or without CUDA (NvSci buffers and fences)
DEFAULT_CACHE_DIR = "~/.cache/dla_perception/engines"
DEFAULT_PLANS_TO_KEEP = 3  # per model and core; older plans are pruned (runtime/plan_cache.py)
# A model without `deadline_ms` gets DEADLINE_BUDGET_FACTOR x the latency budget of the core a request runs
# on (far above a healthy p90, which is WARN above the budget and ERROR above twice it), or
# DEFAULT_DEADLINE_MS on a core without a budget.
DEADLINE_BUDGET_FACTOR = 4.0
DEFAULT_DEADLINE_MS = 1000.0

_TOP_LEVEL_KEYS = {"cache_dir", "latency_budget_ms", "models", "plans_to_keep"}
_MODEL_KEYS = {
    "onnx",
    "cores",
    "precision",
    "policy",
    "calibration_cache",
    "queue_size",
    "gpu_fallback",
    "intra_op_threads",
    "deadline_ms",
    "backend",
    "cudla_mode",
}


@dataclass
class ModelSpec:
    """One model and where it may run.

    `cores` is the order of preference; `gpu_fallback` lets TensorRT put DLA-unsupported layers on the GPU
    (off: the build fails instead, see dla-tensorrt.md). `intra_op_threads` applies to onnxruntime CPU
    engines (None: min(4, CPU count)). `deadline_ms` is how long after submission a request's answer is
    useful (None: DEADLINE_BUDGET_FACTOR x the latency budget of the core it runs on, see
    EnginesConfig.deadline_ms). `backend` is tried first on the cores it serves (`cudla`: DLA standalone
    loadables run by cuDLA on dla0/dla1, in `cudla_mode`); whatever refuses falls back, loudly.
    """

    name: str
    onnx: Path
    cores: tuple[str, ...]
    precision: str = "fp32"
    policy: str = "pinned"
    calibration_cache: Path | None = None
    queue_size: int = 2
    gpu_fallback: bool = True
    intra_op_threads: int | None = None
    deadline_ms: float | None = None
    backend: str = "auto"
    cudla_mode: str = "hybrid"

    def __post_init__(self) -> None:
        self.onnx = Path(self.onnx)
        self.cores = tuple(self.cores)
        if self.calibration_cache is not None:
            self.calibration_cache = Path(self.calibration_cache)
        validate_model_spec(self)
        if self.deadline_ms is not None:
            self.deadline_ms = float(self.deadline_ms)


@dataclass
class EnginesConfig:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=lambda: Path(DEFAULT_CACHE_DIR).expanduser())
    latency_budget_ms: dict[str, float] = field(default_factory=dict)
    plans_to_keep: int = DEFAULT_PLANS_TO_KEEP

    def deadline_ms(self, spec: ModelSpec, core: str) -> float:
        """The deadline of `spec`'s requests on `core`: the model's own, else from the core's budget.

        Per core on purpose: a model written for a 50 ms DLA that fell back to a 250 ms CPU keeps a
        deadline it can meet, while an explicit `deadline_ms` holds on every core.
        """
        if spec.deadline_ms is not None:
            return float(spec.deadline_ms)
        budget = self.latency_budget_ms.get(core) or self.latency_budget_ms.get(base_core(core))
        return DEADLINE_BUDGET_FACTOR * budget if budget else DEFAULT_DEADLINE_MS


def validate_model_spec(spec: ModelSpec) -> None:
    """Raise EnginesConfigError naming the model for anything a manager could not honour."""

    def fail(message: str) -> None:
        raise EnginesConfigError(f"model '{spec.name}': {message}")

    if not spec.name or not isinstance(spec.name, str):
        raise EnginesConfigError(f"model name must be a non-empty string, got {spec.name!r}")
    if not spec.cores:
        fail("'cores' must list at least one of " + ", ".join(CORE_NAMES))
    for core in spec.cores:
        if not is_core_name(core):
            fail(f"unknown core '{core}' (known: {', '.join(CORE_NAMES)}, cpu0, cpu1, ...)")
    if len(set(spec.cores)) != len(spec.cores):
        fail(f"'cores' lists a core twice: {list(spec.cores)}")
    if spec.precision not in PRECISIONS:
        fail(f"unknown precision '{spec.precision}' (known: {', '.join(PRECISIONS)})")
    if spec.precision == "fp32" and any(core.startswith("dla") for core in spec.cores):
        fail("precision fp32 is not possible on a DLA core (DLA runs fp16 and int8 only)")
    if spec.policy not in POLICIES:
        fail(f"unknown policy '{spec.policy}' (known: {', '.join(POLICIES)})")
    if isinstance(spec.queue_size, bool) or not isinstance(spec.queue_size, int) or spec.queue_size < 1:
        fail(f"'queue_size' must be an integer >= 1, got {spec.queue_size!r}")
    if not isinstance(spec.gpu_fallback, bool):
        fail(f"'gpu_fallback' must be true or false, got {spec.gpu_fallback!r}")
    threads = spec.intra_op_threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        fail(f"'intra_op_threads' must be an integer >= 1, got {threads!r}")
    if spec.backend not in BACKEND_CHOICES:
        fail(f"unknown backend '{spec.backend}' (known: {', '.join(BACKEND_CHOICES)})")
    if spec.backend == "cudla":
        if not any(core.startswith("dla") for core in spec.cores):
            fail(f"backend cudla runs DLA loadables on dla0/dla1 only, and 'cores' is {list(spec.cores)}")
        if spec.precision not in ("fp16", "int8"):
            fail(f"backend cudla needs precision fp16 or int8 (a DLA loadable), not {spec.precision}")
    if spec.cudla_mode not in CUDLA_MODES:
        fail(f"unknown cudla_mode '{spec.cudla_mode}' (known: {', '.join(CUDLA_MODES)})")
    deadline = spec.deadline_ms
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not math.isfinite(deadline) or deadline <= 0):
        fail(f"'deadline_ms' must be a positive number of milliseconds, got {deadline!r}")


def load_engines_config(path: str | Path, *, require_files: bool = True) -> EnginesConfig:
    """Read and validate an engines file; relative paths are resolved against the file's folder.

    `require_files=False` skips the ONNX existence check (schema checks of a config on a machine that has
    not fetched the models yet).
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnginesConfigError(f"cannot read engines file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise EnginesConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse_engines_config(document, base_dir=path.resolve().parent, source=str(path),
                                require_files=require_files)


def parse_engines_config(document: Any, *, base_dir: Path, source: str = "engines config",
                         require_files: bool = True) -> EnginesConfig:
    """Validate an already-parsed engines document (the YAML as Python objects)."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise EnginesConfigError(f"{source}: expected a mapping at the top level")
    unknown = set(document) - _TOP_LEVEL_KEYS
    if unknown:
        raise EnginesConfigError(f"{source}: unknown key(s) {sorted(unknown)} "
                                 f"(allowed: {sorted(_TOP_LEVEL_KEYS)})")

    cache_dir = _resolve(document.get("cache_dir") or DEFAULT_CACHE_DIR, base_dir)
    budgets = _parse_budgets(document.get("latency_budget_ms") or {}, source)
    keep = document.get("plans_to_keep", DEFAULT_PLANS_TO_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise EnginesConfigError(f"{source}: 'plans_to_keep' must be an integer >= 1, got {keep!r}")

    models_doc = document.get("models") or {}
    if not isinstance(models_doc, Mapping):
        raise EnginesConfigError(f"{source}: 'models' must be a mapping of model name -> settings")
    models = {}
    for name, entry in models_doc.items():
        spec = _parse_model(str(name), entry, base_dir, source)
        if require_files and not spec.onnx.is_file():
            raise EnginesConfigError(f"{source}: model '{name}': ONNX file not found: {spec.onnx}")
        models[spec.name] = spec
    return EnginesConfig(models=models, cache_dir=cache_dir, latency_budget_ms=budgets, plans_to_keep=keep)


def _parse_model(name: str, entry: Any, base_dir: Path, source: str) -> ModelSpec:
    if not isinstance(entry, Mapping):
        raise EnginesConfigError(f"{source}: model '{name}' must be a mapping")
    unknown = set(entry) - _MODEL_KEYS
    if unknown:
        raise EnginesConfigError(f"{source}: model '{name}': unknown key(s) {sorted(unknown)} "
                                 f"(allowed: {sorted(_MODEL_KEYS)})")
    if not entry.get("onnx"):
        raise EnginesConfigError(f"{source}: model '{name}': 'onnx' (path to the model file) is required")
    cores = entry.get("cores")
    if isinstance(cores, str):
        cores = [cores]
    if not isinstance(cores, (list, tuple)) or not cores:
        raise EnginesConfigError(f"{source}: model '{name}': 'cores' must be a non-empty list, "
                                 "e.g. [dla0, gpu]")
    calibration = entry.get("calibration_cache")
    try:
        return ModelSpec(
            name=name,
            onnx=_resolve(entry["onnx"], base_dir),
            cores=tuple(str(core) for core in cores),
            precision=str(entry.get("precision", "fp32")),
            policy=str(entry.get("policy", "pinned")),
            calibration_cache=_resolve(calibration, base_dir) if calibration else None,
            queue_size=entry.get("queue_size", 2),
            gpu_fallback=entry.get("gpu_fallback", True),
            intra_op_threads=entry.get("intra_op_threads"),
            deadline_ms=entry.get("deadline_ms"),
            backend=str(entry.get("backend", "auto")),
            cudla_mode=str(entry.get("cudla_mode", "hybrid")),
        )
    except EnginesConfigError as exc:
        raise EnginesConfigError(f"{source}: {exc}") from None


def _parse_budgets(budgets: Any, source: str) -> dict[str, float]:
    if not isinstance(budgets, Mapping):
        raise EnginesConfigError(f"{source}: 'latency_budget_ms' must map core names to milliseconds")
    parsed = {}
    for core, value in budgets.items():
        if not is_core_name(core):
            raise EnginesConfigError(f"{source}: latency_budget_ms: unknown core '{core}' "
                                     f"(known: {', '.join(CORE_NAMES)}, cpu0, cpu1, ...)")
        try:
            parsed[core] = float(value)
        except (TypeError, ValueError):
            parsed[core] = math.nan
        if not math.isfinite(parsed[core]) or parsed[core] <= 0:
            raise EnginesConfigError(f"{source}: latency_budget_ms.{core} must be a positive number, "
                                     f"got {value!r}")
    return parsed


def _resolve(value: Any, base_dir: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()
