"""Training data for the proximity network: four scene sources rendered in parallel, at network size.

Sources: the street renderer (dla_perception.synthetic.scene) and the three families that share nothing with
it (dla_perception.synthetic.families: flying, indoor, thin). Every frame has its own camera (`random_rig`:
size, field of view, baseline, height 0.2-1.5 m, pitch, roll), is rendered at that camera's resolution and
resized to the network input the way the pipeline resizes (cv2.INTER_AREA when shrinking, else linear), so
that training sees what inference sees. Ground-truth disparity is resampled with nearest neighbour and scaled
to network pixels; unknown pixels (0) become NaN and are ignored by the loss. Pixels whose match falls
outside the other image keep their disparity (`keep_out_of_view`): with no match to find, the answer there
has to come from the image's content, and a robot needs one at its image's edge too (only occluded
pixels are unknown). The families also give the right view's disparity (for mirrored, view-swapped
samples); the street frames do not (NaN).

Which source and seed a job renders is fixed by its index (`make_jobs`); a seed always renders the same
bytes. `FrameStore` renders a job list in worker processes while training runs, appending frames as they
come (in job order): the data are deterministic, which of them a given step sees depends on timing.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

NET_WIDTH = 320
NET_HEIGHT = 240
SOURCES = ("street", "flying", "indoor", "thin")
MIX = (0.25, 0.35, 0.2, 0.2)

# Street seeds: training draws from [0, HELD_OUT_SEED_BASE); its held-out evaluation from there up.
HELD_OUT_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 2_000_000  # validation frames of every source; never trained on
_STREET_SALT = 0x57EE7


@dataclass
class FrameArrays:
    """N frames at network size: left/right [N, H, W, 3] uint8; disparity and right_disparity [N, H, W]
    float16 network px, NaN unknown; source [N] int8 (index into SOURCES)."""

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    right_disparity: np.ndarray
    source: np.ndarray

    @classmethod
    def empty(cls, capacity: int, width: int = NET_WIDTH, height: int = NET_HEIGHT) -> FrameArrays:
        image, disparity = (capacity, height, width, 3), (capacity, height, width)
        # empty: every slot is written before it is read (FrameStore.count bounds the readers)
        return cls(
            np.empty(image, np.uint8),
            np.empty(image, np.uint8),
            np.empty(disparity, np.float16),
            np.empty(disparity, np.float16),
            np.zeros(capacity, np.int8),
        )

    def __len__(self) -> int:
        return len(self.left)


def make_jobs(count: int, first_seed: int, mix=MIX) -> list[tuple[str, int]]:
    """`count` (source, seed) jobs: sources drawn by `mix` from a generator seeded with first_seed, each
    source's seeds counting up from first_seed."""
    rng = np.random.default_rng([0x10B5, first_seed])
    picks = rng.choice(len(SOURCES), size=count, p=np.asarray(mix) / np.sum(mix))
    next_seed = dict.fromkeys(SOURCES, first_seed)
    jobs = []
    for pick in picks:
        source = SOURCES[pick]
        jobs.append((source, next_seed[source]))
        next_seed[source] += 1
    return jobs


def to_network(image: np.ndarray, width: int = NET_WIDTH, height: int = NET_HEIGHT) -> np.ndarray:
    """An image resized as ProximityPipeline resizes its inputs."""
    shrinking = image.shape[1] > width or image.shape[0] > height
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def disparity_to_network(
    disparity: np.ndarray | None, width: int = NET_WIDTH, height: int = NET_HEIGHT
) -> np.ndarray:
    """Disparity (input px, 0 unknown) -> network px by nearest neighbour, NaN unknown."""
    if disparity is None:
        return np.full((height, width), np.nan, np.float32)
    scale = width / disparity.shape[1]
    disp = np.where(np.isfinite(disparity) & (disparity > 0), disparity, np.nan).astype(np.float32)
    return cv2.resize(disp, (width, height), interpolation=cv2.INTER_NEAREST) * np.float32(scale)


def street_frame(seed: int):
    """(left, right, disparity, None) of a street scene under a camera drawn like the families'; the left
    band whose match is outside the right image keeps its disparity, as the families' do in training."""
    from dla_perception.synthetic.families import random_rig
    from dla_perception.synthetic.sample import with_out_of_view
    from dla_perception.synthetic.scene import generate_frame

    rig = random_rig(np.random.default_rng([_STREET_SALT, seed]))
    frame = generate_frame(seed, rig.camera, camera_height_m=rig.height_m, pitch_deg=math.degrees(rig.pitch))
    fx_baseline = rig.camera.fx * rig.camera.baseline_m
    return frame.left, frame.right, with_out_of_view(frame.disparity, frame.depth_m, fx_baseline), None


def render_job(job: tuple[str, int], width: int = NET_WIDTH, height: int = NET_HEIGHT):
    """One job -> (left, right, disparity, right_disparity, source index) at network size."""
    source, seed = job
    if source == "street":
        left, right, disparity, right_disparity = street_frame(seed)
    else:
        from dla_perception.synthetic.families import family_sample

        sample = family_sample(source, seed, keep_out_of_view=True)
        left, right, disparity, right_disparity = (
            sample.left,
            sample.right,
            sample.disparity,
            sample.right_disparity,
        )
    return (
        to_network(left, width, height),
        to_network(right, width, height),
        disparity_to_network(disparity, width, height),
        disparity_to_network(right_disparity, width, height),
        SOURCES.index(source),
    )


def render_frames(jobs, workers: int | None = None) -> FrameArrays:
    """Render `jobs` in worker processes (all of them, blocking)."""
    store = FrameStore(jobs, workers)
    store.join()
    return store.frames(store.count)


class FrameStore:
    """Renders a job list in a pool of processes while the caller trains; frames land in order in
    preallocated arrays and `count` says how many are there. stop() ends it early, keeping what came."""

    def __init__(self, jobs, workers: int | None = None) -> None:
        self.jobs = list(jobs)
        self.arrays = FrameArrays.empty(len(self.jobs))
        self.count = 0
        self.started = time.time()
        self.finished: float | None = None
        self._stop = threading.Event()
        self._pool = multiprocessing.get_context("spawn").Pool(workers)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for result in self._pool.imap(render_job, self.jobs, chunksize=2):
                if self._stop.is_set():
                    break
                a, i = self.arrays, self.count
                a.left[i], a.right[i], a.disparity[i], a.right_disparity[i], a.source[i] = result
                self.count = i + 1
        finally:
            self.finished = time.time()
            self._pool.terminate()

    def join(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        self._stop.set()
        self._pool.terminate()
        self._thread.join(timeout=30)

    def frames(self, end: int, start: int = 0) -> FrameArrays:
        a = self.arrays
        return FrameArrays(
            a.left[start:end],
            a.right[start:end],
            a.disparity[start:end],
            a.right_disparity[start:end],
            a.source[start:end],
        )
