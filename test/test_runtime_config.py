"""engines.yaml loading and validation: the committed file, path resolution, and every kind of bad entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from dla_perception.runtime.config import DEFAULT_DEADLINE_MS, ModelSpec, load_engines_config
from dla_perception.runtime.errors import EnginesConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, onnx_files: tuple[str, ...] = ("m.onnx",)) -> Path:
    for name in onnx_files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"onnx")
    path = tmp_path / "engines.yaml"
    path.write_text(text)
    return path


def test_committed_engines_file_matches_the_schema():
    config = load_engines_config(REPO_ROOT / "config" / "engines.yaml", require_files=False)
    assert set(config.models) == {"proximity_features", "proximity_head", "detector"}
    head = config.models["proximity_head"]
    assert head.cores == ("dla0", "dla1") and head.policy == "round_robin" and head.precision == "fp16"
    assert head.onnx == (REPO_ROOT / "models" / "proximity" / "head.onnx").resolve()
    assert config.latency_budget_ms == {"dla0": 50.0, "dla1": 50.0, "gpu": 30.0, "cpu": 250.0}
    assert config.cache_dir == Path("~/.cache/dla_perception/engines").expanduser()


def test_paths_resolve_against_the_files_folder_and_defaults_apply(tmp_path):
    path = write(tmp_path, """
cache_dir: plans
models:
  m: {onnx: sub/m.onnx, cores: [cpu], calibration_cache: calib/m.cache, intra_op_threads: 2}
""", onnx_files=("sub/m.onnx",))
    config = load_engines_config(path)
    spec = config.models["m"]
    assert spec.onnx == (tmp_path / "sub" / "m.onnx").resolve() and spec.onnx.is_absolute()
    assert spec.calibration_cache == (tmp_path / "calib" / "m.cache").resolve()
    assert config.cache_dir == (tmp_path / "plans").resolve()
    assert (spec.precision, spec.policy, spec.queue_size, spec.gpu_fallback) == ("fp32", "pinned", 2, True)
    assert spec.intra_op_threads == 2 and config.latency_budget_ms == {}


def test_missing_onnx_names_model_and_path(tmp_path):
    path = write(tmp_path, "models:\n  head: {onnx: nowhere/head.onnx, cores: [cpu]}\n", onnx_files=())
    with pytest.raises(EnginesConfigError) as info:
        load_engines_config(path)
    assert "'head'" in str(info.value) and str(tmp_path / "nowhere" / "head.onnx") in str(info.value)


@pytest.mark.parametrize("entry, expected", [
    ("{onnx: m.onnx, cores: [cpu], colour: red}", "unknown key(s) ['colour']"),
    ("{onnx: m.onnx, cores: [dla2]}", "unknown core 'dla2'"),
    ("{onnx: m.onnx, cores: []}", "'cores' must be a non-empty list"),
    ("{onnx: m.onnx, cores: [cpu, cpu]}", "lists a core twice"),
    ("{onnx: m.onnx, cores: [cpu], precision: int4}", "unknown precision 'int4'"),
    ("{onnx: m.onnx, cores: [dla0, cpu]}", "fp32 is not possible on a DLA core"),
    ("{onnx: m.onnx, cores: [cpu], policy: random}", "unknown policy 'random'"),
    ("{onnx: m.onnx, cores: [cpu], queue_size: 0}", "'queue_size' must be an integer >= 1"),
    ("{onnx: m.onnx, cores: [cpu], gpu_fallback: maybe}", "'gpu_fallback' must be true or false"),
    ("{onnx: m.onnx, cores: [cpu], intra_op_threads: -1}", "'intra_op_threads'"),
    ("{onnx: m.onnx, cores: [cpu], deadline_ms: 0}", "'deadline_ms' must be a positive number"),
    ("{onnx: m.onnx, cores: [cpu], deadline_ms: soon}", "'deadline_ms' must be a positive number"),
    ("{onnx: m.onnx, cores: [cpu], deadline_ms: .inf}", "'deadline_ms' must be a positive number"),
    ("{cores: [cpu]}", "'onnx' (path to the model file) is required"),
    ("[m.onnx]", "must be a mapping"),
])
def test_bad_model_entries_are_named(tmp_path, entry, expected):
    path = write(tmp_path, f"models:\n  head: {entry}\n")
    with pytest.raises(EnginesConfigError) as info:
        load_engines_config(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("modles: {}\n", "unknown key(s) ['modles']"),
    ("latency_budget_ms: {tpu: 5}\n", "unknown core 'tpu'"),
    ("latency_budget_ms: {cpu: -5}\n", "must be a positive number"),
    ("latency_budget_ms: {cpu: fast}\n", "must be a positive number"),
    ("models: [a, b]\n", "'models' must be a mapping"),
    ("- just a list\n", "expected a mapping"),
    ("models: {a: [unclosed\n", "not valid YAML"),
])
def test_bad_top_level_entries(tmp_path, text, expected):
    with pytest.raises(EnginesConfigError) as info:
        load_engines_config(write(tmp_path, text))
    assert expected in str(info.value)


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(EnginesConfigError, match="cannot read engines file"):
        load_engines_config(tmp_path / "absent.yaml")


def test_model_spec_validates_when_built_in_code(tmp_path):
    with pytest.raises(EnginesConfigError, match="model 'x': unknown core 'npu'"):
        ModelSpec("x", tmp_path / "x.onnx", ("npu",))
    spec = ModelSpec("x", str(tmp_path / "x.onnx"), ["gpu", "cpu"], precision="fp16")
    assert spec.onnx == tmp_path / "x.onnx" and spec.cores == ("gpu", "cpu")


def test_deadlines_are_per_model_or_from_each_cores_budget(tmp_path):
    path = write(tmp_path, """
latency_budget_ms: {dla0: 50, cpu: 250}
models:
  fixed: {onnx: m.onnx, cores: [dla0, cpu], precision: fp16, deadline_ms: 120}
  budgeted: {onnx: m.onnx, cores: [dla0, cpu], precision: fp16}
""")
    config = load_engines_config(path)
    fixed, budgeted = config.models["fixed"], config.models["budgeted"]
    assert fixed.deadline_ms == 120.0 and isinstance(fixed.deadline_ms, float)
    assert budgeted.deadline_ms is None
    assert [config.deadline_ms(fixed, core) for core in ("dla0", "cpu", "gpu")] == [120.0, 120.0, 120.0]
    # 4 x the core's budget, so a model falling back from a DLA to the CPU keeps a deadline it can meet.
    assert [config.deadline_ms(budgeted, core) for core in ("dla0", "cpu")] == [200.0, 1000.0]
    assert config.deadline_ms(budgeted, "gpu") == DEFAULT_DEADLINE_MS  # no budget for gpu here
