"""Several stereo camera drivers in one other process, free-running: each camera publishes its pairs at its
own rate whatever the perception side manages, as real drivers do (reliable QoS: docs/environment.md, large
best-effort messages are lost between processes here). For test/test_cameras.py and
benchmarks/bench_cameras.py.

    python test/cameras_publisher.py --domain 38 --cameras front,rear --rate-hz 20 --duration 15

Prints one JSON line at the end: {"sent": {camera: pairs}}. Not a test module (no test_ prefix).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--cameras", required=True, help="comma-separated camera namespaces")
    parser.add_argument("--rate-hz", type=float, default=20.0, help="pairs per second of every camera")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of publishing")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the subscribers")
    parser.add_argument("--scale", type=int, default=2, help="image size in multiples of 160x120")
    args = parser.parse_args()

    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from test_nodes import BASELINE, FX, camera_info, ramp_pair

    rclpy.init(domain_id=args.domain)
    node = rclpy.create_node("camera_drivers")
    reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    cameras = [name for name in args.cameras.split(",") if name]
    publishers = {camera: {(side, kind): node.create_publisher(
        Image if kind == "image_rect" else CameraInfo, f"/{camera}/{side}/{kind}", reliable)
        for side in ("left", "right") for kind in ("image_rect", "camera_info")} for camera in cameras}
    deadline = time.monotonic() + args.wait
    every = [p for camera in publishers.values() for p in camera.values()]
    while any(p.get_subscription_count() == 0 for p in every) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    scale = args.scale
    pictures = [cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                for rgb in ramp_pair()]
    height, width = pictures[0].shape[:2]
    messages = {}
    for side, rgb in zip(("left", "right"), pictures, strict=True):
        messages[side] = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                               data=rgb.tobytes())
    sent = dict.fromkeys(cameras, 0)
    period = 1.0 / args.rate_hz
    # Each camera on its own phase of the period, as independent drivers are: publishing all of them back
    # to back made DDS deliver every camera but the last one of the burst late, in bunches (issue 19).
    phase = period / len(cameras)
    start = time.monotonic()
    index = 0
    while time.monotonic() - start < args.duration:
        for number, camera in enumerate(cameras):
            pause = start + index * period + number * phase - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            now_ns = time.time_ns()
            stamp = Time(sec=now_ns // 1_000_000_000, nanosec=now_ns % 1_000_000_000)
            for side in ("left", "right"):
                info = camera_info(side, stamp, baseline=BASELINE, fx=FX * scale)
                info.width, info.height = width, height
                info.p[2], info.p[6] = width / 2, height / 2
                info.header.frame_id = f"{camera}_camera_{side}"
                publishers[camera][(side, "camera_info")].publish(info)
                image = messages[side]
                image.header.stamp, image.header.frame_id = stamp, f"{camera}_camera_{side}"
                publishers[camera][(side, "image_rect")].publish(image)
            sent[camera] += 1
        index += 1
    print(json.dumps({"sent": sent}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
