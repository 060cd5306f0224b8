"""proximity_segmentation: stereo pair -> near mask, disparity planes image and nearest-obstacle range.

Subscribes left/image_rect, right/image_rect, left/camera_info, right/camera_info; publishes
proximity/mask (mono8, 255 = nearer than alert_distance_m), proximity/disparity (stereo_msgs/DisparityImage,
built and sent only while someone subscribes) and proximity/range (sensor_msgs/Range), each with the left
image's stamp and frame id.

With camera_height_m > 0 the pipeline gets a GroundModel (flat floor at that height and camera_pitch_deg):
floor pixels are not obstacles in proximity/mask and proximity/range. Those parameters are dynamic: a change
replaces the pipeline, and a frame in flight finishes with the one it started with.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, Range
from stereo_msgs.msg import DisparityImage

from dla_perception.nodes.base import FrameNode, FrameOutcome, spin_node
from dla_perception.nodes.diagnostics import ERROR, WARN
from dla_perception.nodes.messages import (
    BadInput,
    StereoGeometry,
    StereoPairer,
    image_message,
    image_to_rgb,
    stamp_to_ns,
    stereo_geometry,
)
from dla_perception.nodes.parameters import GROUND_PARAMETERS, PROXIMITY, ground_problem, validate


class ProximitySegmentationNode(FrameNode):
    PARAMETERS = PROXIMITY
    PIPELINE = "proximity pipeline"

    def __init__(self, *, manager: Any = None, **node_kwargs: Any) -> None:
        super().__init__("proximity_segmentation", manager, **node_kwargs)
        self._ground = self._ground_model({})  # read and replaced under _manager_lock
        if self._ground is not None:
            self.get_logger().info(f"ground handling: {_describe_ground(self._ground)}")
        self._pairer: StereoPairer[Image] = StereoPairer(int(self.param("sync_slop_s") * 1e9))
        self._info: dict[str, CameraInfo] = {}
        self._geometry: StereoGeometry | None = None
        self._geometry_error: BadInput | None = None
        self._info_lock = threading.Lock()

        for side in ("left", "right"):
            self.subscribe_input(Image, f"{side}/image_rect", lambda msg, s=side: self._on_image(s, msg))
            self.subscribe_input(CameraInfo, f"{side}/camera_info", lambda msg, s=side: self._on_info(s, msg))
        self._mask_pub = self.advertise_output(Image, "proximity/mask")
        self._disparity_pub = self.advertise_output(DisparityImage, "proximity/disparity")
        self._range_pub = self.advertise_output(Range, "proximity/range")
        self._warm_up()

    # -- pipeline ---------------------------------------------------------------------------------------
    def _create_pipeline(self) -> Any:
        from dla_perception.models.proximity import ProximityPipeline

        return ProximityPipeline(self.manager, self.param("features_model"), self.param("head_model"),
                                 min_blob_px=self.param("min_blob_px"), ground=self._ground)

    def _blank_run(self, pipeline: Any) -> None:
        height, width = pipeline.net_height, pipeline.net_width
        blank = np.zeros((height, width, 3), np.uint8)
        left = np.array([[width, 0.0, width / 2, 0.0], [0.0, width, height / 2, 0.0], [0.0, 0.0, 1.0, 0.0]])
        right = left.copy()
        right[0, 3] = -width * 0.1  # a 10 cm baseline
        image_to_rgb(image_message(blank, "rgb8"))
        pipeline.process(blank, blank, "rgb8", left, right, list(self.param("planes_m")),
                         float(self.param("alert_distance_m")))

    def _ground_model(self, changes: dict[str, Any]) -> Any:
        """The GroundModel of the current ground parameters overlaid with `changes`; None when off."""
        from dla_perception.models.proximity import GroundModel

        values = {name: self._value(name, changes) for name in GROUND_PARAMETERS}
        if values["camera_height_m"] == 0.0:
            return None
        return GroundModel(float(values["camera_height_m"]), math.radians(values["camera_pitch_deg"]),
                           float(values["ground_clearance_m"]))

    def _value(self, name: str, changes: dict[str, Any]) -> Any:
        """A parameter's value with `changes` applied; its default while it is not declared yet."""
        if name in changes:
            return changes[name]
        if self.has_parameter(name):
            return self.get_parameter(name).value
        return next(spec.default for spec in self.PARAMETERS if spec.name == name)

    def _on_set_parameters(self, parameters: Any) -> Any:
        """The base's per-parameter checks, plus camera height against floor clearance (across parameters)."""
        changes = {p.name: p.value for p in parameters}
        each_valid = all(validate(self.PARAMETERS, p.name, p.value) is None for p in parameters)
        if each_valid and any(name in changes for name in GROUND_PARAMETERS):  # else the base says why
            from rcl_interfaces.msg import SetParametersResult

            reason = ground_problem(self._value("camera_height_m", changes),
                                    self._value("ground_clearance_m", changes))
            if reason is not None:
                self.health.problem("rejected_parameter", reason)
                return SetParametersResult(successful=False, reason=reason)
        return super()._on_set_parameters(parameters)

    def _parameters_changed(self, values: dict[str, Any]) -> None:
        if "sync_slop_s" in values and hasattr(self, "_pairer"):  # called during declaration too
            self._pairer.slop_ns = int(values["sync_slop_s"] * 1e9)
        if hasattr(self, "_ground") and any(name in values for name in GROUND_PARAMETERS):
            ground = self._ground_model(values)
            with self._manager_lock:
                if ground == self._ground:
                    return
                self._ground = ground
                # Rebuilt on the next frame with the new ground (cheap: no engines are built).
                self._pipeline = None
                self._pipeline_attempt = -math.inf
            self.get_logger().info(f"ground handling: {_describe_ground(ground)}")

    def reset_stream(self) -> None:
        """Forget pending images and the last pair's stamp (a replayed bag starting over)."""
        self._pairer.reset()

    # -- inputs ------------------------------------------------------------------------------------------
    def _on_info(self, side: str, msg: CameraInfo) -> None:
        with self._info_lock:
            self._info[side] = msg
            if len(self._info) < 2:
                return
            try:
                self._geometry = stereo_geometry(self._info["left"], self._info["right"])
                self._geometry_error = None
                self.health.clear_condition("camera_info")
            except BadInput as exc:
                self._geometry, self._geometry_error = None, exc
                self.health.set_condition("camera_info", WARN, f"camera_info rejected: {exc}")

    def _on_image(self, side: str, msg: Image) -> None:
        self.health.count(f"images_{side}")
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            pair = self._pairer.push(side, stamp_ns, msg)
        except BadInput as exc:
            self._reject(stamp_ns, msg.header.frame_id, exc)
            return
        if pair is None:
            return
        left_ns, left, right = pair
        with self._info_lock:
            geometry, geometry_error = self._geometry, self._geometry_error
        if geometry is None:
            error = geometry_error or BadInput("camera_info", "no camera_info received yet on both sides")
            self._reject(left_ns, left.header.frame_id, error)
            return
        if not self._slot.offer(lambda: self._process(left, right, geometry)):
            self._drop(left_ns, left.header.frame_id)

    def _reject(self, stamp_ns: int, frame_id: str, error: BadInput) -> None:
        self._finish(self._rejected(stamp_ns, frame_id, error))

    # -- work (worker thread) ------------------------------------------------------------------------------
    def _process(self, left_msg: Image, right_msg: Image, geometry: StereoGeometry) -> None:
        """Runs on the worker; frees the slot before publishing so the next pair can start at once."""
        stamp_ns, frame_id = stamp_to_ns(left_msg.header.stamp), left_msg.header.frame_id
        try:
            outcome = self._compute(left_msg, right_msg, geometry)
        except Exception as exc:  # a bug here must be visible, and must not wedge the slot
            self.health.problem("failed_internal", f"unexpected error: {exc!r}", ERROR)
            outcome = FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", repr(exc))
        finally:
            self._slot.release()
        if outcome.status == "published":
            self._mask_pub.publish(outcome.outputs["proximity/mask"])
            if "proximity/disparity" in outcome.outputs:
                self._disparity_pub.publish(outcome.outputs["proximity/disparity"])
            self._range_pub.publish(outcome.outputs["proximity/range"])
        self._finish(outcome)

    def _compute(self, left_msg: Image, right_msg: Image, geometry: StereoGeometry) -> FrameOutcome:
        stamp_ns, frame_id = stamp_to_ns(left_msg.header.stamp), left_msg.header.frame_id
        try:
            max_side = self.param("max_image_side")
            left = image_to_rgb(left_msg, max_side)
            right = image_to_rgb(right_msg, max_side)
            if left.shape != right.shape:
                raise BadInput("size_mismatch", f"left image {left.shape[1]}x{left.shape[0]} and right "
                               f"{right.shape[1]}x{right.shape[0]} differ")
            if geometry.width and (geometry.width, geometry.height) != (left.shape[1], left.shape[0]):
                raise BadInput("camera_info", f"camera_info is for {geometry.width}x{geometry.height}, "
                               f"images are {left.shape[1]}x{left.shape[0]}")
        except BadInput as exc:
            return self._rejected(stamp_ns, frame_id, exc)
        pipeline = self._ensure_pipeline()
        if pipeline is None:
            return self._no_pipeline(stamp_ns, frame_id)
        roi = [int(v) for v in self.param("roi")]
        alert_distance_m = float(self.param("alert_distance_m"))
        try:
            result = pipeline.process(
                left, right, "rgb8", geometry.projection_left, geometry.projection_right,
                list(self.param("planes_m")), alert_distance_m, roi=tuple(roi) if any(roi) else None,
            )
        except ValueError as exc:  # geometry, planes or roi that do not fit these images: the input's fault
            return self._rejected(stamp_ns, frame_id, BadInput("invalid", str(exc)))
        except Exception as exc:  # engines failed on every core, manager closed...
            self.health.problem("failed_inference", f"proximity inference failed: {exc}", ERROR)
            return FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", str(exc))
        outputs = self._outputs(left_msg, geometry, result, roi, alert_distance_m)
        return FrameOutcome(self.get_name(), stamp_ns, frame_id, "published", outputs=outputs, result=result)

    def _rejected(self, stamp_ns: int, frame_id: str, error: BadInput) -> FrameOutcome:
        self.health.problem(f"rejected_{error.kind}", str(error))
        return FrameOutcome(self.get_name(), stamp_ns, frame_id, "rejected", str(error))

    def _outputs(self, left_msg: Image, geometry: StereoGeometry, result: Any, roi: list[int],
                 alert_distance_m: float) -> dict[str, Any]:
        stamp, frame_id = left_msg.header.stamp, left_msg.header.frame_id
        height, width = result.alert_mask.shape
        mask = image_message(result.alert_mask, "mono8", stamp, frame_id)
        outputs = {"proximity/mask": mask}
        if self._disparity_pub.get_subscription_count() > 0:  # 1.2 MB a frame: built only for a reader
            outputs["proximity/disparity"] = self._disparity(result, geometry, stamp, frame_id)

        distance = Range()
        distance.header.stamp, distance.header.frame_id = stamp, frame_id
        distance.radiation_type = Range.INFRARED  # the closest of the two kinds to a camera
        x1, _, x2, _ = roi if any(roi) else (0, 0, width, height)
        distance.field_of_view = float(2.0 * math.atan2((min(x2, width) - max(x1, 0)) / 2.0, geometry.fx))
        planes_m = [float(v) for v in result.planes_m] + [alert_distance_m]
        distance.min_range = min(planes_m)
        distance.max_range = max(planes_m)
        # REP 117: +inf when nothing is within range.
        distance.range = float(result.nearest_m) if math.isfinite(result.nearest_m) else math.inf
        outputs["proximity/range"] = distance
        return outputs

    @staticmethod
    def _disparity(result: Any, geometry: StereoGeometry, stamp: Any, frame_id: str) -> DisparityImage:
        height, width = result.level_image.shape
        disparity = DisparityImage()
        disparity.header.stamp, disparity.header.frame_id = stamp, frame_id
        level = np.asarray(result.level_image, dtype=np.float32)  # float32 already: no copy
        disparity.image = image_message(level, "32FC1", stamp, frame_id)
        disparity.f = float(geometry.fx)
        disparity.t = float(geometry.baseline_m)
        disparity.valid_window.width, disparity.valid_window.height = width, height
        planes_px = [float(v) for v in result.planes_px]
        disparity.min_disparity = min(planes_px) if planes_px else 0.0
        disparity.max_disparity = max(planes_px) if planes_px else 0.0
        disparity.delta_d = 0.0  # levels are the configured planes, not a uniform step
        return disparity


def _describe_ground(ground: Any) -> str:
    if ground is None:
        return "off (the floor counts as an obstacle)"
    return (f"on, camera {ground.camera_height_m:g} m above the floor, pitched "
            f"{math.degrees(ground.pitch_rad):g} deg down, clearance {ground.clearance_m:g} m")


def main(args: list[str] | None = None) -> int:
    """`ros2 run dla_perception proximity_segmentation`: the node alone, with a private engine manager."""
    return spin_node(ProximitySegmentationNode, args)
