"""detection: image -> detections (vision_msgs/Detection2DArray where installed) and an overlay image.

vision_msgs cannot be built everywhere (it is not on PyPI); where it is missing the node says so once and
does not advertise `detections` rather than invent a look-alike type that no robot tool understands. Each
processed frame still ends in a FrameOutcome whose `outputs["detections"]` is the Detection2DArray field
structure, which in-process users (the replay tool) write with rosbags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import Image

from dla_perception.nodes.base import FrameNode, FrameOutcome, share_path, spin_node
from dla_perception.nodes.diagnostics import ERROR
from dla_perception.nodes.messages import (
    BadInput,
    detection_array_fields,
    fill_message,
    image_message,
    image_to_rgb,
    stamp_to_ns,
    vision_msgs_available,
)
from dla_perception.nodes.parameters import DETECTION

_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def draw_detections(rgb: np.ndarray, detections: Any) -> np.ndarray:
    """A copy of the image with each box and `label score` drawn (RGB, viewable in RViz)."""
    canvas = np.ascontiguousarray(rgb).copy()
    for detection in detections:
        colour = _COLOURS[detection.class_id % len(_COLOURS)]
        x1, y1, x2, y2 = (int(round(v)) for v in detection.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(canvas, f"{detection.label} {detection.score:.2f}", (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return canvas


class DetectionNode(FrameNode):
    PARAMETERS = DETECTION
    PIPELINE = "detection pipeline"

    def __init__(self, *, manager: Any = None, **node_kwargs: Any) -> None:
        super().__init__("detection", manager, **node_kwargs)
        self.subscribe_input(Image, "image", self._on_image)
        self._overlay_pub = self.advertise_output(Image, "detections/image")
        available, why = vision_msgs_available()
        self._detections_pub = None
        if available:
            from vision_msgs.msg import Detection2DArray

            self._detections_pub = self.advertise_output(Detection2DArray, "detections")
        else:
            self.get_logger().warning(
                f"not publishing `detections`: {why}. Install ros-<distro>-vision-msgs for the "
                "vision_msgs/Detection2DArray output; detections/image and diagnostics still work."
            )
        self._warm_up()

    @property
    def publishes_detections(self) -> bool:
        return self._detections_pub is not None

    # -- pipeline ---------------------------------------------------------------------------------------
    def _create_pipeline(self) -> Any:
        from dla_perception.models.detection import DetectionPipeline

        model = self.param("model") or str(share_path("models/detector/detector.yaml"))
        try:
            return DetectionPipeline(Path(model), self.manager, model_name=self.param("engine_name") or None,
                                     cores=tuple(self.param("cores")))
        except Exception as exc:
            raise RuntimeError(f"{model}: {exc}") from exc

    def _blank_run(self, pipeline: Any) -> None:
        size = pipeline.description.input
        blank = np.zeros((size.height, size.width, 3), np.uint8)
        image_to_rgb(image_message(blank, "rgb8"))
        pipeline.detect(blank, "rgb8")

    # -- frames -------------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self.health.count("images")
        if not self._slot.offer(lambda: self._process(msg)):
            self._drop(stamp_to_ns(msg.header.stamp), msg.header.frame_id)

    def _process(self, msg: Image) -> None:
        stamp_ns, frame_id = stamp_to_ns(msg.header.stamp), msg.header.frame_id
        try:
            outcome, rgb = self._compute(msg)
        except Exception as exc:  # a bug here must be visible, and must not wedge the slot
            self.health.problem("failed_internal", f"unexpected error: {exc!r}", ERROR)
            outcome, rgb = FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", repr(exc)), None
        finally:
            self._slot.release()
        if outcome.status == "published":
            if self._detections_pub is not None:
                self._detections_pub.publish(outcome.outputs["detections"])
            if self.param("publish_overlay") or self._overlay_pub.get_subscription_count() > 0:
                drawn = draw_detections(rgb, outcome.result)
                overlay = image_message(drawn, "rgb8", msg.header.stamp, frame_id)
                self._overlay_pub.publish(overlay)
                outcome.outputs["detections/image"] = overlay
        self._finish(outcome)

    def _compute(self, msg: Image) -> tuple[FrameOutcome, np.ndarray | None]:
        stamp_ns, frame_id = stamp_to_ns(msg.header.stamp), msg.header.frame_id
        try:
            rgb = image_to_rgb(msg, self.param("max_image_side"))
        except BadInput as exc:
            self.health.problem(f"rejected_{exc.kind}", str(exc))
            return FrameOutcome(self.get_name(), stamp_ns, frame_id, "rejected", str(exc)), None
        pipeline = self._ensure_pipeline()
        if pipeline is None:
            return self._no_pipeline(stamp_ns, frame_id), None
        score, iou = self.param("score_threshold"), self.param("iou_threshold")
        try:
            detections = pipeline.detect(rgb, "rgb8", score_threshold=None if score < 0 else score,
                                         iou_threshold=None if iou < 0 else iou)
        except Exception as exc:  # engines failed on every core, manager closed...
            self.health.problem("failed_inference", f"detection inference failed: {exc}", ERROR)
            return FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", str(exc)), None
        fields = detection_array_fields(detections, msg.header.stamp, frame_id)
        if self._detections_pub is not None:
            from vision_msgs.msg import Detection2DArray

            array = fill_message(Detection2DArray(), fields)
        else:
            array = fields
        self.health.count("detections", len(detections))
        outcome = FrameOutcome(self.get_name(), stamp_ns, frame_id, "published",
                               outputs={"detections": array}, result=detections)
        return outcome, rgb


def main(args: list[str] | None = None) -> int:
    """`ros2 run dla_perception detection`: the node alone, with a private engine manager."""
    return spin_node(DetectionNode, args)
