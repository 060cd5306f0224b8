"""`dla-perception quantize` for real: frames from rosbags through the pipelines' own code, onnxruntime's
quantization tool, and the int8 models measured against fp32 with onnxruntime (which runs Q/DQ graphs) on a
few held-out synthetic frames (the full figures: benchmarks/bench_int8.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from dla_perception.dla.calibration_data import (
    CalibrationDataError,
    detect_role,
    detector_inputs,
    proximity_inputs,
    read_frames,
)
from dla_perception.dla.quantize import output_tail
from dla_perception.runtime.tensorrt_qdq import translate
from dla_perception.tools.cli import main

REPO = Path(__file__).resolve().parent.parent
PROXIMITY = REPO / "models" / "proximity"
DETECTOR = REPO / "models" / "detector"
HELD_OUT = (1_000_000, 1_000_001)  # evaluation seeds (training and calibration use lower ones)


@pytest.fixture(scope="module")
def calibration_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("calibration") / "seed100"
    assert main(["make-bag", str(bag), "--frames", "4", "--seed", "100"]) == 0  # a training-range seed
    return bag


def test_roles_are_recognised_from_the_inputs(tmp_path):
    assert detect_role(PROXIMITY / "head.onnx") == "proximity_head"
    assert detect_role(PROXIMITY / "features.onnx") == "proximity_features"
    assert detect_role(DETECTOR / "detector.onnx") == "detector"
    from trt_models import conv_model

    odd = conv_model(tmp_path / "odd.onnx")
    model = onnx.load(str(odd))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 5
    onnx.save(model, str(odd))
    with pytest.raises(CalibrationDataError, match="pass --role"):
        detect_role(odd)


def test_frames_are_spread_over_the_sources_and_checked(calibration_bag, tmp_path):
    frames = read_frames([calibration_bag], 2, stereo=True)
    assert len(frames) == 2 and frames[0].right is not None and frames[0].projection_left.shape == (12,)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((48, 64, 3), np.uint8))
    assert [f.left.shape for f in read_frames([images], 5, stereo=False)] == [(48, 64, 3)]
    with pytest.raises(CalibrationDataError, match="stereo bags"):
        read_frames([images], 5, stereo=True)
    with pytest.raises(CalibrationDataError, match="no bag or folder"):
        read_frames([tmp_path / "absent"], 5, stereo=False)


def test_head_inputs_are_the_pipelines_own(calibration_bag):
    frames = read_frames([calibration_bag], 1, stereo=True)
    samples = proximity_inputs(PROXIMITY / "head.onnx", "proximity_head", frames)
    assert len(samples) == 10  # 10 calibration planes, one a call
    assert samples[0]["left_guide"].shape == (1, 8, 120, 160)  # the guide maps are recorded too
    assert samples[0]["right_guide_shifted"].shape == (1, 8, 120, 160)
    batched = proximity_inputs(PROXIMITY / "v2" / "head.onnx", "proximity_head", frames)
    assert len(batched) == 4  # v2: the same planes in head batches of 3 (the last one padded)
    left = batched[0]["left_features"]
    assert left.shape == (3, 32, 60, 80) and np.array_equal(left[0], left[2])  # one view broadcast
    assert not np.any(batched[-1]["right_shifted"][1:])  # the padding rows the pipeline really submits
    (detector,) = detector_inputs(DETECTOR / "detector.onnx", frames)
    assert detector["images"].shape == (1, 3, 480, 640) and detector["images"].max() <= 1.0


def test_quantize_cli_writes_a_dla_ready_qdq_head(calibration_bag, tmp_path, capsys):
    out = tmp_path / "head_int8.onnx"
    assert (
        main(
            [
                "quantize",
                str(PROXIMITY / "head.onnx"),
                "--calibration",
                str(calibration_bag.parent),
                "--out",
                str(out),
                "--frames",
                "2",
                "--method",
                "minmax",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    # 2 frames x 10 calibration planes, one a head call, cut to whole chunks of 8 (dla/quantize.py)
    assert summary["role"] == "proximity_head" and summary["samples"] == 16 and summary["method"] == "minmax"
    assert summary["float_output_nodes"] == output_tail(PROXIMITY / "head.onnx") == ["/head/Sigmoid"]
    model = onnx.load(str(out))
    zero_points = {
        i.name: onnx.numpy_helper.to_array(i)
        for i in model.graph.initializer
        if i.name.endswith("zero_point")
    }
    assert zero_points and not any(z.any() for z in zero_points.values())  # symmetric
    assert all(z.dtype == np.int8 for name, z in zero_points.items() if "bias" not in name)  # (bias: int32)
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0].endswith("weight_quantized")
    ]
    for node in weights:  # one scale per output channel: axis 0 for Conv, 1 for ConvTranspose
        axis = next(a.i for a in node.attribute if a.name == "axis")
        assert arrays[node.input[1]].shape == (arrays[node.input[0]].shape[axis],)
    assert {next(a.i for a in n.attribute if a.name == "axis") for n in weights} == {0, 1}
    assert translate(model).scales  # what build-engine makes of it for DLA on TensorRT 10
    assert main(["dla-check", str(out), "--strict"]) == 0
    assert (
        main(
            [
                "quantize",
                str(PROXIMITY / "head.onnx"),
                "--calibration",
                str(calibration_bag),
                "--out",
                str(out),
            ]
        )
        == 2
    )  # exists
    assert "--force" in capsys.readouterr().err


def _near_iou(head: Path, seeds: tuple[int, ...]) -> list[float]:
    """Pooled near-mask IoU per plane (1, 2, 4 m) against ground truth, through the real pipeline."""
    from dla_perception.models.proximity import ProximityPipeline, proximity_model_specs
    from dla_perception.runtime.config import EnginesConfig
    from dla_perception.runtime.manager import EngineManager
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    specs = proximity_model_specs(PROXIMITY, features_cores=("cpu",), head_cores=("cpu",), intra_op_threads=1)
    specs[1].onnx = head
    camera = StereoCamera()
    inter, union = np.zeros(3), np.zeros(3)
    with EngineManager(EnginesConfig(models={s.name: s for s in specs}), available_cores=("cpu",)) as manager:
        pipeline = ProximityPipeline(manager)
        for seed in seeds:
            frame = generate_frame(seed)
            result = pipeline.process(
                frame.left,
                frame.right,
                "rgb8",
                camera.projection_left(),
                camera.projection_right(),
                (1.0, 2.0, 4.0),
                alert_distance_m=1.0,
            )
            valid = np.isfinite(frame.disparity) & (frame.disparity > 0)
            for i, plane in enumerate(result.planes_px):
                truth = np.nan_to_num(frame.disparity) > plane
                inter[i] += np.count_nonzero(result.near_masks[i] & truth & valid)
                union[i] += np.count_nonzero((result.near_masks[i] | truth) & valid)
    return list(inter / union)


def test_shipped_int8_head_keeps_the_iou_on_held_out_frames():
    if not (PROXIMITY / "head_int8.onnx").is_file():
        pytest.skip("models/proximity/head_int8.onnx not shipped")
    fp32 = _near_iou(PROXIMITY / "head.onnx", HELD_OUT)
    int8 = _near_iou(PROXIMITY / "head_int8.onnx", HELD_OUT)
    assert all(a - b <= 0.01 for a, b in zip(fp32, int8, strict=True)), (fp32, int8)


def test_shipped_int8_detector_finds_what_fp32_finds():
    if not (DETECTOR / "detector_int8.onnx").is_file():
        pytest.skip("models/detector/detector_int8.onnx not shipped")
    from dla_perception.models.detection import DetectionPipeline
    from dla_perception.synthetic.scene import generate_frame

    matched = total = 0
    with (
        DetectionPipeline(DETECTOR / "detector.yaml", cores=("cpu",)) as fp32,
        DetectionPipeline(DETECTOR / "detector_int8.yaml", cores=("cpu",)) as int8,
    ):
        for seed in (*HELD_OUT, 1_000_002):
            image = generate_frame(seed).left
            found = int8.detect(image, "rgb8")
            for det in fp32.detect(image, "rgb8"):
                total += 1
                matched += any(
                    other.class_id == det.class_id and _iou(other.box, det.box) >= 0.5 for other in found
                )
    assert total >= 5 and matched / total >= 0.9, (matched, total)


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(("machine", "flags", "saturate"), [
    ("x86_64", "fpu avx2 fma", True),
    ("x86_64", "fpu avx2 avx512f avx512_vnni", False),
    ("x86_64", "fpu avx2 avx_vnni", False),
    ("aarch64", "fp asimd asimddp", False),
])
def test_int8_q_dq_runs_unfused_only_where_the_fused_kernels_saturate(monkeypatch, tmp_path, machine, flags,
                                                                     saturate):
    import platform

    from dla_perception.runtime import onnxruntime_engine

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(onnxruntime_engine, "CPUINFO", cpuinfo)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert onnxruntime_engine.int8_kernels_saturate() is saturate
    int8 = onnxruntime_engine.OnnxRuntimeEngine(PROXIMITY / "head_int8.onnx", core="cpu")
    fp32 = onnxruntime_engine.OnnxRuntimeEngine(PROXIMITY / "head.onnx", core="cpu")
    assert int8.qdq_unfused is saturate and not fp32.qdq_unfused
