"""detection: image -> detections (vision_msgs/Detection2DArray where installed) and an overlay image.

vision_msgs cannot be built everywhere (it is not on PyPI); where it is missing the node says so once and
does not advertise `detections` rather than invent a look-alike type that no robot tool understands. Each
processed frame still ends in a FrameOutcome whose `outputs["detections"]` is the Detection2DArray field
structure, which in-process users (the replay tool) write with rosbags.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import Image

from dla_perception.nodes.base import FrameOutcome, share_path, spin_node
from dla_perception.nodes.camera_streams import CameraStream
from dla_perception.nodes.diagnostics import ERROR, Status
from dla_perception.nodes.frames import FrameNode
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
from dla_perception.nodes.streams import StreamMonitor, image_input

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

    def __init__(self, *, manager: Any = None, camera: str = "", **node_kwargs: Any) -> None:
        super().__init__("detection", manager, **node_kwargs)
        self._camera_stream = CameraStream(self, camera, "detection")  # its requests' stream in the manager
        self._stream = StreamMonitor(("image",), expected_rate_hz=self.param("expected_rate_hz"))
        self._warned_frame_id = False
        self._overlay_pub: Any = None
        self._detections_pub: Any = None
        self._vision_msgs, why = vision_msgs_available()
        if not self._vision_msgs:
            self.get_logger().warning(
                f"not publishing `detections`: {why}. Install ros-<distro>-vision-msgs for the "
                "vision_msgs/Detection2DArray output; detections/image and diagnostics still work."
            )
        self._start()

    @property
    def publishes_detections(self) -> bool:
        return self._vision_msgs

    # -- inputs and outputs (lifecycle: outputs at configure, inputs at activate) ----------------------------
    def _create_outputs(self) -> None:
        self._overlay_pub = self.advertise_output(Image, "detections/image")
        if self._vision_msgs:
            from vision_msgs.msg import Detection2DArray

            self._detections_pub = self.advertise_output(Detection2DArray, "detections")

    def _destroy_outputs(self) -> None:
        for publisher in (self._overlay_pub, self._detections_pub):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._overlay_pub = self._detections_pub = None

    def _create_inputs(self) -> list[Any]:
        image_type, topic = image_input(self, "image")
        return [self.subscribe_input(image_type, topic, self._on_image)]

    def _blank_run(self, pipeline: Any) -> None:
        size = pipeline.description.input
        blank = np.zeros((size.height, size.width, 3), np.uint8)
        image_to_rgb(image_message(blank, "rgb8"))
        view = self._camera_stream.view
        if view is not None:
            view.unscheduled = True  # a warm-up is no frame of the camera's stream
        try:
            pipeline.detect(blank, "rgb8")
        finally:
            if view is not None:
                view.unscheduled = False

    # -- pipeline ---------------------------------------------------------------------------------------
    def _create_pipeline(self) -> Any:
        from dla_perception.models.detection import DetectionPipeline

        model = self.param("model") or str(share_path("models/detector/detector.yaml"))
        try:
            manager = self._camera_stream.bind(self.manager)
            return DetectionPipeline(Path(model), manager, model_name=self.param("engine_name") or None,
                                     cores=tuple(self.param("cores")))
        except Exception as exc:
            raise RuntimeError(f"{model}: {exc}") from exc

    def _parameters_changed(self, values: dict[str, Any]) -> None:
        if hasattr(self, "_camera_stream") and (problem := self._camera_stream.reconfigure(values)):
            self.health.problem("rejected_parameter", f"stream settings: {problem}")
        if "expected_rate_hz" in values and hasattr(self, "_stream"):  # called during declaration too
            self._stream.expected_rate_hz = float(values["expected_rate_hz"])

    def diagnostic_statuses(self) -> list[Status]:
        """The base statuses with this node's input stream second."""
        statuses = super().diagnostic_statuses()
        return [statuses[0], self._stream.status(self.status_name("input image")), *statuses[1:]]

    # -- frames -------------------------------------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        self._stream.image("image", stamp_to_ns(msg.header.stamp), msg.header.frame_id)
        if not msg.header.frame_id and not self._warned_frame_id:
            self._warned_frame_id = True
            self.get_logger().warning("images have an empty header.frame_id: the detections carry it on, so "
                                      "TF cannot place them. Set the camera driver's frame id.")
        if not self._camera_stream.admit(msg.header.frame_id):
            self.health.count("dropped_rate_cap")
            self._finish(FrameOutcome(self.get_name(), stamp_to_ns(msg.header.stamp), msg.header.frame_id,
                                      "dropped", "rate cap"))
        elif not self._slot.offer(lambda: self._process(msg)):
            self._camera_stream.dropped_busy()
            self._drop(stamp_to_ns(msg.header.stamp), msg.header.frame_id)

    def _process(self, msg: Any) -> None:
        stamp_ns, frame_id = stamp_to_ns(msg.header.stamp), msg.header.frame_id
        cpu_started = time.thread_time()
        try:
            outcome, rgb = self._compute(msg)
            if outcome.status == "published":
                self._camera_stream.host_time((time.thread_time() - cpu_started) * 1e3)
        except Exception as exc:  # a bug here must be visible, and must not wedge the slot
            self.health.problem("failed_internal", f"unexpected error: {exc!r}", ERROR)
            outcome, rgb = FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", repr(exc)), None
        finally:
            self._slot.release()
        overlay_pub, detections_pub = self._overlay_pub, self._detections_pub
        if outcome.status == "published" and overlay_pub is not None:
            if detections_pub is not None:
                detections_pub.publish(outcome.outputs["detections"])
            if self.param("publish_overlay") or overlay_pub.get_subscription_count() > 0:
                drawn = draw_detections(rgb, outcome.result)
                overlay = image_message(drawn, "rgb8", msg.header.stamp, frame_id)
                overlay_pub.publish(overlay)
                outcome.outputs["detections/image"] = overlay
        self._finish(outcome)

    def _compute(self, msg: Any) -> tuple[FrameOutcome, np.ndarray | None]:
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
        if self._vision_msgs:
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
