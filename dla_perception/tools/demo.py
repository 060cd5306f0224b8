"""`dla-perception demo`: a synthetic stereo bag through the perception graph, on the best cores here.

The bag is made once per (seed, frames, size, generator source) and cached, so a second `make demo` only
replays. The engines file's core lists already put each model on the best core available (DLA, then GPU,
then CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from dla_perception.tools.cli import UsageError

DEFAULT_FRAMES = 60  # about a minute on two CPU cores (generation ~0.5 s, replay ~0.3 s per frame)
DEFAULT_SEED = 2024
DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480


def register(subparsers: argparse._SubParsersAction) -> None:
    from dla_perception.tools.replay import add_replay_arguments

    parser = subparsers.add_parser(
        "demo",
        help="make (or reuse) a synthetic stereo bag and replay it through the perception graph",
        description="Make a synthetic stereo bag (cached by seed, frames and size), replay it with the "
        "default configuration on the best cores of this machine, print the per-core latency table and "
        "where the report is.",
    )
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames (default {DEFAULT_FRAMES})")
    parser.add_argument("--out", type=Path, default=Path("build/demo"), metavar="DIR",
                        help="folder for metrics, output bag and report (default build/demo)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"scene seed (default {DEFAULT_SEED})")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                        help=f"image width (default {DEFAULT_WIDTH})")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT,
                        help=f"image height (default {DEFAULT_HEIGHT})")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where synthetic bags are kept (default ~/.cache/dla_perception/bags)")
    add_replay_arguments(parser)
    parser.set_defaults(handler=run)


def cache_directory(override: Path | None) -> Path:
    if override is not None:
        return override
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dla_perception" / "bags"


def generator_fingerprint() -> str:
    """A digest of the synthetic generator's source: a changed generator must not reuse an old bag."""
    import dla_perception.synthetic as synthetic

    digest = hashlib.sha256()
    for source in sorted(Path(synthetic.__file__).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:10]


def demo_bag(cache_dir: Path, seed: int, frames: int, width: int, height: int) -> tuple[Path, bool]:
    """The cached synthetic bag for these settings, made when absent; (path, whether it was made now).

    The bag is written to a temporary folder and moved into place, so an interrupted run never leaves a
    half-written bag that a later run would reuse.
    """
    from dla_perception.synthetic.bag import DEFAULT_MOUNT, write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    path = cache_dir / f"demo_seed{seed}_{frames}f_{width}x{height}_{generator_fingerprint()}"
    if (path / "metadata.yaml").is_file():
        return path, False
    cache_dir.mkdir(parents=True, exist_ok=True)
    camera = StereoCamera().scaled(width, height)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".making-") as scratch:
        target = Path(scratch) / "bag"
        # Rendered from the mount config/robot.yaml ships, so the shipped ground handling removes its floor.
        frames_iter = generate_sequence(seed, frames, camera, **DEFAULT_MOUNT.scene_options())
        write_stereo_bag(target, frames_iter, camera, storage="sqlite3", mount=DEFAULT_MOUNT)
        if path.exists():
            shutil.rmtree(path)
        target.rename(path)
    return path, True


def run(args: argparse.Namespace) -> int:
    from dla_perception.replay.runner import ReplayOptions, replay
    from dla_perception.replay.summary import summary_text
    from dla_perception.tools.replay import execute, resolve_configs

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    if not (32 <= args.width <= 4096 and 32 <= args.height <= 4096):
        raise UsageError("--width and --height must be between 32 and 4096")
    engines, robot = resolve_configs(args)
    cache_dir = cache_directory(args.cache_dir)
    print(f"synthetic bag: {args.frames} frames {args.width}x{args.height}, seed {args.seed} ...", flush=True)
    bag, made = demo_bag(cache_dir, args.seed, args.frames, args.width, args.height)
    print(f"synthetic bag: {bag} ({'made now' if made else 'reused from the cache'})", flush=True)
    options = ReplayOptions(bag=bag, out=args.out, engines=engines, robot_config=robot,
                            frame_timeout_s=args.frame_timeout, progress=not args.no_progress)
    result = execute(replay, options)
    print()
    print(summary_text(result.metrics))  # includes the per-core latency table
    print(f"\nreport: {result.report.resolve()}")
    print(f"metrics: {(args.out / 'metrics.json').resolve()}")
    if result.error:
        print(f"dla-perception demo: error: {result.error}")
        return 2
    if not result.metrics["frames_with_output"]:
        print("dla-perception demo: no frame produced all of its outputs (see the warnings above)")
        return 1
    return 0
