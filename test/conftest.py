"""Shared test fixtures. Paths to the third-party data beside the checkout (tests skip where absent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DLA_PERCEPTION_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# The venv is this package's install prefix; `make` exports the same, this covers a bare `pytest`.
if str(Path(sys.prefix)) not in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(
        p for p in (sys.prefix, os.environ.get("AMENT_PREFIX_PATH", "")) if p
    )


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch):
    """The strict TensorRT 10 test double (test/tensorrt_double.py), installed as the `tensorrt` module."""
    import tensorrt_double

    module = tensorrt_double.make_tensorrt("10.3.0", num_dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only third-party data folder; skips the test where a clone does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party data not found at {SHARED_DATA} (set DLA_PERCEPTION_SHARED_DATA)")
    return SHARED_DATA


def ros_domain_id(offset: int) -> int:
    """A DDS domain for one test module: DLA_PERCEPTION_TEST_DOMAIN_BASE (default 90) + offset.

    Two checkouts running the suite at once on one machine would otherwise hear each other's topics; give
    each its own base (0-85, so base + offset stays below 101, the start of Linux's ephemeral ports).
    """
    return int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")) + offset


@pytest.fixture
def cudla(monkeypatch: pytest.MonkeyPatch):
    """The strict cuDLA test double (test/cudla_double.py) and its CUDA runtime half, installed as
    `cuda.bindings.cudla` and `cuda.bindings.runtime`; returns the cudla module (`.runtime` is the other)."""
    import cudla_double
    import cudla_double_runtime

    runtime = cudla_double_runtime.make_runtime()
    module = cudla_double.make_cudla(runtime, num_devices=2)
    module.runtime = runtime
    monkeypatch.setitem(sys.modules, "cuda.bindings.cudla", module)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    return module
