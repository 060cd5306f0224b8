"""Milliseconds per synthetic stereo frame (both views, ground truth, boxes, camera effects), on one core,
next to the milliseconds the robot's perception takes to infer the same 640x480 frames on the CPU.

    python benchmarks/bench_synthetic.py [--frames 20] [--sizes 640x480,320x240,160x120] [--threads 1]
                                         [--inference-threads 1] [--no-inference]

Prints one JSON object. Per size: `independent` times generate_frame (a new scene per seed, the way the
training scripts use it, texture pool warm), `sequence` times frames of one generate_sequence drive (scene
built once); each with p50/p90/mean wall ms and mean CPU ms per frame; `texture_pool_s` is the one-off
time to make a process's texture pool. OpenCV runs with --threads threads (1 = the one-core figure the
issue asks for); numpy is single-threaded here anyway.

`versus_inference` (640x480 only): every frame generated (independent and sequence) is inferred the way
the shipped graph infers every frame, through one EngineManager from config/engines.yaml on the cpu core
alone (onnxruntime, --inference-threads intra-op threads per engine; 1 = one core, like the generator):
ProximityPipeline.process with the planes and alert distance of config/robot.yaml, and DetectionPipeline
on the left image. Each frame is inferred right after it is generated, before the next one is made, so
that both timings see the same load from other jobs on the machine (it swings by 20 % and more from one
minute to the next on shared machines). Reported: each network's p50 and the frame's (both, summed per
frame), and the generator's p50 over each: `generation_over_proximity` and
`generation_over_frame_inference`, computed with the slower of the independent and sequence p50s.
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


def summarize(wall: list[float], cpu: list[float]) -> dict[str, float]:
    array = np.asarray(wall)
    return {"p50_ms": round(float(np.median(array)), 2), "p90_ms": round(float(np.percentile(array, 90)), 2),
            "mean_ms": round(float(array.mean()), 2), "cpu_mean_ms": round(float(np.mean(cpu)), 2)}


def timed(frames, after=None) -> tuple[list[float], list[float]]:
    """Wall and CPU ms of each next(frames); `after(frame)`, when given, runs (untimed) on each frame before
    the next one is made."""
    wall, cpu = [], []
    while True:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        try:
            frame = next(frames)
        except StopIteration:
            return wall, cpu
        wall.append((time.perf_counter() - start_wall) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        if after is not None:
            after(frame)


class Inference:
    """The shipped graph's per-frame inference on the CPU, timed per network: proximity (planes and alert
    distance from config/robot.yaml) and detection, through one EngineManager from config/engines.yaml."""

    def __init__(self, camera, threads: int):
        import yaml

        from dla_perception.models.detection import DetectionPipeline
        from dla_perception.models.proximity import ProximityPipeline
        from dla_perception.runtime.config import load_engines_config
        from dla_perception.runtime.manager import EngineManager

        config = load_engines_config(REPO / "config" / "engines.yaml")
        config.models = {name: dataclasses.replace(spec, intra_op_threads=threads)
                         for name, spec in config.models.items()}
        robot = yaml.safe_load((REPO / "config" / "robot.yaml").read_text())
        proximity = robot["/**/proximity_segmentation"]["ros__parameters"]
        self.planes_m = [float(v) for v in proximity["planes_m"]]
        self.alert_m = float(proximity["alert_distance_m"])
        self.manager = EngineManager(config, available_cores=["cpu"])
        self.proximity = ProximityPipeline(self.manager)
        self.detection = DetectionPipeline(REPO / "models" / "detector" / "detector.yaml", self.manager)
        self.projections = camera.projection_left(), camera.projection_right()
        self.ms: dict[str, list[float]] = {"proximity": [], "detection": [], "frame": []}
        self.cpu_ms: dict[str, list[float]] = {"proximity": [], "detection": [], "frame": []}

    def run(self, frame, record: bool = True) -> None:
        def proximity():
            self.proximity.process(frame.left, frame.right, "rgb8", *self.projections, self.planes_m,
                                   self.alert_m)

        wall, cpu = {}, {}
        for name, infer in (("proximity", proximity),
                            ("detection", lambda: self.detection.detect(frame.left, "rgb8"))):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            infer()
            wall[name] = (time.perf_counter() - start_wall) * 1000
            cpu[name] = (time.process_time() - start_cpu) * 1000
        if record:
            for name in ("proximity", "detection"):
                self.ms[name].append(wall[name])
                self.cpu_ms[name].append(cpu[name])
            self.ms["frame"].append(wall["proximity"] + wall["detection"])
            self.cpu_ms["frame"].append(cpu["proximity"] + cpu["detection"])

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
    from dla_perception.synthetic.texture_atlas import TEXTURE_VARIANTS, texture_pool
    from dla_perception.synthetic.textures import TILE_KINDS

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
        pool = texture_pool(tile_size)
        for kind in TILE_KINDS:
            for variant in range(TEXTURE_VARIANTS):
                pool.tile(kind, variant)
        pool_s = time.perf_counter() - start
        for seed in range(3):  # warm-up: imports, caches, inference sessions
            frame = generate_frame(1000 + seed, camera)
            if inference is not None:
                inference.run(frame, record=False)
        infer = inference.run if inference is not None else None
        independent = timed((generate_frame(seed, camera) for seed in range(args.frames)), infer)
        wall, cpu = timed(generate_sequence(7, args.frames + 1, camera), infer)
        # the first frame of a sequence also builds the scene: leave it out of the per-frame figure
        results[size] = {"independent": summarize(*independent), "sequence": summarize(wall[1:], cpu[1:]),
                         "texture_pool_s": round(pool_s, 2)}
        if inference is not None:
            inference.close()
            inferred = {name: summarize(inference.ms[name], inference.cpu_ms[name]) for name in inference.ms}
            generation_ms = max(results[size]["independent"]["p50_ms"], results[size]["sequence"]["p50_ms"])
            comparison = {
                "size": size,
                "what": f"config/engines.yaml on cpu, {args.inference_threads} intra-op thread(s); proximity "
                        f"planes {inference.planes_m} m, alert {inference.alert_m} m (config/robot.yaml); "
                        "detection on the left image; frame = both",
                "inference_ms": inferred,
                "generation_p50_ms": {"independent": results[size]["independent"]["p50_ms"],
                                      "sequence": results[size]["sequence"]["p50_ms"]},
                "generation_over_proximity": round(generation_ms / inferred["proximity"]["p50_ms"], 2),
                "generation_over_frame_inference": round(generation_ms / inferred["frame"]["p50_ms"], 2),
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
