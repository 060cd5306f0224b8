"""The frames a report should show: the worst by near-mask IoU and the slowest end to end.

Candidates are kept while the replay runs (their serialized inputs and outputs only: a handful of frames,
bounded), and decoded into pictures at the end. A frame's IoU here pools its planes' pixel counts, so a
plane with three near pixels does not make every frame look broken.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dla_perception.replay import bag as bagmod
from dla_perception.replay.images import decode_image
from dla_perception.replay.messages import typestore
from dla_perception.replay.player import Received
from dla_perception.replay.records import FrameRecord, Overlay


@dataclass
class _Candidate:
    record: FrameRecord
    frame: bagmod.Frame
    messages: dict[str, Received]
    detections: list = field(default_factory=list)


class WorstFrames:
    """Keeps the `count` lowest-IoU and `count` slowest frames seen (a frame may be both)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._order = itertools.count()
        self._iou: list[tuple[float, int, _Candidate]] = []  # max-heap on IoU via negation: worst kept
        self._slow: list[tuple[float, int, _Candidate]] = []  # min-heap on latency: slowest kept

    def offer(self, record: FrameRecord, frame: bagmod.Frame, messages: dict[str, Received],
              detections: list | None) -> None:
        if self.count <= 0:
            return
        candidate = _Candidate(record, frame, messages, detections or [])
        if record.frame_iou is not None:
            _keep(self._iou, -record.frame_iou, candidate, self.count, next(self._order))
        if record.end_to_end_ms is not None:
            _keep(self._slow, record.end_to_end_ms, candidate, self.count, next(self._order))

    def overlays(self, planes_m: list[float], planes_px_of: Any, alert_distance_m: float | None
                 ) -> list[Overlay]:
        """Pictures of the kept frames, worst IoU first, then slowest; planes_px_of(frame) -> disparities."""
        chosen: dict[int, tuple[_Candidate, list[str]]] = {}
        for _, _, candidate in sorted(self._iou, key=lambda item: -item[0]):
            chosen.setdefault(candidate.record.index, (candidate, []))[1].append(
                f"IoU {candidate.record.frame_iou:.3f} (among the {self.count} lowest)")
        for _, _, candidate in sorted(self._slow, key=lambda item: -item[0]):
            chosen.setdefault(candidate.record.index, (candidate, []))[1].append(
                f"end to end {candidate.record.end_to_end_ms:.0f} ms (among the {self.count} slowest)")
        pictures = []
        for candidate, reasons in chosen.values():
            overlay = _overlay(candidate, planes_m, planes_px_of, alert_distance_m)
            if overlay is not None:
                overlay.title = f"Frame {candidate.record.index}: " + "; ".join(reasons)
                pictures.append(overlay)
        return pictures


def _keep(heap: list, key: float, candidate: _Candidate, count: int, order: int) -> None:
    item = (key, order, candidate)
    if len(heap) < count:
        heapq.heappush(heap, item)
    elif key > heap[0][0]:
        heapq.heapreplace(heap, item)


def _output_image(messages: dict[str, Received], topic: str) -> np.ndarray | None:
    received = messages.get(topic)
    if received is None:
        return None
    message = typestore().deserialize_cdr(received.raw, received.msgtype)
    try:
        return decode_image(getattr(message, "image", message))  # DisparityImage wraps its Image
    except ValueError:
        return None


def _overlay(candidate: _Candidate, planes_m: list[float], planes_px_of: Any,
             alert_distance_m: float | None) -> Overlay | None:
    frame = candidate.frame
    image = frame.messages.get(bagmod.LEFT_IMAGE) or frame.messages.get(bagmod.MONO_IMAGE)
    try:
        rgb = decode_image(bagmod.decode(image), "rgb8")
    except ValueError:  # an image the graph rejected may not decode either; no picture then
        return None
    overlay = Overlay(frame.index, rgb, detections=candidate.detections)
    mask = _output_image(candidate.messages, "proximity/mask")
    overlay.alert_mask = mask
    overlay.level_px = _output_image(candidate.messages, "proximity/disparity")
    overlay.counts = candidate.record.plane_counts
    try:
        truth = frame.ground_truth_disparity()
    except bagmod.BagError:
        truth = None
    overlay.truth_px = truth
    if planes_m and frame.messages.get(bagmod.LEFT_INFO):
        try:
            overlay.planes = list(zip(planes_m, planes_px_of(frame), strict=True))
            if truth is not None and alert_distance_m:
                alert_px = float(planes_px_of(frame, [float(alert_distance_m)])[0])
                overlay.truth_mask = np.nan_to_num(truth) > alert_px
        except ValueError:  # unusable camera_info: no levels, no ground-truth outline
            overlay.planes = []
    return overlay
