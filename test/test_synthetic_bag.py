"""Synthetic rosbag2 files: written with rosbags, read back with the right types, counts, stamps, frame ids
and pixels; `make-bag` on the command line; a bag written by real ROS 2 tooling through the same reader."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from dla_perception.synthetic.bag import (
    DEFAULT_MOUNT,
    DEFAULT_START_NS,
    GROUND_TRUTH,
    LEFT_IMAGE,
    LEFT_INFO,
    RIGHT_IMAGE,
    RIGHT_INFO,
    TOPICS,
    CameraMount,
    image_array,
    read_messages,
    read_mount,
    write_stereo_bag,
)
from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.scene import generate_sequence
from dla_perception.tools.cli import main

CAMERA = StereoCamera().scaled(64, 48)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_written_bag_reads_back_with_types_counts_stamps_and_pixels(tmp_path, storage):
    frames = list(generate_sequence(4, 3, CAMERA))
    path = write_stereo_bag(tmp_path / "bag", frames, CAMERA, storage=storage, rate_hz=5.0)
    assert (path / "metadata.yaml").exists()
    with Reader(path) as reader:
        assert reader.message_count == 15
        assert {c.topic: c.msgtype for c in reader.connections} == TOPICS
        assert reader.duration == 400_000_000 + 1  # rosbags counts the end inclusively

    messages = list(read_messages(path))
    assert Counter(topic for topic, *_ in messages) == {topic: 3 for topic in TOPICS}
    by_stamp = defaultdict(dict)
    for topic, msgtype, log_time, message in messages:
        assert msgtype == TOPICS[topic]
        stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        assert stamp == log_time, "header stamp and log time agree"
        by_stamp[stamp][topic] = message
    assert sorted(by_stamp) == [DEFAULT_START_NS + i * 200_000_000 for i in range(3)]

    for frame, stamp in zip(frames, sorted(by_stamp), strict=True):
        group = by_stamp[stamp]
        assert set(group) == set(TOPICS), "every frame has all five messages at one stamp"
        left, right, truth = group[LEFT_IMAGE], group[RIGHT_IMAGE], group[GROUND_TRUTH]
        assert (left.encoding, right.encoding, truth.encoding) == ("rgb8", "rgb8", "32FC1")
        assert (left.height, left.width, left.step) == (48, 64, 64 * 3)
        np.testing.assert_array_equal(image_array(left), frame.left)
        np.testing.assert_array_equal(image_array(right), frame.right)
        np.testing.assert_array_equal(image_array(truth), frame.disparity)
        assert left.header.frame_id == truth.header.frame_id == "camera_left"
        assert group[LEFT_INFO].header.frame_id == "camera_left"
        assert right.header.frame_id == group[RIGHT_INFO].header.frame_id == "camera_right"

        left_info, right_info = group[LEFT_INFO], group[RIGHT_INFO]
        for info in (left_info, right_info):
            assert (info.width, info.height, info.distortion_model) == (64, 48, "plumb_bob")
            np.testing.assert_array_equal(info.d, np.zeros(5))
            np.testing.assert_array_equal(info.r, np.eye(3).reshape(-1))
            np.testing.assert_allclose(info.k, CAMERA.intrinsics().reshape(-1))
        assert left_info.p[3] == 0.0
        assert right_info.p[3] == pytest.approx(-CAMERA.fx * CAMERA.baseline_m)
        assert -right_info.p[3] / right_info.p[0] == pytest.approx(CAMERA.baseline_m)  # B as a node reads it


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_the_same_bag_is_written_byte_for_byte(tmp_path, storage):
    paths = [write_stereo_bag(tmp_path / run / "bag", generate_sequence(6, 2, CAMERA), CAMERA,
                              storage=storage) for run in ("first", "second")]
    files = [{f.name: f.read_bytes() for f in sorted(path.iterdir())} for path in paths]
    assert files[0] == files[1] and len(files[0]) == 2


def test_namespace_and_frame_ids_are_applied(tmp_path):
    path = write_stereo_bag(tmp_path / "bag", generate_sequence(1, 1, CAMERA), CAMERA, namespace="/stereo",
                            frame_id="cam_left_optical", start_ns=5)
    messages = list(read_messages(path, topics=["/stereo/right/camera_info"]))
    assert len(messages) == 1
    _, _, log_time, info = messages[0]
    assert log_time == 5 and info.header.frame_id == "cam_right_optical"


def test_existing_bags_are_not_overwritten_and_failures_leave_nothing(tmp_path):
    path = write_stereo_bag(tmp_path / "bag", generate_sequence(1, 1, CAMERA), CAMERA)
    with pytest.raises(FileExistsError):
        write_stereo_bag(path, generate_sequence(1, 1, CAMERA), CAMERA)
    wrong_size = generate_sequence(1, 1, StereoCamera().scaled(32, 24))
    with pytest.raises(ValueError, match="camera is 64x48"):
        write_stereo_bag(tmp_path / "other", wrong_size, CAMERA)
    assert not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="storage"):
        write_stereo_bag(tmp_path / "third", [], CAMERA, storage="rosbag1")


def test_make_bag_command(tmp_path, capsys):
    out = tmp_path / "drive"
    args = ["make-bag", str(out), "--frames", "2", "--seed", "3", "--width", "48", "--height", "32",
            "--storage", "mcap", "--rate", "20"]
    assert main(args) == 0
    stamps = sorted({t for _, _, t, _ in read_messages(out)})
    assert stamps == [DEFAULT_START_NS, DEFAULT_START_NS + 50_000_000]
    left = [m for topic, _, _, m in read_messages(out, [LEFT_IMAGE])]
    expected = next(generate_sequence(3, 2, StereoCamera().scaled(48, 32), rate_hz=20.0,
                                      **DEFAULT_MOUNT.scene_options()))
    np.testing.assert_array_equal(image_array(left[0]), expected.left)
    assert read_mount(out) == DEFAULT_MOUNT  # rendered from the shipped config's mount, and says so

    tilted = tmp_path / "tilted"
    assert main(["make-bag", str(tilted), "--frames", "1", "--width", "48", "--height", "32",
                 "--camera-height", "0.8", "--pitch", "-2.5"]) == 0
    assert read_mount(tilted) == CameraMount(0.8, -2.5)
    assert "camera_height_m: 0.8, camera_pitch_deg: -2.5" in capsys.readouterr().out

    capsys.readouterr()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force", "--frames", "1"]) == 0
    assert len(list(read_messages(out, [LEFT_IMAGE]))) == 1

    not_a_bag = tmp_path / "precious"
    not_a_bag.mkdir()
    (not_a_bag / "notes.txt").write_text("keep me")
    assert main(["make-bag", str(not_a_bag), "--frames", "1", "--force"]) == 2
    assert (not_a_bag / "notes.txt").exists()
    assert main(["make-bag", str(tmp_path / "x"), "--frames", "0"]) == 2


def test_bag_written_by_ros2_tooling_reads_through_the_same_reader(shared_data):
    path = shared_data / "bags" / "ros2bag_tools_images"
    if not path.exists():
        pytest.skip(f"{path} not present")
    messages = list(read_messages(path))
    kinds = [(topic, msgtype) for topic, msgtype, _, _ in messages]
    assert kinds == [("/image", "sensor_msgs/msg/Image")] * 3
    times = [t for _, _, t, _ in messages]
    assert times == sorted(times)
    for _, _, _, message in messages:
        assert image_array(message).shape[:2] == (message.height, message.width)
