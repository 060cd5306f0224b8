"""Milliseconds per synthetic stereo frame (both views, ground truth, boxes, camera effects), on one core,
next to the milliseconds the CPU proximity pipeline takes to infer the same 640x480 frames.

    python benchmarks/bench_synthetic.py [--frames 20] [--sizes 640x480,320x240,160x120] [--threads 1]
                                         [--inference-threads 1] [--no-inference]

Prints one JSON object. Per size: `independent` times generate_frame (a new scene per seed, the way the
training scripts use it, texture pool warm), `sequence` times frames of one generate_sequence drive (scene
built once); each with p50/p90/mean wall ms and mean CPU ms per frame; `texture_pool_s` is the one-off
time to make a process's texture pool. OpenCV runs with --threads threads (1 = the one-core figure the
issue asks for); numpy is single-threaded here anyway.

`inference` (640x480 only): ProximityPipeline.process on the independent frames just generated, through an
EngineManager built from config/engines.yaml on the cpu core alone (onnxruntime, --inference-threads
intra-op threads per engine; 1 = one core, like the generator), planes 1, 2, 4 m, alert at 2 m, timed
right after generating them (so that both see much the same load from other jobs on the machine); its p50
ms next to the generator's, and `generation_faster_than_inference`: both p50s of generation (independent
and sequence frames) below the p50 of inference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLANES_M = (1.0, 2.0, 4.0)
ALERT_M = 2.0


def summarize(wall: list[float], cpu: list[float]) -> dict[str, float]:
    array = np.asarray(wall)
    return {"p50_ms": round(float(np.median(array)), 2), "p90_ms": round(float(np.percentile(array, 90)), 2),
            "mean_ms": round(float(array.mean()), 2), "cpu_mean_ms": round(float(np.mean(cpu)), 2)}


def timed(frames, keep: list | None = None) -> tuple[list[float], list[float]]:
    """Wall and CPU ms of each next(frames); the frames are appended to `keep` when given."""
    wall, cpu = [], []
    while True:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        try:
            frame = next(frames)
        except StopIteration:
            return wall, cpu
        wall.append((time.perf_counter() - start_wall) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        if keep is not None:
            keep.append(frame)


class Inference:
    """ProximityPipeline.process on the CPU through an EngineManager from config/engines.yaml, timed."""

    def __init__(self, camera, threads: int):
        from dla_perception.models.proximity import ProximityPipeline
        from dla_perception.runtime.config import load_engines_config
        from dla_perception.runtime.manager import EngineManager

        config = load_engines_config(REPO / "config" / "engines.yaml")
        config.models = {name: dataclasses.replace(spec, intra_op_threads=threads)
                         for name, spec in config.models.items()}
        self.manager = EngineManager(config, available_cores=["cpu"])
        self.pipeline = ProximityPipeline(self.manager)
        self.projections = camera.projection_left(), camera.projection_right()
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def run(self, frame, record: bool = True) -> None:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        self.pipeline.process(frame.left, frame.right, "rgb8", *self.projections, PLANES_M, ALERT_M)
        if record:
            self.wall.append((time.perf_counter() - start_wall) * 1000)
            self.cpu.append((time.process_time() - start_cpu) * 1000)

    def close(self) -> None:
        self.manager.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="timed frames per size and mode")
    parser.add_argument("--sizes", default="640x480,320x240,160x120")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    parser.add_argument("--inference-threads", type=int, default=1,
                        help="onnxruntime intra-op threads per engine (default 1: one core)")
    parser.add_argument("--no-inference", action="store_true", help="time the generator only")
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(args.threads)
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame, generate_sequence
    from dla_perception.synthetic.textures import TEXTURE_VARIANTS, TILE_KINDS, tile_mips

    results = {}
    comparison = None
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        camera = StereoCamera().scaled(width, height)
        inference = None
        if (width, height) == (640, 480) and not args.no_inference:
            inference = Inference(camera, args.inference_threads)
        # the texture pool is made once per process (timed on its own), then scenes only pick from it
        tile_size = 256 if width >= 480 else 128
        start = time.perf_counter()
        for kind in TILE_KINDS:
            for variant in range(TEXTURE_VARIANTS):
                tile_mips(kind, variant, tile_size)
        pool_s = time.perf_counter() - start
        for seed in range(3):  # warm-up: imports, caches
            generate_frame(1000 + seed, camera)
        frames: list = []
        independent = timed((generate_frame(seed, camera) for seed in range(args.frames)), frames)
        if inference is not None:
            for frame in frames[:3]:  # warm-up: sessions
                inference.run(frame, record=False)
            for frame in frames:
                inference.run(frame)
        wall, cpu = timed(generate_sequence(7, args.frames + 1, camera))
        # the first frame of a sequence also builds the scene: leave it out of the per-frame figure
        results[size] = {"independent": summarize(*independent), "sequence": summarize(wall[1:], cpu[1:]),
                         "texture_pool_s": round(pool_s, 2)}
        if inference is not None:
            inference.close()
            inferred = summarize(inference.wall, inference.cpu)
            generation_ms = max(results[size]["independent"]["p50_ms"], results[size]["sequence"]["p50_ms"])
            comparison = {
                "size": size,
                "inference": {**inferred, "what": "ProximityPipeline.process, EngineManager on cpu, "
                              f"config/engines.yaml, {args.inference_threads} intra-op thread(s), "
                              f"planes {list(PLANES_M)} m, alert {ALERT_M} m"},
                "generation_p50_ms": {"independent": results[size]["independent"]["p50_ms"],
                                      "sequence": results[size]["sequence"]["p50_ms"]},
                "inference_p50_ms": inferred["p50_ms"],
                "generation_over_inference": round(generation_ms / inferred["p50_ms"], 2),
                "generation_faster_than_inference": bool(generation_ms < inferred["p50_ms"]),
            }
    print(json.dumps({
        "benchmark": "synthetic_stereo_frame",
        "frames": args.frames,
        "opencv_threads": args.threads,
        "results": results,
        "versus_inference": comparison,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_1min": round(os.getloadavg()[0], 2)},
    }))


if __name__ == "__main__":
    main()
