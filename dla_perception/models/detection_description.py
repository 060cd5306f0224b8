"""The detection model description: a YAML file next to the ONNX that says how to feed and decode it.

Format (docs/detection.md, ../shared/docs/design.md); paths are relative to the YAML file:

    onnx: yolox_nano.onnx
    labels: coco.names            # one label per line
    input:  {name: images, width: 416, height: 416, color: bgr, scale: 1.0,
             mean: [0, 0, 0], std: [1, 1, 1], resize: letterbox_topleft, pad_value: 114}
    output: {format: yolox, strides: [8, 16, 32]}   # format: yolox | yolov8 | native

Optional output keys: `score_threshold` (0.25), `iou_threshold` (0.45), `max_detections` (100).
Every key is checked: an unknown key, a bad value or an ONNX file that disagrees with the description
(input name or size, output count or shape, number of labels) raises DescriptionError naming the problem,
so a user bringing their own model learns at load time what to fix, not from garbage boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESIZE_MODES = ("stretch", "letterbox_center", "letterbox_topleft")
COLOR_ORDERS = ("rgb", "bgr")
OUTPUT_FORMATS = ("yolox", "yolov8", "native")

_TOP_KEYS = {"onnx", "labels", "input", "output"}
_INPUT_KEYS = {"name", "width", "height", "color", "scale", "mean", "std", "resize", "pad_value"}
_OUTPUT_KEYS = {"format", "strides", "score_threshold", "iou_threshold", "max_detections"}


class DescriptionError(ValueError):
    """The model description is invalid or disagrees with its ONNX file."""


@dataclass(frozen=True)
class TensorShape:
    """Name and static shape of one ONNX graph input or output (None for a symbolic dimension)."""

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class InputDescription:
    name: str | None
    width: int
    height: int
    color: str = "rgb"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: str = "letterbox_center"
    pad_value: float = 114.0


@dataclass(frozen=True)
class OutputDescription:
    format: str
    strides: tuple[int, ...] = ()
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100


@dataclass(frozen=True)
class ModelDescription:
    """A validated model description; `onnx` and `labels_path` are absolute."""

    path: Path | None
    onnx: Path
    labels: tuple[str, ...]
    input: InputDescription
    output: OutputDescription
    labels_path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @classmethod
    def load(cls, path: str | Path, check_onnx: bool = True) -> ModelDescription:
        """Read and validate a description file; with check_onnx, also check it against the ONNX graph."""
        import yaml

        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise DescriptionError(f"model description not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise DescriptionError(f"{path}: not valid YAML: {exc}") from exc
        description = cls.from_dict(data, base_dir=path.parent, path=path)
        if check_onnx:
            description.check_onnx()
        return description

    @classmethod
    def from_dict(cls, data: Any, base_dir: str | Path, path: Path | None = None) -> ModelDescription:
        """Validate a parsed description; relative paths resolve against base_dir."""
        where = str(path) if path else "model description"
        if not isinstance(data, dict):
            raise DescriptionError(f"{where}: expected a mapping with keys {sorted(_TOP_KEYS)}")
        _reject_unknown(data, _TOP_KEYS, where)
        for key in ("onnx", "input", "output"):
            if key not in data:
                raise DescriptionError(f"{where}: missing required key '{key}'")
        base_dir = Path(base_dir)
        onnx_path = (base_dir / str(data["onnx"])).expanduser().resolve()
        if not onnx_path.is_file():
            raise DescriptionError(f"{where}: onnx file not found: {onnx_path}")
        labels: tuple[str, ...] = ()
        labels_path = None
        if data.get("labels") is not None:
            labels_path = (base_dir / str(data["labels"])).expanduser().resolve()
            if not labels_path.is_file():
                raise DescriptionError(f"{where}: labels file not found: {labels_path}")
            labels = tuple(line.strip() for line in labels_path.read_text().splitlines() if line.strip())
            if not labels:
                raise DescriptionError(f"{where}: labels file {labels_path} has no labels")
        network_input = _parse_input(data["input"], f"{where}: input")
        network_output = _parse_output(data["output"], f"{where}: output")
        for stride in network_output.strides:
            if network_input.width % stride or network_input.height % stride:
                raise DescriptionError(f"{where}: output stride {stride} does not divide the input size "
                                       f"{network_input.width}x{network_input.height}")
        return cls(
            path=path,
            onnx=onnx_path,
            labels=labels,
            input=network_input,
            output=network_output,
            labels_path=labels_path,
        )

    def label(self, class_id: int) -> str:
        """The class's label, or `class_<id>` when the description has no labels file."""
        return self.labels[class_id] if class_id < len(self.labels) else f"class_{class_id}"

    def check_onnx(self) -> None:
        """Raise DescriptionError when the ONNX graph's inputs/outputs disagree with this description."""
        import onnx

        try:
            model = onnx.load(str(self.onnx), load_external_data=False)
        except Exception as exc:
            raise DescriptionError(f"cannot read ONNX model {self.onnx}: {exc}") from exc
        initializers = {init.name for init in model.graph.initializer}
        inputs = [_tensor_shape(v) for v in model.graph.input if v.name not in initializers]
        outputs = [_tensor_shape(v) for v in model.graph.output]
        self.check_io(inputs, outputs)

    def check_io(self, inputs: Sequence[TensorShape], outputs: Sequence[TensorShape]) -> None:
        """Check the network's I/O (from ONNX or an engine) against the description."""
        where = f"{self.onnx.name} vs {self.path.name if self.path else 'description'}"
        if len(inputs) != 1:
            raise DescriptionError(f"{where}: detectors with one image input are supported, "
                                   f"the model has {len(inputs)}: {[t.name for t in inputs]}")
        tensor = inputs[0]
        if self.input.name is not None and tensor.name != self.input.name:
            raise DescriptionError(f"{where}: input is named {tensor.name!r}, description says "
                                   f"{self.input.name!r}")
        expected = (1, 3, self.input.height, self.input.width)
        if not _shape_matches(tensor.shape, expected):
            raise DescriptionError(f"{where}: input {tensor.name!r} has shape {_fmt(tensor.shape)}, "
                                   f"description needs {_fmt(expected)} (NCHW, height x width)")
        expected_shapes = self.expected_outputs(len(outputs))
        if self.output.format == "native":  # one output per stride, in any order: match by grid size
            unmatched = list(outputs)
            for needed in expected_shapes:
                match = next((o for o in unmatched if _shape_matches(o.shape, needed)), None)
                if match is None:
                    raise DescriptionError(f"{where}: format native with {self.num_classes} labels needs an "
                                           f"output {_fmt(needed)}; the model has "
                                           + ", ".join(f"{o.name} {_fmt(o.shape)}" for o in unmatched))
                unmatched.remove(match)
            return
        for shape, needed in zip(outputs, expected_shapes, strict=True):
            if not _shape_matches(shape.shape, needed):
                raise DescriptionError(f"{where}: output {shape.name!r} has shape {_fmt(shape.shape)}, "
                                       f"format {self.output.format} with {self.num_classes} labels "
                                       f"needs {_fmt(needed)}")

    def expected_outputs(self, count: int) -> list[tuple[int | None, ...]]:
        """The output shapes the format implies; raises when the output count is wrong.

        When the description has no labels, the class count is free (None) and the labels default.
        """
        fmt, width, height = self.output.format, self.input.width, self.input.height
        classes = self.num_classes or None
        if fmt == "native":
            if count != len(self.output.strides):
                raise DescriptionError(f"native format needs one output per stride "
                                       f"{list(self.output.strides)}, the model has {count}")
            return [(1, None if classes is None else 5 + classes, height // s, width // s)
                    for s in self.output.strides]
        if count != 1:
            raise DescriptionError(f"format {fmt} needs exactly one output, the model has {count}")
        if fmt == "yolox":
            anchors = sum((height // s) * (width // s) for s in self.output.strides)
            return [(1, anchors, None if classes is None else 5 + classes)]
        return [(1, None if classes is None else 4 + classes, None)]


def _reject_unknown(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise DescriptionError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _number(value: Any, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DescriptionError(f"{where}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise DescriptionError(f"{where}: must be > 0, got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DescriptionError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _triple(value: Any, where: str, positive: bool = False) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise DescriptionError(f"{where}: expected a number or a list of 3 numbers, got {value!r}")
    a, b, c = (_number(v, where, positive) for v in value)
    return (a, b, c)


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise DescriptionError(f"{where}: expected one of {list(choices)}, got {value!r}")
    return value


def _parse_input(data: Any, where: str) -> InputDescription:
    if not isinstance(data, dict):
        raise DescriptionError(f"{where}: expected a mapping")
    _reject_unknown(data, _INPUT_KEYS, where)
    for key in ("width", "height"):
        if key not in data:
            raise DescriptionError(f"{where}: missing required key '{key}'")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise DescriptionError(f"{where}.name: expected a string, got {name!r}")
    defaults = InputDescription(name=None, width=1, height=1)
    return InputDescription(
        name=name,
        width=_integer(data["width"], f"{where}.width"),
        height=_integer(data["height"], f"{where}.height"),
        color=_choice(data.get("color", defaults.color), COLOR_ORDERS, f"{where}.color"),
        scale=_number(data.get("scale", defaults.scale), f"{where}.scale", positive=True),
        mean=_triple(data.get("mean", defaults.mean), f"{where}.mean"),
        std=_triple(data.get("std", defaults.std), f"{where}.std", positive=True),
        resize=_choice(data.get("resize", defaults.resize), RESIZE_MODES, f"{where}.resize"),
        pad_value=_number(data.get("pad_value", defaults.pad_value), f"{where}.pad_value"),
    )


def _parse_output(data: Any, where: str) -> OutputDescription:
    if not isinstance(data, dict):
        raise DescriptionError(f"{where}: expected a mapping")
    _reject_unknown(data, _OUTPUT_KEYS, where)
    if "format" not in data:
        raise DescriptionError(f"{where}: missing required key 'format'")
    fmt = _choice(data["format"], OUTPUT_FORMATS, f"{where}.format")
    strides: tuple[int, ...] = ()
    if fmt in ("yolox", "native"):
        raw = data.get("strides")
        if not isinstance(raw, (list, tuple)) or not raw:
            raise DescriptionError(f"{where}.strides: format {fmt} needs a list of strides, got {raw!r}")
        strides = tuple(_integer(s, f"{where}.strides") for s in raw)
    elif "strides" in data:
        raise DescriptionError(f"{where}.strides: format {fmt} takes no strides "
                               "(its boxes are decoded in the model)")
    defaults = OutputDescription(format=fmt)
    score = _number(data.get("score_threshold", defaults.score_threshold), f"{where}.score_threshold")
    iou = _number(data.get("iou_threshold", defaults.iou_threshold), f"{where}.iou_threshold")
    for value, key in ((score, "score_threshold"), (iou, "iou_threshold")):
        if not 0.0 <= value <= 1.0:
            raise DescriptionError(f"{where}.{key}: must be within [0, 1], got {value}")
    return OutputDescription(
        format=fmt,
        strides=strides,
        score_threshold=score,
        iou_threshold=iou,
        max_detections=_integer(data.get("max_detections", defaults.max_detections),
                                f"{where}.max_detections"),
    )


def _tensor_shape(value_info: Any) -> TensorShape:
    dims = value_info.type.tensor_type.shape.dim
    return TensorShape(value_info.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in dims))


def _shape_matches(actual: Sequence[int | None], expected: Sequence[int | None]) -> bool:
    """Equal rank, and every dimension equal where both are known (symbolic batch is accepted as 1)."""
    if len(actual) != len(expected):
        return False
    return all(a is None or e is None or a == e for a, e in zip(actual, expected, strict=True))


def _fmt(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
