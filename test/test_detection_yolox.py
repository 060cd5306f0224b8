"""A real third-party detector on real photos: YOLOX-nano (COCO) through the pipeline and the CLI.

The expected detections come from an independent decode written here (YOLOX's own pre-processing:
ratio = min(416 / h, 416 / w), resize to int(w * ratio) x int(h * ratio), top-left, pad 114, BGR 0-255;
per-stride reshapes; greedy per-class NMS), run on onnxruntime directly, not through the project's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from dla_perception.models.detection import DetectionPipeline
from dla_perception.runtime.config import EnginesConfig
from dla_perception.runtime.manager import EngineManager
from dla_perception.tools.cli import main as cli_main

SIZE = 416
STRIDES = (8, 16, 32)
SCORE, IOU = 0.3, 0.45


@pytest.fixture(scope="module")
def yolox_yaml(shared_data: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("yolox")
    path = folder / "yolox_nano.yaml"
    path.write_text(yaml.safe_dump({
        "onnx": str(shared_data / "models" / "yolox_nano.onnx"),
        "labels": str(shared_data / "models" / "coco.names"),
        "input": {"name": "images", "width": SIZE, "height": SIZE, "color": "bgr", "scale": 1.0,
                  "mean": [0, 0, 0], "std": [1, 1, 1], "resize": "letterbox_topleft", "pad_value": 114},
        "output": {"format": "yolox", "strides": list(STRIDES), "score_threshold": SCORE,
                   "iou_threshold": IOU},
    }))
    return path


@pytest.fixture(scope="module")
def pipeline(yolox_yaml):
    with EngineManager(EnginesConfig(), available_cores=["cpu"]) as manager:
        yield DetectionPipeline(yolox_yaml, manager=manager)


def reference_detections(session, labels: list[str], image_bgr: np.ndarray) -> list[tuple[str, float, list]]:
    """YOLOX decoding written from its paper/README, independent of dla_perception."""
    h, w = image_bgr.shape[:2]
    ratio = min(SIZE / h, SIZE / w)
    resized = cv2.resize(image_bgr, (int(w * ratio), int(h * ratio)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    raw = session.run(None, {"images": canvas.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    found, start = [], 0
    for stride in STRIDES:
        cells = (SIZE // stride) ** 2
        level = raw[start:start + cells].reshape(SIZE // stride, SIZE // stride, -1)
        start += cells
        for row in range(level.shape[0]):
            for col in range(level.shape[1]):
                v = level[row, col]
                cls = int(np.argmax(v[5:]))
                score = float(v[4] * v[5 + cls])
                if score < SCORE:
                    continue
                cx, cy = (v[0] + col) * stride, (v[1] + row) * stride
                bw, bh = np.exp(v[2]) * stride, np.exp(v[3]) * stride
                box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) / ratio
                found.append((cls, score, np.clip(box, 0, [w, h, w, h])))
    kept: list[tuple[int, float, np.ndarray]] = []
    for cls, score, box in sorted(found, key=lambda item: -item[1]):
        if all(c != cls or _iou(box, b) <= IOU for c, _, b in kept):
            kept.append((cls, score, box))
    return [(labels[c], s, b.tolist()) for c, s, b in kept]


def _iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(
    ("name", "must_find"),
    [("person.jpg", {"person", "dog"}), ("dog.jpg", {"dog"}), ("jetson_peds_0.jpg", {"person"})],
)
def test_yolox_nano_on_real_photos_matches_an_independent_decode(shared_data, pipeline, name, must_find):
    import onnxruntime

    image = cv2.imread(str(shared_data / "images" / name))
    detections = pipeline.detect(image, "bgr8")
    labels = {d.label for d in detections}
    assert must_find <= labels, f"{name}: found {labels}"
    if name == "jetson_peds_0.jpg":
        assert sum(d.label == "person" for d in detections) >= 3
    session = onnxruntime.InferenceSession(str(shared_data / "models" / "yolox_nano.onnx"),
                                           providers=["CPUExecutionProvider"])
    coco = (shared_data / "models" / "coco.names").read_text().split("\n")
    expected = reference_detections(session, coco, image)
    assert len(detections) == len(expected)
    scale = max(image.shape[:2]) / SIZE  # one network pixel in image pixels
    for det in detections:  # every detection has its reference twin: same label, score, box
        twins = [e for e in expected if e[0] == det.label and abs(e[1] - det.score) < 0.02
                 and np.abs(np.subtract(e[2], det.box)).max() <= 2 * scale]
        assert twins, f"{name}: no reference match for {det}"


def test_detect_cli_json_lines(shared_data, yolox_yaml, capsys):
    images = [str(shared_data / "images" / "person.jpg"), str(shared_data / "images" / "dog.jpg")]
    code = cli_main(["detect", *images, "--model", str(yolox_yaml), "--json", "--score-threshold", "0.5",
                     "--cores", "cpu"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["image"] for line in lines] == images
    person = lines[0]["detections"]
    assert {d["label"] for d in person} >= {"person", "dog"}
    assert all(d["score"] >= 0.5 and len(d["box"]) == 4 for d in person)
    x1, y1, x2, y2 = next(d["box"] for d in lines[1]["detections"] if d["label"] == "dog")
    assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576  # dog.jpg is 768x576: input-image pixels


def test_detect_cli_text_and_errors(shared_data, yolox_yaml, tmp_path, capsys):
    image = str(shared_data / "images" / "dog.jpg")
    missing = str(tmp_path / "missing.jpg")
    assert cli_main(["detect", image, missing, "--model", str(yolox_yaml), "--cores", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "dog" in captured.out and f"{image}:" in captured.out
    assert "missing.jpg: not found" in captured.err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yolox_yaml.read_text().replace("resize:", "resize_mode:"))
    assert cli_main(["detect", image, "--model", str(bad)]) == 2
    assert "unknown key(s) ['resize_mode']" in capsys.readouterr().err
    assert cli_main(["detect", image, "--model", str(yolox_yaml), "--score-threshold", "2"]) == 2
