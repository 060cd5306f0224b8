"""The evaluation suite the training never touches: the held-out family, self-consistency, SGBM beside it.

    python -m training.proximity.suite --models models/proximity models/proximity/v1 --frames 200 \
        --street-frames 200 --middlebury ../shared/data/stereo --json suite.json

For every model directory given, and for OpenCV's SGBM on the same frames in the same run:

- held-out family (dla_perception.synthetic.heldout, seeds 0..frames-1 at 640x480 with the default camera):
  IoU, precision and recall of the near masks at 1 / 1.5 / 2.5 / 4 m (1 m is the robot's alert distance in
  config/robot.yaml), pooled over frames on pixels with known ground truth;
- physical self-consistency on the same frames: the pair upside down and the pair mirrored with left and
  right swapped are valid rectified pairs, so the answer must be the transformed answer. Reported as the
  IoU against the transformed ground truth (its drop from the plain pair's) and as the agreement IoU of the
  upside-down answer flipped back with the plain pair's answer;
- with --street-frames, the same (plain and upside down: no right-view truth there) on the street
  renderer's held-out seeds (1 000 000 up): the renderer the v1 model trained on, v2 among others;
- Middlebury (all scenes of ../shared/data/stereo, evaluation only) at 25/50/75 % of each scene's largest
  disparity, plain and upside down (its right views have no ground truth, so no mirrored case).

The synthetic frames are scored where the other view sees the pixel; with --image-edge, also in the band
whose match lies outside the other image (a left image's left edge), where no matcher can find a match and
an answer has to come from the image's content. Middlebury's masks count that band always.

Pixels where SGBM gives no answer count as "not near". Everything goes through the real ProximityPipeline
and EngineManager (onnxruntime, CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from pathlib import Path

import numpy as np

from training.proximity.evaluate import (
    MIDDLEBURY_FRACTIONS,
    NOMINAL_FX,
    load_middlebury,
    nominal_projections,
    open_pipeline,
    sgbm_disparity,
)

HELDOUT_PLANES_M = (1.0, 1.5, 2.5, 4.0)
STREET_PLANES_M = (1.0, 2.0, 4.0)  # the planes v1's card reported
ALERT_DISTANCE_M = 1.0
TRANSFORMS = ("plain", "upside_down", "mirrored")
SGBM = "sgbm"


class Scores:
    """Pooled true/false positive and false negative counts per plane -> IoU, precision, recall."""

    def __init__(self, planes: int) -> None:
        self.counts = np.zeros((planes, 3))

    def add(self, plane: int, predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> None:
        self.counts[plane] += (
            np.count_nonzero(predicted & truth & valid),
            np.count_nonzero(predicted & ~truth & valid),
            np.count_nonzero(~predicted & truth & valid),
        )

    def summary(self) -> dict:
        tp, fp, fn = self.counts.T

        def ratio(a: np.ndarray, b: np.ndarray) -> list[float]:
            return [round(float(x / y), 4) if y else math.nan for x, y in zip(a, b, strict=True)]

        return {"iou": ratio(tp, tp + fp + fn), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn)}


def _sample(job: tuple[str, int, bool]):
    """A StereoSample of the held-out family, or of the street renderer (no right-view truth: zeros);
    image_edge: with the truth of the band whose match is outside the other image."""
    source, seed, image_edge = job
    if source == "heldout":
        from dla_perception.synthetic.heldout import heldout_frame

        return heldout_frame(seed, keep_out_of_view=image_edge)
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.sample import StereoSample, with_out_of_view
    from dla_perception.synthetic.scene import generate_frame

    camera = StereoCamera()
    frame = generate_frame(seed, camera)
    disparity = frame.disparity
    if image_edge:
        disparity = with_out_of_view(disparity, frame.depth_m, camera.fx * camera.baseline_m)
    return StereoSample("street", seed, camera, frame.left, frame.right, disparity, np.zeros_like(disparity))


def transformed(sample, name: str):
    """The sample as is, upside down, or mirrored with the views swapped (StereoSample's methods)."""
    if name == "upside_down":
        return sample.upside_down()
    return sample.mirrored() if name == "mirrored" else sample


def evaluate_heldout(
    model_dirs: list[Path],
    frames: int,
    seed_base: int | None = None,
    workers: int | None = None,
    planes_m=HELDOUT_PLANES_M,
    threads: int | None = None,
    source: str = "heldout",
    image_edge: bool = False,
) -> dict:
    """Scores of each model and of SGBM on `frames` frames of `source`, plain and transformed; image_edge
    also scores the band whose match lies outside the other image.

    source "heldout": the held-out family, seeds from 0 (or seed_base), all three transforms;
    "street": the training renderer's held-out seeds (from 1 000 000), which have no right-view truth, so
    plain and upside down only."""
    from dla_perception.synthetic.camera import StereoCamera
    from training.proximity.dataset import HELD_OUT_SEED_BASE

    if source not in ("heldout", "street"):
        raise ValueError(f"source must be 'heldout' or 'street', got {source!r}")
    if seed_base is None:
        seed_base = 0 if source == "heldout" else HELD_OUT_SEED_BASE
    transforms = TRANSFORMS if source == "heldout" else TRANSFORMS[:2]
    camera = StereoCamera()
    planes_m = tuple(sorted(planes_m))
    planes_px = camera.disparity_px(np.asarray(planes_m))
    sgbm_max = 16 * math.ceil(camera.disparity_px(0.5) / 16)
    names = [str(m) for m in model_dirs] + [SGBM]
    scores = {n: {t: Scores(len(planes_m)) for t in transforms} for n in names}
    agreement = {n: Scores(len(planes_m)) for n in names}  # upside-down answer flipped back vs plain answer
    opened = [open_pipeline(m, threads=threads) for m in model_dirs]
    seconds = {n: [] for n in names}
    seeds = range(seed_base, seed_base + frames)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        for manager, _ in opened:
            manager.__enter__()
        try:
            for sample in pool.imap(_sample, [(source, s, image_edge) for s in seeds], chunksize=2):
                plain_answers = {}
                for transform in transforms:
                    view = transformed(sample, transform)
                    truth_disparity = view.disparity
                    valid = truth_disparity > 0
                    answers = {}
                    for name, (_, pipeline) in zip(names, opened, strict=False):
                        started = time.perf_counter()
                        result = pipeline.process(
                            view.left,
                            view.right,
                            "rgb8",
                            camera.projection_left(),
                            camera.projection_right(),
                            planes_m,
                            ALERT_DISTANCE_M,
                        )
                        seconds[name].append(time.perf_counter() - started)
                        answers[name] = result.near_masks
                    started = time.perf_counter()
                    sgbm = sgbm_disparity(view.left[:, :, ::-1], view.right[:, :, ::-1], sgbm_max)
                    seconds[SGBM].append(time.perf_counter() - started)
                    answers[SGBM] = np.stack([sgbm > d for d in planes_px])
                    for name, masks in answers.items():
                        for i, plane_px in enumerate(planes_px):
                            scores[name][transform].add(i, masks[i], truth_disparity > plane_px, valid)
                        if transform == "plain":
                            plain_answers[name] = masks
                        elif transform == "upside_down":
                            plain_valid = sample.disparity > 0
                            for i in range(len(planes_px)):
                                agreement[name].add(i, masks[i][::-1], plain_answers[name][i], plain_valid)
        finally:
            for manager, _ in opened:
                manager.__exit__(None, None, None)
    results = {}
    for name in names:
        entry = {t: scores[name][t].summary() for t in transforms}
        plain_iou = entry["plain"]["iou"]
        entry["consistency"] = {
            f"{t}_iou_drop": [round(p - q, 4) for p, q in zip(plain_iou, entry[t]["iou"], strict=True)]
            for t in transforms[1:]
        }
        entry["consistency"]["upside_down_agreement_iou"] = agreement[name].summary()["iou"]
        entry["ms_per_pair_median"] = round(1000 * float(np.median(seconds[name])), 1)
        results[name] = entry
    return {
        "family": "heldout_blocks" if source == "heldout" else "street (training renderer, held-out seeds)",
        "frames": frames,
        "seeds": [seed_base, seed_base + frames - 1],
        "image_size": [camera.width, camera.height],
        "planes_m": list(planes_m),
        "planes_px": [round(float(d), 2) for d in planes_px],
        "alert_distance_m": ALERT_DISTANCE_M,
        "image_edge_counted": image_edge,
        "results": results,
    }


def evaluate_middlebury_suite(
    model_dirs: list[Path], data_dir: Path, threads: int | None = None, scenes_only: set[str] | None = None
) -> dict:
    """Per scene IoU at 25/50/75 % of its largest disparity: each model and SGBM, plain and upside down.
    scenes_only: a subset of the scenes (tests); None = all."""
    names = [str(m) for m in model_dirs] + [SGBM]
    opened = [open_pipeline(m, threads=threads) for m in model_dirs]
    scenes: dict[str, dict] = {}
    for manager, _ in opened:
        manager.__enter__()
    try:
        for scene, left, right, disparity, valid in load_middlebury(data_dir):
            if scenes_only is not None and scene not in scenes_only:
                continue
            height, width = disparity.shape
            max_disparity = float(disparity[valid].max())
            planes_px = np.array(MIDDLEBURY_FRACTIONS) * max_disparity
            p_left, p_right = nominal_projections(NOMINAL_FX, (width - 1) / 2, (height - 1) / 2)
            planes_m = NOMINAL_FX * 0.1 / planes_px
            entry = {"size": [width, height], "max_disparity": max_disparity}
            for flip in (False, True):
                arrays = (left, right, disparity, valid)
                l_img, r_img, truth, ok = (a[::-1].copy() if flip else a for a in arrays)
                for name, (_, pipeline) in zip(names, opened, strict=False):
                    result = pipeline.process(l_img, r_img, "bgr8", p_left, p_right, planes_m, planes_m[0])
                    masks = result.near_masks[::-1]  # ascending disparity, like planes_px
                    entry.setdefault(name, {})["upside_down" if flip else "plain"] = _iou_list(
                        masks, truth, ok, planes_px
                    )
                sgbm = sgbm_disparity(l_img, r_img, 1.2 * max_disparity)
                entry.setdefault(SGBM, {})["upside_down" if flip else "plain"] = _iou_list(
                    [sgbm > d for d in planes_px], truth, ok, planes_px
                )
            scenes[scene] = entry
    finally:
        for manager, _ in opened:
            manager.__exit__(None, None, None)
    means = {}
    for name in names:
        plain = [v for s in scenes.values() for v in s[name]["plain"]]
        flipped = [v for s in scenes.values() for v in s[name]["upside_down"]]
        per_fraction = np.mean([s[name]["plain"] for s in scenes.values()], axis=0)
        means[name] = {
            "iou_mean": round(float(np.mean(plain)), 4),
            "iou_mean_per_fraction": [round(float(v), 4) for v in per_fraction],
            "upside_down_iou_mean": round(float(np.mean(flipped)), 4),
        }
    return {"fractions": list(MIDDLEBURY_FRACTIONS), "scenes": scenes, "means": means}


def _iou_list(masks, truth: np.ndarray, valid: np.ndarray, planes_px) -> list[float]:
    out = []
    for mask, plane in zip(masks, planes_px, strict=True):
        near = truth > plane
        union = np.count_nonzero((mask | near) & valid)
        out.append(round(np.count_nonzero(mask & near & valid) / union, 4) if union else math.nan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", default=[Path("models/proximity")])
    parser.add_argument("--frames", type=int, default=200, help="held-out family frames (seeds 0..N-1)")
    parser.add_argument(
        "--street-frames", type=int, default=0, help="also the street renderer's held-out seeds"
    )
    parser.add_argument("--middlebury", type=Path, default=None, help="folder with scenes.json")
    parser.add_argument(
        "--planes",
        type=float,
        nargs="+",
        default=None,
        help=f"synthetic planes, m (default: held-out family {HELDOUT_PLANES_M}, street {STREET_PLANES_M})",
    )
    parser.add_argument(
        "--image-edge",
        action="store_true",
        help="also score the synthetic frames' band whose match is outside the other image",
    )
    parser.add_argument("--workers", type=int, default=None, help="rendering processes")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    started = time.time()
    results = {}
    if args.frames:
        results["heldout"] = evaluate_heldout(
            args.models,
            args.frames,
            workers=args.workers,
            threads=args.threads,
            planes_m=args.planes or HELDOUT_PLANES_M,
            image_edge=args.image_edge,
        )
    if args.street_frames:
        results["street"] = evaluate_heldout(
            args.models,
            args.street_frames,
            workers=args.workers,
            threads=args.threads,
            planes_m=args.planes or STREET_PLANES_M,
            source="street",
            image_edge=args.image_edge,
        )
    if args.middlebury is not None:
        results["middlebury"] = evaluate_middlebury_suite(args.models, args.middlebury, threads=args.threads)
    results["seconds"] = round(time.time() - started, 1)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
