"""Pairs in -> outputs out across two processes, for each QoS setting of the camera and the node; one JSON.

    .venv/bin/python benchmarks/bench_qos.py [--pairs 20] [--dds environment|doctor]

The camera is benchmarks/stereo_source.py in a child process (synthetic stereo pairs, rgb8, camera_info
with every pair), sent lock-step: the next pair once mask, disparity and range of the previous one came
back to the camera's process, or after --answer-timeout-s. So a pair without outputs was lost by the
transport, never dropped by a busy node. The node is proximity_segmentation (shipped networks,
onnxruntime CPU) in this process, configured per setting by a params file, as a user would:

- camera best effort / node default (input_qos: sensor_data): what most drivers and the nodes do out of
  the box;
- camera reliable / node default: a reliable writer serves a best-effort reader best effort;
- camera reliable / node input_qos: reliable;
- camera reliable / node qos_overrides.<topic>.subscription.reliability: reliable on its four inputs;
- camera best effort / node input_qos: reliable: incompatible, nothing flows, and the node says so
  (rejected_incompatible_qos).

pairs_at_node counts the pairs the node formed (a FrameOutcome each); answered counts pairs whose three
outputs reached the camera's process, answer_ms how long that took and answers_after_1s the slow ones:
a reliable sample that lost a fragment, with no later sample to reveal the gap (lock-step), is repaired
only at the writer's next heartbeat (Fast DDS: every 3 s). `--dds doctor` runs it with the doctor's Fast
DDS profile instead of the environment's transports (both processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)

DOMAIN_ID = int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")) + 6  # see test/conftest.py
INPUTS = ("/left/image_rect", "/right/image_rect", "/left/camera_info", "/right/camera_info")
OUTPUTS = ("proximity/mask", "proximity/disparity", "proximity/range")
OVERRIDES = "    qos_overrides:\n" + "".join(
    f"      {topic}:\n        subscription:\n          reliability: reliable\n" for topic in INPUTS)
SETTINGS = (
    ("sensor_data", "input_qos: sensor_data (default)", "    input_qos: sensor_data\n"),
    ("reliable", "input_qos: sensor_data (default)", "    input_qos: sensor_data\n"),
    ("reliable", "input_qos: reliable", "    input_qos: reliable\n"),
    ("reliable", "qos_overrides ... reliability: reliable", OVERRIDES),
    ("sensor_data", "input_qos: reliable", "    input_qos: reliable\n"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--answer-timeout-s", type=float, default=5.0)
    parser.add_argument("--dds", choices=("doctor", "environment"), default="environment",
                        help="Fast DDS transports: the doctor's profile, or the environment's (default "
                        "environment)")
    args = parser.parse_args()

    import rclpy
    from bench_nodes import make_frames
    from stereo_source import use_dds_profile

    from dla_perception.nodes.proximity import ProximitySegmentationNode
    from dla_perception.nodes.spinning import IsolatedSpinner

    load_start = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="bench_qos_"))
    make_frames(4, args.width, args.height, scratch / "frames.npz")
    models = REPO / "models" / "proximity"
    engines = scratch / "engines.yaml"
    engines.write_text(f"models:\n  proximity_features: {{onnx: {models / 'features.onnx'}, cores: [cpu]}}\n"
                       f"  proximity_head: {{onnx: {models / 'head.onnx'}, cores: [cpu]}}\n")
    dds = use_dds_profile(args.dds, scratch)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    rows = []
    for index, (camera_qos, node_setting, params) in enumerate(SETTINGS):
        params_file = scratch / f"params_{index}.yaml"
        params_file.write_text(f"/**:\n  ros__parameters:\n    engines_file: {engines}\n"
                               f"    planes_m: [1.0, 2.0, 4.0]\n{params}")
        node = ProximitySegmentationNode(context=context, cli_args=["--ros-args", "--params-file",
                                                                    str(params_file)])
        formed: set[int] = set()
        lock = threading.Lock()

        def on_outcome(outcome, formed=formed, lock=lock) -> None:
            with lock:
                formed.add(outcome.stamp_ns)

        node.add_frame_listener(on_outcome)
        spinner = IsolatedSpinner([node], context).start()
        out = scratch / f"source_{index}.json"
        command = [sys.executable, str(REPO / "benchmarks" / "stereo_source.py"), str(scratch / "frames.npz"),
                   "--count", str(args.pairs), "--rate", "10", "--qos", camera_qos, "--lockstep",
                   "--answer-timeout-s", str(args.answer_timeout_s), "--listen", ",".join(OUTPUTS),
                   "--out", str(out)]
        if camera_qos == "sensor_data" and "reliable" in params:  # incompatible: it never matches
            command += ["--subscribers", "0", "--warmup-s", "3"]
        subprocess.run(command, env={**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}, check=True,
                       timeout=120 + args.pairs * (args.answer_timeout_s + 1))
        sent = json.loads(out.read_text())["frames"]
        spinner.shutdown()
        answers = [(max(f["arrivals"][t] for t in OUTPUTS) - f["published_at"]) * 1e3 for f in sent
                   if all(f["arrivals"][t] is not None for t in OUTPUTS)]
        answered = len(answers)
        with lock:
            at_node = len(formed & {f["stamp_ns"] for f in sent})
        print(f"{camera_qos} -> {node_setting}: {answered}/{len(sent)}", file=sys.stderr, flush=True)
        rows.append({"camera": camera_qos, "node": node_setting, "pairs_sent": len(sent),
                     "pairs_at_node": at_node, "answered": answered,
                     "answer_ms": {"p50": round(float(np.median(answers)), 1),
                                   "max": round(max(answers), 1)} if answers else None,
                     "answers_after_1s": sum(1 for a in answers if a > 1000),
                     "rejected_incompatible_qos": node.health.counters.get("rejected_incompatible_qos", 0)})
        node.destroy_node()
    rclpy.shutdown(context=context)
    print(json.dumps({"resolution": [args.width, args.height], "settings": rows,
                      "dds": dds,
                      "load_average": [round(load_start[0], 2), round(os.getloadavg()[0], 2)]}))


if __name__ == "__main__":
    main()
