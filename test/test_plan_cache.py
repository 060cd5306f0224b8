"""The plan cache survives its disk: each fault made for real on the filesystem (a read-only folder, a file
where the folder should be, a directory where the plan should be, malformed records, leftovers), except a
full disk, which is simulated by an OSError(ENOSPC) injected at the one write call (plan_cache._write_all):
no small filesystem can be mounted here."""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from dla_perception.runtime import plan_cache
from dla_perception.runtime.config import ModelSpec
from dla_perception.runtime.plan_cache import PlanCache
from dla_perception.runtime.tensorrt_build import BuildOptions, plan_key
from dla_perception.runtime.tensorrt_engine import TensorRTEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double
from trt_models import INPUT_SHAPE, conv_model

KEY = {"core": "dla0", "precision": "fp16", "onnx_sha256": "a" * 64}


@pytest.fixture(autouse=True)
def _fresh_warnings():
    plan_cache._warned.clear()
    yield
    plan_cache._warned.clear()


@pytest.fixture
def model_path(tmp_path) -> Path:
    return conv_model(tmp_path / "conv.onnx", with_softmax=False)


def engine(spec_path: Path, cache_dir: Path, trt, keep: int = 3) -> TensorRTEngine:
    spec = ModelSpec("conv", spec_path, ("dla0",), precision="fp16")
    return TensorRTEngine.from_spec(
        spec,
        "dla0",
        cache_dir=cache_dir,
        plans_to_keep=keep,
        gpu_name="Orin (double)",
        trt=trt,
        cuda=tensorrt_double.HostCuda(),
    )


def runs(built: TensorRTEngine) -> bool:
    return built.run({"x": np.ones(INPUT_SHAPE, np.float32)})["y"].shape == (1, 2, 8, 8)


def test_reuses_rebuilds_and_never_trusts_a_bad_file(trt, model_path, tmp_path, caplog):
    cache_dir = tmp_path / "plans"
    engine(model_path, cache_dir, trt)
    (plan_path,) = cache_dir.glob("*.plan")
    record_path = plan_path.with_name(plan_path.name + ".json")
    record = json.loads(record_path.read_text())
    assert plan_path.name.startswith("conv-dla0-fp16-") and record["key"]["tensorrt"] == "10.3.0"
    assert record["build"]["builder_placement"]["DLA"] == ["{ForeignNode[conv1...conv2]}"]  # log kept beside
    engine(model_path, cache_dir, trt)
    assert len(trt.double_state["builds"]) == 1  # cache hit
    with caplog.at_level(logging.WARNING):
        plan_path.write_bytes(plan_path.read_bytes()[:-10])
        engine(model_path, cache_dir, trt)
        assert len(trt.double_state["builds"]) == 2 and "corrupt" in caplog.text
        record = json.loads(record_path.read_text())
        record["key"]["tensorrt"] = "10.0.0"
        record_path.write_text(json.dumps(record))
        engine(model_path, cache_dir, trt)
        assert len(trt.double_state["builds"]) == 3 and "was built for" in caplog.text


@pytest.mark.parametrize("content", ["[]", "null", '{"key": []}', "not json"])
def test_malformed_records_rebuild(trt, model_path, tmp_path, caplog, content):
    cache_dir = tmp_path / "plans"
    engine(model_path, cache_dir, trt)
    (record_path,) = cache_dir.glob("*.plan.json")
    record_path.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert runs(engine(model_path, cache_dir, trt))
    assert len(trt.double_state["builds"]) == 2 and "rebuilding" in caplog.text


def test_undeserializable_cached_plan_is_rebuilt(trt, model_path, tmp_path, caplog):
    cache = PlanCache(tmp_path)
    key = plan_key(model_path, BuildOptions(core="dla0"), "10.3.0", "Orin (double)")
    cache.store("conv", key, b"garbage that matches its own record", {})
    with caplog.at_level(logging.WARNING):
        assert runs(engine(model_path, tmp_path, trt))
    assert "does not load" in caplog.text and len(trt.double_state["builds"]) == 1


def test_full_disk_keeps_the_engine_warns_once_and_next_start_rebuilds(
    trt, model_path, tmp_path, caplog, monkeypatch
):
    def full(descriptor: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plan_cache, "_write_all", full)  # the simulated full disk (see the module docstring)
    cache_dir = tmp_path / "plans"
    with caplog.at_level(logging.DEBUG):
        first = engine(model_path, cache_dir, trt)
        second = engine(model_path, cache_dir, trt)
    assert runs(first) and runs(second)
    assert (
        first.plan_path is None and "No space left on device (ENOSPC)" in first.describe()["plan_cache_error"]
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "could not save" in r.message]
    assert len(warnings) == 1 and str(cache_dir) in warnings[0].message  # once, with the path and reason
    assert any("must be rebuilt" in r.message for r in caplog.records)  # the next start says why it builds
    assert list(cache_dir.iterdir()) == []  # no half plan, no .tmp left behind
    assert len(trt.double_state["builds"]) == 2


