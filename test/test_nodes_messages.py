"""The nodes' pure helpers: image and camera_info conversion, stereo pairing, vision_msgs fields,
diagnostics statuses, parameter validators, the one-frame slot. No node, no executor."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from dla_perception.nodes.diagnostics import CORE_KEYS, ERROR, OK, WARN, DiagnosticsReport
from dla_perception.nodes.messages import (
    BadInput,
    StereoPairer,
    detection_array_fields,
    image_to_rgb,
    register_vision_msgs,
    rosbags_message,
    stereo_geometry,
)
from dla_perception.nodes.parameters import NODE_PARAMETERS, PROXIMITY, roi_box, validate


def raw_image(pixels: np.ndarray, encoding: str, step: int | None = None, data: bytes | None = None):
    """A message-shaped object (the decoder accepts rclpy and rosbags messages alike)."""
    rows = pixels.reshape(pixels.shape[0], -1)
    step = rows.shape[1] if step is None else step
    if data is None:
        padded = np.zeros((rows.shape[0], step), np.uint8)
        padded[:, : rows.shape[1]] = rows
        data = padded.tobytes()
    return SimpleNamespace(encoding=encoding, height=pixels.shape[0], width=pixels.shape[1], step=step,
                           is_bigendian=0, data=data)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


# -- images ----------------------------------------------------------------------------------------
def test_each_encoding_decodes_to_rgb(rgb) -> None:
    np.testing.assert_array_equal(image_to_rgb(raw_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(image_to_rgb(raw_image(rgb[:, :, ::-1].copy(), "bgr8")), rgb)
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(raw_image(rgba, "rgba8")), rgb)
    np.testing.assert_array_equal(image_to_rgb(raw_image(rgba[:, :, [2, 1, 0, 3]].copy(), "bgra8")), rgb)
    mono = rgb[:, :, 0].copy()
    np.testing.assert_array_equal(image_to_rgb(raw_image(mono, "mono8")), np.repeat(mono[:, :, None], 3, 2))


def test_row_padding_is_stripped(rgb) -> None:
    np.testing.assert_array_equal(image_to_rgb(raw_image(rgb, "rgb8", step=5 * 3 + 9)), rgb)


@pytest.mark.parametrize(("change", "kind"), [
    (dict(encoding="nv12"), "encoding"),
    (dict(encoding="32FC1"), "encoding"),
    (dict(step=5 * 3 - 1), "step"),
    (dict(step=10_000), "step"),
    (dict(data=bytes(10)), "truncated"),
    (dict(data=bytes(6 * 15 + 1)), "truncated"),
    (dict(width=0), "empty"),
    (dict(height=9000), "size"),
])
def test_bad_images_raise_bad_input_with_a_kind(rgb, change, kind) -> None:
    msg = raw_image(rgb, "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(BadInput) as error:
        image_to_rgb(msg)
    assert error.value.kind == kind and str(error.value)


def test_max_side_is_configurable(rgb) -> None:
    with pytest.raises(BadInput, match="exceeds"):
        image_to_rgb(raw_image(rgb, "rgb8"), max_side=4)


def test_image_message_round_trip(rgb) -> None:
    from builtin_interfaces.msg import Time

    from dla_perception.nodes.messages import image_message

    msg = image_message(rgb, "rgb8", Time(sec=3, nanosec=4), "cam")
    assert (msg.width, msg.height, msg.step, msg.encoding) == (5, 6, 15, "rgb8")
    assert (msg.header.stamp.sec, msg.header.frame_id) == (3, "cam")
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    disparity = image_message(np.ones((2, 3), np.float32), "32FC1")
    assert disparity.step == 12 and len(disparity.data) == 24


# -- camera_info -----------------------------------------------------------------------------------
def info(fx=500.0, tx=0.0, width=640, height=480, p=None):
    return SimpleNamespace(p=p or [fx, 0, 320, tx, 0, fx, 240, 0, 0, 0, 1, 0], width=width, height=height)


def test_stereo_geometry_follows_the_ros_convention() -> None:
    geometry = stereo_geometry(info(), info(tx=-500 * 0.12))
    assert geometry.baseline_m == pytest.approx(0.12) and geometry.fx == 500
    assert geometry.disparity_px(2.0) == pytest.approx(30.0)
    assert geometry.projection_right.shape == (3, 4) and (geometry.width, geometry.height) == (640, 480)


@pytest.mark.parametrize(("left", "right", "kind"), [
    (info(), info(tx=0.0), "baseline"),
    (info(), info(tx=+60.0), "baseline"),
    (info(), info(tx=float("nan")), "camera_info"),
    (info(fx=float("inf")), info(tx=-60.0), "camera_info"),
    (info(p=[0.0] * 12), info(tx=-60.0), "camera_info"),
    (info(p=[1.0] * 9), info(tx=-60.0), "camera_info"),
    (info(), info(tx=-60.0, width=320), "camera_info"),
])
def test_bad_camera_info_is_rejected(left, right, kind) -> None:
    with pytest.raises(BadInput) as error:
        stereo_geometry(left, right)
    assert error.value.kind == kind


# -- pairing ---------------------------------------------------------------------------------------
def test_pairs_by_stamp_within_slop() -> None:
    pairer: StereoPairer[str] = StereoPairer(slop_ns=5, capacity=3)
    assert pairer.push("left", 100, "L100") is None
    assert pairer.push("right", 103, "R103") == (100, "L100", "R103")
    assert pairer.push("right", 200, "R200") is None
    assert pairer.push("left", 210, "L210") is None  # 10 ns apart: beyond the slop
    assert pairer.push("left", 300, "L300") is None
    assert pairer.push("right", 300, "R300") == (300, "L300", "R300")
    assert pairer.counters.paired == 2 and pairer.counters.unpaired == 2  # R200 and L210 can never pair


def test_out_of_order_stamps_are_refused_and_memory_is_bounded() -> None:
    pairer: StereoPairer[int] = StereoPairer(capacity=2)
    pairer.push("left", 10, 1)
    pairer.push("right", 10, 1)
    with pytest.raises(BadInput) as error:
        pairer.push("left", 5, 2)
    assert error.value.kind == "out_of_order" and pairer.counters.out_of_order == 1
    for stamp in range(20, 30):
        pairer.push("left", stamp, stamp)
    assert len(pairer._waiting["left"]) == 2 and pairer.counters.unpaired == 8
    pairer.reset()
    assert pairer.push("left", 1, 1) is None  # after a reset older stamps pair again
    assert pairer.push("right", 1, 1) == (1, 1, 1)


def test_a_large_jump_back_is_a_restarted_stream() -> None:
    pairer: StereoPairer[int] = StereoPairer(restart_ns=1000)
    pairer.push("left", 5000, 1)
    pairer.push("right", 5000, 1)
    with pytest.raises(BadInput):
        pairer.push("left", 4500, 2)  # a little older: out of order
    assert pairer.push("left", 100, 3) is None  # much older: the bag started over
    assert pairer.push("right", 100, 3) == (100, 3, 3)
    assert pairer.counters.restarts == 1 and pairer.counters.out_of_order == 1


# -- vision_msgs and generic filling ------------------------------------------------------------------
def test_detection_fields_build_a_real_vision_msgs_type_with_rosbags() -> None:
    from rosbags.typesys import Stores, get_typestore

    detections = [SimpleNamespace(label="person", score=0.9, box=(10.0, 20.0, 30.0, 60.0)),
                  SimpleNamespace(label="box", score=0.5, box=(0.0, 0.0, 4.0, 2.0))]
    fields = detection_array_fields(detections, 7_000_000_042, "camera")
    typestore = get_typestore(Stores.ROS2_JAZZY)
    register_vision_msgs(typestore)
    name = "vision_msgs/msg/Detection2DArray"
    msg = rosbags_message(typestore, name, fields)
    decoded = typestore.deserialize_cdr(typestore.serialize_cdr(msg, name), name)
    header = decoded.header
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (7, 42, "camera")
    first = decoded.detections[0]
    assert first.results[0].hypothesis.class_id == "person" and first.results[0].hypothesis.score == 0.9
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (20.0, 40.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (20.0, 40.0)
    assert detection_array_fields([], 1, "c")["detections"] == []


def test_fill_message_builds_nested_sequences_of_rclpy_messages() -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    from dla_perception.nodes.messages import fill_message

    msg = fill_message(DiagnosticArray(), {
        "header": {"stamp": {"sec": 4, "nanosec": 1}, "frame_id": "x"},
        "status": [{"name": "a", "level": b"\x01", "values": [{"key": "k", "value": "v"}]}],
    })
    assert msg.header.stamp.sec == 4 and msg.status[0].values[0].value == "v"
    with pytest.raises(KeyError):
        fill_message(DiagnosticArray(), {"nope": 1})


# -- diagnostics --------------------------------------------------------------------------------------
def core_stats(inferences=10, errors=0, p90=10.0, drops=0) -> dict:
    return {"inferences": inferences, "fps": 5.0, "latency_p50_ms": 5.0, "latency_p90_ms": p90,
            "latency_p99_ms": p90, "latency_max_ms": p90, "queue_depth": 0, "busy_fraction": 0.1,
            "errors": errors, "drops": drops, "engines": ["head"]}


def test_levels_follow_budgets_and_new_errors() -> None:
    report = DiagnosticsReport({"dla0": 20.0})
    placements = []
    (status,) = report.statuses({"cores": {"dla0": core_stats()}}, placements)
    assert status.name == "dla_perception: core dla0" and status.hardware_id == "dla0" and status.level == OK
    assert set(CORE_KEYS) <= set(status.values)
    (status,) = report.statuses({"cores": {"dla0": core_stats(20, p90=30.0)}}, placements)
    assert status.level == WARN and "budget" in status.message
    (status,) = report.statuses({"cores": {"dla0": core_stats(30, p90=50.0)}}, placements)
    assert status.level == ERROR
    (status,) = report.statuses({"cores": {"dla0": core_stats(40, errors=2)}}, placements)
    assert status.level == WARN and "2 failed" in status.message  # errors, but inferences still succeed
    (status,) = report.statuses({"cores": {"dla0": core_stats(40, errors=5)}}, placements)
    assert status.level == ERROR  # only errors in the last period
    (status,) = report.statuses({"cores": {"dla0": core_stats(50, errors=5)}}, placements)
    assert status.level == OK  # recovered


def test_absent_requested_core_warns_with_its_fallback_and_engines_get_statuses() -> None:
    statistics = {
        "cores": {"cpu": core_stats()},
        "engines": {"head@cpu": {**core_stats(), "model": "head", "core": "cpu", "precision": "fp32"}},
    }
    placements = [{"model": "head", "requested": ["dla0", "cpu"], "active": ["cpu"],
                   "fallbacks": [{"requested": "dla0", "used": "cpu", "reason": "dla0 not present"}]}]
    statuses = {s.name: s for s in DiagnosticsReport().statuses(statistics, placements)}
    dla = statuses["dla_perception: core dla0"]
    assert dla.level == WARN and "fell back to cpu" in dla.message and set(CORE_KEYS) <= set(dla.values)
    engine = statuses["dla_perception: engine head@cpu"]
    assert engine.hardware_id == "cpu" and engine.values["precision"] == "fp32"


def test_diagnostic_array_message() -> None:
    from builtin_interfaces.msg import Time

    from dla_perception.nodes.diagnostics import diagnostic_array

    statuses = DiagnosticsReport().statuses({"cores": {"cpu": core_stats()}}, [])
    msg = diagnostic_array(statuses, Time(sec=2))
    assert msg.header.stamp.sec == 2 and msg.status[0].level == b"\x00"
    assert {kv.key for kv in msg.status[0].values} >= set(CORE_KEYS)


# -- parameters and slot ---------------------------------------------------------------------------------
def test_parameter_validators() -> None:
    assert validate(PROXIMITY, "planes_m", [0.5, 1.0]) is None
    assert "finite" in validate(PROXIMITY, "planes_m", [1.0, math.nan])
    assert "at least one" in validate(PROXIMITY, "planes_m", [])
    assert validate(PROXIMITY, "alert_distance_m", -1.0)
    assert roi_box([0, 0, 0, 0]) is None and roi_box([1, 2, 3, 4]) is None and roi_box([3, 0, 1, 4])
    for name, specs in NODE_PARAMETERS.items():
        for spec in specs:
            assert spec.description, (name, spec.name)
            if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
                assert spec.float_range or spec.int_range, (name, spec.name)


def test_frame_slot_refuses_while_busy() -> None:
    from dla_perception.nodes.frames import FrameSlot

    slot = FrameSlot("test")
    started, finish = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        finish.wait(5)
        slot.release()

    assert slot.offer(work)
    assert started.wait(5)
    assert not slot.offer(work)  # dropped, never queued
    finish.set()
    assert slot.wait_idle(5)
    assert slot.offer(slot.release)
    slot.shutdown()
