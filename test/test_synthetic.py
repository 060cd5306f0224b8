"""The synthetic stereo generator: camera model, exact ground truth, occlusions, boxes, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.scene import (
    OBSTACLE_CLASSES,
    PlantedObject,
    generate_frame,
    generate_sequence,
)

SMALL = StereoCamera().scaled(240, 180)


def _warp_right_to_left(right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """The right image sampled at (x - d, y): the left image as the right camera saw it."""
    height, width = disparity.shape
    map_x = (np.arange(width, dtype=np.float32)[None, :] - disparity).astype(np.float32)
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    return cv2.remap(right.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)


def _photometric_error(frame, shift_px: float = 0.0, fit_gain: bool = False, smooth_px: float = 0.0) -> float:
    """Mean absolute difference (8-bit levels) between the left image and the right one warped by the
    ground-truth disparity (+ shift_px), where the ground truth says both views see the surface. With
    fit_gain, a per-channel gain and offset is fitted first (the views differ in exposure by design);
    smooth_px blurs both images first (averages the sensor noise away, keeps the texture)."""
    valid = frame.disparity > 0
    valid &= cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # off the borders
    left, right = frame.left, frame.right
    if smooth_px:
        left, right = (cv2.GaussianBlur(image, (0, 0), smooth_px) for image in (left, right))
    warped = _warp_right_to_left(right, frame.disparity + np.float32(shift_px) * valid)
    left = left.astype(np.float32)
    errors = []
    for channel in range(3):
        a, b = warped[..., channel][valid], left[..., channel][valid]
        if fit_gain:
            gain, offset = np.polyfit(a, b, 1)
            a = a * gain + offset
        errors.append(np.abs(a - b))
    return float(np.mean(errors))


def test_camera_projections_follow_the_ros_stereo_convention():
    camera = StereoCamera()
    left, right = camera.projection_left(), camera.projection_right()
    assert left.shape == right.shape == (3, 4) and left.dtype == np.float64
    assert left[0, 3] == 0.0
    assert right[0, 3] == pytest.approx(-camera.fx * camera.baseline_m)
    np.testing.assert_array_equal(left[:, :3], right[:, :3])
    assert camera.disparity_px(2.0) == pytest.approx(camera.fx * camera.baseline_m / 2.0)
    assert camera.depth_m(camera.disparity_px(7.5)) == pytest.approx(7.5)
    assert camera.depth_m(0.0) == float("inf")
    np.testing.assert_allclose(camera.depth_m(camera.disparity_px(np.array([1.0, 4.0]))), [1.0, 4.0])


def test_scaled_camera_keeps_the_field_of_view():
    camera = StereoCamera()
    small = camera.scaled(160, 120)
    assert (small.width, small.height) == (160, 120)
    assert small.fx / small.width == pytest.approx(camera.fx / camera.width)
    assert (small.cx + 0.5) / small.width == pytest.approx((camera.cx + 0.5) / camera.width)
    assert small.baseline_m == camera.baseline_m


@pytest.mark.parametrize("bad", [dict(fx=0.0), dict(baseline_m=-0.1), dict(width=4), dict(cx=float("nan"))])
def test_camera_rejects_bad_geometry(bad):
    with pytest.raises(ValueError):
        StereoCamera(**bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_right_image_warped_by_ground_truth_reproduces_the_left(seed):
    frame = generate_frame(seed, SMALL, photometric=False)
    valid_fraction = float((frame.disparity > 0).mean())
    assert valid_fraction > 0.4, "most of a street view is seen by both cameras"
    error = _photometric_error(frame)
    wrong = _photometric_error(frame, shift_px=1.5)
    print(f"seed {seed}: valid {valid_fraction:.2f}, mean abs error {error:.2f} levels, "
          f"at +1.5 px {wrong:.2f}")
    assert error < 2.0, f"warp error {error:.2f} levels: the ground truth does not match the views"
    assert wrong > 2 * error, "the test must be able to tell a wrong disparity"


def test_warp_error_is_small_with_camera_effects_after_gain_fit():
    """Exposure, vignetting, noise and blur differ between the views: smooth the noise, fit gain/offset."""
    frame = generate_frame(3, SMALL)
    error = _photometric_error(frame, fit_gain=True, smooth_px=1.0)
    wrong = _photometric_error(frame, shift_px=3.0, fit_gain=True, smooth_px=1.0)
    print(f"with camera effects: mean abs error {error:.2f} levels, at +3 px {wrong:.2f}")
    assert error < 3.5
    assert wrong > 1.5 * error


def test_planted_objects_have_the_exact_disparity_of_their_distance():
    camera = SMALL
    planted = [PlantedObject("box", 3.0, 0.0, (0.8, 0.6, 0.5)), PlantedObject("post", 6.0, -1.2),
               PlantedObject("person", 9.0, 1.0)]
    frame = generate_frame(11, camera, planted=planted, clutter=False, pitch_deg=0.0, yaw_deg=0.0,
                           photometric=False)
    by_label = {o.label: o for o in frame.objects}
    assert set(by_label) == {"box", "post", "person"}

    box = by_label["box"]
    assert box.distance_m == pytest.approx(3.0, abs=1e-4)
    x1, y1, x2, y2 = (int(round(v)) for v in box.box)
    face = frame.disparity[y1 + 2:y2 - 2, x1 + 2:x2 - 2]  # the front face, away from its edges
    assert face.size > 100
    np.testing.assert_allclose(face, camera.fx * camera.baseline_m / 3.0, rtol=1e-5)
    np.testing.assert_allclose(frame.depth_m[y1 + 2:y2 - 2, x1 + 2:x2 - 2], 3.0, rtol=1e-5)
    # the nearest visible point of a round post / a person lies on the planted distance (within a pixel's
    # worth of curvature)
    assert by_label["post"].distance_m == pytest.approx(6.0, abs=0.01)
    assert by_label["person"].distance_m == pytest.approx(9.0, abs=0.02)


def test_left_pixels_hidden_from_the_right_camera_have_zero_disparity():
    """Left of a near object lies a band of background that the right camera cannot see."""
    camera = SMALL
    box = PlantedObject("box", 2.0, 0.0, (0.6, 0.5, 0.4))
    frame = generate_frame(5, camera, planted=[box], clutter=False, pitch_deg=0.0, yaw_deg=0.0,
                           photometric=False)
    (box,) = frame.objects
    x1, y1, x2, y2 = (int(round(v)) for v in box.box)
    near = camera.fx * camera.baseline_m / 2.0
    # rows where the background beside the box is far (disparity < near / 2): there the right camera
    # cannot see at least near / 2 columns just left of the box
    background = frame.disparity[:, x1 - int(near) - 3]
    rows = np.arange(y1 + 1, y2 - 1)
    rows = rows[background[rows] < near / 2]
    assert len(rows) >= 5
    band = int(near / 2) - 1
    occluded = frame.disparity[rows, x1 - band:x1]
    assert (occluded == 0).all()
    assert (frame.disparity[rows, x2:x2 + band] > 0).all(), "the right side of the object is seen by both"
    assert np.isfinite(frame.depth_m[rows, x1 - band:x1]).all(), "depth stays known where disparity is not"


def test_occluded_and_tiny_obstacles_get_no_box():
    wall = PlantedObject("box", 2.0, 0.0, (2.5, 2.0, 0.3))
    hidden = PlantedObject("bin", 6.0, 0.0)
    frame = generate_frame(2, SMALL, planted=[wall, hidden], clutter=False, pitch_deg=0.0, yaw_deg=0.0)
    assert [o.label for o in frame.objects] == ["box"]
    far = generate_frame(2, SMALL, planted=[PlantedObject("post", 60.0)], clutter=False, max_distance_m=80.0)
    assert far.objects == []


def test_frames_have_the_contract_types_and_sane_boxes():
    frame = generate_frame(4, SMALL)
    h, w = SMALL.height, SMALL.width
    assert frame.left.shape == frame.right.shape == (h, w, 3) and frame.left.dtype == np.uint8
    assert frame.disparity.shape == frame.depth_m.shape == (h, w)
    assert frame.disparity.dtype == frame.depth_m.dtype == np.float32
    assert (frame.disparity >= 0).all() and np.isfinite(frame.disparity).all()
    known = frame.disparity > 0
    np.testing.assert_allclose(frame.disparity[known], SMALL.fx * SMALL.baseline_m / frame.depth_m[known],
                               rtol=1e-5)
    assert frame.objects, "a random scene has obstacles"
    for obstacle in frame.objects:
        assert OBSTACLE_CLASSES[obstacle.class_id] == obstacle.label
        x1, y1, x2, y2 = obstacle.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert 0.3 < obstacle.distance_m < 100


def test_same_seed_gives_identical_bytes_and_different_seeds_differ():
    first, again, other = (generate_frame(seed, SMALL) for seed in (21, 21, 22))
    for name in ("left", "right", "disparity", "depth_m"):
        assert getattr(first, name).tobytes() == getattr(again, name).tobytes(), name
    assert first.objects == again.objects
    assert first.left.tobytes() != other.left.tobytes()
    assert first.disparity.tobytes() != other.disparity.tobytes()


def test_sequence_drives_forward_so_obstacles_approach():
    planted = [PlantedObject("box", 5.0, 0.3, (0.5, 0.5, 0.5))]
    frames = list(generate_sequence(8, 6, SMALL, planted=planted, clutter=False, pitch_deg=0.0, yaw_deg=0.0,
                                    speed_mps=2.0, rate_hz=10.0))
    assert [f.index for f in frames] == list(range(6))
    distances = [f.objects[0].distance_m for f in frames]
    np.testing.assert_allclose(distances, [5.0 - 0.2 * i for i in range(6)], atol=1e-3)
    again = list(generate_sequence(8, 6, SMALL, planted=planted, clutter=False, pitch_deg=0.0, yaw_deg=0.0,
                                   speed_mps=2.0, rate_hz=10.0))
    assert all(a.left.tobytes() == b.left.tobytes() for a, b in zip(frames, again, strict=True))
    assert frames[0].left.tobytes() != frames[-1].left.tobytes()


def test_obstacles_the_camera_would_drive_into_disappear_before_it_does():
    frames = list(generate_sequence(3, 12, SMALL, planted=[PlantedObject("box", 1.0)], clutter=False,
                                    speed_mps=1.0, rate_hz=10.0))
    assert frames[0].objects and not frames[-1].objects


def test_bad_options_are_refused_clearly():
    with pytest.raises(TypeError, match="unknown scene option"):
        generate_frame(0, SMALL, colour="red")
    with pytest.raises(ValueError, match="unknown obstacle class"):
        PlantedObject("car", 3.0)
    with pytest.raises(ValueError, match="distance_m"):
        PlantedObject("box", -1.0)
    with pytest.raises(ValueError):
        generate_sequence(0, -1, SMALL)  # raised at the call, not at the first frame
    with pytest.raises(ValueError, match="texture_size"):
        generate_frame(0, SMALL, texture_size=100)
    with pytest.raises(ValueError, match="min_distance_m"):
        generate_frame(0, SMALL, min_distance_m=5.0, max_distance_m=2.0)


def test_obstacles_may_stand_farther_than_the_usual_far_wall():
    """max_distance_m beyond 55 m puts any far wall beyond the obstacles (it once failed to draw one)."""
    tiny = StereoCamera().scaled(64, 48)
    for seed in range(4):
        frame = generate_frame(seed, tiny, max_distance_m=80.0, pitch_deg=0.0)
        assert frame.left.shape == (48, 64, 3)
        far = np.isfinite(frame.depth_m) & (frame.depth_m > 80.0)
        assert far.any(), "the far end of the scene lies beyond the obstacles"
