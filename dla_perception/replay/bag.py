"""Reading input bags (rosbag2, sqlite3 or MCAP) into frames for the replay.

A *frame* is what the perception graph consumes at one stamp: in a stereo bag the left and right images of
one header stamp with the camera models (and the ground-truth disparity when the bag has it); in a
monocular bag one image for the detection node. Messages stay serialized (CDR) so the replay publishes the
bag's bytes unchanged. Every problem with a bag surfaces as `BagError`, with a message a user can act on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dla_perception.replay.images import ImageError, decode_image
from dla_perception.replay.messages import typestore

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"

LEFT_IMAGE = "left/image_rect"
RIGHT_IMAGE = "right/image_rect"
LEFT_INFO = "left/camera_info"
RIGHT_INFO = "right/camera_info"
GROUND_TRUTH = "ground_truth/disparity"
MONO_IMAGE = "image"

STEREO_TOPICS = {LEFT_IMAGE: IMAGE, RIGHT_IMAGE: IMAGE, LEFT_INFO: CAMERA_INFO, RIGHT_INFO: CAMERA_INFO}
INPUT_TYPES = {**STEREO_TOPICS, GROUND_TRUTH: IMAGE, MONO_IMAGE: IMAGE}
# Camera images may be recorded as image_transport's compressed plugin publishes them (`<topic>/compressed`).
CAMERA_IMAGES = (LEFT_IMAGE, RIGHT_IMAGE, MONO_IMAGE)

# How many stamps a stereo frame may wait for its partner image before it is given up as unpaired.
PAIRING_WINDOW = 32


class BagError(Exception):
    """A bag that cannot be replayed: missing, unreadable, truncated, empty or without the needed topics."""


@dataclass(frozen=True)
class BagMessage:
    topic: str  # the name the nodes use (after remapping)
    msgtype: str
    log_time_ns: int
    stamp_ns: int
    raw: bytes  # CDR, exactly as stored in the bag


@dataclass
class Frame:
    index: int
    stamp_ns: int
    log_time_ns: int
    messages: dict[str, BagMessage] = field(default_factory=dict)

    @property
    def frame_id(self) -> str:
        image = self.messages.get(LEFT_IMAGE) or self.messages.get(MONO_IMAGE)
        return decode(image).header.frame_id if image else ""

    def ground_truth_disparity(self) -> np.ndarray | None:
        """The bag's ground-truth disparity of the left image (float32 pixels; 0 or NaN = unknown)."""
        message = self.messages.get(GROUND_TRUTH)
        if message is None:
            return None
        try:
            return decode_image(decode(message)).astype(np.float32, copy=False)
        except ImageError as exc:
            raise BagError(f"ground truth of frame {self.index}: {exc}") from exc


def decode(message: BagMessage) -> object:
    """The rosbags message object of a bag message."""
    return typestore().deserialize_cdr(message.raw, message.msgtype)


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    """`from:=to` strings to a mapping of bag topic -> node topic, names without the leading slash."""
    mapping = {}
    for remap in remaps:
        source, separator, target = remap.partition(":=")
        if not separator or not source.strip("/") or not target.strip("/"):
            raise BagError(f"bad remap {remap!r}: expected FROM:=TO, e.g. /cam/left/image:=left/image_rect")
        mapping[source.strip("/")] = target.strip("/")
    return mapping


