"""Letterbox/stretch placement, exact round trips of boxes, colour order and normalisation."""

import numpy as np
import pytest

from dla_perception.models.detection_description import InputDescription
from dla_perception.models.detection_preprocess import plan_resize, preprocess

SIZES = [(640, 480), (480, 640), (1920, 1080), (100, 100), (333, 77)]


@pytest.mark.parametrize("mode", ["stretch", "letterbox_center", "letterbox_topleft"])
@pytest.mark.parametrize(("image_w", "image_h"), SIZES)
def test_boxes_round_trip_through_the_network_frame(mode, image_w, image_h):
    transform = plan_resize(image_w, image_h, 416, 320, mode)
    boxes = np.array([[0, 0, image_w, image_h], [10.5, 3.25, 60, 70],
                      [image_w / 3, image_h / 4, image_w / 2, image_h]])
    np.testing.assert_allclose(transform.to_image(transform.to_network(boxes)), boxes, atol=1e-9)
    whole = transform.to_network([[0, 0, image_w, image_h]])[0]
    assert whole[0] >= 0 and whole[1] >= 0 and whole[2] <= 416 and whole[3] <= 320


def test_letterbox_placement_by_hand():
    # 640x480 -> 416x416: ratio 0.65, resized 416x312, 104 rows of padding
    top = plan_resize(640, 480, 416, 416, "letterbox_topleft")
    assert (top.resized_width, top.resized_height, top.pad_x, top.pad_y) == (416, 312, 0, 0)
    centre = plan_resize(640, 480, 416, 416, "letterbox_center")
    assert (centre.pad_x, centre.pad_y) == (0, 52)
    np.testing.assert_allclose(centre.to_network([[100, 100, 200, 200]]), [[65, 117, 130, 182]])
    stretch = plan_resize(640, 480, 320, 320, "stretch")
    assert (stretch.scale_x, stretch.scale_y) == (0.5, 320 / 480)


def test_boxes_are_clipped_to_the_image():
    transform = plan_resize(640, 480, 416, 416, "letterbox_center")
    np.testing.assert_allclose(transform.to_image([[-50, -50, 500, 500]]), [[0, 0, 640, 480]])


@pytest.mark.parametrize("mode", ["stretch", "letterbox_center", "letterbox_topleft"])
@pytest.mark.parametrize(("image_w", "image_h"), [(640, 480), (480, 640), (1000, 300)])
def test_a_drawn_rectangle_maps_back_to_within_a_pixel(mode, image_w, image_h):
    """The bright block in the network input, mapped back, lands on the block drawn in the image."""
    image = np.zeros((image_h, image_w, 3), np.uint8)
    x1, y1, x2, y2 = image_w // 5, image_h // 3, image_w // 2, image_h * 3 // 4
    image[y1:y2, x1:x2] = 255
    spec = InputDescription(name="images", width=416, height=416, resize=mode, pad_value=0)
    tensor, transform = preprocess(image, "rgb8", spec)
    bright = np.argwhere(tensor[0, 0] > 127)
    (ny1, nx1), (ny2, nx2) = bright.min(axis=0), bright.max(axis=0) + 1
    mapped = transform.to_image([[nx1, ny1, nx2, ny2]])[0]
    # within one network pixel (its size in image pixels per axis)
    one_pixel = np.array([1 / transform.scale_x, 1 / transform.scale_y] * 2)
    assert np.all(np.abs(mapped - [x1, y1, x2, y2]) <= one_pixel), (mapped, (x1, y1, x2, y2))


def test_padding_colour_order_and_normalisation():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :] = (10, 20, 30)  # RGB
    spec = InputDescription(name="x", width=64, height=64, color="bgr", scale=2.0, mean=(1, 2, 3),
                            std=(2, 4, 8), resize="letterbox_topleft", pad_value=114)
    tensor, transform = preprocess(image, "rgb8", spec)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert (transform.resized_width, transform.resized_height) == (64, 32)
    # content: channel 0 is blue (30): (30 * 2 - 1) / 2
    np.testing.assert_allclose(tensor[0, :, 5, 5], [(60 - 1) / 2, (40 - 2) / 4, (20 - 3) / 8])
    # padding (below the image, top-left letterbox): pad_value per channel, normalised the same way
    np.testing.assert_allclose(tensor[0, :, 60, 5], [(228 - 1) / 2, (228 - 2) / 4, (228 - 3) / 8])
    # the same image given as bgr8 or mono8 goes through the same conversion
    bgr_tensor, _ = preprocess(image[:, :, ::-1].copy(), "bgr8", spec)
    np.testing.assert_array_equal(bgr_tensor, tensor)
    mono_tensor, _ = preprocess(np.full((100, 200), 50, np.uint8), "mono8", spec)
    np.testing.assert_allclose(mono_tensor[0, :, 5, 5], [(100 - 1) / 2, (100 - 2) / 4, (100 - 3) / 8])


def test_bad_sizes_and_modes_are_value_errors():
    with pytest.raises(ValueError, match="resize mode"):
        plan_resize(10, 10, 32, 32, "crop")
    with pytest.raises(ValueError, match="positive"):
        plan_resize(0, 10, 32, 32, "stretch")
