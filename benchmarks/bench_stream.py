"""The perception container fed at camera rate from another process; prints one JSON object.

    .venv/bin/python benchmarks/bench_stream.py [--frames 200] [--rate 10] [--dds doctor|environment]

As on a robot: the container (engine_manager, proximity_segmentation and detection sharing one engine
manager, every node on its own executor: exactly what `perception_container` runs) in this process with the
shipped config/robot.yaml and config/engines.yaml; the camera is benchmarks/stereo_source.py in a child
process, publishing synthetic stereo pairs (held-out seeds, 20 distinct, cycled) with their camera_info at
`--rate` Hz, reliable QoS, which the container's subscriptions take through rclpy's QoS overrides
(qos_overrides./left/image_rect.subscription.reliability: reliable, ... in a params file). The child also
subscribes to every output and times it: end_to_end_ms is per frame from the camera's first publish to the
last of the node's outputs at the child (proximity: mask, disparity, range; detection: detections/image).

Issue 15's goals: end-to-end p99 <= 2 x p50 and max <= 3 x p50 (`ratios`, `goals_met`). Also reported: what
the nodes did with each frame (published / dropped because the previous one was still in flight /
other), the container's CPU ms per frame, garbage-collection pauses and /diagnostics publication times in
the container, and the load average (wall-clock figures on a shared machine are only comparable at a
similar load; CPU and counts much less depend on it). Fast DDS's transports (`--dds`): by default the
profile `dla-perception doctor --write-dds-profile` writes, as docs/doctor.md tells a robot to use (16 MiB
shared-memory segment: 1.2 MB samples between processes go through shared memory); `--dds environment`
takes the environment's (Fast DDS's defaults: over UDP, where a lost fragment of a reliable sample waits
for the writer's next heartbeat). The camera process inherits the choice.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)

DOMAIN_ID = int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")) + 5  # see test/conftest.py
INPUTS = ("/left/image_rect", "/right/image_rect", "/left/camera_info", "/right/camera_info")
OUTPUTS = {"proximity_segmentation": ("proximity/mask", "proximity/disparity", "proximity/range"),
           "detection": ("detections/image",)}


def qos_params_file(path: Path) -> Path:
    """Reliable inputs for both frame nodes, the ROS way: qos_overrides in a params file."""
    lines = ["/**:", "  ros__parameters:", "    qos_overrides:"]
    for topic in INPUTS:
        lines += [f"      {topic}:", "        subscription:", "          reliability: reliable"]
    path.write_text("\n".join(lines) + "\n")
    return path


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    p50, p90, p99 = (float(np.percentile(values, q)) for q in (50, 90, 99))
    return {"p50": round(p50, 1), "p90": round(p90, 1), "p99": round(p99, 1), "max": round(max(values), 1),
            "p99_over_p50": round(p99 / p50, 2), "max_over_p50": round(max(values) / p50, 2)}


class PauseLog:
    """Garbage-collection pauses in this process (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1e3)

    def as_dict(self) -> dict:
        gc.callbacks.remove(self._callback)
        return {f"gen{g}": {"count": len(p), "max_ms": round(max(p), 2) if p else 0.0}
                for g, p in self.pauses.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--dds", choices=("doctor", "environment"), default="doctor",
                        help="Fast DDS transports: the doctor's profile, or the environment's (default "
                        "doctor)")
    args = parser.parse_args()

    import rclpy
    from bench_nodes import make_frames
    from stereo_source import use_dds_profile

    from dla_perception.nodes.container import build_container
    from dla_perception.nodes.spinning import IsolatedSpinner

    load_start = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    make_frames(args.frames, args.width, args.height, scratch / "frames.npz")
    ros_args = ["--ros-args", "--params-file", str(REPO / "config" / "robot.yaml"),
                "--params-file", str(qos_params_file(scratch / "qos.yaml")),
                "-p", f"engines_file:={REPO / 'config' / 'engines.yaml'}", "-r", "image:=left/image_rect"]

    dds = use_dds_profile(args.dds, scratch)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    container = build_container(context=context, cli_args=ros_args)
    outcomes: dict[str, dict[int, str]] = {name: {} for name in OUTPUTS}
    cpu_marks: list[float] = []
    lock = threading.Lock()

    def listener(name: str):
        def record(outcome) -> None:
            with lock:
                outcomes[name][outcome.stamp_ns] = outcome.status
                cpu_marks.append(time.process_time())
        return record

    diagnostics_ms: list[float] = []
    for node in (container.proximity, container.detection, container.engine_manager):
        if node in (container.proximity, container.detection):
            node.add_frame_listener(listener(node.get_name()))
        publish = node.publish_diagnostics

        def timed(publish=publish) -> None:
            started = time.perf_counter()
            publish()
            diagnostics_ms.append((time.perf_counter() - started) * 1e3)

        node._diagnostics_timer.callback = timed
    spinner = IsolatedSpinner(container.nodes, context).start()
    pauses = PauseLog()

    listened = [topic for topics in OUTPUTS.values() for topic in topics]
    source = [sys.executable, str(REPO / "benchmarks" / "stereo_source.py"), str(scratch / "frames.npz"),
              "--count", str(args.frames), "--rate", str(args.rate), "--qos", "reliable",
              "--listen", ",".join(listened), "--subscribers", "2", "--out", str(scratch / "source.json")]
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}
    subprocess.run(source, env=env, check=True, timeout=120 + args.frames / args.rate * 3)
    sent = json.loads((scratch / "source.json").read_text())["frames"]
    time.sleep(0.5)
    spinner.shutdown()
    gc_pauses = pauses.as_dict()
    container.destroy()
    rclpy.shutdown(context=context)

    end_to_end, per_node = [], {name: [] for name in OUTPUTS}
    complete = 0
    slowest: list[tuple[float, int]] = []
    fates: dict[str, dict[str, int]] = {name: {} for name in OUTPUTS}
    for frame in sent:
        arrivals = frame["arrivals"]
        for name, topics in OUTPUTS.items():
            status = outcomes[name].get(frame["stamp_ns"], "not received")
            fates[name][status] = fates[name].get(status, 0) + 1
            times = [arrivals.get(topic) for topic in topics]
            if None not in times:
                per_node[name].append((max(times) - frame["published_at"]) * 1e3)
        times = [arrivals.get(topic) for topic in listened]
        if None not in times:
            complete += 1
            end_to_end.append((max(times) - frame["published_at"]) * 1e3)
            slowest.append((round(end_to_end[-1], 1), frame["index"]))
    total = summary(end_to_end)
    cpu_ms = None
    if len(cpu_marks) > 2:
        cpu_ms = round((cpu_marks[-1] - cpu_marks[0]) / max(1, len(sent) - 1) * 1e3, 2)
    print(json.dumps({
        "frames": len(sent), "rate_hz": args.rate, "resolution": [args.width, args.height],
        "frames_with_every_output": complete,
        "end_to_end_ms": total,
        "end_to_end_ms_by_node": {name: summary(values) for name, values in per_node.items()},
        "slowest_frames": [{"index": i, "ms": ms} for ms, i in sorted(slowest, reverse=True)[:5]],
        "goals_met": bool(total and total["p99_over_p50"] <= 2.0 and total["max_over_p50"] <= 3.0),
        "frame_fates": fates,
        "publish_ms": summary([f["publish_ms"] for f in sent]),
        "container_cpu_ms_per_frame": cpu_ms,
        "gc_pauses": gc_pauses,
        "diagnostics_publish_ms": summary(diagnostics_ms),
        "load_average": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "dds": dds,
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
