"""What the ROS layer adds on top of the proximity pipeline; prints one JSON object.

    .venv/bin/python benchmarks/bench_nodes.py [--frames 20] [--width 640 --height 480]

Synthetic stereo pairs (held-out seeds) with the shipped proximity networks on onnxruntime CPU engines,
planes 1, 2, 4 m. pipeline_ms: ProximityPipeline.process alone on the decoded arrays. node_ms: from
publishing the left/right Image messages (rgb8) to the node's FrameOutcome, i.e. DDS delivery inside one
process, pairing, decoding, the same pipeline, building and publishing mask, disparity and range.
mask_received_ms: from publishing to the mask message arriving at a subscriber. Frames are fed lock-step
(the next pair after the previous outcome), as the replay tool does, each pair then timed through the
pipeline alone so both see the same machine load; node_overhead_ms is the per-pair difference. Medians and
p90 over the frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)

PLANES_M = [1.0, 2.0, 4.0]
HELD_OUT_SEED = 1_000_000
DOMAIN_ID = int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")) + 4  # see test/conftest.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()

    import rclpy
    import yaml
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from dla_perception.nodes.messages import image_message
    from dla_perception.nodes.proximity import ProximitySegmentationNode
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    camera = StereoCamera().scaled(args.width, args.height)
    frames = [generate_frame(HELD_OUT_SEED + i, camera) for i in range(args.frames)]
    models = REPO / "models" / "proximity"
    engines = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_nodes_engines_{os.getpid()}.yaml"
    engines.write_text(yaml.safe_dump({"models": {
        "proximity_features": {"onnx": str(models / "features.onnx"), "cores": ["cpu"]},
        "proximity_head": {"onnx": str(models / "head.onnx"), "cores": ["cpu"]},
    }}))

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = ProximitySegmentationNode(context=context, parameter_overrides=[
        Parameter("engines_file", value=str(engines)), Parameter("planes_m", value=PLANES_M),
        Parameter("alert_distance_m", value=1.0)])
    source = rclpy.create_node("bench_source", context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    for item in (node, source):
        executor.add_node(item)
    threading.Thread(target=executor.spin, daemon=True).start()

    images = {side: source.create_publisher(Image, f"/{side}/image_rect", qos_profile_sensor_data)
              for side in ("left", "right")}
    infos = {side: source.create_publisher(CameraInfo, f"/{side}/camera_info", qos_profile_sensor_data)
             for side in ("left", "right")}
    mask_times: dict[int, float] = {}
    source.create_subscription(Image, "/proximity/mask", lambda m: mask_times.setdefault(
        m.header.stamp.sec, time.perf_counter()), QoSProfile(depth=10))
    outcome_events: dict[int, threading.Event] = {}
    outcome_times: dict[int, float] = {}
    statuses: dict[int, str] = {}

    def on_outcome(outcome) -> None:
        second = outcome.stamp_ns // 10**9
        outcome_times[second] = time.perf_counter()
        statuses[second] = outcome.status
        outcome_events.setdefault(second, threading.Event()).set()

    node.add_frame_listener(on_outcome)
    deadline = time.monotonic() + 20
    while node._geometry is None or node._mask_pub.get_subscription_count() == 0:
        for side, projection in (("left", camera.projection_left()), ("right", camera.projection_right())):
            info = CameraInfo(width=camera.width, height=camera.height)
            info.p = [float(v) for v in projection.reshape(-1)]
            infos[side].publish(info)
        time.sleep(0.05)
        if time.monotonic() > deadline:
            raise SystemExit("the node did not receive camera_info / no subscription matched")

    pipeline = node._ensure_pipeline()
    node_ms, mask_ms, pipeline_ms = [], [], []
    for index, frame in enumerate(frames, start=1):
        stamp = image_message(frame.left, "rgb8").header.stamp
        stamp.sec = index
        left = image_message(frame.left, "rgb8", stamp, "camera_left")
        right = image_message(frame.right, "rgb8", stamp, "camera_left")
        event = outcome_events.setdefault(index, threading.Event())
        start = time.perf_counter()
        images["left"].publish(left)
        images["right"].publish(right)
        if not event.wait(30):
            raise SystemExit(f"frame {index}: no outcome")
        if statuses[index] != "published":
            raise SystemExit(f"frame {index}: {statuses[index]}")
        node_ms.append((outcome_times[index] - start) * 1e3)
        wait_end = time.monotonic() + 5
        while index not in mask_times and time.monotonic() < wait_end:
            time.sleep(0.001)
        if index in mask_times:
            mask_ms.append((mask_times[index] - start) * 1e3)
        # The same pair through the pipeline alone, right after: both see the same machine load.
        start = time.perf_counter()
        pipeline.process(frame.left, frame.right, "rgb8", camera.projection_left(), camera.projection_right(),
                         PLANES_M, 1.0)
        pipeline_ms.append((time.perf_counter() - start) * 1e3)

    executor.shutdown(timeout_sec=5)
    node.destroy_node()
    source.destroy_node()
    rclpy.shutdown(context=context)
    engines.unlink(missing_ok=True)

    def stats(values: list[float]) -> dict:
        median, p90 = float(np.median(values)), float(np.percentile(values, 90))
        return {"median": round(median, 2), "p90": round(p90, 2)}

    print(json.dumps({
        "frames": len(frames), "resolution": [args.width, args.height], "planes_m": PLANES_M,
        "pipeline_ms": stats(pipeline_ms), "node_ms": stats(node_ms),
        "mask_received_ms": stats(mask_ms) if mask_ms else None,
        "node_overhead_ms": stats([n - p for n, p in zip(node_ms, pipeline_ms, strict=True)]),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
