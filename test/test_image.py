"""Image encodings: rgb8/bgr8/mono8 to RGB and BGR, and clear errors for anything else."""

import numpy as np
import pytest

from dla_perception.models.image import to_bgr, to_rgb


def _pixel_image() -> np.ndarray:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[0, 0] = (10, 20, 30)
    image[1, 2] = (200, 100, 50)
    return image


def test_rgb8_is_returned_as_is_and_swapped_for_bgr():
    rgb = _pixel_image()
    assert to_rgb(rgb, "rgb8") is rgb
    assert tuple(to_bgr(rgb, "rgb8")[0, 0]) == (30, 20, 10)
    assert tuple(to_bgr(rgb, "rgb8")[1, 2]) == (50, 100, 200)


def test_bgr8_round_trips_through_rgb():
    bgr = _pixel_image()
    assert tuple(to_rgb(bgr, "bgr8")[0, 0]) == (30, 20, 10)
    np.testing.assert_array_equal(to_bgr(to_rgb(bgr, "bgr8"), "rgb8"), bgr)
    assert to_bgr(bgr, "bgr8") is bgr


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_mono8_is_replicated_to_three_channels(shape):
    mono = np.arange(20, dtype=np.uint8).reshape(shape)
    for convert in (to_rgb, to_bgr):
        out = convert(mono, "mono8")
        assert out.shape == (4, 5, 3)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
        assert out[3, 4, 1] == 19


@pytest.mark.parametrize(
    ("array", "encoding", "message"),
    [
        (np.zeros((4, 4, 3), np.uint8), "rgba8", "unsupported image encoding"),
        (np.zeros((4, 4, 3), np.uint8), "16UC1", "unsupported image encoding"),
        (np.zeros((4, 4, 3), np.float32), "rgb8", "must be uint8"),
        (np.zeros((4, 4), np.uint8), "rgb8", "HxWx3"),
        (np.zeros((4, 4, 4), np.uint8), "bgr8", "HxWx3"),
        (np.zeros((4, 4, 3), np.uint8), "mono8", "HxW"),
        (np.zeros((0, 4, 3), np.uint8), "rgb8", "empty"),
    ],
)
def test_bad_images_raise_value_error_naming_the_problem(array, encoding, message):
    with pytest.raises(ValueError, match=message):
        to_rgb(array, encoding)