class InputBag:
    """A rosbag2 opened for replay: which of the graph's inputs it has, and its frames in stamp order."""

    def __init__(self, path: str | Path, remaps: Sequence[str] = (), namespace: str | None = None,
                 ground_truth: str | None = None) -> None:
        """remaps: `FROM:=TO` (bag name -> node name, applied first); namespace: stripped from the bag
        topics under it; ground_truth: the bag topic of the ground-truth disparity (default: detected).
        """
        from rosbags.rosbag2 import Reader

        self.path = bag_directory(Path(path))
        self.remaps = parse_remaps(remaps)
        self.namespace = (namespace or "").strip("/")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # ReaderError, sqlite3/mcap parse errors, yaml errors: all "unreadable"
            raise BagError(f"cannot open bag {self.path} (truncated or damaged?): {_reason(exc)}") from exc
        self.storage = "mcap" if any(p.suffix == ".mcap" for p in self.path.iterdir()) else "sqlite3"
        self.connections = {}  # node topic -> [connections]
        for connection in self._reader.connections:
            self.connections.setdefault(self._node_topic(connection.topic), []).append(connection)
        self._fold_compressed()
        self.ground_truth_topic, self.ground_truth_detected = self._ground_truth(ground_truth)
        self.mode = "stereo" if LEFT_IMAGE in self.connections else "mono"
        self._check_topics()
        self.image_transport = self._image_transport()

    def _fold_compressed(self) -> None:
        """`left/image_rect/compressed` (CompressedImage) stands for `left/image_rect` when the raw topic is
        absent: the graph then subscribes it with `image_transport: compressed`."""
        for topic in CAMERA_IMAGES:
            compressed = topic + "/compressed"
            if topic not in self.connections and compressed in self.connections:
                self.connections[topic] = self.connections.pop(compressed)

    def _image_transport(self) -> str:
        """"compressed" when the camera images are CompressedImage, "raw" when Image; never a mix (the
        nodes take one image_transport for both sides)."""
        types = {topic: self.connections[topic][0].msgtype
                 for topic in CAMERA_IMAGES if topic in self.connections}
        if len(set(types.values())) > 1:
            listed = ", ".join(f"{topic} ({msgtype})" for topic, msgtype in types.items())
            raise BagError(f"bag {self.path} mixes raw and compressed camera images ({listed}); the nodes "
                           "take one image_transport for both")
        return "compressed" if COMPRESSED_IMAGE in types.values() else "raw"

    def _node_topic(self, bag_topic: str) -> str:
        name = bag_topic.strip("/")
        if name in self.remaps:
            return self.remaps[name]
        if self.namespace and name.startswith(self.namespace + "/"):
            return name[len(self.namespace) + 1:]
        return name

    def _ground_truth(self, named: str | None) -> tuple[str | None, bool]:
        """(the bag topic read as ground truth, whether it was detected rather than named)."""
        if named:
            topic = self._node_topic(named)
            if topic not in self.connections:
                raise BagError(f"ground-truth topic {named} is not in bag {self.path}" + self._remap_hint())
            if topic != GROUND_TRUTH:
                if GROUND_TRUTH in self.connections:
                    raise BagError(f"bag {self.path} has {GROUND_TRUTH} already; --ground-truth {named} "
                                   "would make two")
                self.connections[GROUND_TRUTH] = self.connections.pop(topic)
            return self.connections[GROUND_TRUTH][0].topic, False
        if GROUND_TRUTH in self.connections:
            return self.connections[GROUND_TRUTH][0].topic, False
        # Ground truth recorded in another namespace than the cameras (e.g. /sim/ground_truth/disparity).
        candidates = [t for t, cs in self.connections.items()
                      if t.endswith("/" + GROUND_TRUTH) and cs[0].msgtype == IMAGE]
        if len(candidates) == 1:
            self.connections[GROUND_TRUTH] = self.connections.pop(candidates[0])
            return self.connections[GROUND_TRUTH][0].topic, True
        return None, False

    # -- what the bag holds ---------------------------------------------------------------------------

    @property
    def topics(self) -> dict[str, str]:
        """Every topic of the bag under its node name, with its message type."""
        return {topic: connections[0].msgtype for topic, connections in sorted(self.connections.items())}

    @property
    def has_ground_truth(self) -> bool:
        return GROUND_TRUTH in self.connections

    @property
    def expected_frames(self) -> int:
        """Frames the bag should yield: its count of left (or mono) images."""
        topic = LEFT_IMAGE if self.mode == "stereo" else MONO_IMAGE
        return sum(c.msgcount for c in self.connections.get(topic, []))

    def _check_topics(self) -> None:
        for topic, expected in INPUT_TYPES.items():
            allowed = {expected, COMPRESSED_IMAGE} if topic in CAMERA_IMAGES else {expected}
            for connection in self.connections.get(topic, []):
                if connection.msgtype not in allowed:
                    raise BagError(
                        f"topic {connection.topic} has type {connection.msgtype}, the graph needs {expected}"
                        + self._remap_hint()
                    )
        stereo_present = [t for t in STEREO_TOPICS if t in self.connections]
        if stereo_present and len(stereo_present) < len(STEREO_TOPICS):
            missing = ", ".join(t for t in STEREO_TOPICS if t not in self.connections)
            present = ", ".join(stereo_present)
            raise BagError(f"bag {self.path} has {present} but not {missing}" + self._remap_hint())
        if not stereo_present and MONO_IMAGE not in self.connections:
            raise BagError(
                f"bag {self.path} has none of the graph's inputs (stereo: {', '.join(STEREO_TOPICS)}; "
                f"or a single camera on {MONO_IMAGE})" + self._remap_hint()
            )
        if self.expected_frames == 0:
            raise BagError(f"bag {self.path} is empty: no messages on its input topics")

    def _remap_hint(self) -> str:
        found = ", ".join(f"{c.topic} ({c.msgtype})" for c in self._reader.connections) or "none"
        return (f". Topics in the bag: {found}. Map yours with --camera-topics LEFT RIGHT [LEFT_INFO "
                "RIGHT_INFO], --namespace NS or --remap BAG_TOPIC:=NODE_TOPIC.")

    # -- frames ---------------------------------------------------------------------------------------

    def frames(self, max_frames: int | None = None, pair_slop_ns: int = 0) -> Iterator[Frame]:
        """Frames in stamp order; raises BagError (after the frames read so far) when the bag is damaged.

        pair_slop_ns: how far apart left and right stamps may be (the proximity node's sync_slop_s).
        """
        frames = self._stereo_frames(pair_slop_ns) if self.mode == "stereo" else self._mono_frames()
        return itertools.islice(frames, max_frames) if max_frames else frames

    def _messages(self) -> Iterator[BagMessage]:
        wanted = {c.id: topic for topic, cs in self.connections.items() if topic in INPUT_TYPES for c in cs}
        connections = [c for c in self._reader.connections if c.id in wanted]
        count = 0
        try:
            for connection, log_time_ns, raw in self._reader.messages(connections=connections):
                raw = bytes(raw)
                header = typestore().deserialize_cdr(raw, connection.msgtype).header
                stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
                count += 1
                yield BagMessage(wanted[connection.id], connection.msgtype, log_time_ns, stamp_ns, raw)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(
                f"bag {self.path} is unreadable after {count} messages (truncated?): {_reason(exc)}"
            ) from exc

    def _mono_frames(self) -> Iterator[Frame]:
        for index, message in enumerate(m for m in self._messages() if m.topic == MONO_IMAGE):
            yield Frame(index, message.stamp_ns, message.log_time_ns, {MONO_IMAGE: message})

    def _stereo_frames(self, slop_ns: int = 0) -> Iterator[Frame]:
        """Left images, each with the right image (and ground truth) nearest in stamp within `slop_ns`.

        Pairing mirrors the node's (its `sync_slop_s`). Camera models: each side's at its image's stamp, else
        the latest before it. A frame is complete once a left image later than its stamp + slop arrives
        (so its ground truth is in), or at the end of the bag.
        """
        infos: dict[str, dict[int, BagMessage]] = {LEFT_INFO: {}, RIGHT_INFO: {}}
        groups: dict[int, dict[str, BagMessage]] = {}  # by left stamp
        loose: list[BagMessage] = []  # right images / ground truth that came before their left image
        index = 0

        def attach(message: BagMessage) -> bool:
            near = [stamp for stamp, group in groups.items()
                    if message.topic not in group and abs(stamp - message.stamp_ns) <= slop_ns]
            if not near:
                return False
            groups[min(near, key=lambda s: abs(s - message.stamp_ns))][message.topic] = message
            return True

        def camera_model(topic: str, stamp: int) -> BagMessage | None:
            """The side's camera_info at its image's stamp, else the latest before, else the nearest."""
            known = infos[topic]
            if not known:
                return None
            earlier = [s for s in known if s <= stamp]
            return known[max(earlier)] if earlier else known[min(known, key=lambda s: abs(s - stamp))]

        def complete(stamp: int) -> Frame | None:
            nonlocal index
            group = groups.pop(stamp)
            if RIGHT_IMAGE not in group:
                return None
            models = {LEFT_INFO: camera_model(LEFT_INFO, stamp),
                      RIGHT_INFO: camera_model(RIGHT_INFO, group[RIGHT_IMAGE].stamp_ns)}
            if None in models.values():
                return None
            frame = Frame(index, stamp, group[LEFT_IMAGE].log_time_ns, {**group, **models})
            index += 1
            return frame

        error: BagError | None = None
        try:
            for message in self._messages():
                if message.topic in infos:
                    known = infos[message.topic]
                    known[message.stamp_ns] = message
                    while len(known) > PAIRING_WINDOW:
                        del known[min(known)]
                    continue
                if message.topic == LEFT_IMAGE:
                    for stamp in sorted(s for s in groups if s < message.stamp_ns - slop_ns):
                        frame = complete(stamp)
                        if frame is not None:
                            yield frame
                    groups[message.stamp_ns] = {LEFT_IMAGE: message}
                    loose = [m for m in loose if not attach(m)]
                elif not attach(message):
                    loose.append(message)
                while len(groups) > PAIRING_WINDOW:
                    frame = complete(min(groups))
                    if frame is not None:
                        yield frame
                del loose[:-PAIRING_WINDOW]
        except BagError as exc:  # the frames completed before the damage still count
            error = exc
        for stamp in sorted(groups):
            frame = complete(stamp)
            if frame is not None:
                yield frame
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self._reader.close()
        except Exception:  # a truncated file may fail again on close; nothing more to report
            pass

    def __enter__(self) -> InputBag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bag_directory(path: Path) -> Path:
    """The rosbag2 folder: the path itself, or the folder of a .db3/.mcap/metadata.yaml file inside one."""
    if not path.exists():
        raise BagError(f"no bag at {path}")
    if path.is_file():
        if (path.parent / "metadata.yaml").is_file():
            return path.parent
        raise BagError(f"{path} is a file without a rosbag2 metadata.yaml beside it; pass the bag's folder")
    if not (path / "metadata.yaml").is_file():
        recorded = [p.name for p in path.iterdir() if p.suffix in (".db3", ".mcap")]
        hint = (f"; it holds {', '.join(recorded)}: a recording that was killed? "
                "`ros2 bag reindex` rebuilds the metadata") if recorded else ""
        raise BagError(f"{path} is not a rosbag2 folder (no metadata.yaml){hint}")
    return path


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return text
