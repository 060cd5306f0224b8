"""Milliseconds per synthetic stereo frame (both views, ground truth, boxes, camera effects), on one core.

    python benchmarks/bench_synthetic.py [--frames 20] [--sizes 640x480,320x240,160x120] [--threads 1]

Prints one JSON object. Per size: `independent` times generate_frame (a new scene per seed, the way the
training scripts use it, texture pool warm), `sequence` times frames of one generate_sequence drive (scene
built once); each with p50/p90/mean wall ms and mean CPU ms per frame; `texture_pool_s` is the one-off
time to make a process's texture pool. OpenCV runs with --threads threads
(1 = the one-core figure the issue asks for); numpy is single-threaded here anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def summarize(wall: list[float], cpu: list[float]) -> dict[str, float]:
    array = np.asarray(wall)
    return {"p50_ms": round(float(np.median(array)), 2), "p90_ms": round(float(np.percentile(array, 90)), 2),
            "mean_ms": round(float(array.mean()), 2), "cpu_mean_ms": round(float(np.mean(cpu)), 2)}


def timed(frames) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    while True:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        try:
            next(frames)
        except StopIteration:
            return wall, cpu
        wall.append((time.perf_counter() - start_wall) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="timed frames per size and mode")
    parser.add_argument("--sizes", default="640x480,320x240,160x120")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(args.threads)
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame, generate_sequence
    from dla_perception.synthetic.textures import TEXTURE_VARIANTS, TILE_KINDS, tile_mips

    results = {}
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        camera = StereoCamera().scaled(width, height)
        # the texture pool is made once per process (timed on its own), then scenes only pick from it
        tile_size = 256 if width >= 480 else 128
        start = time.perf_counter()
        for kind in TILE_KINDS:
            for variant in range(TEXTURE_VARIANTS):
                tile_mips(kind, variant, tile_size)
        pool_s = time.perf_counter() - start
        for seed in range(3):  # warm-up: imports, caches
            generate_frame(1000 + seed, camera)
        independent = timed(generate_frame(seed, camera) for seed in range(args.frames))
        wall, cpu = timed(generate_sequence(7, args.frames + 1, camera))
        # the first frame of a sequence also builds the scene: leave it out of the per-frame figure
        results[size] = {"independent": summarize(*independent), "sequence": summarize(wall[1:], cpu[1:]),
                         "texture_pool_s": round(pool_s, 2)}
    print(json.dumps({
        "benchmark": "synthetic_stereo_frame",
        "frames": args.frames,
        "opencv_threads": args.threads,
        "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_1min": round(os.getloadavg()[0], 2)},
    }))


if __name__ == "__main__":
    main()