def test_a_file_where_the_folder_should_be(trt, model_path, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        built = engine(model_path, blocker, trt)  # cache_dir is a file
        misplaced = engine(model_path, blocker / "engines", trt)  # cache_dir below a file
    assert runs(built) and runs(misplaced)
    assert "is a file, not a folder" in caplog.text and str(blocker) in caplog.text
    assert "Not a directory (ENOTDIR)" in misplaced.describe()["plan_cache_error"]


def test_a_directory_in_the_way_of_the_plan(trt, model_path, tmp_path, caplog):
    cache = PlanCache(tmp_path / "plans")
    key = plan_key(model_path, BuildOptions(core="dla0"), "10.3.0", "Orin (double)")
    cache.paths("conv", key)[0].mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        built = engine(model_path, tmp_path / "plans", trt)
    assert runs(built) and "a directory is in the way" in caplog.text
    assert "a directory is in the way (EISDIR)" in built.describe()["plan_cache_error"]


def _in_child_as_nobody(work, *args):
    """Run work(*args) in a forked child that dropped root (root ignores file modes); return its result."""
    if os.geteuid() != 0:
        return work(*args)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            signal.alarm(30)  # a child stuck on a lock held at fork time dies instead of hanging the suite
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            result = work(*args)
        except BaseException as exc:
            result = exc
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(result, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        raise AssertionError("the unprivileged child died without an answer (timed out?)")
    result = pickle.loads(data)
    if isinstance(result, BaseException):
        raise result
    return result


def _store_in_read_only(folder: str) -> dict:
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger(plan_cache.__name__).addHandler(handler)
    logging.getLogger(plan_cache.__name__).setLevel(logging.DEBUG)
    cache = PlanCache(folder)
    stored = cache.store("conv", KEY, b"plan bytes", {})
    loaded = cache.load("conv", KEY)
    return {
        "stored": stored,
        "error": cache.last_error,
        "loaded": loaded,
        "problem": cache.folder_problem(),
        "log": records,
    }


def test_a_read_only_folder_is_reported_with_path_and_reason():
    root = Path(tempfile.mkdtemp(prefix="dla_perception_ro_"))
    try:
        root.chmod(0o755)
        folder = root / "plans"
        folder.mkdir()
        folder.chmod(0o555)
        result = _in_child_as_nobody(_store_in_read_only, str(folder))
        assert result["stored"] is None and "Permission denied (EACCES)" in result["error"]
        assert result["loaded"] is None and "is not writable" in result["problem"]
        assert any("could not save plan" in line and str(folder) in line for line in result["log"])
        assert any("must be rebuilt, and it cannot be saved there" in line for line in result["log"])
        assert list(folder.iterdir()) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_stale_plans_of_the_same_model_and_core_are_pruned(trt, tmp_path):
    cache_dir = tmp_path / "plans"
    for seed in range(4):  # four versions of the model: four keys
        path = conv_model(tmp_path / "conv.onnx", with_softmax=False, seed=seed)
        engine(path, cache_dir, trt, keep=2)
        time.sleep(0.01)  # distinct mtimes
    other = cache_dir / f"other-dla0-fp16-{'0' * 20}.plan"
    other.write_bytes(b"another model's plan")
    engine(path, cache_dir, trt, keep=2)  # a cache hit prunes nothing
    plans = sorted(p.name for p in cache_dir.glob("conv-*.plan"))
    assert len(plans) == 2 and len(list(cache_dir.glob("conv-*.plan.json"))) == 2
    assert other.exists()
    newest = PlanCache(cache_dir).paths(
        "conv", plan_key(path, BuildOptions(core="dla0"), "10.3.0", "Orin (double)")
    )[0]
    assert newest.name in plans


def test_leftover_temporary_files_are_removed(trt, model_path, tmp_path):
    cache_dir = tmp_path / "plans"
    cache_dir.mkdir()
    old = cache_dir / ".conv-dla0-fp16-x.plan.abc123.tmp"
    fresh = cache_dir / ".conv-dla0-fp16-x.plan.def456.tmp"
    old.write_bytes(b"half a plan")
    fresh.write_bytes(b"a write in progress in another process")
    past = time.time() - 2 * plan_cache.LEFTOVER_AGE_S
    os.utime(old, (past, past))
    engine(model_path, cache_dir, trt)
    assert not old.exists() and fresh.exists()
