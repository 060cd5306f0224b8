"""Train the project's detector on synthetic street scenes and export it as models/detector/detector.onnx.

    python training/detector/train.py --out /tmp/detector [--train-frames 9000] [--train-seconds 330]

Steps: render `--train-frames` independent scenes (seeds train-seed-start ..) with
dla_perception.synthetic in a process pool, place them in the network input with the pipeline's own
resize code, train with a wall-clock budget (cosine learning rate over the budget), fold BatchNorm, export
ONNX (opset 17, static 1x3x480x640), write detector.yaml and labels.txt beside it and a train_log.json.
PyTorch is needed here only (the `training` extra); the shipped model runs without it.
Evaluate with training/detector/evaluate.py, on seeds never used here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dla_perception.models.detection_description import InputDescription  # noqa: E402
from dla_perception.models.detection_preprocess import resize_image  # noqa: E402
from dla_perception.models.image import to_rgb  # noqa: E402
from dla_perception.synthetic.scene import OBSTACLE_CLASSES, generate_frame  # noqa: E402

NET_WIDTH, NET_HEIGHT = 640, 480
STRIDES = (8, 16, 32)
NETWORK_INPUT = InputDescription(name="images", width=NET_WIDTH, height=NET_HEIGHT, color="rgb",
                                 scale=1 / 255, resize="letterbox_center", pad_value=114)
# Objects go to the levels whose size range holds sqrt(width * height) (network pixels); ranges overlap.
# The geometric mean keeps thin tall objects (posts) on a fine grid, where their width can be resolved.
LEVEL_SIZE_RANGES = {8: (0, 48), 16: (24, 128), 32: (80, 1e9)}
# Target channels per cell: dx, dy, log w/s, log h/s, positive, class id, gt x1, y1, x2, y2
TARGET_CHANNELS = 10


def render(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic frame in the network input: (HxWx3 uint8 RGB, boxes [N, 4] net px, classes [N])."""
    frame = generate_frame(seed)
    placed, transform = resize_image(to_rgb(frame.left, "rgb8"), NETWORK_INPUT)
    boxes = np.array([o.box for o in frame.objects], dtype=np.float64).reshape(-1, 4)
    classes = np.array([o.class_id for o in frame.objects], dtype=np.int64)
    return placed, transform.to_network(boxes).astype(np.float32), classes


def grid_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre x, centre y and stride of every cell, levels in STRIDES order, row by row."""
    xs, ys, ss = [], [], []
    for stride in STRIDES:
        rows, cols = np.meshgrid(np.arange(NET_HEIGHT // stride), np.arange(NET_WIDTH // stride),
                                 indexing="ij")
        xs.append((cols.reshape(-1) + 0.5) * stride)
        ys.append((rows.reshape(-1) + 0.5) * stride)
        ss.append(np.full(rows.size, stride, dtype=np.float64))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)


CELL_X, CELL_Y, CELL_STRIDE = grid_cells()


def build_targets(boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[TARGET_CHANNELS, cells] for one image: centre-region positives, smallest object wins a cell."""
    target = np.zeros((TARGET_CHANNELS, CELL_X.size), dtype=np.float32)
    target[5] = -1
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for index in np.argsort(-areas):  # largest first, so smaller objects overwrite shared cells
        x1, y1, x2, y2 = boxes[index]
        w, h = x2 - x1, y2 - y1
        if w < 1 or h < 1:
            continue
        cx, cy, size = (x1 + x2) / 2, (y1 + y2) / 2, float(np.sqrt(w * h))
        level_ok = np.zeros(CELL_X.size, dtype=bool)
        for stride, (low, high) in LEVEL_SIZE_RANGES.items():
            if low <= size <= high:
                level_ok |= CELL_STRIDE == stride
        radius_x = np.maximum(0.25 * w, 0.5 * CELL_STRIDE)
        radius_y = np.maximum(0.25 * h, 0.5 * CELL_STRIDE)
        positive = level_ok & (np.abs(CELL_X - cx) <= radius_x) & (np.abs(CELL_Y - cy) <= radius_y)
        cells = np.flatnonzero(positive)
        stride = CELL_STRIDE[cells]
        target[0, cells] = (cx - CELL_X[cells]) / stride
        target[1, cells] = (cy - CELL_Y[cells]) / stride
        target[2, cells] = np.log(w / stride)
        target[3, cells] = np.log(h / stride)
        target[4, cells] = 1.0
        target[5, cells] = classes[index]
        target[6:10, cells] = np.array([x1, y1, x2, y2], dtype=np.float32)[:, None]
    return target


