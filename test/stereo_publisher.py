"""A camera driver in its own process, for the cross-process tests: stereo pairs as a robot's driver sends
them (an encoding a UVC or GigE camera uses, reliable QoS), lock-step with the node's proximity/range.

    python test/stereo_publisher.py --domain 64 --frames 20 --encoding yuv422_yuy2 --namespace cam

Prints one JSON line at the end: {"sent": N, "answered": M}. Not a test module (no test_ prefix).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def encode(rgb: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """(data, bytes per pixel) of an RGB picture in a driver's encoding, made by OpenCV."""
    if encoding == "rgb8":
        return rgb.tobytes(), 3
    if encoding == "bgr8":
        return rgb[:, :, ::-1].tobytes(), 3
    if encoding in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2).tobytes(), 2
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY).tobytes(), 2
    if encoding == "mono16":
        return (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype("<u2") * 257).tobytes(), 2
    raise SystemExit(f"stereo_publisher: no encoder for {encoding}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--encoding", default="rgb8")
    parser.add_argument("--namespace", default="")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--scale", type=int, default=4, help="image size in multiples of 160x120 (default 4: "
                        "640x480, large enough for best-effort DDS to lose frames between processes here)")
    args = parser.parse_args()

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, Range
    from test_nodes import BASELINE, FX, camera_info, ramp_pair, stamp_of

    rclpy.init(domain_id=args.domain)
    node = rclpy.create_node("stereo_driver", namespace=args.namespace)
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    images = {side: node.create_publisher(Image, f"{side}/image_rect", reliable)
              for side in ("left", "right")}
    infos = {side: node.create_publisher(CameraInfo, f"{side}/camera_info", reliable)
             for side in ("left", "right")}
    answered: set[int] = set()
    node.create_subscription(Range, "proximity/range",
                             lambda msg: answered.add(msg.header.stamp.sec), reliable)
    deadline = time.monotonic() + args.timeout
    publishers = [*images.values(), *infos.values()]
    while any(p.get_subscription_count() == 0 for p in publishers) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    scale = args.scale
    pictures = [cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                for rgb in ramp_pair()]
    height, width = pictures[0].shape[:2]
    sent = 0
    for index in range(args.frames):
        seconds = 100 + index
        stamp = stamp_of(seconds)
        for side, rgb in zip(("left", "right"), pictures, strict=True):
            info = camera_info(side, stamp, baseline=BASELINE, fx=FX * scale)
            info.width, info.height = width, height
            info.p[2], info.p[6] = width / 2, height / 2
            infos[side].publish(info)
            data, pixel_bytes = encode(rgb, args.encoding)
            msg = Image(height=height, width=width, encoding=args.encoding, is_bigendian=0,
                        step=width * pixel_bytes, data=data)
            msg.header.stamp, msg.header.frame_id = stamp, "camera_left" if side == "left" else "camera_right"
            images[side].publish(msg)
        sent += 1
        # Lock-step: the next pair once this one is answered (or lost). Longer than Fast DDS's 3 s heartbeat,
        # after which a reliable sample that lost a fragment is repaired: else it arrives after the next pair.
        wait_until = time.monotonic() + 6.0
        while seconds not in answered and time.monotonic() < min(wait_until, deadline):
            rclpy.spin_once(node, timeout_sec=0.02)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)
    print(json.dumps({"sent": sent, "answered": len(answered)}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
