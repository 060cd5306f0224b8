"""The model card's pictures: near masks of v4 (shipped), v3, v1 and SGBM against the truth, on unseen frames.

    python -m training.proximity.pictures --out docs

Each tile is the left image in grey with the mask at one plane painted over it: green where the answer is
right ("nearer", and it is), red for a false alarm (said nearer, is not), blue for a miss (is nearer, not
said), nothing where both say "not nearer" or the truth is unknown. Writes proximity_heldout.jpg (held-out
family: plain and upside down), proximity_middlebury.jpg and proximity_failures.jpg.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from training.proximity.evaluate import (
    NOMINAL_FX,
    load_middlebury,
    nominal_projections,
    open_pipeline,
    sgbm_disparity,
)

REPO = Path(__file__).resolve().parents[2]
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 88]
SHIPPED = "v4 (shipped)"
MODELS = {
    SHIPPED: REPO / "models" / "proximity",
    "v3": REPO / "models" / "proximity" / "v3",
    "v1": REPO / "models" / "proximity" / "v1",
}


def overlay(left_rgb: np.ndarray, predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(left_rgb, cv2.COLOR_RGB2GRAY)
    out = np.repeat(grey[..., None] // 2 + 40, 3, axis=2).astype(np.uint8)
    for mask, colour in (
        (predicted & truth, (40, 200, 40)),
        (predicted & ~truth, (230, 40, 40)),
        (~predicted & truth, (60, 90, 240)),
    ):
        out[mask & valid] = (0.35 * out[mask & valid] + 0.65 * np.array(colour)).astype(np.uint8)
    return out


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
    return tile


def _answers(pipelines, left, right, encoding, p_left, p_right, planes_m, plane_index, sgbm_max, plane_px):
    tiles = []
    for name, pipeline in pipelines.items():
        result = pipeline.process(left, right, encoding, p_left, p_right, planes_m, planes_m[0])
        tiles.append((name, result.near_masks[plane_index]))
    bgr = (left, right) if encoding == "bgr8" else (left[:, :, ::-1].copy(), right[:, :, ::-1].copy())
    tiles.append(("SGBM", sgbm_disparity(*bgr, sgbm_max) > plane_px))
    return tiles


def _row(left_rgb, tiles, truth, valid, title, width=320):
    scale = width / left_rgb.shape[1]
    size = (width, int(round(left_rgb.shape[0] * scale)))
    cells = [_label(cv2.resize(left_rgb, size, interpolation=cv2.INTER_AREA), title)]
    for name, mask in tiles:
        cells.append(
            _label(
                cv2.resize(overlay(left_rgb, mask, truth, valid), size, interpolation=cv2.INTER_AREA), name
            )
        )
    return np.hstack(cells)


def _example(path: Path, camera) -> None:
    """Left image, ground-truth and the shipped model's level images at 1 / 2 / 4 m, the alert mask at 2 m
    with the ground model on (docs/proximity.md's first picture)."""
    import math

    from dla_perception.models.proximity import GroundModel, ProximityPipeline
    from dla_perception.synthetic.scene import PlantedObject, generate_frame

    frame = generate_frame(
        1_000_003,
        camera,
        camera_height_m=0.5,
        pitch_deg=5.0,
        planted=[PlantedObject("person", 1.6, -0.4), PlantedObject("bin", 3.0, 0.9)],
    )
    manager, _ = open_pipeline(MODELS[SHIPPED], threads=1)
    with manager:
        pipeline = ProximityPipeline(manager, ground=GroundModel(0.5, math.radians(5.0), clearance_m=0.1))
        result = pipeline.process(
            frame.left,
            frame.right,
            "rgb8",
            camera.projection_left(),
            camera.projection_right(),
            (1.0, 2.0, 4.0),
            2.0,
        )
    truth = np.zeros(frame.disparity.shape, np.float32)
    for plane in np.sort(result.planes_px):  # ascending disparity: the nearest plane passed wins
        truth[frame.disparity > plane] = plane
    scale = 255.0 / float(result.planes_px.max())
    tiles = [frame.left]
    for image in (truth, result.level_image, result.alert_mask.astype(np.float32) / scale):
        grey = np.clip(image * scale, 0, 255).astype(np.uint8)
        tiles.append(np.repeat(grey[..., None], 3, axis=2))
    labels = ["left", "truth: nearer than 4 / 2 / 1 m", "v4: the same", "alert mask, 2 m, floor removed"]
    row = np.hstack(
        [
            _label(cv2.resize(t, (320, 240), interpolation=cv2.INTER_AREA), n)
            for t, n in zip(tiles, labels, strict=True)
        ]
    )
    cv2.imwrite(str(path), row[:, :, ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--middlebury", type=Path, default=REPO.parent / "shared" / "data" / "stereo")
    args = parser.parse_args()
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.heldout import heldout_frame
    from dla_perception.synthetic.scene import PlantedObject, generate_frame

    camera = StereoCamera()
    opened = {name: open_pipeline(path, threads=1) for name, path in MODELS.items()}
    pipelines = {name: pipeline for name, (_, pipeline) in opened.items()}
    for manager, _ in opened.values():
        manager.__enter__()
    try:
        planes_m = (1.0, 1.5, 2.5, 4.0)
        p_left, p_right = camera.projection_left(), camera.projection_right()
        plane_px = float(camera.disparity_px(1.5))
        rows = []
        for seed, flip in ((1, False), (5, False), (5, True), (12, False)):
            sample = heldout_frame(seed)
            sample = sample.upside_down() if flip else sample
            truth, valid = sample.disparity > plane_px, sample.disparity > 0
            tiles = _answers(
                pipelines, sample.left, sample.right, "rgb8", p_left, p_right, planes_m, 1, 128, plane_px
            )
            rows.append(
                _row(
                    sample.left,
                    tiles,
                    truth,
                    valid,
                    f"held-out {seed}{' upside down' if flip else ''}, 1.5 m",
                )
            )
        cv2.imwrite(str(args.out / "proximity_heldout.jpg"), np.vstack(rows)[:, :, ::-1], JPEG)

        rows = []
        if (args.middlebury / "scenes.json").is_file():
            for scene, left, right, disparity, valid in load_middlebury(args.middlebury):
                if scene not in ("teddy", "wood2", "adirondack_quarter"):
                    continue
                height, width = disparity.shape
                planes_px = np.array([0.25, 0.5, 0.75]) * float(disparity[valid].max())
                pl, pr = nominal_projections(NOMINAL_FX, (width - 1) / 2, (height - 1) / 2)
                planes = tuple(NOMINAL_FX * 0.1 / planes_px)  # descending disparity = ascending metres
                sgbm_max = 16 * int(np.ceil(1.2 * planes_px[-1] / 0.75 / 16))
                # index 0 of the pipeline's ascending planes in metres is the 75 % disparity plane
                tiles = _answers(pipelines, left, right, "bgr8", pl, pr, planes, 0, sgbm_max, planes_px[2])
                rgb = left[:, :, ::-1].copy()
                rows.append(_row(rgb, tiles, disparity > planes_px[2], valid, f"{scene}, 75 % plane"))
            width = max(r.shape[1] for r in rows)
            cv2.imwrite(str(args.out / "proximity_middlebury.jpg"), np.vstack(rows)[:, :width, ::-1], JPEG)

        box = generate_frame(
            7, camera, camera_height_m=0.5, pitch_deg=5.0, clutter=False, planted=[PlantedObject("box", 1.5)]
        )
        plane_px = float(camera.disparity_px(2.0))
        tiles = _answers(
            pipelines, box.left, box.right, "rgb8", p_left, p_right, (1.0, 2.0, 4.0), 1, 128, plane_px
        )
        rows = [_row(box.left, tiles, box.disparity > plane_px, box.disparity > 0, "street, 2 m")]
        street = generate_frame(1_000_004, camera)
        tiles = _answers(
            pipelines,
            street.left,
            street.right,
            "rgb8",
            p_left,
            p_right,
            (1.0, 2.0, 4.0),
            0,
            128,
            float(camera.disparity_px(1.0)),
        )
        rows.append(
            _row(
                street.left,
                tiles,
                street.disparity > camera.disparity_px(1.0),
                street.disparity > 0,
                "street 1000004, 1 m",
            )
        )
        cv2.imwrite(str(args.out / "proximity_failures.jpg"), np.vstack(rows)[:, :, ::-1], JPEG)
        _example(args.out / "proximity_example.png", camera)
    finally:
        for manager, _ in opened.values():
            manager.__exit__(None, None, None)


if __name__ == "__main__":
    main()
