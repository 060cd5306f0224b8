"""Train the proximity network (v4) on four scene sources, export it to ONNX, score it on held-out frames.

    python -m training.proximity.train --out OUT_DIR [--minutes 8.5 --workers 16 --seed 0]

One command does everything a GPU lease is for: render frames on every CPU core *while* training on the
GPU (training starts once --warmup-frames are there and keeps taking the frames that arrive), export
features.onnx/head.onnx, and measure the held-out figures through the real ProximityPipeline. The whole
command keeps to --minutes: training stops in time for the export and the evaluation, and a checkpoint is
written every --checkpoint-minutes, so that a run cut short still leaves a model (`--init` starts from one).

Each sample is a stereo pair and K planes. A plane is a per-row disparity threshold: mostly constant (a
fronto-parallel plane, the run-time case: half log-uniform over the range, half drawn around the ground
truth so boundaries are well sampled), sometimes a tilted floor-like surface (what the pipeline's ground
handling asks). Label: near = ground-truth disparity > plane disparity; unknown pixels ignored.
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

from training.proximity.augment import Batcher
from training.proximity.dataset import (
    NET_HEIGHT,
    NET_WIDTH,
    SOURCES,
    VALIDATION_SEED_BASE,
    FrameStore,
    make_jobs,
    render_frames,
)
from training.proximity.network import (
    FEATURE_CHANNELS,
    FEATURE_STRIDE,
    GUIDE_CHANNELS,
    OUTPUT_STRIDE,
    FeatureNet,
    PlaneHead,
    load_matching,
    parameter_count,
    shift_features,
)

MIN_DISPARITY, MAX_DISPARITY = 1.0, 96.0  # network pixels: the range planes are drawn from


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--minutes", type=float, default=8.5, help="the whole command, export and eval included"
    )
    parser.add_argument("--reserve-minutes", type=float, default=1.3, help="kept for export and evaluation")
    parser.add_argument(
        "--frames", type=int, default=40000, help="jobs queued for rendering (an upper bound)"
    )
    parser.add_argument("--warmup-frames", type=int, default=1200, help="frames rendered before step 1")
    parser.add_argument("--val-frames", type=int, default=96)
    parser.add_argument("--eval-frames", type=int, default=40, help="held-out frames scored after export")
    parser.add_argument("--steps", type=int, default=12000, help="an upper bound; time usually ends it")
    parser.add_argument("--batch", type=int, default=32, help="stereo pairs per step")
    parser.add_argument("--planes", type=int, default=4, help="planes per pair per step")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--checkpoint-minutes", type=float, default=1.5)
    parser.add_argument("--init", type=Path, default=None, help="start from this checkpoint's weights")
    parser.add_argument(
        "--guide-radius",
        type=int,
        default=2,
        help="also match the guide maps at 1/2 over +-R half-resolution px (2: v4, shipped; 1: v3; 0: v2)",
    )
    parser.add_argument("--refine-channels", type=int, default=12, help="width of the 1/2 refinement")
    parser.add_argument(
        "--fine-kernel", type=int, default=1, choices=(1, 3), help="kernel of the last 1/2 layer (v2's: 3)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def sample_planes(disparity: torch.Tensor, planes: int, generator: torch.Generator) -> torch.Tensor:
    """Per-row plane disparities [N, K, H] in network pixels for ground truth disparity [N, 1, H, W]."""
    n, _, h, w = disparity.shape
    device = disparity.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=generator)

    log_lo, log_hi = math.log(MIN_DISPARITY), math.log(MAX_DISPARITY)
    uniform = torch.exp(log_lo + (log_hi - log_lo) * rand(n, planes))
    flat = disparity.view(n, -1)
    valid = torch.isfinite(flat) & (flat > 0.01)  # the sky's token disparity is no boundary to sample
    picked = torch.multinomial(valid.float() + 1e-6, planes, replacement=True, generator=generator)
    around_truth = torch.nan_to_num(torch.gather(flat, 1, picked), nan=10.0)
    around_truth = around_truth * torch.exp(0.15 * torch.randn(n, planes, device=device, generator=generator))
    constant = torch.where(rand(n, planes) < 0.5, uniform, around_truth).clamp(MIN_DISPARITY, MAX_DISPARITY)
    per_row = constant.unsqueeze(-1).expand(n, planes, h).clone()
    # Floor-like planes: zero above a horizon row, growing linearly to a bottom-row disparity below it.
    horizon = h * (-0.3 + 1.0 * rand(n, planes, 1))
    bottom = 8.0 + 52.0 * rand(n, planes, 1)
    rows = torch.arange(h, device=device, dtype=torch.float32).view(1, 1, h)
    floor = bottom * (rows - horizon).clamp(min=0) / (h - 1 - horizon)
    use_floor = (rand(n, planes, 1) < 0.2).expand(n, planes, h)
    return torch.where(use_floor, floor, per_row)


def row_shifts(plane_rows: torch.Tensor, rows: int, stride: int) -> torch.Tensor:
    """[N*K, rows] shifts of a map `stride` network px apart: each map row takes the plane at the network
    row its centre sits on."""
    n, planes, h = plane_rows.shape
    centre_rows = (
        ((torch.arange(rows, device=plane_rows.device) + 0.5) * stride - 0.5).round().long().clamp(0, h - 1)
    )
    return plane_rows[:, :, centre_rows].reshape(n * planes, rows) / stride


def step_loss(features_net, head, left, right, disparity, plane_rows):
    """Masked binary cross-entropy of the near masks, and the pixel counts (tp, fp, fn) for IoU."""
    n, planes, h = plane_rows.shape
    maps, guide = features_net(torch.cat([left, right]))
    left_maps, right_maps = maps[:n], maps[n:]
    shifts = row_shifts(plane_rows, left_maps.shape[2], FEATURE_STRIDE)
    right_shifted = shift_features(right_maps.repeat_interleave(planes, dim=0), shifts)
    right_guide = None
    if head.guide_cost is not None:
        guide_shifts = row_shifts(plane_rows, guide.shape[2], OUTPUT_STRIDE)
        right_guide = shift_features(guide[n:].repeat_interleave(planes, dim=0), guide_shifts)
    logits = head.logits(
        left_maps.repeat_interleave(planes, dim=0),
        right_shifted,
        guide[:n].repeat_interleave(planes, dim=0),
        right_guide,
    )
    logits = F.interpolate(logits, size=left.shape[2:], mode="bilinear", align_corners=False)
    logits = logits.view(n, planes, *left.shape[2:]).float()
    valid = (torch.isfinite(disparity) & (disparity > 0)).expand(n, planes, *left.shape[2:])
    label = (torch.nan_to_num(disparity, nan=0.0) > plane_rows.unsqueeze(-1)).float()
    loss = F.binary_cross_entropy_with_logits(logits, label, reduction="none")
    loss = (loss * valid).sum() / valid.sum().clamp(min=1)
    predicted, truth = logits > 0, label > 0.5
    counts = torch.stack(
        [
            (predicted & truth & valid).sum(),
            (predicted & ~truth & valid).sum(),
            (~predicted & truth & valid).sum(),
        ]
    )
    return loss, counts


@torch.no_grad()
def validate(features_net, head, data: Batcher, planes: int, autocast) -> float:
    """Near-mask IoU on the validation frames (fixed sampling seed), without augmentation."""
    features_net.eval()
    head.eval()
    data.generator.manual_seed(1234)
    counts = torch.zeros(3, device=data.device)
    for _ in range(6):
        left, right, disparity = data.batch(16, augment=False)
        plane_rows = sample_planes(disparity, planes, data.generator)
        with autocast:
            _, batch_counts = step_loss(features_net, head, left, right, disparity, plane_rows)
        counts += batch_counts
    features_net.train()
    head.train()
    tp, fp, fn = counts.tolist()
    return tp / max(tp + fp + fn, 1.0)


def save(path: Path, features_net, head, step: int, args) -> None:
    torch.save(
        {
            "features": features_net.state_dict(),
            "head": head.state_dict(),
            "channels": FEATURE_CHANNELS,
            "guide_channels": GUIDE_CHANNELS,
            "head_architecture": head.architecture(),
            "net_height": NET_HEIGHT,
            "net_width": NET_WIDTH,
            "steps": step,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        },
        path,
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    deadline = started + 60 * args.minutes
    train_deadline = deadline - 60 * args.reserve_minutes
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    val_frames = render_frames(make_jobs(args.val_frames, VALIDATION_SEED_BASE), workers=args.workers)
    store = FrameStore(make_jobs(args.frames, args.seed * 100_000), workers=args.workers)
    print(f"{args.val_frames} validation frames in {time.time() - started:.0f} s", flush=True)
    while store.count < min(args.warmup_frames, args.frames) and store.finished is None:
        time.sleep(0.5)
    warmup_seconds = time.time() - started
    print(f"{store.count} training frames after {warmup_seconds:.0f} s", flush=True)

    data = Batcher(args.frames, NET_HEIGHT, NET_WIDTH, args.device, generator)
    data.add(store.frames(store.count))
    val_data = Batcher(
        len(val_frames), NET_HEIGHT, NET_WIDTH, args.device, torch.Generator(device=args.device)
    )
    val_data.add(val_frames)

    features_net = FeatureNet().to(args.device)
    head = PlaneHead(
        guide_radius=args.guide_radius, refine_channels=args.refine_channels, fine_kernel=args.fine_kernel
    ).to(args.device)
    if args.init is not None:
        state = torch.load(args.init, map_location=args.device, weights_only=False)
        features_net.load_state_dict(state["features"])
        fresh = load_matching(head, state["head"])
        print(f"head from {args.init}; freshly initialised: {fresh or 'nothing'}", flush=True)
    parameters = [p for p in [*features_net.parameters(), *head.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device == "cuda")
    checkpoint = args.out / "proximity.pt"

    train_started = last_save = time.time()
    step = 0
    history = []
    while step < args.steps:
        now = time.time()
        progress = max(step / args.steps, (now - train_started) / max(train_deadline - train_started, 1.0))
        if progress >= 1.0:
            break
        if step % 50 == 0 and store.count > data.count:
            data.add(store.frames(store.count, data.count))
        warmup = min(1.0, (step + 1) / 300)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup * 0.5 * (1 + math.cos(math.pi * progress))
        left, right, disparity = data.batch(args.batch)
        plane_rows = sample_planes(disparity, args.planes, generator)
        with autocast:
            loss, _ = step_loss(features_net, head, left, right, disparity, plane_rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 5.0)
        optimizer.step()
        step += 1
        if step % 500 == 0 or step == 1:
            val_iou = validate(features_net, head, val_data, args.planes, autocast)
            elapsed = time.time() - train_started
            history.append(
                {
                    "step": step,
                    "loss": round(float(loss.detach()), 4),
                    "val_iou": round(val_iou, 4),
                    "seconds": round(elapsed, 1),
                    "frames": data.count,
                }
            )
            print(json.dumps(history[-1]), flush=True)
        if time.time() - last_save > 60 * args.checkpoint_minutes:
            save(checkpoint, features_net, head, step, args)
            last_save = time.time()
    train_seconds = time.time() - train_started
    store.stop()
    final_val = validate(features_net, head, val_data, args.planes, autocast)
    save(checkpoint, features_net, head, step, args)
    sources = np.bincount(store.arrays.source[: data.count], minlength=len(SOURCES))

    from training.proximity.export import export_onnx

    features_net.eval()
    head.eval()
    export_onnx(features_net, head, args.out, NET_HEIGHT, NET_WIDTH)
    summary = {
        "seed": args.seed,
        "command_args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "training_frames": data.count,
        "training_frames_per_source": dict(zip(SOURCES, sources.tolist(), strict=True)),
        "training_jobs": [f"make_jobs({args.frames}, {args.seed * 100_000})[:{data.count}]"],
        "validation_jobs": f"make_jobs({args.val_frames}, {VALIDATION_SEED_BASE})",
        "warmup_seconds": round(warmup_seconds, 1),
        "render_frames_per_second": round(
            data.count / max((store.finished or time.time()) - store.started, 1e-3), 1
        ),
        "steps": step,
        "batch": args.batch,
        "planes_per_pair": args.planes,
        "train_seconds": round(train_seconds, 1),
        "final_val_iou": round(final_val, 4),
        "parameters": {"features": parameter_count(features_net), "head": parameter_count(head)},
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "history": history,
    }
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    if args.eval_frames:
        try:
            from training.proximity.evaluate import evaluate_synthetic
            from training.proximity.suite import evaluate_heldout

            summary["held_out_family"] = evaluate_heldout([args.out], args.eval_frames, workers=args.workers)
            summary["held_out_street"] = evaluate_synthetic(args.out, args.eval_frames, workers=args.workers)
        except Exception as exc:  # the trained model is saved already; report and carry on
            summary["held_out_error"] = repr(exc)
    summary["total_seconds"] = round(time.time() - started, 1)
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}), flush=True)


if __name__ == "__main__":
    main()
