"""Raw network outputs -> candidate boxes in network-input pixels, and class-aware NMS.

Every decoder returns `boxes` [N, 4] (x1, y1, x2, y2, network-input pixels, float64) and `class_scores`
[N, C] (the final per-class confidence in [0, 1]); `select` then keeps the best class per box, applies the
score threshold and class-aware NMS (OpenCV's batched NMS) and the max-detections cap.

Formats:
- `yolox`: one output [1, N, 5 + C] (cx, cy, w, h raw, objectness, C class scores, sigmoids applied),
  anchor points row by row over the grid of each stride in turn; xy = (o_xy + grid_xy) * stride,
  wh = exp(o_wh) * stride, score = objectness * class score.
- `yolov8`: one output [1, 4 + C, N] (cx, cy, w, h in network pixels, C class scores), as Ultralytics exports.
- `native` (the project's own detector): one output per stride, [1, 5 + C, H / stride, W / stride]:
  channels 0-1 = the box centre's offset from the cell centre in strides,
  cx = (col + 0.5 + v0) * stride, cy = (row + 0.5 + v1) * stride; channels 2-3 = log of the box width and
  height in strides, w = exp(v2) * stride, h = exp(v3) * stride; channel 4 = objectness probability,
  channels 5.. = class probabilities; score = objectness * class. Keeping exp and the grid outside the
  network keeps the graph convolution-only (DLA-friendly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# exp() of raw box outputs is clamped here: a wild activation must give a huge box, never inf/NaN.
_MAX_LOG_SIZE = 20.0


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row index of every cell, row by row ([H*W] each)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return cols.reshape(-1).astype(np.float64), rows.reshape(-1).astype(np.float64)


def _centre_size_to_corners(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def decode_yolox(output: np.ndarray, strides: Sequence[int], net_width: int,
                 net_height: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLOX raw head output [1, N, 5 + C] -> (boxes [N, 4], class_scores [N, C])."""
    output = np.asarray(output)
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[2] < 6:
        raise ValueError(f"yolox output must be [1, N, 5 + C], got {list(output.shape)}")
    rows = output[0].astype(np.float64)
    cols_list, rows_list, stride_list = [], [], []
    for stride in strides:
        gx, gy = _grid(net_height // stride, net_width // stride)
        cols_list.append(gx)
        rows_list.append(gy)
        stride_list.append(np.full(gx.shape, float(stride)))
    grid_x, grid_y, stride_all = (np.concatenate(a) for a in (cols_list, rows_list, stride_list))
    if grid_x.shape[0] != rows.shape[0]:
        raise ValueError(f"yolox output has {rows.shape[0]} anchor points, strides {list(strides)} on "
                         f"{net_width}x{net_height} give {grid_x.shape[0]}")
    cx = (rows[:, 0] + grid_x) * stride_all
    cy = (rows[:, 1] + grid_y) * stride_all
    w = np.exp(np.minimum(rows[:, 2], _MAX_LOG_SIZE)) * stride_all
    h = np.exp(np.minimum(rows[:, 3], _MAX_LOG_SIZE)) * stride_all
    return _centre_size_to_corners(cx, cy, w, h), rows[:, 4:5] * rows[:, 5:]


def decode_yolov8(output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YOLOv8 output [1, 4 + C, N] -> (boxes [N, 4], class_scores [N, C])."""
    output = np.asarray(output)
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
        raise ValueError(f"yolov8 output must be [1, 4 + C, N], got {list(output.shape)}")
    rows = output[0].T.astype(np.float64)
    return _centre_size_to_corners(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]), rows[:, 4:]


def decode_native(outputs: Sequence[np.ndarray], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The project's per-stride maps [1, 5 + C, H/s, W/s] -> (boxes [N, 4], class_scores [N, C])."""
    if len(outputs) != len(strides):
        raise ValueError(f"native format needs one output per stride {list(strides)}, got {len(outputs)}")
    all_boxes, all_scores = [], []
    for output, stride in zip(outputs, strides, strict=True):
        output = np.asarray(output)
        if output.ndim != 4 or output.shape[0] != 1 or output.shape[1] < 6:
            raise ValueError(f"native output must be [1, 5 + C, H, W], got {list(output.shape)}")
        channels, height, width = output.shape[1:]
        maps = output[0].reshape(channels, height * width).T.astype(np.float64)
        gx, gy = _grid(height, width)
        cx, cy = (gx + 0.5 + maps[:, 0]) * stride, (gy + 0.5 + maps[:, 1]) * stride
        sizes = np.exp(np.minimum(maps[:, 2:4], _MAX_LOG_SIZE)) * stride
        all_boxes.append(_centre_size_to_corners(cx, cy, sizes[:, 0], sizes[:, 1]))
        all_scores.append(maps[:, 4:5] * maps[:, 5:])
    return np.concatenate(all_boxes), np.concatenate(all_scores)


def select(boxes: np.ndarray, class_scores: np.ndarray, score_threshold: float, iou_threshold: float,
           max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class per box, score threshold, class-aware NMS, cap -> (boxes, scores, class_ids), best first.

    Boxes of different classes never suppress each other; among equal scores the earlier box wins.
    """
    import cv2

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))
    if boxes.shape[0] == 0 or max_detections <= 0:
        return empty
    class_scores = np.asarray(class_scores, dtype=np.float64).reshape(boxes.shape[0], -1)
    if class_scores.shape[1] == 0:
        return empty
    class_ids = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(boxes.shape[0]), class_ids]
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    keep = np.flatnonzero(finite & (scores >= score_threshold))
    if keep.size == 0:
        return empty
    candidates = boxes[keep]
    xywh = np.concatenate([candidates[:, :2], candidates[:, 2:] - candidates[:, :2]], axis=1)
    picked = cv2.dnn.NMSBoxesBatched(xywh, scores[keep].astype(np.float32), class_ids[keep].astype(np.int32),
                                     float(score_threshold), float(iou_threshold))
    picked = np.sort(keep[np.asarray(picked, dtype=np.int64).reshape(-1)])
    order = np.argsort(-scores[picked], kind="stable")
    picked = picked[order][:max_detections]
    return boxes[picked], scores[picked], class_ids[picked].astype(np.int64)
