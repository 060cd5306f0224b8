"""Decoders (yolox, yolov8, native) on tensors with hand-computed boxes, and class-aware NMS edge cases."""

import math

import numpy as np
import pytest

from dla_perception.models.detection_decode import decode_native, decode_yolov8, decode_yolox, select


def test_yolox_grid_decoding_matches_hand_computation():
    # 32x32 input, strides 8 and 16: a 4x4 grid (anchors 0..15) then a 2x2 grid (anchors 16..19); 2 classes.
    output = np.zeros((1, 20, 7), np.float32)
    output[0, 1 * 4 + 2] = [0.5, 0.25, math.log(2), 0.0, 0.8, 0.5, 1.0]  # stride 8, row 1, col 2
    output[0, 16 + 1 * 2 + 0] = [0.0, 0.0, 0.0, 0.0, 0.9, 0.7, 0.1]  # stride 16, row 1, col 0
    boxes, class_scores = decode_yolox(output, [8, 16], 32, 32)
    assert boxes.shape == (20, 4) and class_scores.shape == (20, 2)
    # cx = (0.5 + 2) * 8 = 20, cy = (0.25 + 1) * 8 = 10, w = 2 * 8 = 16, h = 1 * 8 = 8
    np.testing.assert_allclose(boxes[6], [12, 6, 28, 14], atol=1e-6)
    np.testing.assert_allclose(class_scores[6], [0.4, 0.8], atol=1e-6)
    # cx = 0 * 16, cy = (0 + 1) * 16, w = h = 16
    np.testing.assert_allclose(boxes[18], [-8, 8, 8, 24], atol=1e-6)
    np.testing.assert_allclose(class_scores[18], [0.63, 0.09], atol=1e-6)
    kept_boxes, scores, class_ids = select(boxes, class_scores, 0.5, 0.5, 100)
    np.testing.assert_allclose(scores, [0.8, 0.63], atol=1e-6)
    assert class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(kept_boxes[0], [12, 6, 28, 14], atol=1e-6)


def test_yolox_rejects_an_anchor_count_that_does_not_fit_the_strides():
    with pytest.raises(ValueError, match="anchor points"):
        decode_yolox(np.zeros((1, 21, 7), np.float32), [8, 16], 32, 32)
    with pytest.raises(ValueError, match=r"\[1, N, 5 \+ C\]"):
        decode_yolox(np.zeros((20, 7), np.float32), [8, 16], 32, 32)


def test_yolov8_decoding_matches_hand_computation():
    output = np.zeros((1, 4 + 2, 3), np.float32)
    output[0, :, 0] = [50, 40, 20, 10, 0.1, 0.9]
    output[0, :, 2] = [10, 10, 4, 6, 0.6, 0.2]
    boxes, class_scores = decode_yolov8(output)
    np.testing.assert_allclose(boxes[0], [40, 35, 60, 45])
    np.testing.assert_allclose(boxes[2], [8, 7, 12, 13])
    kept_boxes, scores, class_ids = select(boxes, class_scores, 0.25, 0.5, 100)
    assert class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(scores, [0.9, 0.6], atol=1e-6)
    np.testing.assert_allclose(kept_boxes, [[40, 35, 60, 45], [8, 7, 12, 13]])


def test_native_decoding_matches_hand_computation():
    # 16x16 input, stride 8: 2x2 cells; 1 class. Cell (row 0, col 1) has its centre at (12, 4).
    stride8 = np.zeros((1, 6, 2, 2), np.float32)
    stride8[0, :, 0, 1] = [0.25, -0.5, math.log(2), math.log(0.5), 0.5, 0.8]
    # stride 16: one cell centred at (8, 8), a 16x16 box
    stride16 = np.zeros((1, 6, 1, 1), np.float32)
    stride16[0, :, 0, 0] = [0, 0, 0, 0, 1.0, 0.3]
    boxes, class_scores = decode_native([stride8, stride16], [8, 16])
    assert boxes.shape == (5, 4)
    # cx = (1 + 0.5 + 0.25) * 8 = 14, cy = (0 + 0.5 - 0.5) * 8 = 0, w = 2 * 8 = 16, h = 0.5 * 8 = 4
    np.testing.assert_allclose(boxes[1], [6, -2, 22, 2], atol=1e-5)
    np.testing.assert_allclose(class_scores[1], [0.4], atol=1e-6)
    np.testing.assert_allclose(boxes[4], [0, 0, 16, 16], atol=1e-5)
    np.testing.assert_allclose(class_scores[4], [0.3], atol=1e-6)


