"""Where a model's engines run: each requested core resolved along a fallback chain to a core this machine
has and can build an engine on. Requested cores that resolve to the same core share one engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from dla_perception.runtime.config import ModelSpec
from dla_perception.runtime.cores import base_core, present
from dla_perception.runtime.engine import Engine

EngineFactory = Callable[[ModelSpec, str], Engine]


def fallback_chain(requested: str, preferred: Sequence[str]) -> list[str]:
    """Cores to try for `requested`: itself, the rest of the model's list (wrapping), then gpu, then cpu."""
    index = list(preferred).index(requested) if requested in preferred else 0
    ordered = [requested, *preferred[index + 1:], *preferred[:index], "gpu", "cpu"]
    return list(dict.fromkeys(ordered))


def place(spec: ModelSpec, requested: str, available: Sequence[str], factory: EngineFactory,
          engines: dict[str, Engine], failures: dict[str, str]) -> tuple[str | None, str]:
    """(the core `requested` runs on, or None; why it is not `requested`). Builds engines into `engines`
    and remembers failed builds in `failures`, so one model's cores never build the same core twice."""
    reasons = []
    for core in fallback_chain(requested, spec.cores):
        if core in engines:
            return core, "; ".join(reasons) or f"shares the {core} engine"
        if not present(core, available):
            reasons.append(f"{core} not present on this machine")
            continue
        if core in failures:
            reasons.append(f"{core} failed: {failures[core]}")
            continue
        try:
            engines[core] = factory(spec, core)
        except Exception as exc:  # a backend's failure must not stop the chain
            failures[core] = str(exc)
            reasons.append(f"{core} failed: {exc}")
            continue
        return core, "; ".join(reasons)
    return None, "; ".join(reasons)


def cpu_instances(factory: EngineFactory) -> EngineFactory:
    """`factory` that also builds cpuN cores: a `cpu` engine of one intra-op thread (unless the model sets
    intra_op_threads), named after its instance."""

    def build(spec: ModelSpec, core: str) -> Engine:
        if base_core(core) == core:
            return factory(spec, core)
        engine = factory(replace(spec, intra_op_threads=spec.intra_op_threads or 1), base_core(core))
        engine.core = core
        return engine

    return build
