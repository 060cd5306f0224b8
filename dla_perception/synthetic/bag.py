"""rosbag2 files (sqlite3 or MCAP) of synthetic stereo frames, written with the rosbags library, and a minimal
reader used to check them.

Each frame becomes five messages that share one header stamp: both rectified images (rgb8), both camera
models (ROS stereo convention: the right P[0, 3] = -fx * B) and the ground-truth disparity of the left image
(32FC1, pixels, 0 = unknown). Topic names are the perception nodes' subscription names (relative, as in
docs/design.md); pass `namespace` to write them under one (e.g. "/stereo").

A bag rendered with a known camera mount says so on /tf_static (transient local, as robots latch it): the
left camera frame's `<frame>_footprint` child, the floor point under the camera (the frame the node's
proximity/occupancy uses), whose transform holds the mount's height and pitch.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.scene import StereoFrame

LEFT_IMAGE = "left/image_rect"
RIGHT_IMAGE = "right/image_rect"
LEFT_INFO = "left/camera_info"
RIGHT_INFO = "right/camera_info"
GROUND_TRUTH = "ground_truth/disparity"
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TOPICS: dict[str, str] = {
    LEFT_IMAGE: IMAGE_TYPE, RIGHT_IMAGE: IMAGE_TYPE, LEFT_INFO: CAMERA_INFO_TYPE,
    RIGHT_INFO: CAMERA_INFO_TYPE, GROUND_TRUTH: IMAGE_TYPE,
}
STORAGES = ("sqlite3", "mcap")
DEFAULT_START_NS = 1_700_000_000_000_000_000  # a fixed, plausible wall-clock start: bags are reproducible
BAG_VERSION = 9  # the rosbag2 metadata version ROS 2 Jazzy writes
TF_STATIC = "/tf_static"
TF_TYPE = "tf2_msgs/msg/TFMessage"


@dataclass(frozen=True)
class CameraMount:
    """Where the left camera sits above the flat floor: its optical centre's height and its pitch (positive
    = looking down). DEFAULT_MOUNT is the one config/robot.yaml ships, so the demo's floor is no obstacle."""

    height_m: float = 0.5
    pitch_deg: float = 5.0

    def scene_options(self) -> dict[str, float]:
        """The synthetic.scene options that render from this mount."""
        return {"camera_height_m": self.height_m, "pitch_deg": self.pitch_deg}


DEFAULT_MOUNT = CameraMount()


def typestore():
    """The ROS 2 Jazzy message types (rosbags' built-in store)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def topic_name(name: str, namespace: str = "") -> str:
    """A topic under a namespace: ("left/image_rect", "/stereo") -> "/stereo/left/image_rect"."""
    return f"{namespace.rstrip('/')}/{name}" if namespace else name


def write_stereo_bag(path: str | Path, frames: Iterable[StereoFrame], camera: StereoCamera,
                     storage: str = "sqlite3", rate_hz: float = 10.0, frame_id: str = "camera_left",
                     start_ns: int = DEFAULT_START_NS, namespace: str = "",
                     right_frame_id: str | None = None, mount: CameraMount | None = None) -> Path:
    """Write frames to a new rosbag2 at `path` (a directory; it must not exist) and return the path.

    Frame i is stamped start_ns + i / rate_hz; all five messages of a frame carry that stamp in their
    header and as their log time. The right camera's frame id defaults to frame_id with "left" replaced
    by "right" (or "<frame_id>_right"). `mount`: the mount the frames were rendered from, written on
    /tf_static before the first frame.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = Path(path)
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    if path.exists():
        raise FileExistsError(f"{path} exists already; choose a new path or remove it first")
    if right_frame_id is None:
        right_frame_id = frame_id.replace("left", "right") if "left" in frame_id else f"{frame_id}_right"
    store = typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    infos = {LEFT_INFO: (camera.projection_left(), frame_id),
             RIGHT_INFO: (camera.projection_right(), right_frame_id)}
    writer = Writer(path, version=BAG_VERSION, storage_plugin=plugin)
    writer.open()  # creates the directory; from here on a failure removes it again
    try:
        connections = {name: writer.add_connection(topic_name(name, namespace), msgtype, typestore=store)
                       for name, msgtype in TOPICS.items()}
        if mount is not None:
            tf = writer.add_connection(TF_STATIC, TF_TYPE, typestore=store, offered_qos_profiles=[_latched()])
            transforms = mount_message(store, mount, start_ns, frame_id)
            writer.write(tf, start_ns, store.serialize_cdr(transforms, TF_TYPE))
        for count, frame in enumerate(frames):
            if frame.left.shape[:2] != (camera.height, camera.width):
                raise ValueError(f"frame {frame.index} is {frame.left.shape[1]}x{frame.left.shape[0]}, "
                                 f"the camera is {camera.width}x{camera.height}")
            stamp_ns = int(start_ns + round(count * 1e9 / rate_hz))
            messages = {
                LEFT_IMAGE: image_message(store, frame.left, "rgb8", stamp_ns, frame_id),
                RIGHT_IMAGE: image_message(store, frame.right, "rgb8", stamp_ns, right_frame_id),
                GROUND_TRUTH: image_message(store, frame.disparity, "32FC1", stamp_ns, frame_id),
                **{name: camera_info_message(store, camera, projection, stamp_ns, info_frame)
                   for name, (projection, info_frame) in infos.items()},
            }
            for name, message in messages.items():
                writer.write(connections[name], stamp_ns, store.serialize_cdr(message, TOPICS[name]))
        writer.close()
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # no half-written bag left behind (also on Ctrl-C)
        raise
    return path


