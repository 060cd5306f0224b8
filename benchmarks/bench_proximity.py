"""Proximity pipeline speed and accuracy on the CPU next to OpenCV SGBM; prints one JSON object.

    .venv/bin/python benchmarks/bench_proximity.py [--frames 20] [--threads 2] [--repeats 3]

proximity_ms: median time of ProximityPipeline.process per 640x480 stereo pair, 3 planes (1, 2, 4 m; the
alert distance is one of them), onnxruntime CPU engines with --threads intra-op threads each, through the
EngineManager, image conversion and mask post-processing included; proximity_cpu_ms: CPU time of the
process per frame (all threads), which other jobs on the machine inflate less than wall time.
sgbm_ms: OpenCV SGBM (3-way, 5x5, 128 disparities, the range of the synthetic camera down to 0.5 m) on
the same frames. Accuracy: pooled
near-mask IoU per plane on held-out synthetic frames (seeds never used in training), and the Middlebury
means of training/proximity/evaluate.py (skipped, with the reason, where the shared data is absent).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.proximity.evaluate import IoU, evaluate_middlebury, open_pipeline, sgbm_disparity  # noqa: E402

PLANES_M = (1.0, 2.0, 4.0)
HELD_OUT_SEED = 1_000_000
SHARED_STEREO = Path(os.environ.get("DLA_PERCEPTION_SHARED_DATA", REPO.parent / "shared" / "data")) / "stereo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="held-out synthetic frames")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads per engine")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the frames")
    parser.add_argument("--models", type=Path, default=REPO / "models" / "proximity")
    args = parser.parse_args()

    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    camera = StereoCamera()
    frames = [generate_frame(HELD_OUT_SEED + i, camera) for i in range(args.frames)]
    p_left, p_right = camera.projection_left(), camera.projection_right()
    sgbm_max = 16 * int(np.ceil(camera.disparity_px(0.5) / 16))

    manager, pipeline = open_pipeline(args.models, threads=args.threads)
    network_iou, sgbm_iou = IoU(len(PLANES_M)), IoU(len(PLANES_M))
    proximity_s, sgbm_s = [], []
    proximity_cpu_s = sgbm_cpu_s = 0.0
    bgr = [(f.left[:, :, ::-1].copy(), f.right[:, :, ::-1].copy()) for f in frames]
    with manager:
        for frame in frames[:2]:  # warm-up
            pipeline.process(frame.left, frame.right, "rgb8", p_left, p_right, PLANES_M, PLANES_M[1])
        for repeat in range(args.repeats):
            cpu_started = time.process_time()
            for frame in frames:
                started = time.perf_counter()
                result = pipeline.process(
                    frame.left, frame.right, "rgb8", p_left, p_right, PLANES_M, PLANES_M[1]
                )
                proximity_s.append(time.perf_counter() - started)
                if repeat == 0:
                    valid = frame.disparity > 0
                    for i, plane_px in enumerate(result.planes_px):
                        network_iou.add(i, result.near_masks[i], frame.disparity > plane_px, valid)
            proximity_cpu_s += time.process_time() - cpu_started
            cpu_started = time.process_time()
            for frame, (left_bgr, right_bgr) in zip(frames, bgr, strict=True):
                started = time.perf_counter()
                sgbm = sgbm_disparity(left_bgr, right_bgr, sgbm_max)
                sgbm_s.append(time.perf_counter() - started)
                if repeat == 0:
                    valid = frame.disparity > 0
                    for i, plane_px in enumerate(camera.disparity_px(np.array(PLANES_M))):
                        sgbm_iou.add(i, sgbm > plane_px, frame.disparity > plane_px, valid)
            sgbm_cpu_s += time.process_time() - cpu_started
    runs = args.repeats * len(frames)

    output = {
        "proximity_ms": round(1000 * float(np.median(proximity_s)), 2),
        "proximity_p90_ms": round(1000 * float(np.percentile(proximity_s, 90)), 2),
        "proximity_hz": round(1.0 / float(np.median(proximity_s)), 1),
        "sgbm_ms": round(1000 * float(np.median(sgbm_s)), 2),
        "proximity_cpu_ms": round(1000 * proximity_cpu_s / runs, 2),
        "sgbm_cpu_ms": round(1000 * sgbm_cpu_s / runs, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "iou_synthetic": [round(v, 4) for v in network_iou.values()],
        "sgbm_iou_synthetic": [round(v, 4) for v in sgbm_iou.values()],
        "planes_m": list(PLANES_M),
        "synthetic_frames": args.frames,
        "image_size": [camera.width, camera.height],
        "intra_op_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "opencv": cv2.__version__,
    }
    if (SHARED_STEREO / "scenes.json").is_file():
        middlebury = evaluate_middlebury(args.models, SHARED_STEREO)
        output["iou_middlebury_mean"] = round(middlebury["iou_mean"], 4)
        output["sgbm_iou_middlebury_mean"] = round(middlebury["sgbm_iou_mean"], 4)
    else:
        output["iou_middlebury_mean"] = output["sgbm_iou_middlebury_mean"] = None
        output["middlebury_skipped"] = f"no Middlebury data at {SHARED_STEREO}"
    print(json.dumps(output))


if __name__ == "__main__":
    main()
