"""A stereo camera in its own process, as on a robot: publishes pairs, optionally times the graph's answers.

    python benchmarks/stereo_source.py FRAMES.npz --count 200 --rate 10 --qos reliable \
        [--listen proximity/mask,proximity/disparity,proximity/range] [--subscribers 2] [--out result.json]

FRAMES.npz holds `left`, `right` (N x H x W x 3 uint8, cycled), `projection_left`, `projection_right`
(3x4). Every frame publishes left/right camera_info then left/right image_rect (rgb8), all with the same
wall-clock stamp, at `--rate` Hz on an absolute schedule (a late tick is not made up by a burst), or with
`--lockstep` each once the previous one is answered. With `--listen`, the answers on those topics are
matched by header stamp and their arrival times kept. Prints
(or writes to --out) one JSON object: per frame its stamp, CLOCK_MONOTONIC publish time (comparable with
time.monotonic() in any process of this machine) and each listened topic's arrival time.

Used by benchmarks/bench_nodes.py (rclpy's cross-process floor), benchmarks/bench_stream.py (the container
at 10 Hz) and the cross-process tests; ROS_DOMAIN_ID chooses the domain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QOS_CHOICES = ("reliable", "sensor_data")
DDS_CHOICES = ("doctor", "environment")
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")  # Fast DDS 2.x, 3.x


def use_dds_profile(choice: str, folder: Path) -> str:
    """Set this process's (and its children's) Fast DDS transports; call before the first rclpy.init.

    `doctor`: the profile `dla-perception doctor --write-dds-profile` writes (16 MiB shared-memory segment,
    16 MiB UDP buffers), what docs/doctor.md tells a robot to use; `environment`: whatever the environment
    says (Fast DDS's defaults when nothing: a 512 KiB segment, so 1.2 MB images go over UDP). Returns what
    is in use, for the benchmark's JSON.
    """
    if choice == "doctor":
        from dla_perception.tools.doctor.dds_profiles import fastdds_profile_xml

        path = folder / "dla_perception_dds.xml"
        path.write_text(fastdds_profile_xml())
        for name in PROFILE_VARIABLES:
            os.environ[name] = str(path)
        return "doctor profile (16 MiB shared memory, 16 MiB UDP buffers)"
    files = [os.environ[name] for name in PROFILE_VARIABLES if os.environ.get(name)]
    transports = os.environ.get("FASTDDS_BUILTIN_TRANSPORTS")
    return (f"environment: profile {files[0]}" if files else "environment: Fast DDS defaults") + (
        f", FASTDDS_BUILTIN_TRANSPORTS={transports}" if transports else "")


def main(argv: list[str] | None = None) -> int:
    """argv as sys.argv (program name first); ROS arguments (remaps) after --ros-args."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=Path)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--qos", choices=QOS_CHOICES, default="reliable")
    parser.add_argument("--listen", default="", help="comma-separated output topics to time")
    parser.add_argument("--listen-sensor-data", action="store_true",
                        help="subscribe best effort (e.g. to time the raw images themselves)")
    parser.add_argument("--subscribers", type=int, default=1,
                        help="wait for this many subscribers of left/image_rect before the first frame")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="camera_info only, before the frames")
    parser.add_argument("--linger-s", type=float, default=3.0, help="wait this long for late answers")
    parser.add_argument("--lockstep", action="store_true",
                        help="send the next frame once every listened topic answered this one (or after "
                        "--answer-timeout-s): what is lost is then the transport's doing, never a busy node")
    parser.add_argument("--answer-timeout-s", type=float, default=3.0)
    parser.add_argument("--discovery-timeout-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path)
    import rclpy
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv if argv is None else argv)  # argv[0] is the program; --ros-args go to rcl
    args = parser.parse_args(remove_ros_args(argv)[1:])
    from rclpy.duration import Duration
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from dla_perception.nodes.messages import image_message, stamp_to_ns

    data = np.load(args.frames)
    lefts, rights = data["left"], data["right"]
    height, width = lefts.shape[1:3]
    infos = {}
    for side in ("left", "right"):
        info = CameraInfo(width=int(width), height=int(height))
        info.p = [float(v) for v in data[f"projection_{side}"].reshape(-1)]
        infos[side] = info

    rclpy.init(args=argv, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "0")))
    node = rclpy.create_node("stereo_source")
    if args.qos == "reliable":
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    else:
        qos = qos_profile_sensor_data
    sides = ("left", "right")
    image_pubs = {side: node.create_publisher(Image, f"{side}/image_rect", qos) for side in sides}
    info_pubs = {side: node.create_publisher(CameraInfo, f"{side}/camera_info", qos) for side in sides}

    lock = threading.Lock()
    arrivals: dict[str, dict[int, float]] = {}
    listened = [topic for topic in args.listen.split(",") if topic]
    listen_qos = qos_profile_sensor_data if args.listen_sensor_data else QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE)
    subscriptions = []
    for topic in listened:
        msg_type = _message_type(topic)
        arrivals[topic] = {}

        def on_answer(msg, topic=topic) -> None:
            at = time.monotonic()
            with lock:
                arrivals[topic].setdefault(stamp_to_ns(msg.header.stamp), at)

        subscriptions.append(node.create_subscription(msg_type, topic, on_answer, listen_qos))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    deadline = time.monotonic() + args.discovery_timeout_s
    while time.monotonic() < deadline:
        if (image_pubs["left"].get_subscription_count() >= args.subscribers
                and all(s.get_publisher_count() > 0 for s in subscriptions)):
            break
        time.sleep(0.02)
    else:
        print(json.dumps({"error": "no subscriber / publisher matched within "
                                   f"{args.discovery_timeout_s:.0f} s"}), flush=True)
        return 2
    warm_end = time.monotonic() + args.warmup_s
    while time.monotonic() < warm_end:
        for side, publisher in info_pubs.items():
            publisher.publish(infos[side])
        time.sleep(0.1)

    frames = []
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    start = time.monotonic()
    for index in range(args.count):
        if period:
            delay = start + index * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stamp = node.get_clock().now().to_msg()
        left = image_message(lefts[index % len(lefts)], "rgb8", stamp, "camera_left_optical_frame")
        right = image_message(rights[index % len(rights)], "rgb8", stamp, "camera_left_optical_frame")
        for side in ("left", "right"):
            infos[side].header.stamp = stamp
            infos[side].header.frame_id = "camera_left_optical_frame"
        published_at = time.monotonic()
        info_pubs["left"].publish(infos["left"])
        info_pubs["right"].publish(infos["right"])
        image_pubs["left"].publish(left)
        image_pubs["right"].publish(right)
        frames.append({"index": index, "stamp_ns": stamp_to_ns(stamp), "published_at": published_at,
                       "publish_ms": round((time.monotonic() - published_at) * 1e3, 3)})
        if args.lockstep and listened:
            answer_end = time.monotonic() + args.answer_timeout_s
            while time.monotonic() < answer_end:
                with lock:
                    if all(frames[-1]["stamp_ns"] in times for times in arrivals.values()):
                        break
                time.sleep(0.002)
    expected = {f["stamp_ns"] for f in frames}
    linger_end = time.monotonic() + args.linger_s
    while listened and time.monotonic() < linger_end:
        with lock:
            if all(expected <= set(times) for times in arrivals.values()):
                break
        time.sleep(0.02)

    if args.qos == "reliable":  # the last frames must reach their readers before the writers go away
        # (after the answers are in: this call holds the interpreter, no arrival is timed meanwhile)
        for publisher in (*image_pubs.values(), *info_pubs.values()):
            publisher.wait_for_all_acked(Duration(seconds=5))
    executor.shutdown(timeout_sec=2.0)
    spinner.join(timeout=5.0)  # destroying the node under a spinning wait set aborts the process
    with lock:
        for frame in frames:
            frame["arrivals"] = {topic: arrivals[topic].get(frame["stamp_ns"]) for topic in listened}
    result = {"frames": frames, "rate_hz": args.rate, "qos": args.qos,
              "resolution": [int(width), int(height)], "listened": listened}
    node.destroy_node()
    rclpy.shutdown()
    text = json.dumps(result)
    if args.out is not None:
        args.out.write_text(text)
    else:
        print(text, flush=True)
    return 0


def _message_type(topic: str) -> type:
    from sensor_msgs.msg import Image, Range
    from stereo_msgs.msg import DisparityImage

    name = topic.rstrip("/").split("/")[-1]
    if name == "disparity":
        return DisparityImage
    if name == "range":
        return Range
    return Image


if __name__ == "__main__":
    sys.exit(main())
