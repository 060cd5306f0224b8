"""mAP@0.5 of a detector on held-out synthetic frames, through the real DetectionPipeline (CPU backend).

    python training/detector/evaluate.py [--model models/detector/detector.yaml] [--frames 300]
                                         [--seed-start 1000000] [--workers 2]

Prints one JSON object: map50, per-class AP and object counts, frames, seed range, ms per frame.
Frames are rendered by dla_perception.synthetic with seeds from --seed-start (training uses 0..N-1, so
the default range 1000000.. is never seen in training). AP is the area under the all-point interpolated
precision/recall curve (PASCAL VOC 2010+), a detection matching an unmatched ground-truth box of the same
class at IoU >= 0.5, best score first; mAP is the mean over classes that have ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from dla_perception.synthetic.scene import OBSTACLE_CLASSES, generate_frame  # noqa: E402

HELD_OUT_SEED_START = 1_000_000


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [M, 4] (x1, y1, x2, y2)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def average_precision(scores: np.ndarray, matched: np.ndarray, num_ground_truth: int) -> float:
    """All-point interpolated AP from detections' scores and whether each matched a ground-truth box."""
    if num_ground_truth == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(matched[order])
    false_positives = np.cumsum(~matched[order])
    recall = true_positives / num_ground_truth
    precision = true_positives / np.maximum(true_positives + false_positives, 1e-9)
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the precision envelope
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def match_frame(detections: list, truth_boxes: np.ndarray, truth_classes: np.ndarray,
                iou_threshold: float = 0.5) -> list[tuple[int, float, bool]]:
    """(class_id, score, is_true_positive) per detection; each ground-truth box matches at most once."""
    results = []
    taken = np.zeros(len(truth_boxes), dtype=bool)
    for det in sorted(detections, key=lambda d: -d.score):
        same_class = np.flatnonzero((truth_classes == det.class_id) & ~taken)
        hit = False
        if same_class.size:
            ious = iou_matrix(np.asarray([det.box]), truth_boxes[same_class])[0]
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                taken[same_class[best]] = True
                hit = True
        results.append((det.class_id, det.score, hit))
    return results


def render(seed: int):
    frame = generate_frame(seed)
    boxes = np.array([o.box for o in frame.objects], dtype=np.float64).reshape(-1, 4)
    return frame.left, boxes, np.array([o.class_id for o in frame.objects], dtype=np.int64)


def evaluate(model: Path, seeds: list[int], workers: int = 2, score_threshold: float = 0.01) -> dict:
    from dla_perception.models.detection import DetectionPipeline

    per_class: dict[int, list[tuple[float, bool]]] = {c: [] for c in range(len(OBSTACLE_CLASSES))}
    counts = np.zeros(len(OBSTACLE_CLASSES), dtype=np.int64)
    inference_s = 0.0
    with get_context("fork").Pool(workers) as pool, DetectionPipeline(model, cores=("cpu",)) as pipeline:
        for image, boxes, classes in pool.imap(render, seeds, chunksize=2):
            start = time.perf_counter()
            detections = pipeline.detect(image, "rgb8", score_threshold=score_threshold)
            inference_s += time.perf_counter() - start
            counts += np.bincount(classes, minlength=len(OBSTACLE_CLASSES))
            for class_id, score, hit in match_frame(detections, boxes, classes):
                per_class[class_id].append((score, hit))
    ap = {}
    for class_id, name in enumerate(OBSTACLE_CLASSES):
        pairs = per_class[class_id]
        scores = np.array([s for s, _ in pairs], dtype=np.float64)
        hits = np.array([h for _, h in pairs], dtype=bool)
        ap[name] = average_precision(scores, hits, int(counts[class_id]))
    valid = [v for v in ap.values() if np.isfinite(v)]
    return {
        "map50": round(float(np.mean(valid)), 4) if valid else None,
        "ap50": {k: (round(v, 4) if np.isfinite(v) else None) for k, v in ap.items()},
        "objects": {name: int(n) for name, n in zip(OBSTACLE_CLASSES, counts, strict=True)},
        "frames": len(seeds),
        "seeds": [seeds[0], seeds[-1]],
        "score_threshold": score_threshold,
        "ms_per_frame": round(inference_s * 1e3 / max(len(seeds), 1), 2),
        "model": str(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "detector" / "detector.yaml")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed-start", type=int, default=HELD_OUT_SEED_START)
    parser.add_argument("--workers", type=int, default=2, help="processes rendering frames")
    args = parser.parse_args()
    seeds = list(range(args.seed_start, args.seed_start + args.frames))
    print(json.dumps(evaluate(args.model, seeds, args.workers)))


if __name__ == "__main__":
    main()
