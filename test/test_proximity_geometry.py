"""Stereo geometry of the proximity pipeline: metres <-> disparity, the floor model, the feature shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dla_perception.models.proximity import _checked_roi, _has_blob
from dla_perception.models.proximity_geometry import (
    GroundModel,
    StereoGeometry,
    checked_planes,
    shift_features,
)


def projections(fx=460.0, fy=460.0, cx=319.5, cy=239.5, baseline=0.12):
    left = np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0]], dtype=float)
    right = left.copy()
    right[0, 3] = -fx * baseline
    return left, right


def test_metres_to_disparity_uses_left_fx_and_the_right_baseline():
    geometry = StereoGeometry.from_projections(*projections())
    assert geometry.baseline_m == pytest.approx(0.12)
    assert geometry.disparity_px(2.0) == pytest.approx(460 * 0.12 / 2.0)
    assert geometry.disparity_px([1.0, 4.0]) == pytest.approx([55.2, 13.8])
    assert geometry.distance_m(27.6) == pytest.approx(2.0)
    # Flat lists of 12 values (CameraInfo.p) are accepted as well as 3x4 arrays.
    left, right = projections()
    assert StereoGeometry.from_projections(left.ravel().tolist(), right.ravel()) == geometry


@pytest.mark.parametrize(
    "left, right, message",
    [
        (projections()[0], projections(baseline=-0.12)[1], "baseline must be positive"),
        (projections()[0], projections()[0], "baseline must be positive"),  # a mono camera_info
        (projections()[0], np.full((3, 4), np.nan), "non-finite"),
        (projections()[0][:2], projections()[1], "3x4"),
        (projections(fx=0.0)[0], projections()[1], "focal length"),
        ("nonsense", projections()[1], "not numeric"),
    ],
)
def test_bad_geometry_is_a_clear_value_error(left, right, message):
    with pytest.raises(ValueError, match=message):
        StereoGeometry.from_projections(left, right)


def test_planes_are_sorted_and_deduplicated_and_bad_planes_rejected():
    assert checked_planes([4.0, 1.0, 2.0, 1.0]).tolist() == [1.0, 2.0, 4.0]
    for bad in ([], [1.0, -2.0], [0.0], [float("nan")], [math.inf], "abc", [[1.0, 2.0]]):
        with pytest.raises(ValueError):
            checked_planes(bad)


def test_resized_geometry_keeps_pixel_centres():
    geometry = StereoGeometry.from_projections(*projections())
    half = geometry.scaled(0.5, 0.5)
    assert half.fx == 230 and half.cx == pytest.approx(159.5) and half.cy == pytest.approx(119.5)
    assert half.disparity_px(2.0) == pytest.approx(geometry.disparity_px(2.0) / 2)


def test_raised_floor_disparity_follows_camera_height_and_pitch():
    geometry = StereoGeometry.from_projections(*projections())
    ground = GroundModel(camera_height_m=0.5, pitch_rad=0.0, clearance_m=0.1)
    # Level camera: the plane 0.4 m below it is seen at depth Z on row cy + fy * 0.4 / Z.
    z = 2.0
    row = 239.5 + 460 * 0.4 / z
    assert ground.clearance_disparity_px(np.array([row]), geometry)[0] == pytest.approx(460 * 0.12 / z)
    # At and above the horizon nothing of the floor is visible: disparity 0 (every pixel can be an obstacle).
    assert ground.clearance_disparity_px(np.array([0.0, 239.5]), geometry).tolist() == [0.0, 0.0]
    # Looking down moves the horizon up: the centre row now sees the floor at height / sin(pitch).
    tilted = GroundModel(camera_height_m=0.5, pitch_rad=math.radians(10), clearance_m=0.0)
    centre = tilted.clearance_disparity_px(np.array([239.5]), geometry)[0]
    assert centre == pytest.approx(460 * 0.12 / (0.5 / math.sin(math.radians(10))))


@pytest.mark.parametrize("height, clearance", [(0.1, 0.1), (0.5, -0.1), (math.nan, 0.1)])
def test_ground_model_rejects_impossible_values(height, clearance):
    with pytest.raises(ValueError):
        GroundModel(camera_height_m=height, clearance_m=clearance)


def test_integer_shift_moves_right_features_right_and_fills_zeros():
    right = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    out = shift_features(right, np.full((1, 3), 3.0))
    assert out.shape == (1, 2, 3, 8)
    np.testing.assert_array_equal(out[0, :, :, 3:], right[:, :, :5])
    np.testing.assert_array_equal(out[0, :, :, :3], 0)


def test_fractional_and_per_row_shifts_interpolate_linearly():
    right = np.tile(np.arange(10, dtype=np.float32), (1, 2, 1))  # value = column
    shifts = np.array([[2.25, 0.5]])  # row 0 by 2.25 px, row 1 by half a pixel
    out = shift_features(right, shifts)[0, 0]
    np.testing.assert_allclose(out[0, 3:], np.arange(3, 10) - 2.25)
    np.testing.assert_allclose(out[1, 1:], np.arange(1, 10) - 0.5)
    # A shift shared by all rows (the fast slicing path) gives what the per-row gather gives.
    np.testing.assert_allclose(shift_features(right, np.array([[2.25, 2.25]]))[0, 0, 0], out[0], atol=1e-6)
    # Several planes at once, one output per plane.
    assert shift_features(right, np.array([[0.0, 0.0], [1.0, 1.0]])).shape == (2, 1, 2, 10)
    np.testing.assert_array_equal(shift_features(right, np.zeros((1, 2)))[0], right)


def test_a_batch_mixing_floor_and_fronto_parallel_planes_shifts_each_plane_as_alone():
    # the ground query shares a head batch with constant planes; each plane's answer must not depend on
    # its neighbours (the pipeline shifts plane by plane, gathering only the per-row one)
    right = np.random.default_rng(1).random((3, 4, 12), dtype=np.float32)
    floor = np.array([0.0, 1.5, 4.25, 13.0])  # a shift per row, one beyond the image
    batch = np.stack([np.full(4, 2.5), floor, np.full(4, -1.0)])
    out = shift_features(right, batch)
    for plane, shifts in enumerate(batch):
        np.testing.assert_allclose(out[plane], shift_features(right, shifts[None])[0], atol=1e-6)
    for row, shift in enumerate(floor):  # the per-row plane against numpy's own interpolation
        columns = np.arange(12) - shift
        expected = [np.interp(columns, np.arange(12), channel[row], left=0.0, right=0.0) for channel in right]
        inside = columns >= 0  # within one pixel left of the image it blends with the zero beyond
        np.testing.assert_allclose(out[1, :, row][:, inside], np.array(expected)[:, inside], atol=1e-6)
        assert np.all(out[1, :, row][:, columns <= -1.0] == 0)


def test_shifting_into_a_used_buffer_overwrites_it_whole():
    right = np.random.default_rng(0).random((2, 3, 8), dtype=np.float32)
    for shifts in (np.full((2, 3), 2.5), np.array([[1.0, 2.0, 3.5], [0.0, 0.5, 9.0]])):  # slices, gather
        out = np.full((2, 2, 3, 8), np.nan, dtype=np.float32)  # stale contents must not survive
        assert shift_features(right, shifts, out=out) is out
        np.testing.assert_array_equal(out, shift_features(right, shifts))
    with pytest.raises(ValueError, match="float32"):
        shift_features(right, np.zeros((1, 3)), out=np.zeros((1, 2, 3, 8), dtype=np.float64))
    with pytest.raises(ValueError, match="float32"):
        shift_features(right, np.zeros((2, 3)), out=np.zeros((1, 2, 3, 8), dtype=np.float32))


def test_blob_filter_counts_only_connected_regions_of_the_minimum_size():
    mask = np.zeros((100, 100), bool)
    mask[::4, ::4] = True  # 625 isolated noise pixels: many pixels, no blob
    assert not _has_blob(mask, 50)
    mask[10:20, 10:20] = True  # one 10x10 blob
    assert _has_blob(mask, 50)
    assert not _has_blob(mask, 200)


def test_roi_is_clipped_to_the_image_and_must_overlap_it():
    assert _checked_roi(None, 640, 480) == (0, 0, 640, 480)
    assert _checked_roi((-10, 100, 700, 300.4), 640, 480) == (0, 100, 640, 300)
    for bad in ((700, 0, 800, 10), (10, 10, 10, 20), ("a", 0, 1, 1), (1, 2, 3)):
        with pytest.raises(ValueError, match="roi"):
            _checked_roi(bad, 640, 480)
