"""Does the doctor's Fast DDS profile stop large best-effort images being lost between processes? (JSON)

    .venv/bin/python benchmarks/bench_dds_profile.py [--frames 40] [--rate 10] [--runs 3]

A subscriber process (best effort, depth 5, as sensor-data QoS) and a publisher process exchange
640x480 images at --rate Hz: rgb8 (0.9 MB, a camera image) and 32FC1 (1.2 MB, a DisparityImage's payload).
Each run is done twice on the same machine, interleaved: with Fast DDS's defaults, and with the profile that
`dla-perception doctor --write-dds-profile` writes (16 MiB shared-memory segment, 16 MiB UDP buffers).
Reported: frames received of those sent, per encoding and setting, summed over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DOMAIN_ID = int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")) + 5  # see test/conftest.py
ENCODINGS = {"rgb8": 3, "32FC1": 4}  # bytes per pixel


def _qos():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


def subscriber(seconds: float) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init(domain_id=DOMAIN_ID)
    node = rclpy.create_node("dds_profile_sub")
    counts = dict.fromkeys(ENCODINGS, 0)

    def received(msg: Image) -> None:
        counts[msg.encoding] += 1

    node.create_subscription(Image, "bench_image", received, _qos())
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def publisher(frames: int, rate: float) -> None:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init(domain_id=DOMAIN_ID)
    node = rclpy.create_node("dds_profile_pub")
    pub = node.create_publisher(Image, "bench_image", _qos())
    deadline = time.monotonic() + 10.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery settle both ways
    messages = {}
    for encoding, size in ENCODINGS.items():
        msg = Image(height=480, width=640, encoding=encoding, step=640 * size)
        msg.data = np.random.default_rng(0).integers(0, 255, 640 * 480 * size, dtype=np.uint8).tobytes()
        messages[encoding] = msg
    for _ in range(frames):
        for msg in messages.values():
            pub.publish(msg)
        time.sleep(1.0 / rate)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def one_run(frames: int, rate: float, env: dict[str, str]) -> dict[str, int]:
    seconds = frames / rate + 8.0
    me = [sys.executable, __file__]
    sub = subprocess.Popen([*me, "--role", "sub", "--seconds", str(seconds)], env=env, stdout=subprocess.PIPE,
                           text=True)
    try:
        assert sub.stdout.readline().strip() == "ready"
        subprocess.run([*me, "--role", "pub", "--frames", str(frames), "--rate", str(rate)], env=env,
                       check=True, timeout=seconds + 20)
        out, _ = sub.communicate(timeout=seconds + 20)
    finally:
        if sub.poll() is None:
            sub.kill()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--role", choices=("main", "sub", "pub"), default="main", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sub":
        return subscriber(args.seconds)
    if args.role == "pub":
        return publisher(args.frames, args.rate)

    from dla_perception.tools.doctor.dds_profiles import fastdds_profile_xml

    base = {k: v for k, v in os.environ.items()
            if k not in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE",
                         "FASTDDS_BUILTIN_TRANSPORTS", "RMW_IMPLEMENTATION")}
    base.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    with tempfile.TemporaryDirectory() as folder:
        profile = Path(folder) / "fastdds.xml"
        profile.write_text(fastdds_profile_xml())
        with_profile = {**base, "FASTRTPS_DEFAULT_PROFILES_FILE": str(profile)}
        settings = {"fastdds_default": base, "doctor_profile": with_profile}
        totals = {name: dict.fromkeys(ENCODINGS, 0) for name in settings}
        for _ in range(args.runs):
            for name, env in settings.items():  # interleaved: both settings see the same load
                for encoding, count in one_run(args.frames, args.rate, env).items():
                    totals[name][encoding] += count
    sent = args.frames * args.runs
    print(json.dumps({
        "benchmark": "dds_profile",
        "frames_sent_per_encoding": sent,
        "received": totals,
        "received_fraction": {name: {e: round(c / sent, 3) for e, c in counts.items()}
                              for name, counts in totals.items()},
        "rate_hz": args.rate,
        "runs": args.runs,
        "load_average": os.getloadavg()[0],
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