def mount_message(store, mount: CameraMount, stamp_ns: int, frame_id: str):
    """tf2_msgs/TFMessage: `frame_id` -> `<frame_id>_footprint`, the transform the node's docs ask for."""
    import math

    from dla_perception.models.freespace import footprint_transform
    from dla_perception.models.proximity_geometry import GroundModel

    types = store.types
    ground = GroundModel(mount.height_m, math.radians(mount.pitch_deg), 0.0)
    (x, y, z), (qx, qy, qz, qw) = footprint_transform(ground)
    transform = types["geometry_msgs/msg/Transform"](
        translation=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
        rotation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
    )
    stamped = types["geometry_msgs/msg/TransformStamped"](
        header=_header(store, stamp_ns, frame_id), child_frame_id=f"{frame_id}_footprint",
        transform=transform)
    return types[TF_TYPE](transforms=[stamped])


def read_mount(path: str | Path) -> CameraMount | None:
    """The mount a synthetic bag was rendered from (its /tf_static footprint transform), or None."""
    import math

    for _, _, _, message in read_messages(path, [TF_STATIC]):
        for stamped in message.transforms:
            if stamped.child_frame_id.endswith("_footprint"):
                t = stamped.transform.translation
                pitch_deg = math.degrees(math.atan2(t.z, t.y))
                return CameraMount(round(math.hypot(t.y, t.z), 6), round(pitch_deg, 6))
    return None


def _latched():
    """The QoS /tf_static is offered with (transient local), so `ros2 bag play` latches it too."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=never, lifespan=never,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
               avoid_ros_namespace_conventions=False)


def _header(store, stamp_ns: int, frame_id: str):
    types = store.types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image_message(store, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """A sensor_msgs/Image of an HxWx3 uint8 (rgb8) or HxW float32 (32FC1) array, little-endian."""
    if encoding == "rgb8":
        array = np.ascontiguousarray(array, dtype=np.uint8)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"rgb8 needs an HxWx3 array, got shape {array.shape}")
    elif encoding == "32FC1":
        array = np.ascontiguousarray(array, dtype="<f4")
        if array.ndim != 2:
            raise ValueError(f"32FC1 needs an HxW array, got shape {array.shape}")
    else:
        raise ValueError(f"unsupported encoding {encoding!r} (rgb8, 32FC1)")
    height, width = array.shape[:2]
    return store.types[IMAGE_TYPE](
        header=_header(store, stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=array.strides[0], data=array.reshape(-1).view(np.uint8),
    )


def camera_info_message(store, camera: StereoCamera, projection: np.ndarray, stamp_ns: int, frame_id: str):
    """A sensor_msgs/CameraInfo of a rectified view: no distortion, identity R, the given P."""
    types = store.types
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=_header(store, stamp_ns, frame_id), height=camera.height, width=camera.width,
        distortion_model="plumb_bob", d=np.zeros(5), k=camera.intrinsics().reshape(-1),
        r=np.eye(3).reshape(-1), p=np.asarray(projection, np.float64).reshape(-1), binning_x=0, binning_y=0,
        roi=roi,
    )


def read_messages(path: str | Path,
                  topics: Sequence[str] | None = None) -> Iterator[tuple[str, str, int, object]]:
    """(topic, msgtype, log time ns, deserialized message) of a rosbag2 in log-time order; only `topics`
    (names as stored in the bag) when given. For checks and tests; the replay tool has its own reader."""
    from rosbags.rosbag2 import Reader

    store = typestore()
    with Reader(Path(path)) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        for connection, timestamp, raw in reader.messages(connections=connections):
            message = store.deserialize_cdr(raw, connection.msgtype)
            yield connection.topic, connection.msgtype, timestamp, message


def image_array(message) -> np.ndarray:
    """The pixels of a deserialized sensor_msgs/Image (rosbags-image decodes every standard encoding)."""
    from rosbags.image import message_to_cvimage

    return message_to_cvimage(message)
