"""What every engine offers the manager: `Engine` and `TensorSpec`.

An engine is one model made runnable on one core; it runs one request at a time (the manager's worker
thread guarantees that). The backends implement it; `runtime.backends.create_engine` picks one for a
core. This module imports no backend, so the dependency goes one way: backends -> engine.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of a model. A dimension of -1 is dynamic (any size accepted)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": np.dtype(self.dtype).name}


class Engine(abc.ABC):
    """One model on one core. Subclasses fill `model`, `core`, `precision` and `backend`."""

    model: str
    core: str
    precision: str
    backend: str

    @abc.abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def output_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request; inputs are already validated and C-contiguous."""

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "core": self.core,
            "precision": self.precision,
            "backend": self.backend,
            "inputs": [spec.as_dict() for spec in self.input_specs()],
            "outputs": [spec.as_dict() for spec in self.output_specs()],
        }

    def close(self) -> None:  # noqa: B027 - optional hook, most engines free on garbage collection
        """Release backend resources."""


def tensorrt_importable() -> bool:
    """True when a real `tensorrt` module imports (the registry stubs raise on import)."""
    try:
        import tensorrt
    except Exception:
        return False
    return hasattr(tensorrt, "Builder")
