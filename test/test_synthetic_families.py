"""The proximity network's scene families and the held-out family: exact ground truth, planted depths,
both views' disparity, the upside-down and mirrored pairs, determinism, the camera ranges, the patterns."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.families import (
    FAMILIES,
    SKY_DISPARITY,
    Rig,
    family_sample,
    random_rig,
    render,
)
from dla_perception.synthetic.heldout import heldout_frame
from dla_perception.synthetic.patterns import PATTERN_KINDS, pattern_mips
from dla_perception.synthetic.primitives import Lights, Material, PrimitiveScene, Shape, rotation_matrix
from dla_perception.synthetic.sample import StereoSample, out_of_view_disparity, visible_disparities

SMALL = StereoCamera().scaled(240, 180)


def _warp_error(target: np.ndarray, source: np.ndarray, disparity: np.ndarray, direction: float) -> float:
    """Mean absolute difference (8-bit levels) between `target` and `source` sampled at x + direction * d,
    where the disparity is known and a pixel away from the mask's border (interpolation at edges)."""
    valid = (disparity > 0.01).astype(np.uint8)
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8)).astype(bool)
    height, width = disparity.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] + np.float32(direction) * disparity
    map_x = map_x.astype(np.float32)
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    warped = cv2.remap(source.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
    return float(np.mean(np.abs(warped - target.astype(np.float32))[valid]))


def _check_ground_truth(sample: StereoSample, max_error: float) -> None:
    """The right view warped by the left disparity is the left view, and the other way round; a wrong
    disparity (+2 px) is clearly worse."""
    assert sample.disparity.dtype == np.float32 and sample.disparity.shape == sample.left.shape[:2]
    assert np.mean(sample.disparity > 0) > 0.4 and np.mean(sample.right_disparity > 0) > 0.4
    left_error = _warp_error(sample.left, sample.right, sample.disparity, -1.0)
    right_error = _warp_error(sample.right, sample.left, sample.right_disparity, 1.0)
    assert left_error < max_error and right_error < max_error, (left_error, right_error)
    wrong = _warp_error(sample.left, sample.right, sample.disparity + 2.0 * (sample.disparity > 0.01), -1.0)
    assert wrong > 1.5 * left_error + 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_family_ground_truth_warps_one_view_onto_the_other(family):
    for seed in range(2):
        sample = family_sample(family, seed)
        # glossy highlights and bloom differ between the views by design; the texture does not
        _check_ground_truth(sample, max_error=6.0)


def test_heldout_ground_truth_warps_one_view_onto_the_other():
    sample = heldout_frame(3, SMALL, photometric=False)
    _check_ground_truth(sample, max_error=2.0)
    noisy = heldout_frame(3, SMALL)
    assert not np.array_equal(noisy.right, sample.right)  # the right view's gain/offset and sensor noise
    np.testing.assert_array_equal(noisy.disparity, sample.disparity)


def test_upside_down_and_mirrored_pairs_keep_exact_ground_truth():
    sample = family_sample("flying", 4)
    for transformed in (sample.upside_down(), sample.mirrored()):
        _check_ground_truth(transformed, max_error=6.0)
    mirrored = sample.mirrored()
    np.testing.assert_array_equal(mirrored.left, sample.right[:, ::-1])
    np.testing.assert_array_equal(mirrored.disparity, sample.right_disparity[:, ::-1])


def _planted_scene(distance: float, rig: Rig) -> PrimitiveScene:
    """A fronto-parallel textured wall `distance` ahead of the left camera and a 1 cm plate 1 m ahead."""
    material = Material(("dead_leaves", 0), texels_per_m=200.0)
    facing = rotation_matrix(yaw=math.pi)  # the quad's normal (local +z) towards the camera
    wall = Shape("quad", rig.left + [0.0, 0.0, distance], facing, (math.inf, math.inf, 0), 0)
    plate = Shape("box", rig.left + [0.3, 0.0, 1.0 + 0.005], np.eye(3), (0.2, 0.2, 0.005), 0)
    return PrimitiveScene([wall, plate], [material], Lights())


def test_planted_depths_give_exact_disparities():
    camera = StereoCamera().scaled(320, 240)
    rig = Rig(camera, height_m=0.8, pitch=0.0, roll=0.0)
    sample = render(_planted_scene(4.0, rig), rig, np.random.default_rng(0))
    fb = camera.fx * camera.baseline_m
    left, right = sample.disparity, sample.right_disparity
    wall = np.isclose(left, fb / 4.0, rtol=1e-5)
    front = np.isclose(left, fb / 1.0, rtol=1e-5)  # the plate's face 1 m ahead
    assert wall.mean() > 0.6 and front.sum() > 500
    edge = np.isclose(left, fb / 1.0, rtol=0.011)  # its 1 cm thick side
    assert np.all(wall | edge | (left == 0))  # nothing else: every visible pixel is on one of the two
    assert np.isclose(right, fb / 4.0, rtol=1e-5).mean() > 0.6
    # occlusion: the wall right of the box's right edge is hidden from the right camera -> 0 there
    assert np.any((left == 0) & (np.arange(camera.width)[None, :] > camera.cx))


def test_visible_disparities_mark_what_the_other_view_cannot_see():
    left_depth = np.full((4, 20), 2.0)
    left_depth[:, 8:12] = 1.0  # a near post
    right_depth = np.full((4, 20), 2.0)
    right_depth[:, 3:7] = 1.0  # ... 5 px further left in the right view (fx*B = 5 at 1 m)
    left, right = visible_disparities(left_depth, right_depth, 5.0)
    assert np.allclose(left[:, 8:12], 5.0) and np.allclose(right[:, 3:7], 5.0)
    assert np.all(left[:, 5:8] == 0) and np.all(left[:, 4] == 2.5)  # left of the post: hidden on the right
    assert np.all(right[:, 7:10] == 0) and np.all(right[:, 10] == 2.5)  # and right of it, from the left
    assert np.all(left[:, :3] == 0)  # beyond the right image's left edge
    assert np.all(right[:, 17:] == 0)  # beyond the left image's right edge
    left_sky, _ = visible_disparities(np.full((2, 5), np.inf), np.full((2, 5), np.inf), 5.0)
    assert np.all(left_sky == 0)


def test_out_of_view_labels_keep_the_image_edges_band_but_not_occlusions():
    left_depth = np.full((4, 20), 2.0)
    left_depth[:, 8:12] = 1.0
    right_depth = np.full((4, 20), 2.0)
    right_depth[:, 3:7] = 1.0
    plain = visible_disparities(left_depth, right_depth, 5.0)
    left, right = visible_disparities(left_depth, right_depth, 5.0, keep_out_of_view=True)
    assert np.all(left[:, :3] == 2.5) and np.all(right[:, 17:] == 2.5)  # the bands beyond the other image
    assert np.all(left[:, 5:8] == 0) and np.all(right[:, 7:10] == 0)  # occlusions stay unknown
    inside = (slice(None), slice(3, 17))
    assert np.array_equal(left[inside], plain[0][inside]) and np.array_equal(right[inside], plain[1][inside])
    assert np.array_equal(out_of_view_disparity(left_depth, 5.0), np.where(left == plain[0], 0.0, left))
    sample, labelled = family_sample("indoor", 3), family_sample("indoor", 3, keep_out_of_view=True)
    assert np.array_equal(sample.left, labelled.left) and np.array_equal(sample.right, labelled.right)
    columns = np.broadcast_to(np.arange(sample.camera.width, dtype=np.float32), sample.disparity.shape)
    added = labelled.disparity != sample.disparity
    assert added.any() and np.all(columns[added] - labelled.disparity[added] < 0)  # x - d outside the image
    assert np.all(sample.disparity[added] == 0)


def test_sky_is_labelled_far_where_both_views_see_it():
    for seed in range(40):
        sample = family_sample("flying", seed)
        sky = sample.disparity == np.float32(SKY_DISPARITY)
        if np.any(sky):
            break
    assert 0 < sky.mean() < 1
    assert np.all(sample.right_disparity[sky] == np.float32(SKY_DISPARITY))  # same pixels: both see the sky


@pytest.mark.parametrize("make", [lambda s: family_sample("flying", s), lambda s: family_sample("thin", s),
                                  lambda s: family_sample("indoor", s), lambda s: heldout_frame(s, SMALL)])
def test_same_seed_same_bytes_other_seed_other_scene(make):
    a, b, c = make(11), make(11), make(12)
    for name in ("left", "right", "disparity", "right_disparity"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.left, c.left)


def test_random_cameras_cover_the_asked_ranges():
    rigs = [random_rig(np.random.default_rng(s)) for s in range(300)]
    heights = [r.height_m for r in rigs]
    assert 0.2 <= min(heights) < 0.3 and 1.4 < max(heights) <= 1.5
    pitches = np.degrees([r.pitch for r in rigs])
    rolls = np.degrees([r.roll for r in rigs])
    assert pitches.min() < -5 and pitches.max() > 15 and np.all(np.abs(rolls) <= 10) and np.std(rolls) > 2
    baselines = [r.camera.baseline_m for r in rigs]
    assert min(baselines) < 0.06 and max(baselines) > 0.25
    fovs = [2 * math.degrees(math.atan(r.camera.width / 2 / r.camera.fx)) for r in rigs]
    assert min(fovs) < 55 and max(fovs) > 100
    assert len({(r.camera.width, r.camera.height) for r in rigs}) > 10


def test_patterns_tile_seamlessly_and_are_deterministic():
    for kind in PATTERN_KINDS:
        tile = pattern_mips(kind, 3)[0].astype(np.float32)
        assert tile.shape == (256, 256, 3)
        for axis in (0, 1):  # the step across the wrap is no larger than the largest step inside the tile
            steps = np.abs(np.diff(tile, axis=axis)).mean(axis=(1 - axis, 2))
            wrap = np.abs(tile.take(0, axis) - tile.take(-1, axis)).mean()
            assert wrap <= steps.max() + 1.0, kind
        pattern_mips.cache_clear()
        np.testing.assert_array_equal(pattern_mips(kind, 3)[0], tile.astype(np.uint8))
    with pytest.raises(ValueError, match="unknown pattern"):
        pattern_mips("bricks", 0)
    with pytest.raises(ValueError, match="unknown scene family"):
        family_sample("street", 0)
