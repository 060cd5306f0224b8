"""The shipped detector (models/detector/): loads, runs through the pipeline and the CLI, finds the
obstacles of held-out synthetic frames, and is DLA-clean. Its full mAP@0.5 comes from
training/detector/evaluate.py (MODEL_CARD.md)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dla_perception.models.detection import DetectionPipeline, ModelDescription
from dla_perception.synthetic.scene import OBSTACLE_CLASSES, generate_frame
from dla_perception.tools.cli import main as cli_main

MODEL = Path(__file__).resolve().parent.parent / "models" / "detector" / "detector.yaml"
HELD_OUT_SEEDS = range(1_000_000, 1_000_004)  # training used seeds 0..3599


@pytest.fixture(scope="module")
def pipeline():
    with DetectionPipeline(ModelDescription.load(MODEL), cores=("cpu",)) as pipeline:
        yield pipeline


def test_description_matches_the_generator_and_the_network():
    description = ModelDescription.load(MODEL)
    assert description.labels == OBSTACLE_CLASSES
    assert description.output.format == "native"
    assert description.onnx.stat().st_size < 8 * 1024 * 1024  # a few MB at most
    text = (MODEL.parent / "MODEL_CARD.md").read_text()
    assert "mAP@0.5" in text


def _iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_finds_the_obstacles_of_held_out_frames(pipeline):
    truths = found = correct = reported = 0
    for seed in HELD_OUT_SEEDS:
        frame = generate_frame(seed)
        detections = pipeline.detect(frame.left, "rgb8")
        reported += len(detections)
        correct += sum(any(o.label == d.label and _iou(o.box, d.box) >= 0.5 for o in frame.objects)
                       for d in detections)
        for obj in frame.objects:
            if obj.box[2] - obj.box[0] < 12 or obj.box[3] - obj.box[1] < 12:
                continue  # tiny far objects: counted by the mAP evaluation, not asserted here
            truths += 1
            found += any(d.label == obj.label and _iou(obj.box, d.box) >= 0.5 for d in detections)
    assert truths >= 10
    assert found / truths >= 0.8, f"recall {found}/{truths}"
    assert correct / max(reported, 1) >= 0.8, f"precision {correct}/{reported}"


def test_detect_cli_runs_the_shipped_detector_by_default(tmp_path, capsys):
    frame = generate_frame(HELD_OUT_SEEDS[0])
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), np.ascontiguousarray(frame.left[:, :, ::-1]))
    assert cli_main(["detect", str(path), "--json", "--cores", "cpu"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    result = json.loads(line)
    assert result["image"] == str(path)
    assert {d["label"] for d in result["detections"]} <= set(OBSTACLE_CLASSES)
    assert len(result["detections"]) >= 1


def test_the_graph_runs_on_dla_without_gpu_fallback():
    from dla_perception.dla import analyze

    report = analyze(ModelDescription.load(MODEL).onnx, trt_version="10.3", precision="fp16")
    assert report.passes_strict, report.format_text()


def test_detect_cli_reports_unreadable_images_and_goes_on(tmp_path, capsys):
    good = tmp_path / "frame.png"
    cv2.imwrite(str(good), np.ascontiguousarray(generate_frame(HELD_OUT_SEEDS[1]).left[:, :, ::-1]))
    garbage = tmp_path / "garbage.jpg"
    garbage.write_text("not a picture")
    absent = tmp_path / "absent.png"
    code = cli_main(["detect", str(garbage), str(good), str(absent), "--json", "--cores", "cpu"])
    assert code == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert lines[0] == {"image": str(garbage), "error": "not an image OpenCV can read"}
    assert lines[1]["image"] == str(good) and lines[1]["detections"]
    assert lines[2] == {"image": str(absent), "error": "not found"}
    assert "absent.png: not found" in captured.err
