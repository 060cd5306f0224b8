"""Model description validation and the DetectionPipeline end to end through a real EngineManager.

The networks are tiny real ONNX graphs with constant outputs (test/detection_helpers.py), so every box
below is computed by hand: decode -> NMS -> letterbox inverse -> clip.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_detection_helpers import constant_detector

from dla_perception.models.detection import Detection, DetectionPipeline
from dla_perception.models.detection_description import DescriptionError, ModelDescription
from dla_perception.runtime.config import EnginesConfig
from dla_perception.runtime.manager import EngineManager

LABELS = ["box", "post"]


def native_outputs() -> dict[str, np.ndarray]:
    """64x48 input, strides 8 (8x6 grid) and 16 (4x3 grid), 2 classes."""
    stride8 = np.zeros((1, 7, 6, 8), np.float32)
    stride8[0, :, 2, 3] = [0, 0, math.log(2), math.log(2), 1.0, 0.2, 0.9]  # centre (28, 20), 16x16 box
    stride16 = np.zeros((1, 7, 3, 4), np.float32)
    stride16[0, :, 0, 0] = [0, 0, math.log(4), math.log(4), 0.6, 0.5, 0.0]  # centre (8, 8), 64x64 box
    return {"stride16": stride16, "stride8": stride8}  # deliberately not in stride order


def write_model(folder: Path, description: dict | None = None, outputs: dict | None = None,
                input_shape=(1, 3, 48, 64), labels=LABELS) -> Path:
    constant_detector(folder / "net.onnx", input_shape, outputs or native_outputs())
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    data = description or {
        "onnx": "net.onnx",
        "labels": "labels.txt",
        "input": {"name": "images", "width": 64, "height": 48, "color": "rgb", "scale": 1 / 255,
                  "resize": "letterbox_center", "pad_value": 0},
        "output": {"format": "native", "strides": [8, 16], "score_threshold": 0.25},
    }
    path = folder / "net.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cpu_manager():
    with EngineManager(EnginesConfig(), available_cores=["cpu"]) as manager:
        yield manager


def test_native_pipeline_boxes_by_hand(tmp_path, cpu_manager):
    pipeline = DetectionPipeline(ModelDescription.load(write_model(tmp_path)), manager=cpu_manager)
    assert cpu_manager.has_model("net")  # registered under the ONNX file's stem
    image = np.zeros((128, 128, 3), np.uint8)  # ratio 0.375 -> 48x48 placed at x = 8
    detections = pipeline.detect(image)
    assert [d.label for d in detections] == ["post", "box"]
    post, box = detections
    assert post.class_id == 1 and post.score == pytest.approx(0.9)
    np.testing.assert_allclose(post.box, [(20 - 8) / 0.375, 12 / 0.375, (36 - 8) / 0.375, 28 / 0.375])
    assert box.score == pytest.approx(0.3)
    np.testing.assert_allclose(box.box, [0, 0, 32 / 0.375, 40 / 0.375])  # clipped at the image's corner
    assert pipeline.detect(image, score_threshold=0.5) == [post]
    times = pipeline.last_times
    assert times.preprocess_ms > 0 and times.inference_ms > 0 and times.postprocess_ms > 0


def test_pipeline_reuses_a_registered_model_and_checks_it(tmp_path, cpu_manager):
    first = tmp_path / "a"
    first.mkdir()
    description = ModelDescription.load(write_model(first))
    DetectionPipeline(description, manager=cpu_manager, model_name="detector")
    again = DetectionPipeline(description, manager=cpu_manager, model_name="detector")
    assert again.detect(np.zeros((48, 64, 3), np.uint8))
    assert cpu_manager.model_names == ["detector"]
    # a description that disagrees with the registered engine (3 labels -> 8 channels) is refused
    other = tmp_path / "b"
    other.mkdir()
    wrong = ModelDescription.load(write_model(other, labels=["box", "post"]), check_onnx=False)
    wrong = ModelDescription(path=wrong.path, onnx=wrong.onnx, labels=("a", "b", "c"), input=wrong.input,
                             output=wrong.output)
    with pytest.raises(DescriptionError, match="needs"):
        DetectionPipeline(wrong, manager=cpu_manager, model_name="detector")


def test_private_manager_is_created_and_closed(tmp_path):
    pipeline = DetectionPipeline(write_model(tmp_path), cores=("cpu",))
    with pipeline:
        assert isinstance(pipeline.detect(np.zeros((10, 10), np.uint8), encoding="mono8")[0], Detection)
    assert pipeline.manager.closed


def test_yolov8_pipeline_maps_boxes_back(tmp_path, cpu_manager):
    output = np.zeros((1, 4 + 2, 4), np.float32)
    output[0, :, 1] = [32, 24, 16, 8, 0.1, 0.8]  # [24, 20, 40, 28] in a 64x48 input
    path = write_model(tmp_path, outputs={"output0": output}, description={
        "onnx": "net.onnx", "labels": "labels.txt",
        "input": {"width": 64, "height": 48, "resize": "stretch"},
        "output": {"format": "yolov8"},
    })
    pipeline = DetectionPipeline(path, manager=cpu_manager)
    (detection,) = pipeline.detect(np.zeros((96, 256, 3), np.uint8), encoding="bgr8")
    assert detection.label == "post" and detection.score == pytest.approx(0.8)
    np.testing.assert_allclose(detection.box, [24 * 4, 20 * 2, 40 * 4, 28 * 2])


# -- description validation ------------------------------------------------------------------------------


def _edit(tmp_path: Path, change) -> Path:
    path = write_model(tmp_path)
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), r"unknown key\(s\) \['extra'\]"),
        (lambda d: d["input"].update(colour="bgr"), r"unknown key\(s\) \['colour'\]"),
        (lambda d: d["output"].update(anchors=[1]), r"unknown key\(s\) \['anchors'\]"),
        (lambda d: d.pop("output"), "missing required key 'output'"),
        (lambda d: d["input"].pop("width"), "missing required key 'width'"),
        (lambda d: d.update(onnx="missing.onnx"), "onnx file not found"),
        (lambda d: d.update(labels="missing.txt"), "labels file not found"),
        (lambda d: d["input"].update(resize="crop"), "resize"),
        (lambda d: d["input"].update(color="rgba"), "color"),
        (lambda d: d["input"].update(std=[1, 0, 1]), "must be > 0"),
        (lambda d: d["input"].update(mean=[1, 2]), "list of 3 numbers"),
        (lambda d: d["input"].update(width=-64), "positive integer"),
        (lambda d: d["output"].update(format="ssd"), "format"),
        (lambda d: d["output"].update(strides=[]), "needs a list of strides"),
        (lambda d: d["output"].update(strides=[7, 16]), "stride 7 does not divide"),
        (lambda d: d["output"].update(score_threshold=1.5), r"within \[0, 1\]"),
        # the ONNX disagrees with the description
        (lambda d: d["input"].update(width=128), r"input 'images' has shape \[1, 3, 48, 64\]"),
        (lambda d: d["input"].update(name="input"), "input is named 'images'"),
        (lambda d: d["output"].update(strides=[8]), "one output per stride"),
        (lambda d: d["output"].update(strides=[8, 8]), "needs"),
        (lambda d: d["output"].update(format="yolox"), "exactly one output"),
    ],
)
def test_bad_descriptions_are_clear_errors(tmp_path, change, message):
    with pytest.raises(DescriptionError, match=message):
        ModelDescription.load(_edit(tmp_path, change))


def test_label_count_must_match_the_network(tmp_path):
    path = write_model(tmp_path, labels=["box", "post", "bin"])
    with pytest.raises(DescriptionError, match="format native with 3 labels needs"):
        ModelDescription.load(path)


def test_not_a_mapping_and_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(DescriptionError, match="expected a mapping"):
        ModelDescription.load(path)
    path.write_text("onnx: [unclosed\n")
    with pytest.raises(DescriptionError, match="not valid YAML"):
        ModelDescription.load(path)
    with pytest.raises(DescriptionError, match="not found"):
        ModelDescription.load(tmp_path / "absent.yaml")
