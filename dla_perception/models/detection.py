"""Object detection without ROS: image -> network (through the engine manager) -> decoded, NMS'd boxes.

One pipeline serves the project's own detector and users' YOLOX / YOLOv8 exports; everything model
specific comes from the model description (detection_description.py). Boxes come back in input-image
pixels, clipped to the image.

    pipeline = DetectionPipeline(ModelDescription.load("models/detector/detector.yaml"))
    for det in pipeline.detect(image_rgb):
        print(det.label, det.score, det.box)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dla_perception.models.detection_decode import decode_native, decode_yolov8, decode_yolox, select
from dla_perception.models.detection_description import (
    DescriptionError,
    ModelDescription,
    TensorShape,
)
from dla_perception.models.detection_preprocess import ImageTransform, preprocess

if TYPE_CHECKING:
    from dla_perception.runtime.manager import EngineManager

__all__ = ["DescriptionError", "Detection", "DetectionPipeline", "ModelDescription", "StageTimes"]


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in input-image pixels

    def as_dict(self) -> dict:
        return {"label": self.label, "class_id": self.class_id, "score": round(self.score, 5),
                "box": [round(v, 2) for v in self.box]}


@dataclass
class StageTimes:
    """Milliseconds spent in each stage of the last `detect` call (benchmarks, diagnostics)."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    extra: dict = field(default_factory=dict)


class DetectionPipeline:
    """A detector described by a ModelDescription, run by an EngineManager.

    With a manager, the model is registered under `model_name` (default: the ONNX file's stem, e.g.
    `detector`, matching config/engines.yaml) unless the manager already has it; without one, the
    pipeline creates a private manager over the discovered cores and closes it in `close()`.
    The network's actual I/O is checked against the description either way.
    """

    def __init__(self, description: ModelDescription | str | Path, manager: EngineManager | None = None,
                 model_name: str | None = None, cores: Sequence[str] = ("gpu", "cpu")) -> None:
        if not isinstance(description, ModelDescription):
            description = ModelDescription.load(description)
        self.description = description
        self.model_name = model_name or description.onnx.stem
        self.last_times = StageTimes()
        self._owns_manager = manager is None
        if manager is None:
            from dla_perception.runtime.config import EnginesConfig
            from dla_perception.runtime.manager import EngineManager

            manager = EngineManager(EnginesConfig())
        self.manager = manager
        try:
            if not manager.has_model(self.model_name):
                from dla_perception.runtime.config import ModelSpec

                cores = tuple(cores)
                precision = "fp16" if any(core.startswith("dla") for core in cores) else "fp32"
                manager.add_model(ModelSpec(name=self.model_name, onnx=description.onnx, cores=cores,
                                            precision=precision))
            inputs = manager.input_specs(self.model_name)
            outputs = manager.output_specs(self.model_name)
            description.check_io([_shape(spec) for spec in inputs], [_shape(spec) for spec in outputs])
        except BaseException:
            self.close()
            raise
        self._input_name = inputs[0].name

    # -- stages, public so that benchmarks and nodes can time or reuse them -------------------------------

    def preprocess(self, image: np.ndarray, encoding: str = "rgb8") -> tuple[np.ndarray, ImageTransform]:
        """Image -> [1, 3, H, W] float32 network input and the transform back to image pixels."""
        return preprocess(image, encoding, self.description.input)

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the network through the manager; outputs in the model's output order."""
        results = self.manager.infer(self.model_name, {self._input_name: tensor})
        return list(results.values())

    def postprocess(self, outputs: Sequence[np.ndarray], transform: ImageTransform,
                    score_threshold: float | None = None,
                    iou_threshold: float | None = None) -> list[Detection]:
        """Decode, threshold, class-aware NMS, cap, and map boxes back to (clipped) image pixels."""
        spec = self.description.output
        score_threshold = spec.score_threshold if score_threshold is None else float(score_threshold)
        iou_threshold = spec.iou_threshold if iou_threshold is None else float(iou_threshold)
        net_w, net_h = self.description.input.width, self.description.input.height
        if spec.format == "yolox":
            boxes, class_scores = decode_yolox(outputs[0], spec.strides, net_w, net_h)
        elif spec.format == "yolov8":
            boxes, class_scores = decode_yolov8(outputs[0])
        else:
            boxes, class_scores = decode_native(_by_stride(outputs, spec.strides, net_w, net_h), spec.strides)
        boxes, scores, class_ids = select(boxes, class_scores, score_threshold, iou_threshold,
                                          spec.max_detections)
        image_boxes = transform.to_image(boxes)
        detections = []
        for box, score, class_id in zip(image_boxes, scores, class_ids, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            if x2 <= x1 or y2 <= y1:  # entirely outside the image once clipped
                continue
            detections.append(Detection(label=self.description.label(int(class_id)), class_id=int(class_id),
                                        score=float(score), box=(x1, y1, x2, y2)))
        return detections

    def detect(self, image: np.ndarray, encoding: str = "rgb8", score_threshold: float | None = None,
               iou_threshold: float | None = None) -> list[Detection]:
        """Detections in one image (rgb8, bgr8 or mono8 HxW[x3] uint8), best score first.

        Thresholds default to the description's (`output.score_threshold`, `output.iou_threshold`).
        """
        start = time.perf_counter()
        tensor, transform = self.preprocess(image, encoding)
        after_pre = time.perf_counter()
        outputs = self.infer(tensor)
        after_infer = time.perf_counter()
        detections = self.postprocess(outputs, transform, score_threshold, iou_threshold)
        end = time.perf_counter()
        self.last_times = StageTimes(preprocess_ms=(after_pre - start) * 1e3,
                                     inference_ms=(after_infer - after_pre) * 1e3,
                                     postprocess_ms=(end - after_infer) * 1e3)
        return detections

    def close(self) -> None:
        """Close the private manager, if this pipeline created one (a shared manager is the caller's)."""
        if self._owns_manager and getattr(self, "manager", None) is not None:
            self.manager.close()

    def __enter__(self) -> DetectionPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _shape(spec: object) -> TensorShape:
    """An engine TensorSpec (dynamic dims as -1 or None) as a TensorShape."""
    dims = tuple(None if d is None or int(d) < 0 else int(d) for d in spec.shape)  # type: ignore[attr-defined]
    return TensorShape(spec.name, dims)  # type: ignore[attr-defined]


def _by_stride(outputs: Sequence[np.ndarray], strides: Sequence[int], net_w: int,
               net_h: int) -> list[np.ndarray]:
    """Native outputs reordered to match `strides`, by their grid size (the ONNX order is not trusted)."""
    by_size = {tuple(np.shape(o)[2:]): o for o in outputs}
    ordered = []
    for stride in strides:
        grid = (net_h // stride, net_w // stride)
        if grid not in by_size:
            raise ValueError(f"no native output has the {grid[0]}x{grid[1]} grid of stride {stride}; "
                             f"got {[list(np.shape(o)) for o in outputs]}")
        ordered.append(by_size[grid])
    return ordered
