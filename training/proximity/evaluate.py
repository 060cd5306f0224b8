"""Near-mask IoU of the shipped proximity models: held-out synthetic frames, and Middlebury next to SGBM.

    python -m training.proximity.evaluate --models models/proximity --synthetic-frames 200 \
        --middlebury ../shared/data/stereo --json eval.json

Everything goes through the real ProximityPipeline and EngineManager (onnxruntime on the CPU), so the
figures are the pipeline's, resizing and thresholding included. IoU is pooled over frames (intersection
and union summed over all frames, then divided) on pixels with known ground truth.

Middlebury (evaluation only, never used for training or tuning): the scenes have no metric calibration,
so the planes are disparities at 25/50/75 % of each scene's largest ground-truth disparity, turned into
metres with a nominal camera (fx 1000 px, baseline 0.1 m) and back by the pipeline. Each scene is resized
to the network's input like any other image: its disparities scale with the width, which keeps even the
largest (wood2, reindeer) inside the trained range. OpenCV's SGBM, thresholded at the same planes, is
scored on the same pixels in the same run; pixels where SGBM gives no answer count as "not near".
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

SYNTHETIC_PLANES_M = (1.0, 2.0, 4.0)
MIDDLEBURY_FRACTIONS = (0.25, 0.5, 0.75)
NOMINAL_FX, NOMINAL_BASELINE = 1000.0, 0.1


def open_pipeline(model_dir: Path, threads: int | None = None):
    """(manager, pipeline) running the two ONNX files of model_dir on the CPU."""
    from dla_perception.models.proximity import ProximityPipeline, proximity_model_specs
    from dla_perception.runtime.config import EnginesConfig
    from dla_perception.runtime.manager import EngineManager

    specs = proximity_model_specs(
        model_dir, features_cores=("cpu",), head_cores=("cpu",), intra_op_threads=threads
    )
    manager = EngineManager(EnginesConfig(models={s.name: s for s in specs}), available_cores=("cpu",))
    return manager, ProximityPipeline(manager)


class IoU:
    """Pooled intersection over union, one counter per plane."""

    def __init__(self, planes: int) -> None:
        self.intersection = np.zeros(planes)
        self.union = np.zeros(planes)

    def add(self, plane: int, predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> None:
        self.intersection[plane] += np.count_nonzero(predicted & truth & valid)
        self.union[plane] += np.count_nonzero((predicted | truth) & valid)

    def values(self) -> list[float]:
        return [float(i / u) if u else math.nan for i, u in zip(self.intersection, self.union, strict=True)]


def nominal_projections(fx: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    left = np.array([[fx, 0, cx, 0], [0, fx, cy, 0], [0, 0, 1, 0]], dtype=np.float64)
    right = left.copy()
    right[0, 3] = -fx * NOMINAL_BASELINE
    return left, right


def _frame(seed: int):
    from dla_perception.synthetic.scene import generate_frame

    frame = generate_frame(seed)
    return frame.left, frame.right, frame.disparity


def evaluate_synthetic(
    model_dir: Path,
    frames: int,
    planes_m=SYNTHETIC_PLANES_M,
    seed_base: int | None = None,
    workers: int | None = None,
) -> dict:
    """Pooled IoU per plane on `frames` held-out synthetic scenes (seeds never used in training)."""
    import multiprocessing

    from dla_perception.synthetic.camera import StereoCamera
    from training.proximity.dataset import HELD_OUT_SEED_BASE

    seed_base = HELD_OUT_SEED_BASE if seed_base is None else seed_base
    camera = StereoCamera()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        data = pool.map(_frame, range(seed_base, seed_base + frames), chunksize=4)
    iou = IoU(len(planes_m))
    manager, pipeline = open_pipeline(model_dir)
    seconds = []
    with manager:
        for left, right, disparity in data:
            started = time.perf_counter()
            result = pipeline.process(
                left,
                right,
                "rgb8",
                camera.projection_left(),
                camera.projection_right(),
                planes_m,
                alert_distance_m=planes_m[0],
            )
            seconds.append(time.perf_counter() - started)
            valid = np.isfinite(disparity) & (disparity > 0)
            for i, plane_px in enumerate(result.planes_px):
                iou.add(i, result.near_masks[i], np.nan_to_num(disparity) > plane_px, valid)
    return {
        "frames": frames,
        "seeds": [seed_base, seed_base + frames - 1],
        "planes_m": list(planes_m),
        "planes_px": [float(d) for d in camera.disparity_px(np.asarray(planes_m))],
        "iou": iou.values(),
        "pipeline_ms_median": 1000 * float(np.median(seconds)),
    }


def load_middlebury(data_dir: Path):
    """(name, left BGR, right BGR, disparity px float32 with 0 unknown, evaluation mask bool) per scene."""
    scenes = json.loads((data_dir / "scenes.json").read_text())
    for name, scene in scenes.items():
        left = cv2.imread(str(data_dir / scene["left"]), cv2.IMREAD_COLOR)
        right = cv2.imread(str(data_dir / scene["right"]), cv2.IMREAD_COLOR)
        stored = cv2.imread(str(data_dir / scene["disparity"]), cv2.IMREAD_GRAYSCALE)
        if left is None or right is None or stored is None:
            raise FileNotFoundError(f"Middlebury scene {name}: cannot read its images under {data_dir}")
        disparity = stored.astype(np.float32) / float(scene["scale"])
        valid = stored > 0
        for key in ("mask_nonocc", "mask_valid"):
            if key in scene:
                valid &= cv2.imread(str(data_dir / scene[key]), cv2.IMREAD_GRAYSCALE) == 255
        yield name, left, right, disparity, valid


def sgbm_disparity(left_bgr: np.ndarray, right_bgr: np.ndarray, max_disparity: float) -> np.ndarray:
    """OpenCV SGBM (3-way, 5x5 blocks, the usual P1/P2), float px; no answer -> 0."""
    block = 5
    matcher = cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=16 * math.ceil(max_disparity / 16),
        blockSize=block,
        P1=8 * 3 * block * block,
        P2=32 * 3 * block * block,
        disp12MaxDiff=1,
        uniquenessRatio=10,
        speckleWindowSize=100,
        speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )
    disparity = matcher.compute(left_bgr, right_bgr).astype(np.float32) / 16.0
    return np.maximum(disparity, 0.0)


def evaluate_middlebury(model_dir: Path, data_dir: Path) -> dict:
    """Per scene and overall IoU at 25/50/75 % of the scene's largest disparity: network and SGBM."""
    manager, pipeline = open_pipeline(model_dir)
    scenes = {}
    with manager:
        for name, left, right, disparity, valid in load_middlebury(data_dir):
            height, width = disparity.shape
            max_disparity = float(disparity[valid].max())
            planes_px = np.array(MIDDLEBURY_FRACTIONS) * max_disparity
            p_left, p_right = nominal_projections(NOMINAL_FX, (width - 1) / 2, (height - 1) / 2)
            planes_m = NOMINAL_FX * NOMINAL_BASELINE / planes_px
            result = pipeline.process(
                left, right, "bgr8", p_left, p_right, planes_m, alert_distance_m=planes_m[0]
            )
            sgbm = sgbm_disparity(left, right, 1.2 * max_disparity)
            network_iou, sgbm_iou = IoU(len(planes_px)), IoU(len(planes_px))
            # The pipeline sorts planes by distance: reversed, they are in ascending disparity like planes_px.
            for i, (mask, plane_px) in enumerate(
                zip(result.near_masks[::-1], result.planes_px[::-1], strict=True)
            ):
                truth = disparity > plane_px
                network_iou.add(i, mask, truth, valid)
                sgbm_iou.add(i, sgbm > plane_px, truth, valid)
            scenes[name] = {
                "size": [width, height],
                "max_disparity": max_disparity,
                "planes_px": planes_px.tolist(),
                "iou": network_iou.values(),
                "sgbm_iou": sgbm_iou.values(),
            }
    return {
        "fractions": list(MIDDLEBURY_FRACTIONS),
        "scenes": scenes,
        "iou_mean": float(np.mean([v for s in scenes.values() for v in s["iou"]])),
        "sgbm_iou_mean": float(np.mean([v for s in scenes.values() for v in s["sgbm_iou"]])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models/proximity"))
    parser.add_argument("--synthetic-frames", type=int, default=200)
    parser.add_argument("--planes", type=float, nargs="+", default=list(SYNTHETIC_PLANES_M),
                        help="synthetic planes in metres (default: 1 2 4)")
    parser.add_argument("--middlebury", type=Path, default=None, help="folder with scenes.json")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results = {}
    if args.synthetic_frames:
        results["synthetic"] = evaluate_synthetic(args.models, args.synthetic_frames, sorted(args.planes))
    if args.middlebury is not None:
        results["middlebury"] = evaluate_middlebury(args.models, args.middlebury)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
