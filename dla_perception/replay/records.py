"""What a replay keeps per frame: its record (timings, accuracy, misses) and pictures for the report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FrameRecord:
    """What the replay saw for one input frame."""

    index: int
    stamp_ns: int
    end_to_end_ms: float | None = None  # publish of the inputs -> last expected output; None if missing
    missing: list[str] = field(default_factory=list)  # expected output topics that never came
    iou: list[float | None] | None = None  # per proximity plane, when the bag has ground truth
    frame_iou: float | None = None  # the frame's planes pooled: sum tp / sum (tp + fp + fn)
    plane_counts: list[list[int]] | None = None  # per plane [near px in truth, near px predicted]
    nearest_m: float | None = None
    detections: int | None = None


@dataclass
class Overlay:
    """One input image with the graph's answers, for a picture in the report."""

    index: int
    image_rgb: np.ndarray
    alert_mask: np.ndarray | None = None  # HxW uint8, 255 = nearer than the alert distance
    truth_mask: np.ndarray | None = None  # HxW bool, ground truth nearer than the alert distance
    detections: list[tuple[str, float, tuple[float, float, float, float]]] = field(default_factory=list)
    title: str = ""
    level_px: np.ndarray | None = None  # proximity/disparity: nearest plane disparity per pixel, 0 beyond
    truth_px: np.ndarray | None = None  # ground-truth disparity (0/NaN unknown)
    planes: list[tuple[float, float]] = field(default_factory=list)  # (metres, disparity px), ascending m
    counts: list[list[int]] | None = None  # per plane [near px truth, near px predicted] of this frame


def overlay_image(overlay: Overlay) -> np.ndarray:
    """RGB picture: alert mask tinted red, ground-truth outline green, detection boxes yellow."""
    import cv2

    picture = overlay.image_rgb.copy()
    if overlay.alert_mask is not None and overlay.alert_mask.shape == picture.shape[:2]:
        near = overlay.alert_mask > 0
        picture[near] = (0.5 * picture[near] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
    if overlay.truth_mask is not None and overlay.truth_mask.shape == picture.shape[:2]:
        contours, _ = cv2.findContours(overlay.truth_mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, (0, 255, 0), 1)
    for label, score, (x1, y1, x2, y2) in overlay.detections:
        cv2.rectangle(picture, (int(x1), int(y1)), (int(x2), int(y2)), (255, 220, 0), 2)
        cv2.putText(picture, f"{label} {score:.2f}", (int(x1), max(10, int(y1) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 220, 0), 1, cv2.LINE_AA)
    return picture
