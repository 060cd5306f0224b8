"""`dla-perception build-engine`: real argument handling, TensorRT through the strict double."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double
from trt_models import INPUT_SHAPE, conv_model, qdq_model

from dla_perception.tools.build_engine import _calibration_batches
from dla_perception.tools.cli import UsageError, main


@pytest.fixture
def model_path(tmp_path) -> Path:
    return conv_model(tmp_path / "conv.onnx")


def test_without_tensorrt_it_exits_non_zero_with_a_clear_message(model_path, capsys):
    from dla_perception.runtime.engine import tensorrt_importable

    if tensorrt_importable():
        pytest.skip("TensorRT is installed here")
    assert main(["build-engine", str(model_path), "--core", "dla0"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not available" in err and "JetPack" in err


def test_builds_a_dla_plan_and_prints_the_placement(trt, model_path, tmp_path, capsys):
    out = tmp_path / "out" / "conv.plan"
    assert main(["build-engine", str(model_path), "--core", "dla1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes().startswith(tensorrt_double.PLAN_MAGIC)
    assert "dla1, fp16, fp16)" in text and "GPU FALLBACK" in text
    assert "GPU  {ForeignNode[softmax...softmax]}" in text and "source: builder log and inspector" in text
    (build,) = trt.double_state["builds"]
    assert build["DLA_core"] == 1 and build["flags"] == ["FP16", "GPU_FALLBACK"]
    assert trt.double_state["deserialized_on_dla_core"] == [1]


def test_json_report_and_pure_dla_failure(trt, model_path, tmp_path, capsys):
    args = ["build-engine", str(model_path), "--core", "gpu", "--json", "--out", str(tmp_path / "g.plan")]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "fp32" and report["placement"]["subgraphs"] == 0
    assert report["placement"]["GPU"] == 3 and report["tensorrt"] == "10.3.0" and report["mode"] == "fp32"
    assert main(["build-engine", str(model_path), "--core", "dla0", "--no-gpu-fallback",
                 "--out", str(tmp_path / "d.plan")]) == 1
    assert "GPU fallback is off" in capsys.readouterr().out
    assert trt.double_state["builds"][-1]["flags"] == ["FP16"]  # only GPU_FALLBACK cleared, no DIRECT_IO
    assert not (tmp_path / "d.plan").exists()


def test_int8_with_an_existing_cache_and_native_io(trt, model_path, tmp_path, capsys):
    cache = tmp_path / "conv.cache"
    cache.write_text("TRT-100300-EntropyCalibration2\nx: 3c010204\n")
    args = ["build-engine", str(model_path), "--core", "dla0", "--int8", "--calib-cache", str(cache),
            "--dla-sram", "524288", "--dla-native-io", "--out", str(tmp_path / "i.plan")]
    assert main(args) == 0
    build = trt.double_state["builds"][-1]
    assert build["flags"] == ["DIRECT_IO", "FP16", "GPU_FALLBACK", "INT8"]
    assert build["calibration"]["source"] == "cache"
    assert build["pools"] == {"DLA_MANAGED_SRAM": 524288}
    assert build["input_formats"] == {"x": ("INT8", 1 << int(trt.TensorFormat.DLA_LINEAR))}
    assert build["output_formats"] == {"y": ("INT8", 1 << int(trt.TensorFormat.CHW32))}


@pytest.mark.parametrize("extra, message", [
    (["--fp16", "--int8"], "choose one"),
    (["--int8"], "--int8 needs"),
    (["--dla-sram", "5000"], "power of two"),
    (["--core", "gpu", "--dla-native-io"], "dla0/dla1 only"),
])
def test_bad_arguments_exit_2(model_path, extra, message, capsys):
    assert main(["build-engine", str(model_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_onnx_exits_2(tmp_path, capsys):
    assert main(["build-engine", str(tmp_path / "absent.onnx")]) == 2
    assert "ONNX file not found" in capsys.readouterr().err


def test_calibration_data_with_or_without_the_batch_axis(model_path, tmp_path):
    samples = np.random.default_rng(0).standard_normal((5, *INPUT_SHAPE[1:])).astype(np.float32)
    np.savez(tmp_path / "flat.npz", x=samples)
    np.savez(tmp_path / "batched.npz", x=samples[:, None])
    for name in ("flat.npz", "batched.npz"):
        batches = _calibration_batches(tmp_path / name, model_path)
        assert len(batches) == 5 and all(b["x"].shape == INPUT_SHAPE for b in batches)
        np.testing.assert_array_equal(batches[3]["x"][0], samples[3])
    np.savez(tmp_path / "wrong.npz", image=samples)
    with pytest.raises(UsageError, match="do not match the model inputs"):
        _calibration_batches(tmp_path / "wrong.npz", model_path)


def test_a_qdq_model_builds_as_int8_without_calibration(trt, model_path, tmp_path, capsys):
    qdq = qdq_model(tmp_path / "conv_qdq.onnx", conv_model(tmp_path / "plain.onnx", with_softmax=False))
    assert main(["build-engine", str(qdq), "--core", "gpu", "--json", "--out", str(tmp_path / "g.plan")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["precision"], report["mode"]) == ("int8", "explicit-int8")
    assert trt.double_state["builds"][-1]["calibration"] == {"source": "explicit", "batches": 0}
    assert main(["build-engine", str(qdq), "--core", "dla0", "--no-gpu-fallback", "--out",
                 str(tmp_path / "d.plan")]) == 0
    text = capsys.readouterr().out
    assert "translated-int8" in text and "DLA: 1 DLA subgraph(s), no GPU fallback" in text
    assert main(["build-engine", str(qdq), "--core", "dla0", "--fp16"]) == 1
    assert "explicitly quantized" in capsys.readouterr().out


def test_an_unwritable_out_path_is_a_usage_error(trt, model_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["build-engine", str(model_path), "--core", "gpu", "--out", str(blocker / "p.plan")]) == 2
    assert "cannot write the plan" in capsys.readouterr().err
