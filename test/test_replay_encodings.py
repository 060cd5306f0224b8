"""A bag recorded from a real driver's encoding replays like an rgb8 one: the nodes and the replay decode
with the same function (dla_perception.models.image_decode).

The synthetic bag's images are re-encoded as a UVC camera (YUYV) and a Bayer sensor (GRBG) send them; the
replay must produce every output on every frame, score accuracy close to the rgb8 replay's, and record
the Nav2 outputs (proximity/points, proximity/occupancy) in its output bag. A bag recorded through
image_transport's compressed plugin replays through the nodes' compressed transport.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ros_domain_id
from rosbags.rosbag2 import Reader, Writer

from dla_perception.synthetic.bag import DEFAULT_MOUNT, IMAGE_TYPE, TF_STATIC, typestore, write_stereo_bag
from dla_perception.tools.cli import main

FRAMES = 3
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


def reencoded(source: Path, target: Path, encoding: str) -> Path:
    """The bag with its left/right images in `encoding` (ground truth and camera_info unchanged)."""
    store = typestore()
    with Reader(source) as reader, Writer(target, version=9) as writer:
        connections = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=store)
                       for c in reader.connections if c.topic != TF_STATIC}
        for connection, log_time, raw in reader.messages():
            if connection.id not in connections:
                continue
            if connection.msgtype == IMAGE_TYPE and connection.topic.endswith("image_rect"):
                message = store.deserialize_cdr(raw, IMAGE_TYPE)
                rgb = np.asarray(message.data, np.uint8).reshape(message.height, message.width, 3)
                if encoding == "yuv422_yuy2":
                    data, pixel_bytes = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2).reshape(-1), 2
                else:  # bayer_grbg8: the filter each photosite has
                    mosaic = np.zeros(rgb.shape[:2], np.uint8)
                    for index, channel in enumerate((1, 0, 2, 1)):  # G R / B G
                        dy, dx = divmod(index, 2)
                        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel]
                    data, pixel_bytes = mosaic.reshape(-1), 1
                message = store.types[IMAGE_TYPE](header=message.header, height=message.height,
                                                  width=message.width, encoding=encoding, is_bigendian=0,
                                                  step=message.width * pixel_bytes, data=data)
                raw = store.serialize_cdr(message, IMAGE_TYPE)
            writer.write(connections[connection.id], log_time, raw)
    return target


def compressed(source: Path, target: Path, extension: str,
               sides: tuple[str, ...] = ("left", "right")) -> Path:
    """The bag with its images as image_transport's compressed plugin records them: CompressedImage on
    `<image topic>/compressed`, `format` as the plugin writes it ("rgb8; jpeg compressed bgr8")."""
    store = typestore()
    with Reader(source) as reader, Writer(target, version=9) as writer:
        connections = {}
        for c in reader.connections:
            if c.topic == TF_STATIC:
                continue
            if c.topic.endswith("image_rect") and c.topic.strip("/").split("/")[0] in sides:
                connections[c.id] = writer.add_connection(c.topic + "/compressed", COMPRESSED_TYPE,
                                                          typestore=store)
            else:
                connections[c.id] = writer.add_connection(c.topic, c.msgtype, typestore=store)
        for connection, log_time, raw in reader.messages():
            if connection.id not in connections:
                continue
            if connections[connection.id].msgtype == COMPRESSED_TYPE:
                message = store.deserialize_cdr(raw, IMAGE_TYPE)
                rgb = np.asarray(message.data, np.uint8).reshape(message.height, message.width, 3)
                ok, data = cv2.imencode("." + extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                assert ok
                message = store.types[COMPRESSED_TYPE](
                    header=message.header, format=f"rgb8; {extension} compressed bgr8", data=data.reshape(-1))
                raw = store.serialize_cdr(message, COMPRESSED_TYPE)
            writer.write(connections[connection.id], log_time, raw)
    return target


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    camera = StereoCamera().scaled(320, 240)
    frames = generate_sequence(5150, FRAMES, camera, **DEFAULT_MOUNT.scene_options())
    folder = tmp_path_factory.mktemp("encodings")
    return write_stereo_bag(folder / "rgb8", frames, camera, mount=DEFAULT_MOUNT)


def replay(bag: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("DLA_PERCEPTION_REPLAY_DOMAIN_ID", str(ros_domain_id(5)))
    assert main(["replay", str(bag), "--out", str(out), "--nodes", "proximity", "--no-progress"]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(synthetic, tmp_path_factory) -> dict:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return replay(synthetic, tmp_path_factory.mktemp("reference") / "out", monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["yuv422_yuy2", "bayer_grbg8"])
def test_a_driver_encoded_bag_replays_like_rgb8(synthetic, reference, tmp_path, monkeypatch,
                                                 encoding) -> None:
    metrics = replay(reencoded(synthetic, tmp_path / encoding, encoding), tmp_path / "out", monkeypatch)
    assert metrics["frames_with_output"] == FRAMES
    for ours, theirs in zip(metrics["proximity"]["iou"], reference["proximity"]["iou"], strict=True):
        assert ours == pytest.approx(theirs, abs=0.05)  # YUV rounding / demosaicing, not a wrong decode
    with Reader(tmp_path / "out" / "output_bag") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts.get("/proximity/points") == FRAMES and counts.get("/proximity/occupancy") == FRAMES


@pytest.mark.slow
@pytest.mark.parametrize(("extension", "tolerance"), [("png", 1e-9), ("jpg", 0.05)])
def test_a_compressed_bag_replays_through_the_compressed_transport(synthetic, reference, tmp_path,
                                                                   monkeypatch, extension, tolerance) -> None:
    bag = compressed(synthetic, tmp_path / extension, extension)
    metrics = replay(bag, tmp_path / "out", monkeypatch)
    assert metrics["frames_with_output"] == FRAMES
    for ours, theirs in zip(metrics["proximity"]["iou"], reference["proximity"]["iou"], strict=True):
        assert ours == pytest.approx(theirs, abs=tolerance)  # png: the same pixels; jpeg: its loss only


def test_a_bag_mixing_raw_and_compressed_cameras_is_refused(synthetic, tmp_path) -> None:
    from dla_perception.replay.bag import BagError, InputBag

    bag = compressed(synthetic, tmp_path / "png", "png", sides=("left",))
    with pytest.raises(BagError, match="mixes raw and compressed"):
        InputBag(bag)
