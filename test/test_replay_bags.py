"""Reading bags for replay: the ROS-written bag, remaps, and every kind of bad bag (no nodes started).

Bad bags are built here with rosbags directly, because each needs one specific defect.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from dla_perception.replay.bag import BagError, InputBag, parse_remaps
from dla_perception.replay.messages import typestore
from dla_perception.tools.cli import main

STEREO = {
    "/left/image_rect": "sensor_msgs/msg/Image",
    "/right/image_rect": "sensor_msgs/msg/Image",
    "/left/camera_info": "sensor_msgs/msg/CameraInfo",
    "/right/camera_info": "sensor_msgs/msg/CameraInfo",
    "/ground_truth/disparity": "sensor_msgs/msg/Image",
}


def _header(stamp_ns: int) -> object:
    types = typestore().types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id="camera_left")


def _image(stamp_ns: int, pixels: np.ndarray, encoding: str) -> object:
    pixels = np.ascontiguousarray(pixels)
    return typestore().types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns), height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
        is_bigendian=0, step=pixels.strides[0], data=pixels.view(np.uint8).reshape(-1))


def _camera_info(stamp_ns: int, right: bool) -> object:
    types = typestore().types
    fx, baseline = 50.0, 0.1
    p = np.array([fx, 0, 16, -fx * baseline if right else 0.0, 0, fx, 12, 0, 0, 0, 1, 0], dtype=np.float64)
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
    return types["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp_ns), height=24, width=32, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.array([fx, 0, 16, 0, fx, 12, 0, 0, 1], dtype=np.float64), r=np.eye(3).reshape(-1), p=p,
        binning_x=0, binning_y=0, roi=roi)


def write_bag(path: Path, frames: int = 3, topics: dict[str, str] | None = None, storage: str = "sqlite3",
              corrupt_frame: int | None = None, right_delay_ns: int = 0) -> Path:
    """A tiny stereo bag; `topics` picks which of them (and their declared types) it has.

    right_delay_ns: the right camera's stamps (image and camera_info) lag the left ones by this much.
    """
    topics = STEREO if topics is None else topics
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    store = typestore()
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        connections = {}
        for topic, msgtype in topics.items():
            if msgtype in store.fielddefs:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            else:  # a type nobody knows: declared with its own (empty) definition
                connections[topic] = writer.add_connection(topic, msgtype, msgdef="",
                                                           rihs01="RIHS01_" + "0" * 64)
        rng = np.random.default_rng(0)
        for index in range(frames):
            stamp = 1_000_000_000 + index * 100_000_000
            messages = {
                "/left/camera_info": _camera_info(stamp, right=False),
                "/right/camera_info": _camera_info(stamp + right_delay_ns, right=True),
                "/left/image_rect": _image(stamp, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "rgb8"),
                "/right/image_rect": _image(stamp + right_delay_ns,
                                            rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "rgb8"),
                "/ground_truth/disparity": _image(stamp, np.full((24, 32), 5.0, np.float32), "32FC1"),
                "/image": _image(stamp, rng.integers(0, 255, (24, 32), dtype=np.uint8), "mono8"),
            }
            for topic, connection in connections.items():
                message = messages.get(topic)
                if message is None or connection.msgtype != message.__msgtype__:
                    raw = b"\x00\x01\x00\x00garbage"
                else:
                    raw = bytes(store.serialize_cdr(message, message.__msgtype__))
                if corrupt_frame == index and topic == "/left/image_rect":
                    raw = raw[:20]  # a cut-off message inside an otherwise valid bag
                writer.write(connection, stamp, raw)
    return path


def _replay_cli(bag: Path, out: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str]:
    code = main(["replay", str(bag), "--out", str(out), "--no-progress", *extra])
    captured = capsys.readouterr()
    return code, captured.err


# -- reading ----------------------------------------------------------------------------------------------

def test_ros_written_bag_reads(shared_data: Path) -> None:
    bag_path = shared_data / "bags" / "ros2bag_tools_images"
    if not bag_path.is_dir():
        pytest.skip(f"{bag_path} not in this data checkout")
    with InputBag(bag_path) as bag:
        assert bag.mode == "mono"
        assert bag.storage == "sqlite3"
        assert bag.topics == {"image": "sensor_msgs/msg/Image"}
        frames = list(bag.frames())
    assert [f.stamp_ns for f in frames] == [0, 1_000_000_000, 2_000_000_000]
    assert all(f.frame_id == "camera_optical_frame" for f in frames)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_stereo_frames_pair_by_stamp_with_ground_truth(tmp_path: Path, storage: str) -> None:
    with InputBag(write_bag(tmp_path / "bag", frames=4, storage=storage)) as bag:
        assert bag.mode == "stereo" and bag.storage == storage and bag.has_ground_truth
        frames = list(bag.frames())
        limited = list(bag.frames(max_frames=2))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.stamp_ns for f in frames] == [1_000_000_000 + i * 100_000_000 for i in range(4)]
    for frame in frames:
        assert set(frame.messages) == {"left/image_rect", "right/image_rect", "left/camera_info",
                                       "right/camera_info", "ground_truth/disparity"}
        assert all(m.stamp_ns == frame.stamp_ns for m in frame.messages.values())
        np.testing.assert_array_equal(frame.ground_truth_disparity(), np.full((24, 32), 5.0, np.float32))
    assert len(limited) == 2


def test_unsynchronised_cameras_pair_within_the_slop(tmp_path: Path) -> None:
    with InputBag(write_bag(tmp_path / "bag", frames=4, right_delay_ns=2_000_000)) as bag:
        assert list(bag.frames()) == []  # exact pairing: no right image shares a left stamp
        frames = list(bag.frames(pair_slop_ns=5_000_000))
    assert [f.stamp_ns for f in frames] == [1_000_000_000 + i * 100_000_000 for i in range(4)]
    for frame in frames:
        assert frame.messages["right/image_rect"].stamp_ns == frame.stamp_ns + 2_000_000
        assert frame.messages["right/camera_info"].stamp_ns == frame.stamp_ns + 2_000_000
        assert frame.messages["left/camera_info"].stamp_ns == frame.stamp_ns


def test_remaps_rename_bag_topics(tmp_path: Path) -> None:
    renamed = {f"/cam{topic}": msgtype for topic, msgtype in STEREO.items()}
    path = tmp_path / "bag"
    with Writer(path, version=8) as writer:  # same content, topics under /cam
        for topic, msgtype in renamed.items():
            writer.add_connection(topic, msgtype, typestore=typestore())
    remaps = [f"/cam{t}:={t.lstrip('/')}" for t in STEREO]
    assert parse_remaps(remaps)["cam/left/image_rect"] == "left/image_rect"
    with pytest.raises(BagError, match="cam/left/image_rect"):  # without remaps: names the bag's topics
        InputBag(path)
    shutil.rmtree(path)
    source = write_bag(tmp_path / "plain")
    with InputBag(source, remaps=["/left/image_rect:=left/image_rect"]) as bag:
        assert len(list(bag.frames())) == 3


def test_bad_remap_is_a_clear_error() -> None:
    with pytest.raises(BagError, match="FROM:=TO"):
        parse_remaps(["left/image_rect"])


# -- bad bags: clear message, exit 2, no traceback ------------------------------------------------------

def _assert_clear_failure(code: int, err: str, *phrases: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("dla-perception replay: error:")
    for phrase in phrases:
        assert phrase in err, err


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _replay_cli(tmp_path / "nope", tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "no bag at")


def test_folder_that_is_not_a_bag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "folder").mkdir()
    code, err = _replay_cli(tmp_path / "folder", tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "not a rosbag2 folder")


def test_missing_stereo_topics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = write_bag(tmp_path / "bag", topics={"/left/image_rect": "sensor_msgs/msg/Image"})
    code, err = _replay_cli(bag, tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "right/image_rect", "--remap")


def test_no_input_topics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = write_bag(tmp_path / "bag", topics={"/chatter": "std_msgs/msg/String"})
    code, err = _replay_cli(bag, tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "none of the graph's inputs", "/chatter (std_msgs/msg/String)")


def test_unknown_type_on_an_input_topic(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    topics = dict(STEREO, **{"/left/image_rect": "acme_msgs/msg/StereoFrame"})
    bag = write_bag(tmp_path / "bag", topics=topics)
    code, err = _replay_cli(bag, tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "acme_msgs/msg/StereoFrame", "sensor_msgs/msg/Image")


def test_empty_bag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = write_bag(tmp_path / "bag", frames=0)
    code, err = _replay_cli(bag, tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "empty")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_file(tmp_path: Path, capsys: pytest.CaptureFixture, storage: str) -> None:
    bag = write_bag(tmp_path / "bag", frames=3, storage=storage)
    data_file = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
    with data_file.open("r+b") as handle:
        handle.truncate(data_file.stat().st_size * 2 // 3)
    code, err = _replay_cli(bag, tmp_path / "out", capsys)
    _assert_clear_failure(code, err, "truncated or damaged")


def test_message_cut_off_mid_bag_stops_reading_with_the_frames_before_it(tmp_path: Path) -> None:
    bag_path = write_bag(tmp_path / "bag", frames=4, corrupt_frame=2)
    with InputBag(bag_path) as bag:
        frames = []
        with pytest.raises(BagError, match="unreadable after"):
            for frame in bag.frames():
                frames.append(frame)
    assert [f.index for f in frames] == [0, 1]  # the complete frames before the damaged message


def test_output_bag_replaces_a_previous_one_but_never_other_files(tmp_path: Path) -> None:
    from dla_perception.replay.recorder import OutputBag

    path = tmp_path / "output_bag"
    for _ in range(2):  # the second run replaces the first run's bag
        bag = OutputBag(path, "mcap")
        bag.write("proximity/mask", "sensor_msgs/msg/Image", 5,
                  bytes(typestore().serialize_cdr(_image(5, np.zeros((2, 2), np.uint8), "mono8"),
                                                  "sensor_msgs/msg/Image")))
        bag.close()
        bag.close()  # idempotent
    from rosbags.rosbag2 import Reader

    with Reader(path) as reread:
        assert [(c.topic, c.msgtype, c.msgcount) for c in reread.connections] == [
            ("/proximity/mask", "sensor_msgs/msg/Image", 1)]
        assert [t for _, t, _ in reread.messages()] == [5]
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a bag"):
        OutputBag(other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_a_baseline_that_is_not_metrics_fails_before_replaying(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"frames": 3}')
    bag = write_bag(tmp_path / "bag")
    code, err = _replay_cli(bag, tmp_path / "out", capsys, "--baseline", str(baseline))
    _assert_clear_failure(code, err, "not a replay metrics.json")
    assert not (tmp_path / "out").exists()  # nothing was replayed
