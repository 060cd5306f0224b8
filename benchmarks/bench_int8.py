"""INT8 (Q/DQ) against fp32: proximity IoU per plane and detector mAP@0.5, on the CPU (onnxruntime runs Q/DQ).

    python benchmarks/bench_int8.py [--quantize] [--synthetic-frames 200] [--detector-frames 300]
                                    [--middlebury ../shared/data/stereo] [--json out.json]

--quantize first re-makes the shipped int8 models from the current fp32 ones (after a retraining): it writes
calibration bags with `dla-perception make-bag` from training-range seeds (CALIBRATION_SEEDS, never the
evaluation seeds) and runs `dla-perception quantize` on models/proximity/head.onnx and
models/detector/detector.onnx. Then both precisions go through the real pipelines (ProximityPipeline and
DetectionPipeline on the EngineManager) exactly as training/proximity/evaluate.py and
training/detector/evaluate.py measure them: held-out synthetic frames (seeds from 1 000 000) and, for the
proximity head, the Middlebury scenes (evaluation only). Prints one JSON object with both sets of figures,
the drops and whether each goal (IoU drop <= 0.01 at every plane, mAP drop <= 0.01) is met.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CALIBRATION_SEEDS = (100, 200, 300, 400)  # training range (proximity 0-3999, detector 0-8999)
CALIBRATION_FRAMES_PER_BAG = 16
GOAL_DROP = 0.01
PROXIMITY = REPO / "models" / "proximity"
DETECTOR = REPO / "models" / "detector"


def quantize_shipped(work: Path, frames: int) -> dict:
    """Calibration bags from training-range seeds, then `dla-perception quantize` on both shipped models."""
    cli = [sys.executable, "-m", "dla_perception.tools.cli"]
    bags = work / "calibration"
    bags.mkdir()
    for seed in CALIBRATION_SEEDS:
        subprocess.run(
            [
                *cli,
                "make-bag",
                str(bags / f"seed{seed}"),
                "--frames",
                str(CALIBRATION_FRAMES_PER_BAG),
                "--seed",
                str(seed),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    summaries = {}
    for name, model, out in (
        ("proximity_head", PROXIMITY / "head.onnx", PROXIMITY / "head_int8.onnx"),
        ("detector", DETECTOR / "detector.onnx", DETECTOR / "detector_int8.onnx"),
    ):
        done = subprocess.run(
            [
                *cli,
                "quantize",
                str(model),
                "--calibration",
                str(bags),
                "--out",
                str(out),
                "--frames",
                str(frames),
                "--force",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        summaries[name] = json.loads(done.stdout)
    return summaries


def _run_json(command: list[str]) -> dict:
    """One evaluation in its own process (the evaluators fork renderers; a fresh process is always safe)."""
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout)


def proximity_figures(synthetic_frames: int, middlebury: Path | None, work: Path) -> dict:
    int8 = work / "proximity_int8"
    int8.mkdir()
    (int8 / "features.onnx").symlink_to(PROXIMITY / "features.onnx")
    (int8 / "head.onnx").symlink_to(PROXIMITY / "head_int8.onnx")
    result: dict = {}
    for label, folder in (("fp32", PROXIMITY), ("int8", int8)):
        command = [
            sys.executable,
            "-m",
            "training.proximity.evaluate",
            "--models",
            str(folder),
            "--synthetic-frames",
            str(synthetic_frames),
        ]
        if middlebury is not None:
            command += ["--middlebury", str(middlebury)]
        result[label] = _run_json(command)
    drops: dict = {}
    if synthetic_frames:
        fp32, int8_iou = result["fp32"]["synthetic"]["iou"], result["int8"]["synthetic"]["iou"]
        drops["synthetic_iou_drop"] = [round(a - b, 4) for a, b in zip(fp32, int8_iou, strict=True)]
    if middlebury is not None:
        fp32_scenes, int8_scenes = (
            result["fp32"]["middlebury"]["scenes"],
            result["int8"]["middlebury"]["scenes"],
        )
        planes = range(len(result["fp32"]["middlebury"]["fractions"]))
        drops["middlebury_mean_iou_drop"] = [
            round(
                sum(fp32_scenes[n]["iou"][i] - int8_scenes[n]["iou"][i] for n in fp32_scenes)
                / len(fp32_scenes),
                4,
            )
            for i in planes
        ]
        drops["middlebury_worst_scene_drop"] = round(
            max(fp32_scenes[n]["iou"][i] - int8_scenes[n]["iou"][i] for n in fp32_scenes for i in planes), 4
        )
    goal_values = drops.get("synthetic_iou_drop", []) + drops.get("middlebury_mean_iou_drop", [])
    result["drops"] = drops
    result["goal_met"] = all(drop <= GOAL_DROP for drop in goal_values)
    return result


def detector_figures(frames: int) -> dict:
    evaluate = [sys.executable, str(REPO / "training" / "detector" / "evaluate.py"), "--frames", str(frames)]
    fp32 = _run_json([*evaluate, "--model", str(DETECTOR / "detector.yaml")])
    int8 = _run_json([*evaluate, "--model", str(DETECTOR / "detector_int8.yaml")])
    drop = round(fp32["map50"] - int8["map50"], 4)
    return {"fp32": fp32, "int8": int8, "map50_drop": drop, "goal_met": drop <= GOAL_DROP}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quantize", action="store_true", help="re-make the int8 models first (see above)")
    parser.add_argument("--calibration-frames", type=int, default=64)
    parser.add_argument("--synthetic-frames", type=int, default=200)
    parser.add_argument("--detector-frames", type=int, default=300)
    parser.add_argument("--middlebury", type=Path, default=REPO.parent / "shared" / "data" / "stereo")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    middlebury = args.middlebury if (args.middlebury / "scenes.json").is_file() else None
    started = time.time()
    result: dict = {"command": " ".join(sys.argv), "middlebury": str(middlebury) if middlebury else None}
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as work:
        if args.quantize:
            result["quantized"] = quantize_shipped(Path(work), args.calibration_frames)
        result["proximity"] = proximity_figures(args.synthetic_frames, middlebury, Path(work))
        if args.detector_frames:
            result["detector"] = detector_figures(args.detector_frames)
    result["seconds"] = round(time.time() - started, 1)
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
