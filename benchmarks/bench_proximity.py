"""Proximity pipeline speed on the CPU: the shipped model, the previous one and OpenCV SGBM; one JSON object.

    .venv/bin/python benchmarks/bench_proximity.py [--frames 20] [--threads 1] [--repeats 3]
        [--models models/proximity models/proximity/v1] [--planes 0.75 1 1.5 2 3] [--alert 1.0]
        [--ground [--mount-check-every N]]

Every model given runs on the same 640x480 held-out street frames in the same run, interleaved frame by frame
(the order alternates), so load from other jobs hits them alike: `models[dir]` holds the median wall time of
ProximityPipeline.process per frame (`ms`, p90, Hz) and the process's CPU time per frame over all threads
(`cpu_ms`, less distorted by other jobs), onnxruntime CPU engines with --threads intra-op threads each,
through the EngineManager, image conversion and mask post-processing included; the planes and alert distance
default to config/robot.yaml's (five planes, 0.75-3 m, alert 1 m among them). `ratio_ms` / `ratio_cpu_ms`:
each model over the last one given (by default: v2 over v1). Near-mask IoU per plane on those frames is
given too (`iou_synthetic`), and OpenCV SGBM (3-way, 5x5, 128 disparities: the synthetic camera's range
down to 0.5 m) on the same frames. The accuracy figures that matter are training/proximity/suite.py's.
`--ground`: config/robot.yaml's ground handling too (camera 0.5 m up, 5 deg down, clearance 0.1 m: one more
head query per frame), and with `--mount-check-every N` the mount check's two floor queries on every N-th
frame (1: every frame; 10: the node's default mount_check_period_s of 1 s at 10 Hz).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.proximity.evaluate import IoU, open_pipeline, sgbm_disparity  # noqa: E402

PLANES_M = (0.75, 1.0, 1.5, 2.0, 3.0)
ALERT_M = 1.0
HELD_OUT_SEED = 1_000_000
DEFAULT_MODELS = (REPO / "models" / "proximity", REPO / "models" / "proximity" / "v1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="held-out synthetic frames")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per engine")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the frames")
    parser.add_argument("--models", type=Path, nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--planes", type=float, nargs="+", default=list(PLANES_M))
    parser.add_argument("--alert", type=float, default=ALERT_M)
    parser.add_argument("--ground", action="store_true", help="robot.yaml's ground handling (0.5 m, 5 deg)")
    parser.add_argument("--mount-check-every", type=int, default=0,
                        help="with --ground: the mount check's floors on every N-th frame (0: never)")
    args = parser.parse_args()

    from dla_perception.models.mount_check import MountCheck
    from dla_perception.models.proximity import ProximityPipeline
    from dla_perception.models.proximity_geometry import GroundModel
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    camera = StereoCamera()
    frames = [generate_frame(HELD_OUT_SEED + i, camera) for i in range(args.frames)]
    p_left, p_right = camera.projection_left(), camera.projection_right()
    planes = sorted(args.planes)
    planes_px = camera.disparity_px(np.array(planes))
    names = [str(m) for m in args.models]
    opened = [open_pipeline(m, threads=args.threads) for m in args.models]
    ground = GroundModel(0.5, math.radians(5.0), clearance_m=0.1) if args.ground else None
    if ground is not None:
        opened = [(manager, ProximityPipeline(manager, ground=ground)) for manager, _ in opened]
    mount_floors = MountCheck(ground, 0.1).floors() if ground is not None else ()

    def floors(index: int) -> tuple:
        every = args.mount_check_every
        return mount_floors if every > 0 and index % every == 0 else ()
    wall = {n: [] for n in names}
    cpu = dict.fromkeys(names, 0.0)
    iou = {n: IoU(len(planes)) for n in names}
    for manager, _ in opened:
        manager.__enter__()
    try:
        for frame in frames[:2]:  # warm-up
            for _, pipeline in opened:
                pipeline.process(frame.left, frame.right, "rgb8", p_left, p_right, planes, args.alert)
        for repeat in range(args.repeats):
            for k, frame in enumerate(frames):
                order = list(zip(names, opened, strict=True))
                for name, (_, pipeline) in order[:: 1 if (k + repeat) % 2 == 0 else -1]:
                    cpu_started, started = time.process_time(), time.perf_counter()
                    result = pipeline.process(
                        frame.left, frame.right, "rgb8", p_left, p_right, planes, args.alert,
                        floors=floors(repeat * len(frames) + k),
                    )
                    wall[name].append(time.perf_counter() - started)
                    cpu[name] += time.process_time() - cpu_started
                    if repeat == 0:
                        valid = frame.disparity > 0
                        for i, plane_px in enumerate(result.planes_px):
                            iou[name].add(i, result.near_masks[i], frame.disparity > plane_px, valid)
    finally:
        for manager, _ in opened:
            manager.__exit__(None, None, None)
    sgbm_max = 16 * int(np.ceil(camera.disparity_px(0.5) / 16))
    sgbm_iou, sgbm_wall, sgbm_cpu = IoU(len(planes)), [], 0.0
    for frame in frames:
        left_bgr, right_bgr = frame.left[:, :, ::-1].copy(), frame.right[:, :, ::-1].copy()
        cpu_started, started = time.process_time(), time.perf_counter()
        sgbm = sgbm_disparity(left_bgr, right_bgr, sgbm_max)
        sgbm_wall.append(time.perf_counter() - started)
        sgbm_cpu += time.process_time() - cpu_started
        for i, plane_px in enumerate(planes_px):
            sgbm_iou.add(i, sgbm > plane_px, frame.disparity > plane_px, frame.disparity > 0)

    runs = args.repeats * len(frames)
    models = {}
    for name in names:
        median = float(np.median(wall[name]))
        models[name] = {
            "ms": round(1000 * median, 2),
            "p90_ms": round(1000 * float(np.percentile(wall[name], 90)), 2),
            "hz": round(1.0 / median, 1),
            "cpu_ms": round(1000 * cpu[name] / runs, 2),
            "iou_synthetic": [round(v, 4) for v in iou[name].values()],
        }
    reference = models[names[-1]]
    for entry in models.values():
        entry["ratio_ms"] = round(entry["ms"] / reference["ms"], 3)
        entry["ratio_cpu_ms"] = round(entry["cpu_ms"] / reference["cpu_ms"], 3)
    output = {
        "models": models,
        "sgbm_ms": round(1000 * float(np.median(sgbm_wall)), 2),
        "sgbm_cpu_ms": round(1000 * sgbm_cpu / len(frames), 2),
        "sgbm_iou_synthetic": [round(v, 4) for v in sgbm_iou.values()],
        "planes_m": planes,
        "alert_distance_m": args.alert,
        "ground": None if ground is None else {"camera_height_m": 0.5, "pitch_deg": 5.0, "clearance_m": 0.1},
        "mount_check_every": args.mount_check_every if ground is not None else 0,
        "synthetic_frames": args.frames,
        "repeats": args.repeats,
        "image_size": [camera.width, camera.height],
        "intra_op_threads": args.threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "opencv": cv2.__version__,
    }
    print(json.dumps(output))


if __name__ == "__main__":
    main()
