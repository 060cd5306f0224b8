"""Train the proximity network on synthetic scenes, export it to ONNX, and score it on held-out frames.

    python -m training.proximity.train --out OUT_DIR [--train-frames 6000 --steps 6000 --seed 0]

One command does everything a GPU lease is for: render the frames (all CPU cores), train, export
features.onnx/head.onnx, and measure near-mask IoU on held-out seeds through the real ProximityPipeline.

Each sample is a stereo pair and K planes. A plane is a per-row disparity threshold: mostly constant
(a fronto-parallel plane, the run-time case: half log-uniform over the range, half drawn around the
ground truth so boundaries are well sampled), sometimes a tilted floor-like surface (what the pipeline's
ground handling asks). Label: near = ground-truth disparity > plane disparity; unknown pixels ignored.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from training.proximity.dataset import HELD_OUT_SEED_BASE, NET_HEIGHT, NET_WIDTH, concatenate, render_frames
from training.proximity.network import FEATURE_CHANNELS, FEATURE_STRIDE, FeatureNet, PlaneHead, shift_features

MIN_DISPARITY, MAX_DISPARITY = 1.5, 80.0  # network pixels: the range planes are drawn from
VALIDATION_SEED_BASE = 2_000_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-frames", type=int, default=3000, help="rendered at 320x240 directly")
    parser.add_argument("--full-frames", type=int, default=1000, help="rendered at 640x480, then shrunk")
    parser.add_argument("--render-minutes", type=float, default=2.0, help="stop rendering past this")
    parser.add_argument("--val-frames", type=int, default=64)
    parser.add_argument("--eval-frames", type=int, default=200, help="held-out frames scored after export")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--max-minutes", type=float, default=6.0, help="anneal and stop early past this")
    parser.add_argument("--batch", type=int, default=24, help="stereo pairs per step")
    parser.add_argument("--planes", type=int, default=4, help="planes per pair per step")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


class Batcher:
    """Random augmented batches from frames held on the device."""

    def __init__(self, frames, device: str, generator: torch.Generator) -> None:
        self.left = torch.from_numpy(frames.left).to(device)
        self.right = torch.from_numpy(frames.right).to(device)
        self.disparity = torch.from_numpy(frames.disparity).to(device)
        self.device = device
        self.generator = generator

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=self.device, generator=self.generator)

    def batch(self, size: int, augment: bool = True):
        index = torch.randint(0, len(self.left), (size,), device=self.device, generator=self.generator)
        left = self.left[index].permute(0, 3, 1, 2).float() / 255.0
        right = self.right[index].permute(0, 3, 1, 2).float() / 255.0
        disparity = self.disparity[index].unsqueeze(1)
        if augment:
            left, right, disparity = self._zoom(left, right, disparity)
            left, right = self._photometric(left), self._photometric(right)
        return left, right, disparity

    def _zoom(self, left, right, disparity):
        """Half the samples: a random crop (60-100 % of the frame) blown up to full size; disparity scales."""
        n = left.shape[0]
        scale = torch.where(self._rand(n) < 0.5, 0.6 + 0.4 * self._rand(n), torch.ones(n, device=self.device))
        cx = (1 - scale) * (2 * self._rand(n) - 1)
        cy = (1 - scale) * (2 * self._rand(n) - 1)
        theta = torch.zeros(n, 2, 3, device=self.device)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = scale, scale, cx, cy
        grid = F.affine_grid(theta, list(left.shape), align_corners=False)
        left = F.grid_sample(left, grid, mode="bilinear", align_corners=False)
        right = F.grid_sample(right, grid, mode="bilinear", align_corners=False)
        disparity = F.grid_sample(disparity, grid, mode="nearest", align_corners=False) / scale.view(
            n, 1, 1, 1
        )
        return left, right, disparity

    def _photometric(self, image):
        """Independent per-view gain, colour balance, offset, gamma and noise: cameras never match."""
        n = image.shape[0]
        gain = 0.7 + 0.6 * self._rand(n, 1, 1, 1)
        colour = 0.9 + 0.2 * self._rand(n, 3, 1, 1)
        offset = 0.16 * self._rand(n, 1, 1, 1) - 0.08
        gamma = 0.75 + 0.5 * self._rand(n, 1, 1, 1)
        noise = (
            0.03
            * self._rand(n, 1, 1, 1)
            * torch.randn(image.shape, device=self.device, generator=self.generator)
        )
        image = (image * gain * colour + offset).clamp(0, 1) ** gamma + noise
        return image.clamp(0, 1)


def sample_planes(disparity: torch.Tensor, planes: int, generator: torch.Generator) -> torch.Tensor:
    """Per-row plane disparities [N, K, H] in network pixels for ground truth disparity [N, 1, H, W]."""
    n, _, h, w = disparity.shape
    device = disparity.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=generator)

    log_lo, log_hi = math.log(MIN_DISPARITY), math.log(MAX_DISPARITY)
    uniform = torch.exp(log_lo + (log_hi - log_lo) * rand(n, planes))
    valid = torch.isfinite(disparity.view(n, -1)) & (disparity.view(n, -1) > 0)
    weights = valid.float() + 1e-6
    picked = torch.multinomial(weights, planes, replacement=True, generator=generator)
    around_truth = torch.nan_to_num(torch.gather(disparity.view(n, -1), 1, picked), nan=10.0)
    around_truth = around_truth * torch.exp(0.15 * torch.randn(n, planes, device=device, generator=generator))
    constant = torch.where(rand(n, planes) < 0.5, uniform, around_truth).clamp(MIN_DISPARITY, MAX_DISPARITY)
    per_row = constant.unsqueeze(-1).expand(n, planes, h).clone()

    # Floor-like planes: zero above a horizon row, growing linearly to a bottom-row disparity below it.
    horizon = h * (-0.3 + 1.0 * rand(n, planes, 1))
    bottom = 8.0 + 52.0 * rand(n, planes, 1)
    rows = torch.arange(h, device=device, dtype=torch.float32).view(1, 1, h)
    floor = bottom * (rows - horizon).clamp(min=0) / (h - 1 - horizon)
    use_floor = (rand(n, planes, 1) < 0.25).expand(n, planes, h)
    return torch.where(use_floor, floor, per_row)


def step_loss(features_net, head, left, right, disparity, plane_rows):
    """Masked binary cross-entropy of the near masks, and the pixel counts (tp, fp, fn) for IoU."""
    n, planes, h = plane_rows.shape
    maps = features_net(torch.cat([left, right]))
    left_maps, right_maps = maps[:n], maps[n:]
    fh = left_maps.shape[2]
    # The shift of feature row r is the plane at the network row its centre sits on.
    centre_rows = (
        ((torch.arange(fh, device=left.device) + 0.5) * FEATURE_STRIDE - 0.5).round().long().clamp(0, h - 1)
    )
    shifts = plane_rows[:, :, centre_rows].reshape(n * planes, fh) / FEATURE_STRIDE
    right_shifted = shift_features(right_maps.repeat_interleave(planes, dim=0), shifts)
    logits = head.logits(left_maps.repeat_interleave(planes, dim=0), right_shifted)
    logits = F.interpolate(logits, size=left.shape[2:], mode="bilinear", align_corners=False)
    logits = logits.view(n, planes, *left.shape[2:])
    valid = torch.isfinite(disparity) & (disparity > 0)
    label = (torch.nan_to_num(disparity, nan=0.0) > plane_rows.unsqueeze(-1)).float()
    valid = valid.expand_as(label)
    loss = F.binary_cross_entropy_with_logits(logits.float(), label, reduction="none")
    loss = (loss * valid).sum() / valid.sum().clamp(min=1)
    predicted = logits > 0
    truth = label > 0.5
    counts = torch.stack(
        [
            (predicted & truth & valid).sum(),
            (predicted & ~truth & valid).sum(),
            (~predicted & truth & valid).sum(),
        ]
    )
    return loss, counts


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    # Training seeds: [seed * 100000, ...) for full-size renders, then the small ones; all < held-out seeds.
    first = args.seed * 100_000
    full_seeds = range(first, first + args.full_frames)
    small_seeds = range(first + args.full_frames, first + args.full_frames + args.train_frames)
    assert small_seeds[-1] < HELD_OUT_SEED_BASE
    deadline = started + 60 * args.render_minutes
    full, full_done = render_frames(
        full_seeds, (640, 480), workers=args.workers, deadline=started + 0.4 * (deadline - started)
    )
    print(f"rendered {len(full_done)} frames at 640x480 in {time.time() - started:.0f} s", flush=True)
    small, small_done = render_frames(
        small_seeds, (NET_WIDTH, NET_HEIGHT), workers=args.workers, deadline=deadline
    )
    frames = concatenate(full, small)
    val_frames, _ = render_frames(
        range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + args.val_frames), (640, 480), workers=args.workers
    )
    print(
        f"rendered {len(full_done)} + {len(small_done)} + {args.val_frames} frames in "
        f"{time.time() - started:.0f} s",
        flush=True,
    )
    train_data = Batcher(frames, args.device, generator)
    val_generator = torch.Generator(device=args.device)
    val_data = Batcher(val_frames, args.device, val_generator)

    features_net = FeatureNet(FEATURE_CHANNELS).to(args.device)
    head = PlaneHead(FEATURE_CHANNELS).to(args.device)
    parameters = list(features_net.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device == "cuda")

    train_started = time.time()
    step = 0
    history = []
    while step < args.steps:
        progress = max(step / args.steps, (time.time() - train_started) / (60 * args.max_minutes))
        if progress >= 1.0:
            break
        warmup = min(1.0, (step + 1) / 200)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup * 0.5 * (1 + math.cos(math.pi * progress))
        features_net.train()
        head.train()
        left, right, disparity = train_data.batch(args.batch)
        plane_rows = sample_planes(disparity, args.planes, generator)
        with autocast:
            loss, _ = step_loss(features_net, head, left, right, disparity, plane_rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 5.0)
        optimizer.step()
        step += 1
        if step % 250 == 0 or step == 1:
            val_iou = validate(features_net, head, val_data, args, autocast)
            elapsed = time.time() - train_started
            history.append(
                {"step": step, "loss": float(loss.detach()), "val_iou": val_iou, "seconds": round(elapsed, 1)}
            )
            print(
                f"step {step} loss {float(loss.detach()):.4f} val IoU {val_iou:.4f} ({elapsed:.0f} s)",
                flush=True,
            )

    train_seconds = time.time() - train_started
    checkpoint = args.out / "proximity.pt"
    torch.save(
        {
            "features": features_net.state_dict(),
            "head": head.state_dict(),
            "channels": FEATURE_CHANNELS,
            "net_height": NET_HEIGHT,
            "net_width": NET_WIDTH,
            "steps": step,
            "args": vars(args) | {"out": str(args.out)},
        },
        checkpoint,
    )

    from training.proximity.export import export_onnx

    export_onnx(features_net, head, args.out, NET_HEIGHT, NET_WIDTH)
    summary = {
        "seed": args.seed,
        "command_args": vars(args) | {"out": str(args.out)},
        "train_seeds_640x480": [full_done[0], full_done[-1]],
        "train_seeds_320x240": [small_done[0], small_done[-1]],
        "render_seconds": round(train_started - started, 1),
        "steps": step,
        "batch": args.batch,
        "planes_per_pair": args.planes,
        "lr": args.lr,
        "train_seconds": round(train_seconds, 1),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "history": history,
    }
    if args.eval_frames:
        from training.proximity.evaluate import evaluate_synthetic

        try:
            summary["held_out"] = evaluate_synthetic(args.out, args.eval_frames, workers=args.workers)
            print(json.dumps(summary["held_out"]), flush=True)
        except Exception as exc:  # the trained model is saved already; report and carry on
            summary["held_out_error"] = repr(exc)
            print(f"held-out evaluation failed: {exc!r}", flush=True)
    summary["total_seconds"] = round(time.time() - started, 1)
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['total_seconds']} s", flush=True)


@torch.no_grad()
def validate(features_net, head, data: Batcher, args, autocast) -> float:
    """Near-mask IoU on validation frames (fixed planes sampling seed), without augmentation."""
    features_net.eval()
    head.eval()
    data.generator.manual_seed(1234)
    counts = torch.zeros(3, device=args.device)
    for _ in range(4):
        left, right, disparity = data.batch(16, augment=False)
        plane_rows = sample_planes(disparity, args.planes, data.generator)
        with autocast:
            _, batch_counts = step_loss(features_net, head, left, right, disparity, plane_rows)
        counts += batch_counts
    tp, fp, fn = counts.tolist()
    return tp / max(tp + fp + fn, 1.0)


if __name__ == "__main__":
    main()
