"""Calibration inputs for INT8 quantization, made from recorded frames by the pipelines' own code.

A model's inputs are what the pipeline feeds it on a robot, so calibration runs the same code on frames
read from rosbags (stereo or monocular; a folder of bags; or, for the detector, a folder of images):
- `detector`: DetectionPipeline's preprocessing (the model description's resize, colour order, scale);
- `proximity_features`: ProximityPipeline on each stereo pair, its features input recorded;
- `proximity_head`: ProximityPipeline on each stereo pair: the features network runs, the right features
  are shifted by every calibration plane's disparity, and the head's batches are recorded as they are
  submitted (padding rows included), so the head sees exactly its run-time inputs.
The role is recognised from the model's inputs; the proximity roles need the partner network (the other
ONNX of models/proximity), found beside the model unless given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROLES = ("proximity_features", "proximity_head", "detector")
# Planes spread over the proximity camera's working range (docs/proximity.md), nearest first.
CALIBRATION_PLANES_M = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class CalibrationDataError(ValueError):
    """Frames or models that cannot produce calibration inputs (the message says what to change)."""


def model_inputs(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    initializers = {init.name for init in model.graph.initializer}
    return {
        value.name: tuple(
            d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
        )
        for value in model.graph.input
        if value.name not in initializers
    }


def detect_role(model_path: Path) -> str:
    """proximity_head (left_features + right_shifted [+ left_guide, right_guide_shifted]),
    proximity_features ([2, 3, H, W]: a stereo pair) or detector ([1, 3, H, W]); CalibrationDataError
    when the inputs say neither."""
    inputs = model_inputs(onnx.load(str(model_path), load_external_data=False))
    from dla_perception.models.proximity import (
        FEATURES_INPUT,
        HEAD_GUIDE_INPUT,
        HEAD_LEFT_INPUT,
        HEAD_RIGHT_GUIDE_INPUT,
        HEAD_RIGHT_INPUT,
    )

    head = {HEAD_LEFT_INPUT, HEAD_RIGHT_INPUT}
    if head <= set(inputs) <= head | {HEAD_GUIDE_INPUT, HEAD_RIGHT_GUIDE_INPUT}:
        return "proximity_head"
    if len(inputs) == 1:
        name, shape = next(iter(inputs.items()))
        if len(shape) == 4 and shape[1] == 3:
            if shape[0] == 2 and name == FEATURES_INPUT:
                return "proximity_features"
            if shape[0] == 1:
                return "detector"
    described = ", ".join(f"{name} {list(shape)}" for name, shape in inputs.items())
    raise CalibrationDataError(
        f"cannot tell from its inputs ({described}) which pipeline feeds {model_path}; "
        f"pass --role ({' | '.join(ROLES)})"
    )


@dataclass
class Frame:
    """One recorded frame: the left (or only) image, the right image and the projections for stereo."""

    left: np.ndarray
    encoding: str
    right: np.ndarray | None = None
    projection_left: np.ndarray | None = None
    projection_right: np.ndarray | None = None


def _sources(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise CalibrationDataError(f"no bag or folder at {path}")
        if path.is_dir() and not (path / "metadata.yaml").is_file():
            bags = sorted(p for p in path.iterdir() if (p / "metadata.yaml").is_file())
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not bags and not images:
                raise CalibrationDataError(f"{path} holds no rosbag2 folder and no image")
            found += bags + images
        else:
            found.append(path)
    return found


def _bag_frames(path: Path, stereo: bool) -> tuple[int, Iterator[Frame]]:
    from dla_perception.replay.bag import (
        LEFT_IMAGE,
        LEFT_INFO,
        MONO_IMAGE,
        RIGHT_IMAGE,
        RIGHT_INFO,
        BagError,
        InputBag,
        decode,
    )
    from dla_perception.replay.images import ImageError, decode_image

    try:
        bag = InputBag(path)
    except BagError as exc:
        raise CalibrationDataError(str(exc)) from exc
    if stereo and bag.mode != "stereo":
        bag.close()
        raise CalibrationDataError(
            f"{path} is a monocular bag; the proximity networks calibrate on stereo "
            "pairs (left/right image_rect and camera_info)"
        )

    def rgb(message: object) -> np.ndarray:
        try:
            return decode_image(message, "rgb8")  # the replay's decoder: any camera encoding
        except ImageError as exc:
            raise CalibrationDataError(f"{path}: {exc}") from exc

    def frames() -> Iterator[Frame]:
        with bag:
            for frame in bag.frames():
                left = rgb(decode(frame.messages.get(LEFT_IMAGE) or frame.messages[MONO_IMAGE]))
                if not stereo:
                    yield Frame(left, "rgb8")
                    continue
                right = rgb(decode(frame.messages[RIGHT_IMAGE]))
                infos = [decode(frame.messages[k]).p for k in (LEFT_INFO, RIGHT_INFO)]
                yield Frame(left, "rgb8", right, *(np.asarray(p, dtype=np.float64) for p in infos))

    return bag.expected_frames, frames()


def read_frames(paths: Sequence[Path], count: int, stereo: bool) -> list[Frame]:
    """`count` frames spread evenly over all sources (every k-th frame), in source order."""
    import cv2

    sources = _sources(paths)
    images = [s for s in sources if s.is_file() and s.suffix.lower() in IMAGE_SUFFIXES]
    if images and stereo:
        raise CalibrationDataError("single images cannot calibrate the proximity networks: give stereo bags")
    opened = [_bag_frames(s, stereo) for s in sources if s not in images]
    total = sum(n for n, _ in opened) + len(images)
    if total == 0:
        raise CalibrationDataError("the calibration sources hold no frame")
    stride = max(1, total // max(count, 1))
    chosen: list[Frame] = []
    index = 0
    for _, frames in opened:
        for frame in frames:
            if index % stride == 0 and len(chosen) < count:
                chosen.append(frame)
            index += 1
    for path in images:
        if index % stride == 0 and len(chosen) < count:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise CalibrationDataError(f"cannot read image {path}")
            chosen.append(Frame(np.ascontiguousarray(bgr[:, :, ::-1]), "rgb8"))
        index += 1
    return chosen


class RecordingManager:
    """An EngineManager stand-in for the pipelines: runs the real engines, records every model's inputs."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self.recorded: dict[str, list[dict[str, np.ndarray]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def _record(self, model: str, inputs: dict[str, np.ndarray]) -> None:
        self.recorded.setdefault(model, []).append({k: np.array(v, copy=True) for k, v in inputs.items()})

    def infer(self, model: str, inputs: dict[str, np.ndarray], **kwargs: Any) -> dict[str, np.ndarray]:
        self._record(model, inputs)
        return self._manager.infer(model, inputs, **kwargs)

    def submit(self, model: str, inputs: dict[str, np.ndarray], **kwargs: Any) -> Any:
        self._record(model, inputs)
        return self._manager.submit(model, inputs, **kwargs)


