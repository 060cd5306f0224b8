"""proximity_segmentation: stereo pair -> near mask, disparity planes image and nearest-obstacle range.

Subscribes left/image_rect, right/image_rect (or <topic>/compressed with image_transport: compressed),
left/camera_info, right/camera_info; publishes proximity/mask (mono8, 255 = nearer than alert_distance_m),
proximity/disparity (stereo_msgs/DisparityImage), proximity/range (sensor_msgs/Range), proximity/points
(sensor_msgs/PointCloud2) and, with ground handling on, proximity/occupancy (nav_msgs/OccupancyGrid), each
with the left image's stamp; frame ids are the left image's (the grid's: its footprint frame).

With camera_height_m > 0 the pipeline gets a GroundModel (flat floor at that height and camera_pitch_deg):
floor pixels are not obstacles in proximity/mask and proximity/range. Those parameters are dynamic: a change
replaces the pipeline, and a frame in flight finishes with the one it started with.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range
from stereo_msgs.msg import DisparityImage

from dla_perception.nodes.base import FrameOutcome, spin_node
from dla_perception.nodes.camera_streams import CameraStream
from dla_perception.nodes.diagnostics import ERROR, WARN, Status
from dla_perception.nodes.frames import FrameNode
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
from dla_perception.nodes.proximity_outputs import (
    OCCUPANCY,
    POINTS,
    FloorOutputs,
    occupancy_frame,
    static_transform_command,
)
from dla_perception.nodes.streams import StreamMonitor, image_input

# sensor_msgs/Range defines only ULTRASOUND (0) and INFRARED (1), to tell what reflects the signal; a passive
# stereo camera is neither. Its own value says so instead of claiming to be an infrared ranger (docs/ros.md).
RADIATION_VISIBLE_PASSIVE = 2


class ProximitySegmentationNode(FrameNode):
    PARAMETERS = PROXIMITY
    PIPELINE = "proximity pipeline"

    def __init__(self, *, manager: Any = None, camera: str = "", **node_kwargs: Any) -> None:
        super().__init__("proximity_segmentation", manager, **node_kwargs)
        self._camera_stream = CameraStream(self, camera, "proximity")  # its requests' stream in the manager
        self._ground = self._ground_model({})  # read and replaced under _manager_lock
        if self._ground is not None:
            self.get_logger().info(f"ground handling: {_describe_ground(self._ground)}")
        self._pairer: StereoPairer[Image] = StereoPairer(int(self.param("sync_slop_s") * 1e9))
        self._info: dict[str, CameraInfo] = {}
        self._geometry: StereoGeometry | None = None
        self._geometry_error: BadInput | None = None
        self._info_lock = threading.Lock()
        self._stream = StreamMonitor(("left", "right"), expected_rate_hz=self.param("expected_rate_hz"))
        self._floor = FloorOutputs()
        self._grid = self._grid_spec()
        self._warned_frame_ids: set[str] = set()
        self._told_transform = False
        self._output_publishers: dict[str, Any] = {}
        self._start()

    # -- inputs and outputs (lifecycle: outputs at configure, inputs at activate) ----------------------------
    def _create_outputs(self) -> None:
        types = {"proximity/mask": Image, "proximity/disparity": DisparityImage, "proximity/range": Range,
                 POINTS: PointCloud2, OCCUPANCY: OccupancyGrid}
        self._output_publishers = {topic: self.advertise_output(msg_type, topic)
                                   for topic, msg_type in types.items()}

    def _destroy_outputs(self) -> None:
        for publisher in self._output_publishers.values():
            self.destroy_lifecycle_publisher(publisher)
        self._output_publishers = {}

    def _create_inputs(self) -> list[Any]:
        inputs = []
        for side in ("left", "right"):
            image_type, topic = image_input(self, f"{side}/image_rect")
            inputs.append(self.subscribe_input(image_type, topic, lambda msg, s=side: self._on_image(s, msg)))
            inputs.append(self.subscribe_input(CameraInfo, f"{side}/camera_info",
                                               lambda msg, s=side: self._on_info(s, msg)))
        return inputs

    @property
    def _mask_pub(self) -> Any:  # the outputs tests and benchmarks wait for
        return self._output_publishers.get("proximity/mask")

    @property
    def _disparity_pub(self) -> Any:
        return self._output_publishers.get("proximity/disparity")

    @property
    def _range_pub(self) -> Any:
        return self._output_publishers.get("proximity/range")

    @property
    def _occupancy_pub(self) -> Any:
        return self._output_publishers.get(OCCUPANCY)

    # -- pipeline ---------------------------------------------------------------------------------------
    def _create_pipeline(self) -> Any:
        from dla_perception.models.proximity import ProximityPipeline

        return ProximityPipeline(self._camera_stream.bind(self.manager), self.param("features_model"),
                                 self.param("head_model"), min_blob_px=self.param("min_blob_px"),
                                 ground=self._ground)

    def _blank_run(self, pipeline: Any) -> None:
        view = self._camera_stream.view
        if view is not None:
            view.unscheduled = True  # a warm-up is no frame of the camera's stream
        try:
            self._blank_frame(pipeline)
        finally:
            if view is not None:
                view.unscheduled = False

    def _blank_frame(self, pipeline: Any) -> None:
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

    def _grid_spec(self) -> Any:
        """The occupancy grid's size from its (read-only) parameters; None, with a WARN, when unusable."""
        from dla_perception.models.freespace import GridSpec

        try:
            return GridSpec(self.param("occupancy_resolution_m"), self.param("occupancy_length_m"),
                            self.param("occupancy_width_m"))
        except ValueError as exc:
            self.health.set_condition("occupancy", WARN, f"proximity/occupancy off: {exc}")
            return None

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
        if hasattr(self, "_camera_stream") and (problem := self._camera_stream.reconfigure(values)):
            self.health.problem("rejected_parameter", f"stream settings: {problem}")
        if "sync_slop_s" in values and hasattr(self, "_pairer"):  # called during declaration too
            self._pairer.slop_ns = int(values["sync_slop_s"] * 1e9)
        if "expected_rate_hz" in values and hasattr(self, "_stream"):
            self._stream.expected_rate_hz = float(values["expected_rate_hz"])
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

    def diagnostic_statuses(self) -> list[Status]:
        """The base statuses with this node's input stream second: counters, rates, pairing problems."""
        statuses = super().diagnostic_statuses()
        counters = self._pairer.counters
        stream = self._stream.status(
            self.status_name("input stereo"),
            {"unpaired_images": counters.unpaired, "stream_restarts": counters.restarts,
             "out_of_order": counters.out_of_order},
            slop_s=self.param("sync_slop_s"),
        )
        medians = self._floor.monitor.medians()
        if medians is not None:  # the mount check's evidence (docs/ros.md, "Is the mount right?")
            statuses[0].values.update({"mount_floor_share": f"{medians.floor:.2f}",
                                       "mount_beyond_share": f"{medians.beyond:.2f}",
                                       "mount_nearer_share": f"{medians.above:.2f}"})
        return [statuses[0], stream, *statuses[1:]]

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

    def _on_image(self, side: str, msg: Any) -> None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        self._stream.image(side, stamp_ns, msg.header.frame_id)
        if not msg.header.frame_id and side not in self._warned_frame_ids:
            self._warned_frame_ids.add(side)  # once per side: the outputs then have no frame either
            self.get_logger().warning(
                f"{side} images have an empty header.frame_id: the outputs carry it on, so TF cannot place "
                "them (RViz, costmaps). Set the camera driver's frame id.")
        try:
            pair = self._pairer.push(side, stamp_ns, msg)
        except BadInput as exc:
            self._reject(stamp_ns, msg.header.frame_id, exc)
            return
        if pair is None:
            return
        self._stream.paired()
        left_ns, left, right = pair
        with self._info_lock:
            geometry, geometry_error = self._geometry, self._geometry_error
        if geometry is None:
            error = geometry_error or BadInput("camera_info", "no camera_info received yet on both sides")
            self._reject(left_ns, left.header.frame_id, error)
            return
        if not self._camera_stream.admit(left.header.frame_id):
            self.health.count("dropped_rate_cap")
            self._finish(FrameOutcome(self.get_name(), left_ns, left.header.frame_id, "dropped", "rate cap"))
        elif not self._slot.offer(lambda: self._process(left, right, geometry)):
            self._camera_stream.dropped_busy()
            self._drop(left_ns, left.header.frame_id)

    def _reject(self, stamp_ns: int, frame_id: str, error: BadInput) -> None:
        self._finish(self._rejected(stamp_ns, frame_id, error))

    # -- work (worker thread) ------------------------------------------------------------------------------
    def _process(self, left_msg: Any, right_msg: Any, geometry: StereoGeometry) -> None:
        """Runs on the worker; frees the slot before publishing so the next pair can start at once."""
        stamp_ns, frame_id = stamp_to_ns(left_msg.header.stamp), left_msg.header.frame_id
        cpu_started = time.thread_time()
        try:
            outcome = self._compute(left_msg, right_msg, geometry)
            if outcome.status == "published":
                self._camera_stream.host_time((time.thread_time() - cpu_started) * 1e3)
        except Exception as exc:  # a bug here must be visible, and must not wedge the slot
            self.health.problem("failed_internal", f"unexpected error: {exc!r}", ERROR)
            outcome = FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", repr(exc))
        finally:
            self._slot.release()
        if outcome.status == "published":
            publishers = self._output_publishers
            for topic, message in outcome.outputs.items():
                if topic in publishers:
                    publishers[topic].publish(message)
        self._finish(outcome)

    def _compute(self, left_msg: Any, right_msg: Any, geometry: StereoGeometry) -> FrameOutcome:
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
        floors = self._floor.mount_floors(pipeline.ground, float(self.param("mount_check_tolerance_m")),
                                          stamp_ns, float(self.param("mount_check_period_s")))
        try:
            result = pipeline.process(
                left, right, "rgb8", geometry.projection_left, geometry.projection_right,
                list(self.param("planes_m")), alert_distance_m, roi=tuple(roi) if any(roi) else None,
                floors=floors,
            )
        except ValueError as exc:  # geometry, planes or roi that do not fit these images: the input's fault
            return self._rejected(stamp_ns, frame_id, BadInput("invalid", str(exc)))
        except Exception as exc:  # engines failed on every core, manager closed...
            self.health.problem("failed_inference", f"proximity inference failed: {exc}", ERROR)
            return FrameOutcome(self.get_name(), stamp_ns, frame_id, "failed", str(exc))
        outputs = self._outputs(left_msg, geometry, result, roi, alert_distance_m)
        outputs.update(self._floor_outputs(left_msg, geometry, result, pipeline.ground))
        return FrameOutcome(self.get_name(), stamp_ns, frame_id, "published", outputs=outputs, result=result)

    def _floor_outputs(self, left_msg: Any, geometry: StereoGeometry, result: Any,
                       ground: Any) -> dict[str, Any]:
        """proximity/points and proximity/occupancy, and this frame's mount evidence."""
        core = geometry.core
        ok, problem = self._floor.observe_mount(result, core)
        if ok:
            self.health.clear_condition("mount")
        else:
            self.health.set_condition("mount", WARN, problem)
        frame_id = left_msg.header.frame_id
        tell_transform = ground is not None and self._grid is not None and not self._told_transform
        wanted = {topic for topic in (POINTS, OCCUPANCY) if self._has_reader(topic)}
        if not wanted and not tell_transform:
            return {}  # nothing to build: no parameter read, no message
        names = ("alert_distance_m", "points_plane_m", "points_stride", "occupancy_frame")
        values = {name: self.param(name) for name in names}
        if tell_transform:
            self._told_transform = True
            footprint = occupancy_frame(values["occupancy_frame"], frame_id)
            self.get_logger().info(f"proximity/occupancy is in {footprint}; connect it to TF with: "
                                   f"{static_transform_command(ground, frame_id or 'camera', footprint)}")
        return self._floor.messages(result, core, ground, values, self._grid, left_msg.header.stamp, frame_id,
                                    wanted)

    def _has_reader(self, topic: str) -> bool:
        """Outputs nobody reads are not built (the disparity image is 1.2 MB, the cloud and grid cost
        1-3 ms each); a recorder or Nav2 subscribing turns them on from the next frame."""
        publisher = self._output_publishers.get(topic)
        return publisher is not None and publisher.get_subscription_count() > 0

    def _rejected(self, stamp_ns: int, frame_id: str, error: BadInput) -> FrameOutcome:
        self.health.problem(f"rejected_{error.kind}", str(error))
        return FrameOutcome(self.get_name(), stamp_ns, frame_id, "rejected", str(error))

    def _outputs(self, left_msg: Image, geometry: StereoGeometry, result: Any, roi: list[int],
                 alert_distance_m: float) -> dict[str, Any]:
        stamp, frame_id = left_msg.header.stamp, left_msg.header.frame_id
        height, width = result.alert_mask.shape
        outputs = {"proximity/mask": image_message(result.alert_mask, "mono8", stamp, frame_id)}
        if self._has_reader("proximity/disparity"):
            outputs["proximity/disparity"] = _disparity(result, geometry, stamp, frame_id)

        distance = Range()
        distance.header.stamp, distance.header.frame_id = stamp, frame_id
        distance.radiation_type = RADIATION_VISIBLE_PASSIVE
        x1, _, x2, _ = roi if any(roi) else (0, 0, width, height)
        distance.field_of_view = float(2.0 * math.atan2((min(x2, width) - max(x1, 0)) / 2.0, geometry.fx))
        planes_m = [float(v) for v in result.planes_m] + [alert_distance_m]
        distance.min_range = min(planes_m)
        distance.max_range = max(planes_m)
        # REP 117: +inf when nothing is within range.
        distance.range = float(result.nearest_m) if math.isfinite(result.nearest_m) else math.inf
        outputs["proximity/range"] = distance
        return outputs


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
