"""Every encoding a camera driver sends, decoded from real bytes (made with OpenCV or by the sensor's own
sampling rule) back to the known RGB picture; compressed jpeg/png likewise. The nodes and the replay decode
with this code (dla_perception.models.image_decode)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dla_perception.models.image_decode import BadInput, decode_any, decode_compressed, decode_image

HEIGHT, WIDTH = 32, 48
COLOURS = [(220, 30, 40), (30, 200, 60), (40, 50, 210), (230, 230, 230)]  # red, green, blue, white


def picture() -> np.ndarray:
    """Four flat colour quadrants: flat areas keep demosaicing and chroma subsampling exact off the edges."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    h, w = HEIGHT // 2, WIDTH // 2
    for index, colour in enumerate(COLOURS):
        rgb[(index // 2) * h:(index // 2 + 1) * h, (index % 2) * w:(index % 2 + 1) * w] = colour
    return rgb


def interior() -> np.ndarray:
    """Pixels at least 3 px from a quadrant edge or the border (demosaicing blends across edges)."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    for y in (slice(3, HEIGHT // 2 - 3), slice(HEIGHT // 2 + 3, HEIGHT - 3)):
        for x in (slice(3, WIDTH // 2 - 3), slice(WIDTH // 2 + 3, WIDTH - 3)):
            mask[y, x] = True
    return mask


def message(data: bytes, encoding: str, bytes_per_pixel: int, bigendian: bool = False, pad: int = 0):
    step = WIDTH * bytes_per_pixel + pad
    rows = np.frombuffer(data, np.uint8).reshape(HEIGHT, -1)
    padded = np.zeros((HEIGHT, step), np.uint8)
    padded[:, : rows.shape[1]] = rows
    return SimpleNamespace(encoding=encoding, height=HEIGHT, width=WIDTH, step=step,
                           is_bigendian=int(bigendian), data=padded.tobytes())


@pytest.mark.parametrize(("encoding", "channels"), [("rgb8", [0, 1, 2]), ("bgr8", [2, 1, 0]),
                                                    ("rgba8", [0, 1, 2, None]), ("bgra8", [2, 1, 0, None])])
def test_colour_encodings(encoding, channels) -> None:
    rgb = picture()
    planes = [rgb[:, :, c] if c is not None else np.full((HEIGHT, WIDTH), 9, np.uint8) for c in channels]
    data = np.stack(planes, axis=2).tobytes()
    np.testing.assert_array_equal(decode_image(message(data, encoding, len(channels), pad=8)), rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_grey_in_three_channels(encoding) -> None:
    grey = cv2.cvtColor(picture(), cv2.COLOR_RGB2GRAY)
    decoded = decode_image(message(grey.tobytes(), encoding, 1))
    np.testing.assert_array_equal(decoded, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16_bit_mono_is_scaled_to_8_bit_in_either_byte_order(encoding, bigendian) -> None:
    grey = cv2.cvtColor(picture(), cv2.COLOR_RGB2GRAY)
    wide = grey.astype(np.uint16) * 257  # the 8-bit value v as 16-bit v * 65535 / 255
    data = wide.astype(">u2" if bigendian else "<u2").tobytes()
    decoded = decode_image(message(data, encoding, 2, bigendian=bigendian))
    np.testing.assert_array_equal(decoded[:, :, 0], grey)
    assert decoded.dtype == np.uint8 and decoded.shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize(("encoding", "opencv_code"), [
    ("yuv422", cv2.COLOR_RGB2YUV_UYVY), ("uyvy", cv2.COLOR_RGB2YUV_UYVY),
    ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUY2), ("yuyv", cv2.COLOR_RGB2YUV_YUYV),
])
def test_yuv422_byte_orders(encoding, opencv_code) -> None:
    rgb = picture()
    packed = cv2.cvtColor(rgb, opencv_code)  # HxWx2: what a UVC camera sends
    decoded = decode_image(message(packed.tobytes(), encoding, 2))
    assert np.abs(decoded.astype(int) - rgb).max() <= 3  # YUV rounding only
    # The byte order matters: the same bytes read in the other order are a different picture.
    other = "yuyv" if encoding in ("yuv422", "uyvy") else "uyvy"
    assert np.abs(decode_image(message(packed.tobytes(), other, 2)).astype(int) - rgb).max() > 50


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns(pattern) -> None:
    rgb = picture()
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros((HEIGHT, WIDTH), np.uint8)
    for index, letter in enumerate(pattern):  # the 2x2 tile, row by row: what the sensor's filter keeps
        dy, dx = divmod(index, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    decoded = decode_image(message(mosaic.tobytes(), f"bayer_{pattern}8", 1))
    assert np.abs(decoded[interior()].astype(int) - rgb[interior()]).max() <= 2
    wide = decode_image(message((mosaic.astype("<u2") * 257).tobytes(), f"bayer_{pattern}16", 2))
    assert np.abs(wide[interior()].astype(int) - rgb[interior()]).max() <= 2


@pytest.mark.parametrize(("extension", "tolerance"), [(".png", 0), (".jpg", 12)])
@pytest.mark.parametrize("grey", [False, True])
def test_compressed_jpeg_and_png(extension, tolerance, grey) -> None:
    rgb = picture()
    source = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grey else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(extension, source, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    kind = "png" if extension == ".png" else "jpeg"
    msg = SimpleNamespace(format=f"{'mono8' if grey else 'rgb8'}; {kind} compressed", data=encoded.tobytes())
    expected = np.repeat(source[:, :, None], 3, axis=2) if grey else rgb
    decoded = decode_any(msg)
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(decoded[interior()].astype(int) - expected[interior()]).max() <= tolerance


@pytest.mark.parametrize(("fields", "kind"), [
    (dict(format="jpeg", data=b""), "empty"),
    (dict(format="jpeg", data=b"not an image at all"), "corrupt"),
    (dict(format="16UC1; compressedDepth png", data=b"\x00" * 20), "encoding"),
])
def test_bad_compressed_images_are_refused_with_a_kind(fields, kind) -> None:
    with pytest.raises(BadInput) as error:
        decode_compressed(SimpleNamespace(**fields))
    assert error.value.kind == kind


def test_odd_width_yuv_and_unknown_encodings_are_refused() -> None:
    odd = SimpleNamespace(encoding="yuyv", height=2, width=3, step=6, is_bigendian=0, data=bytes(12))
    with pytest.raises(BadInput, match="even width"):
        decode_image(odd)
    with pytest.raises(BadInput, match="unsupported encoding 'nv12'") as error:
        decode_image(SimpleNamespace(encoding="nv12", height=2, width=2, step=2, is_bigendian=0,
                                     data=bytes(6)))
    assert error.value.kind == "encoding"
