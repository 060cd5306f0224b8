"""What a frame's outputs say: detections as tuples, proximity accuracy against ground truth, pictures.

The scorer reads the proximity node's own parameters (planes, alert distance, stereo pairing slop), so a
replay scores the graph exactly as it was configured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dla_perception.models.proximity_geometry import StereoGeometry
from dla_perception.replay import bag as bagmod
from dla_perception.replay.graph import PerceptionGraph
from dla_perception.replay.images import decode_image
from dla_perception.replay.messages import DETECTION_ARRAY_TYPE, typestore
from dla_perception.replay.metrics import ProximityScore
from dla_perception.replay.player import BagPlayer, Received
from dla_perception.replay.records import FrameRecord


class Scorer:
    """Proximity accuracy against ground truth, with the node's own planes, alert distance and pairing."""

    def __init__(self, graph: PerceptionGraph, has_ground_truth: bool) -> None:
        self.planes_m = [float(p) for p in graph.parameter("proximity_segmentation", "planes_m", []) or []]
        self.alert_distance_m = graph.parameter("proximity_segmentation", "alert_distance_m")
        # Frames pair left and right images as the node does.
        self.pair_slop_ns = int(float(graph.parameter("proximity_segmentation", "sync_slop_s", 0.0)) * 1e9)
        self.score = ProximityScore(sorted(self.planes_m)) if has_ground_truth and self.planes_m else None
        self.problems: list[str] = []  # ground truth that could not be scored, once per kind

    def geometry(self, frame: bagmod.Frame) -> StereoGeometry:
        """The frame's stereo model (ValueError for an unusable camera_info pair)."""
        left = bagmod.decode(frame.messages[bagmod.LEFT_INFO])
        right = bagmod.decode(frame.messages[bagmod.RIGHT_INFO])
        return StereoGeometry.from_projections(left.p, right.p)

    def planes_px(self, frame: bagmod.Frame, distances_m: list[float] | None = None) -> list[float]:
        """Disparities (px) of the planes (or of `distances_m`) in this frame's camera model."""
        distances = sorted(self.planes_m) if distances_m is None else distances_m
        return [float(d) for d in self.geometry(frame).disparity_px(distances).tolist()]


def frame_detections(frame: bagmod.Frame, graph: PerceptionGraph, player: BagPlayer,
                messages: dict[str, Received], outcomes: dict[str, Any]
                ) -> list[tuple[str, float, tuple[float, float, float, float]]] | None:
    """The frame's detections as (label, score, box); written to the bag when only the outcome had them."""
    received = messages.get("detections")
    if received is not None and received.msgtype == DETECTION_ARRAY_TYPE:
        return detection_tuples(typestore().deserialize_cdr(received.raw, DETECTION_ARRAY_TYPE))
    outcome = outcomes.get("detection", (None, None))[0]
    if outcome is None or outcome.status != "published":
        return None
    fields = outcome.outputs.get("detections")
    if not isinstance(fields, dict):
        return None
    from dla_perception.nodes.messages import rosbags_message

    message = rosbags_message(typestore(), DETECTION_ARRAY_TYPE, fields)
    player.write("detections", DETECTION_ARRAY_TYPE, frame.stamp_ns,
                 bytes(typestore().serialize_cdr(message, DETECTION_ARRAY_TYPE)))
    return detection_tuples(message)


def detection_tuples(array: Any) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    items = []
    for detection in array.detections:
        box = detection.bbox
        cx, cy = box.center.position.x, box.center.position.y
        hypothesis = detection.results[0].hypothesis if len(detection.results) else None
        label = hypothesis.class_id if hypothesis else "?"
        score = hypothesis.score if hypothesis else 0.0
        items.append((label, float(score), (cx - box.size_x / 2, cy - box.size_y / 2,
                                             cx + box.size_x / 2, cy + box.size_y / 2)))
    return items


def score_proximity(frame: bagmod.Frame, messages: dict[str, Received], scorer: Scorer,
               record: FrameRecord) -> None:
    range_message = messages.get("proximity/range")
    if range_message is not None:
        value = float(typestore().deserialize_cdr(range_message.raw, range_message.msgtype).range)
        record.nearest_m = value if np.isfinite(value) else None
    disparity = messages.get("proximity/disparity")
    truth = frame.ground_truth_disparity() if scorer.score is not None else None
    if disparity is None or truth is None:
        return
    try:
        level = decode_image(typestore().deserialize_cdr(disparity.raw, disparity.msgtype).image)
        planes_px = scorer.planes_px(frame, scorer.score.thresholds_m)
        record.iou = scorer.score.add(frame.index, np.asarray(level, dtype=np.float32), truth, planes_px)
    except ValueError as exc:  # bad camera_info, or ground truth of another size: not scored
        problem = f"ground truth not scored: {exc}"
        if problem not in scorer.problems:
            scorer.problems.append(problem)
        return
    counts = scorer.score.last_counts
    record.plane_counts = [[tp + fn, tp + fp] for tp, fp, fn in counts]
    union = sum(tp + fp + fn for tp, fp, fn in counts)
    record.frame_iou = round(sum(tp for tp, _, _ in counts) / union, 6) if union else None