def test_native_rejects_a_wrong_number_of_outputs():
    with pytest.raises(ValueError, match="one output per stride"):
        decode_native([np.zeros((1, 6, 2, 2), np.float32)], [8, 16])


def test_huge_raw_sizes_give_finite_boxes():
    output = np.zeros((1, 4 + 1, 1), np.float32)
    output[0, :, 0] = [0, 0, 0, 0, 1]
    native = np.full((1, 6, 1, 1), 1e4, np.float32)
    boxes, _ = decode_native([native], [8])
    assert np.isfinite(boxes).all()


# -- NMS ------------------------------------------------------------------------------------------------


def _select(boxes, scores_per_class, score=0.1, iou=0.5, cap=100):
    return select(np.asarray(boxes, np.float64), np.asarray(scores_per_class, np.float64), score, iou, cap)


def test_select_on_nothing_returns_empty_arrays():
    boxes, scores, class_ids = _select(np.zeros((0, 4)), np.zeros((0, 3)))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and class_ids.shape == (0,)
    boxes, scores, class_ids = _select([[0, 0, 10, 10]], [[0.05, 0.01]])  # all below the threshold
    assert len(scores) == 0


def test_equal_scores_keep_the_first_of_overlapping_boxes():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [50, 50, 60, 60]]
    kept, scores, _ = _select(boxes, [[0.5]] * 4)
    np.testing.assert_allclose(kept, [[0, 0, 10, 10], [50, 50, 60, 60]])
    np.testing.assert_allclose(scores, [0.5, 0.5])


def test_nms_is_class_aware_across_many_classes():
    # The same box for each of 80 classes (one-hot scores): no class suppresses another.
    classes = 80
    class_scores = np.eye(classes) * np.linspace(0.9, 0.2, classes)[:, None]
    boxes = np.tile([[10, 10, 50, 50]], (classes, 1))
    kept, scores, class_ids = _select(boxes, class_scores, cap=1000)
    assert sorted(class_ids.tolist()) == list(range(classes))
    assert np.all(np.diff(scores) <= 0)  # best first
    # ...but a duplicate of the same class is suppressed
    kept, _, class_ids = _select(np.vstack([boxes[:1], boxes[:1]]), [[0.9, 0.0], [0.8, 0.0]])
    assert class_ids.tolist() == [0]


def test_iou_threshold_is_respected():
    boxes = [[0, 0, 10, 10], [5, 0, 15, 10]]  # IoU = 50 / 150 = 1/3
    assert len(_select(boxes, [[0.9], [0.8]], iou=0.3)[1]) == 1
    assert len(_select(boxes, [[0.9], [0.8]], iou=0.4)[1]) == 2


def test_max_detections_caps_the_result_best_first():
    boxes = [[i * 20, 0, i * 20 + 10, 10] for i in range(10)]
    scores = [[s] for s in np.linspace(0.1, 0.9, 10)]
    _, kept_scores, _ = _select(boxes, scores, score=0.0, cap=3)
    np.testing.assert_allclose(kept_scores, [0.9, np.linspace(0.1, 0.9, 10)[8], np.linspace(0.1, 0.9, 10)[7]])


def test_non_finite_candidates_are_dropped():
    boxes = [[0, 0, 10, 10], [np.nan, 0, 5, 5], [20, 20, 30, 30]]
    kept, scores, _ = _select(boxes, [[0.9], [0.95], [np.nan]])
    np.testing.assert_allclose(kept, [[0, 0, 10, 10]])