def generate(seeds: list[int], workers: int) -> tuple[np.ndarray, np.ndarray, list]:
    start = time.time()
    images, targets, annotations = [], [], []
    with get_context("fork").Pool(workers) as pool:
        for done, (image, boxes, classes) in enumerate(pool.imap(render, seeds, chunksize=4), 1):
            images.append(image)
            targets.append(build_targets(boxes, classes))
            annotations.append((boxes, classes))
            if done % 500 == 0:
                print(f"  rendered {done}/{len(seeds)} frames in {time.time() - start:.0f} s", flush=True)
    return np.stack(images), np.stack(targets), annotations


def giou_loss(pred, target):
    import torch

    x1 = torch.maximum(pred[:, 0], target[:, 0])
    y1 = torch.maximum(pred[:, 1], target[:, 1])
    x2 = torch.minimum(pred[:, 2], target[:, 2])
    y2 = torch.minimum(pred[:, 3], target[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_p + area_t - inter + 1e-7
    iou = inter / union
    hull = ((torch.maximum(pred[:, 2], target[:, 2]) - torch.minimum(pred[:, 0], target[:, 0]))
            * (torch.maximum(pred[:, 3], target[:, 3]) - torch.minimum(pred[:, 1], target[:, 1])) + 1e-7)
    return (1 - iou + (hull - union) / hull), iou


def flip_batch(images, targets, grids):
    """Mirror images and their per-cell targets left-right (exact: the input width is a multiple of 32)."""
    import torch

    pieces, offset = [], 0
    for rows, cols in grids:
        level = targets[:, :, offset:offset + rows * cols].reshape(-1, TARGET_CHANNELS, rows, cols)
        pieces.append(level.flip(-1).reshape(-1, TARGET_CHANNELS, rows * cols))
        offset += rows * cols
    flipped = torch.cat(pieces, dim=2)
    flipped[:, 0] = -flipped[:, 0]
    x1 = flipped[:, 6].clone()
    flipped[:, 6] = NET_WIDTH - flipped[:, 8]
    flipped[:, 8] = NET_WIDTH - x1
    return images.flip(-1), flipped


def train(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F
    from model import Detector, fuse_batchnorm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.torch_seed)
    device = torch.device(args.device)
    seeds = list(range(args.train_seed_start, args.train_seed_start + args.train_frames))
    print(f"rendering {len(seeds)} training frames (seeds {seeds[0]}..{seeds[-1]}) "
          f"with {args.workers} workers", flush=True)
    t0 = time.time()
    images_np, targets_np, annotations = generate(seeds, args.workers)
    render_s = time.time() - t0
    objects = sum(len(c) for _, c in annotations)
    print(f"rendered in {render_s:.0f} s: {objects} objects, "
          f"{int(targets_np[:, 4].sum())} positive cells", flush=True)

    train_seconds = args.train_seconds
    if args.total_seconds:  # keep rendering + training inside a fixed wall-clock budget
        train_seconds = max(30.0, min(train_seconds, args.total_seconds - render_s))
    print(f"training for {train_seconds:.0f} s", flush=True)

    images = torch.from_numpy(images_np).to(device)  # N, H, W, 3 uint8
    targets = torch.from_numpy(targets_np).to(device)
    cell_x = torch.from_numpy(CELL_X).float().to(device)
    cell_y = torch.from_numpy(CELL_Y).float().to(device)
    cell_s = torch.from_numpy(CELL_STRIDE).float().to(device)
    grids = [(NET_HEIGHT // s, NET_WIDTH // s) for s in STRIDES]

    classes = len(OBSTACLE_CLASSES)
    model = Detector(classes).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    use_amp = device.type == "cuda"
    start, step, history = time.time(), 0, []
    generator = torch.Generator(device="cpu").manual_seed(args.torch_seed)
    while True:
        elapsed = time.time() - start
        if elapsed >= train_seconds or (args.max_steps and step >= args.max_steps):
            break
        progress = elapsed / train_seconds
        warmup = min(1.0, (step + 1) / 200)
        lr = args.lr * warmup * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, images.shape[0], (args.batch,), generator=generator).to(device)
        batch = images[index].permute(0, 3, 1, 2).float().div_(255)
        target = targets[index]
        if step % 2 == 1:
            batch, target = flip_batch(batch, target, grids)
        # photometric jitter: per-image gain and offset
        gain = 1 + 0.2 * (torch.rand(args.batch, 1, 1, 1, device=device) - 0.5)
        offset = 0.06 * (torch.rand(args.batch, 1, 1, 1, device=device) - 0.5)
        batch = (batch * gain + offset).clamp_(0, 1).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            outputs = model(batch)
        pred = torch.cat([o.float().flatten(2) for o in outputs], dim=2)  # B, 5 + C, cells
        positive = target[:, 4] > 0
        num_pos = positive.sum().clamp(min=1).float()
        obj_loss = F.binary_cross_entropy_with_logits(pred[:, 4], target[:, 4], reduction="sum") / num_pos
        p = pred.permute(0, 2, 1)[positive]  # P, 5 + C
        t = target.permute(0, 2, 1)[positive]  # P, TARGET_CHANNELS
        cls_target = F.one_hot(t[:, 5].long(), classes).float()
        cls_loss = F.binary_cross_entropy_with_logits(p[:, 5:], cls_target, reduction="sum") / num_pos
        stride = cell_s.expand(target.shape[0], -1)[positive]
        cx = cell_x.expand(target.shape[0], -1)[positive] + p[:, 0] * stride
        cy = cell_y.expand(target.shape[0], -1)[positive] + p[:, 1] * stride
        w = torch.exp(p[:, 2].clamp(max=8)) * stride
        h = torch.exp(p[:, 3].clamp(max=8)) * stride
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
        giou, iou = giou_loss(boxes, t[:, 6:10])
        box_loss = giou.sum() / num_pos
        l1_loss = F.l1_loss(p[:, :4], t[:, :4], reduction="sum") / num_pos
        loss = obj_loss + cls_loss + 5.0 * box_loss + l1_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        if step % 100 == 0:
            record = {"step": step, "s": round(time.time() - start, 1), "lr": round(lr, 6),
                      "loss": round(loss.item(), 4), "obj": round(obj_loss.item(), 4),
                      "cls": round(cls_loss.item(), 4), "giou": round(box_loss.item(), 4),
                      "mean_iou": round(iou.mean().item(), 4)}
            history.append(record)
            print(json.dumps(record), flush=True)
        step += 1
    train_s = time.time() - start
    print(f"trained {step} steps in {train_s:.0f} s", flush=True)
    torch.save(model.state_dict(), out / "detector.pt")
    export(model, out, fuse_batchnorm)
    log = {"train_frames": args.train_frames, "train_seeds": [seeds[0], seeds[-1]], "steps": step,
           "batch": args.batch, "lr": args.lr, "torch_seed": args.torch_seed, "render_s": round(render_s, 1),
           "train_s": round(train_s, 1), "device": torch.cuda.get_device_name() if use_amp else "cpu",
           "torch": torch.__version__, "objects": objects, "history": history}
    (out / "train_log.json").write_text(json.dumps(log, indent=1))


def export(model, out: Path, fuse_batchnorm) -> None:
    import torch

    model = model.float().to(memory_format=torch.contiguous_format).cpu().eval()
    fuse_batchnorm(model)
    model.export_mode = True
    dummy = torch.zeros(1, 3, NET_HEIGHT, NET_WIDTH)
    names = [f"stride{s}" for s in STRIDES]
    path = out / "detector.onnx"
    kwargs = dict(input_names=["images"], output_names=names, opset_version=17, do_constant_folding=True)
    try:
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, **kwargs)
    except Exception as exc:  # the TorchScript exporter may be gone in newer PyTorch
        print(f"TorchScript export failed ({exc}); trying the dynamo exporter", flush=True)
        torch.onnx.export(model, (dummy,), str(path), dynamo=True, external_data=False, **kwargs)
    (out / "labels.txt").write_text("\n".join(OBSTACLE_CLASSES) + "\n")
    (out / "detector.yaml").write_text(DESCRIPTION)
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)


DESCRIPTION = f"""\
# The project's detector (training/detector/, MODEL_CARD.md): synthetic street obstacles.
onnx: detector.onnx
labels: labels.txt
input: {{name: images, width: {NET_WIDTH}, height: {NET_HEIGHT}, color: rgb, scale: 0.00392156862745098,
        mean: [0, 0, 0], std: [1, 1, 1], resize: letterbox_center, pad_value: 114}}
output: {{format: native, strides: [{", ".join(map(str, STRIDES))}], score_threshold: 0.3, iou_threshold: 0.5,
         max_detections: 100}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True,
                        help="folder for detector.onnx, detector.yaml, labels.txt, logs")
    parser.add_argument("--train-frames", type=int, default=9000)
    parser.add_argument("--train-seed-start", type=int, default=0)
    parser.add_argument("--train-seconds", type=float, default=330.0, help="wall-clock training budget")
    parser.add_argument("--total-seconds", type=float, default=0.0,
                        help="cap rendering + training together (0: off); training gets what is left")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="stop earlier after this many steps (0: off)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--torch-seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--device", default="cuda")
    train(parser.parse_args())


if __name__ == "__main__":
    main()