def partner_model(model_path: Path, role: str, partner: Path | None) -> Path:
    """The other proximity network: `partner`, else features.onnx/head.onnx beside the model."""
    if partner is not None:
        if not Path(partner).is_file():
            raise CalibrationDataError(f"partner network not found: {partner}")
        return Path(partner)
    name = "features.onnx" if role == "proximity_head" else "head.onnx"
    found = Path(model_path).with_name(name)
    if not found.is_file():
        raise CalibrationDataError(
            f"{role} calibrates through the whole proximity pipeline and needs the other "
            f"network: {found} not found (pass --partner PATH)"
        )
    return found


def proximity_inputs(
    model_path: Path,
    role: str,
    frames: Sequence[Frame],
    partner: Path | None = None,
    planes_m: Sequence[float] = CALIBRATION_PLANES_M,
) -> list[dict[str, np.ndarray]]:
    """The features' or the head's inputs as ProximityPipeline makes them from the frames (fp32, CPU)."""
    from dla_perception.models.proximity import ProximityPipeline
    from dla_perception.runtime.config import EnginesConfig, ModelSpec
    from dla_perception.runtime.manager import EngineManager

    other = partner_model(model_path, role, partner)
    features, head = (model_path, other) if role == "proximity_features" else (other, model_path)
    specs = [ModelSpec("proximity_features", features, ("cpu",)), ModelSpec("proximity_head", head, ("cpu",))]
    with EngineManager(EnginesConfig(models={s.name: s for s in specs}), available_cores=("cpu",)) as manager:
        recording = RecordingManager(manager)
        pipeline = ProximityPipeline(recording)
        for frame in frames:
            pipeline.process(
                frame.left,
                frame.right,
                frame.encoding,
                frame.projection_left,
                frame.projection_right,
                planes_m,
                alert_distance_m=planes_m[0],
            )
    return recording.recorded["proximity_head" if role == "proximity_head" else "proximity_features"]


def detector_inputs(
    model_path: Path, frames: Sequence[Frame], description: Path | None = None
) -> list[dict[str, np.ndarray]]:
    """The detector's input as DetectionPipeline preprocesses each frame (the model description's rules)."""
    from dla_perception.models.detection_description import ModelDescription
    from dla_perception.models.detection_preprocess import preprocess

    path = description or find_description(model_path)
    spec = ModelDescription.load(path, check_onnx=False).input
    name = next(iter(model_inputs(onnx.load(str(model_path), load_external_data=False))))
    return [{name: preprocess(frame.left, frame.encoding, spec)[0]} for frame in frames]


def find_description(model_path: Path) -> Path:
    """The detection model description beside the ONNX whose `onnx:` names it."""
    import yaml

    for candidate in sorted(Path(model_path).parent.glob("*.yaml")):
        try:
            data = yaml.safe_load(candidate.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and Path(str(data.get("onnx", ""))).name == Path(model_path).name:
            return candidate
    raise CalibrationDataError(
        f"no model description (*.yaml with 'onnx: {Path(model_path).name}') beside "
        f"{model_path}: pass --description PATH (docs/detection.md)"
    )
