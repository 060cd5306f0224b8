"""Training data for the proximity network: synthetic stereo frames rendered in parallel, at network size.

Frames come from dla_perception.synthetic.generate_frame (one independent scene per seed), rendered at the
camera's full resolution and shrunk the way the pipeline shrinks its inputs (cv2.INTER_AREA), so training
sees what inference sees. Ground-truth disparity is resampled with nearest neighbour and scaled to network
pixels; unknown pixels (0 or NaN) become NaN and are ignored by the loss.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

import cv2
import numpy as np

NET_WIDTH = 320
NET_HEIGHT = 240

# Seeds: training draws from [0, HELD_OUT_SEED_BASE); evaluation from HELD_OUT_SEED_BASE upwards.
HELD_OUT_SEED_BASE = 1_000_000


@dataclass
class FrameArrays:
    """N frames at network size: left/right [N, H, W, 3] uint8; disparity [N, H, W] float32, NaN unknown."""

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray


def shrink_frame(left: np.ndarray, right: np.ndarray, disparity: np.ndarray, width: int, height: int):
    """One frame at (width, height): images by area averaging, disparity by nearest neighbour, rescaled."""
    scale = width / left.shape[1]
    size = (width, height)
    small_left = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
    small_right = cv2.resize(right, size, interpolation=cv2.INTER_AREA)
    disp = np.where(np.isfinite(disparity) & (disparity > 0), disparity, np.nan).astype(np.float32)
    small_disp = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST) * np.float32(scale)
    return small_left, small_right, small_disp


def _render(args: tuple[int, int, int, int, int]):
    seed, render_width, render_height, width, height = args
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    frame = generate_frame(seed, StereoCamera().scaled(render_width, render_height))
    return shrink_frame(frame.left, frame.right, frame.disparity, width, height)


def render_frames(
    seeds,
    render_size: tuple[int, int] = (640, 480),
    width: int = NET_WIDTH,
    height: int = NET_HEIGHT,
    workers: int | None = None,
    deadline: float | None = None,
) -> tuple[FrameArrays, list[int]]:
    """Render `seeds` at render_size (the default camera scaled) in `workers` processes, shrunk to
    (width, height). Stops at time.time() > deadline, keeping the seeds done in order; returns them too."""
    import time

    seeds = [int(s) for s in seeds]
    jobs = [(s, *render_size, width, height) for s in seeds]
    results = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for result in pool.imap(_render, jobs, chunksize=2):
            results.append(result)
            if deadline is not None and time.time() > deadline:
                pool.terminate()
                break
    left, right, disparity = zip(*results, strict=True)
    return FrameArrays(np.stack(left), np.stack(right), np.stack(disparity)), seeds[: len(results)]


def concatenate(*parts: FrameArrays) -> FrameArrays:
    return FrameArrays(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("left", "right", "disparity"))
    )
