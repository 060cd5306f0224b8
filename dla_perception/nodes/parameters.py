"""Declared parameters as data: one table per node, used to declare them and to check configs against.

Keeping the tables pure (no node needed) lets the launch consistency test check config/robot.yaml and the
launch graph against exactly what the nodes declare.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# A validator returns None when the value is acceptable, otherwise the reason it is rejected.
Validator = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    read_only: bool = False
    validate: Validator | None = None
    constraints: str = ""


def finite_positive_list(limit: int) -> Validator:
    def check(values: Sequence[float]) -> str | None:
        values = list(values)
        if not values:
            return "needs at least one distance"
        if len(values) > limit:
            return f"at most {limit} distances, got {len(values)}"
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            return f"distances must be finite and positive metres, got {bad}"
        if len(set(values)) != len(values):
            return f"distances must be distinct, got {values}"
        return None

    return check


def finite_positive(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else f"must be finite and positive, got {value}"


def roi_box(values: Sequence[int]) -> str | None:
    values = list(values)
    if not any(values):  # empty or all zero: the whole image
        return None
    if len(values) != 4:
        return f"must be empty or [x1, y1, x2, y2], got {values}"
    x1, y1, x2, y2 = values
    if min(values) < 0 or x2 <= x1 or y2 <= y1:
        return f"needs 0 <= x1 < x2 and 0 <= y1 < y2, got {values}"
    return None


def finite(value: float) -> str | None:
    return None if math.isfinite(value) else f"must be finite, got {value}"


def camera_height(value: float) -> str | None:
    if value == 0.0 or (math.isfinite(value) and value >= MIN_CAMERA_HEIGHT_M):
        return None
    return f"must be 0 (ground handling off) or a height of at least {MIN_CAMERA_HEIGHT_M} m, got {value}"


def ground_problem(camera_height_m: float, ground_clearance_m: float) -> str | None:
    """Why a camera height and floor clearance do not make a ground model together, or None.

    Checked across parameters (each may change alone): the pipeline's GroundModel needs the clearance
    plane below the camera. A height of 0 turns ground handling off, so any clearance goes with it.
    """
    if camera_height_m == 0.0:
        return None
    if not ground_clearance_m < camera_height_m:
        return (f"ground_clearance_m ({ground_clearance_m} m) must be below camera_height_m "
                f"({camera_height_m} m); set camera_height_m to 0 to turn ground handling off")
    return None


INPUT_QOS_CHOICES = ("sensor_data", "reliable", "system_default")


def one_of(*choices: str) -> Validator:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def threshold_or_model_default(value: float) -> str | None:
    if value == -1.0 or (math.isfinite(value) and 0.0 <= value <= 1.0):
        return None
    return f"must be in [0, 1] or -1 (the model description's value), got {value}"


COMMON = (
    ParamSpec("engines_file", "", "Engines configuration (YAML). Empty: the installed config/engines.yaml. "
              "Read at start and on ~/reload; a processing node reads it only when it runs alone."),
    ParamSpec("diagnostics_period_s", 1.0, "Period of the /diagnostics publication.",
              float_range=(0.1, 60.0), read_only=True),
    ParamSpec("max_image_side", 4096, "Images wider or taller than this are rejected as absurd.",
              int_range=(16, 8192)),
)
LIFECYCLE = ParamSpec(
    "lifecycle", False, "true: a managed node that waits unconfigured for a lifecycle manager (configure "
    "builds the engines, activate subscribes); false: it configures and activates itself at start.",
    read_only=True)
USE_FQN = ParamSpec(
    "diagnostic_updater.use_fqn", False, "Name /diagnostics statuses after the node's fully qualified name "
    "(/front/engine_manager: core dla0) instead of its name (engine_manager: core dla0), as "
    "diagnostic_updater's parameter of that name does; two graphs in two namespaces then stay apart.",
    read_only=True)

# perception_container's cameras (read from its engine_manager node: docs/ros.md, Several cameras).
CAMERAS = (
    ParamSpec("cameras", [""], "perception_container: one proximity_segmentation node per camera, in the "
              "namespace <container namespace>/<camera> (topics <camera>/left/image_rect, ...), all on this "
              "node's engine manager. [\"\"]: one unnamed camera on the container's own topics.",
              read_only=True),
    ParamSpec("detection_camera", "", "perception_container: the camera whose left image the detection node "
              "processes (it runs in that camera's namespace). Empty: the first of `cameras`.",
              read_only=True),
)
STATISTICS_FILE = ParamSpec(
    "statistics_file", "", "Write the engine manager's statistics (per-model, per-core latency percentiles "
    "under this run's load, per-stream rates) as JSON to this path every diagnostics period and at shutdown: "
    "the latency profile `dla-perception plan --profile` reads. Empty: not written.", read_only=True)
ENGINE_MANAGER = (COMMON[0], COMMON[1], USE_FQN, LIFECYCLE, *CAMERAS, STATISTICS_FILE)

IMAGE_TRANSPORTS = ("raw", "compressed")
# What a node with camera inputs adds: how images arrive and the rate below which diagnostics warn.
INPUTS = (
    ParamSpec("image_transport", "raw", "raw: sensor_msgs/Image on each image topic; compressed: "
              "sensor_msgs/CompressedImage (jpeg, png) on <image topic>/compressed, as image_transport's "
              "compressed plugin publishes it (the remapped topic plus /compressed).", read_only=True,
              validate=one_of(*IMAGE_TRANSPORTS), constraints="raw or compressed"),
    ParamSpec("expected_rate_hz", 0.0, "Input frames per second the camera should deliver; diagnostics "
              "WARN while the measured rate is below it. 0: no rate check.", float_range=(0.0, 1000.0)),
    # QoS of the camera inputs (nodes/qos.py); per-topic qos_overrides.* apply on top.
    ParamSpec("input_qos", "sensor_data", "QoS of the image and camera_info subscriptions: sensor_data "
              "(best effort, depth 5, as camera drivers publish), reliable (depth 5: what a camera in "
              "another process needs for large images over Fast DDS's defaults), system_default. "
              "qos_overrides.<topic>.subscription.<policy> parameters override single policies on top of it.",
              read_only=True, validate=one_of(*INPUT_QOS_CHOICES), constraints=" | ".join(INPUT_QOS_CHOICES)),
)

# How the engine manager schedules a node's requests against other cameras' (runtime/streams.py); dynamic.
STREAM = (
    ParamSpec("priority", 0, "Scheduling priority of this camera's requests in the shared engine manager: "
              "higher runs first, equal ones oldest first.", int_range=(-100, 100)),
    ParamSpec("max_rate_hz", 0.0, "Frames per second this camera takes at most; frames arriving earlier are "
              "dropped before any work (dropped_rate_cap). 0: no cap.", float_range=(0.0, 1000.0)),
    ParamSpec("min_rate_hz", 0.0, "While this camera gets fewer frames per second than this, its requests "
              "run before every other camera's (starvation-free). 0: no minimum.",
              float_range=(0.0, 1000.0)),
    ParamSpec("stream_deadline_ms", 0.0, "Deadline of this camera's requests (ms after submission); a "
              "request still waiting then is dropped unrun (dropped_stale). 0: the model's deadline.",
              float_range=(0.0, 60000.0)),
)

MAX_PLANES = 32
MIN_CAMERA_HEIGHT_M = 0.05
GROUND_PARAMETERS = ("camera_height_m", "camera_pitch_deg", "ground_clearance_m")
PROXIMITY = (
    *COMMON,
    USE_FQN,
    LIFECYCLE,
    *INPUTS,
    *STREAM,
    ParamSpec("planes_m", [0.75, 1.0, 1.5, 2.0, 3.0], "Distances (m) of the disparity planes to test; any "
              f"number up to {MAX_PLANES}.", validate=finite_positive_list(MAX_PLANES),
              constraints="finite, positive, distinct"),
    ParamSpec("alert_distance_m", 1.0, "Pixels nearer than this (m) are 255 in proximity/mask.",
              float_range=(0.05, 100.0), validate=finite_positive),
    ParamSpec("roi", [0, 0, 0, 0], "Region of interest for proximity/range, [x1, y1, x2, y2] pixels; "
              "[0, 0, 0, 0] or empty: the whole image.", validate=roi_box),
    ParamSpec("sync_slop_s", 0.005, "Left and right images pair when their stamps differ by at most this.",
              float_range=(0.0, 1.0)),
    ParamSpec("features_model", "proximity_features", "Engine manager model name of the feature network.",
              read_only=True),
    ParamSpec("head_model", "proximity_head", "Engine manager model name of the plane head.", read_only=True),
    ParamSpec("min_blob_px", 200, "Obstacle blobs smaller than this (input pixels) do not set the range.",
              int_range=(1, 1_000_000), read_only=True),
    ParamSpec("camera_height_m", 0.0, "Height (m) of the left camera's optical centre above a flat floor; "
              "the floor is then removed from proximity/mask and proximity/range. 0: ground handling off.",
              float_range=(0.0, 10.0), validate=camera_height,
              constraints=f"0 (off) or >= {MIN_CAMERA_HEIGHT_M}; above ground_clearance_m"),
    ParamSpec("camera_pitch_deg", 0.0, "Camera pitch (degrees) relative to the floor, positive = looking "
              "down. Used only when camera_height_m > 0.", float_range=(-60.0, 60.0), validate=finite),
    ParamSpec("ground_clearance_m", 0.1, "With ground handling on, only surface more than this (m) above "
              "the floor is an obstacle; raise it to absorb body pitch and an uneven floor.",
              float_range=(0.0, 2.0), validate=finite, constraints="below camera_height_m"),
    ParamSpec("mount_check_tolerance_m", 0.1, "With ground handling on, diagnostics WARN when the floor the "
              "network sees is not where the mount puts it, within this many metres of camera height (two "
              "more head queries on a checked frame). 0: no check.", float_range=(0.0, 1.0)),
    ParamSpec("mount_check_period_s", 1.0, "The mount check looks at one frame per this many seconds of "
              "frame stamps (a mount rarely changes; its two head queries then cost a fraction of the "
              "frames). 0: every frame.", float_range=(0.0, 60.0)),
    ParamSpec("points_plane_m", 0.0, "proximity/points holds the obstacle pixels of the alert mask (0), or "
              "those whose depth level is at or nearer than this distance (m), floor excluded.",
              float_range=(0.0, 100.0)),
    ParamSpec("points_stride", 4, "proximity/points takes one pixel per stride x stride block.",
              int_range=(1, 64)),
    ParamSpec("occupancy_frame", "", "Frame of proximity/occupancy: the floor under the left camera, x "
              "ahead, y left, z up. Empty: the camera frame id + '_footprint'. Needs ground handling on.",
              read_only=True),
    ParamSpec("occupancy_resolution_m", 0.05, "proximity/occupancy cell size (m).", float_range=(0.005, 1.0),
              read_only=True),
    ParamSpec("occupancy_length_m", 4.0, "proximity/occupancy extent ahead of the camera (m).",
              float_range=(0.1, 100.0), read_only=True),
    ParamSpec("occupancy_width_m", 4.0, "proximity/occupancy extent across, centred on the camera (m).",
              float_range=(0.1, 100.0), read_only=True),
)

DETECTION = (
    *COMMON,
    USE_FQN,
    LIFECYCLE,
    *INPUTS,
    *STREAM,
    ParamSpec("model", "", "Detection model description (YAML, design.md format). Empty: the installed "
              "models/detector/detector.yaml.", read_only=True),
    ParamSpec("engine_name", "", "Engine manager model name; empty: the ONNX file's stem (`detector` "
              "matches config/engines.yaml). Registered on `cores` when the manager lacks it.",
              read_only=True),
    ParamSpec("cores", ["gpu", "cpu"], "Cores for the model when the engines file does not declare it.",
              read_only=True),
    ParamSpec("score_threshold", -1.0, "Minimum score; -1: the model description's value.",
              float_range=(-1.0, 1.0), validate=threshold_or_model_default),
    ParamSpec("iou_threshold", -1.0, "NMS overlap threshold; -1: the model description's value.",
              float_range=(-1.0, 1.0), validate=threshold_or_model_default),
    ParamSpec("publish_overlay", False, "Publish detections/image even when nobody subscribes to it."),
)

NODE_PARAMETERS = {
    "engine_manager": ENGINE_MANAGER,
    "proximity_segmentation": PROXIMITY,
    "detection": DETECTION,
}


def descriptor(spec: ParamSpec) -> Any:
    """The rcl_interfaces ParameterDescriptor for a spec (type inferred by rclpy from the default)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    result = ParameterDescriptor(
        name=spec.name, description=spec.description, read_only=spec.read_only,
        additional_constraints=spec.constraints,
    )
    if spec.float_range is not None:
        result.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                          to_value=float(spec.float_range[1]), step=0.0)]
    if spec.int_range is not None:
        low, high = spec.int_range
        result.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
    return result


def declare_all(node: Any, specs: Sequence[ParamSpec]) -> dict[str, str]:
    """Declare every spec on an rclpy node; an invalid override is refused and the default used instead.

    Validators must already be registered (on-set callback) so overrides go through them. Returns
    {parameter: problem} for the refused overrides, for the node to log and show in diagnostics.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    problems = {}
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            problems[spec.name] = (f"parameter {spec.name}: override refused ({exc}); "
                                   f"using the default {spec.default!r}")
            node.declare_parameter(spec.name, spec.default, descriptor(spec), ignore_override=True)
    return problems


def validate(specs: Sequence[ParamSpec], name: str, value: Any) -> str | None:
    """The reason a new value is rejected, or None."""
    for spec in specs:
        if spec.name == name and spec.validate is not None:
            return spec.validate(value)
    return None
