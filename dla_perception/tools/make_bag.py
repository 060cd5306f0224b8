"""`dla-perception make-bag`: a rosbag2 of a synthetic stereo drive with exact ground-truth disparity."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-bag",
        help="write a synthetic stereo rosbag2 (images, camera_info, ground-truth disparity)",
        description="Render a synthetic street drive (the camera moves forward, obstacles approach) and "
        "write it as a rosbag2: left/image_rect, right/image_rect (rgb8), left/camera_info, "
        "right/camera_info and ground_truth/disparity (32FC1), and the camera mount on /tf_static. The same "
        "seed gives the same bag. Replay it with the same camera_height_m/camera_pitch_deg.",
    )
    add = parser.add_argument
    add("out", type=Path, help="the bag to create (a directory; must not exist unless --force)")
    add("--frames", type=int, default=100, help="number of stereo frames (default 100)")
    add("--seed", type=int, default=0, help="scene seed (default 0)")
    add("--width", type=int, default=640, help="image width in pixels (default 640)")
    add("--height", type=int, default=480, help="image height in pixels (default 480)")
    add("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="rosbag2 storage (default sqlite3)")
    add("--rate", type=float, default=10.0, help="frames per second of bag time (default 10)")
    add("--speed", type=float, default=1.0, help="forward speed of the camera in m/s (default 1)")
    add("--baseline", type=float, default=0.12, help="stereo baseline in metres (default 0.12)")
    add("--camera-height", type=float, default=None, metavar="M",
        help="left camera's optical centre above the floor (default 0.5, the mount config/robot.yaml ships)")
    add("--pitch", type=float, default=None, metavar="DEG",
        help="camera pitch, positive = looking down (default 5, as config/robot.yaml)")
    add("--frame-id", default="camera_left", help="frame id of the left camera (default camera_left)")
    add("--namespace", default="", help="write the topics under this namespace, e.g. /stereo "
        "(default: relative names, as the nodes subscribe)")
    add("--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    from dataclasses import replace

    from tqdm import tqdm

    from dla_perception.synthetic.bag import DEFAULT_MOUNT, CameraMount, write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence
    from dla_perception.tools.cli import UsageError

    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if not (16 <= args.width <= 8192 and 16 <= args.height <= 8192):
        raise UsageError(f"--width/--height must be within 16..8192, got {args.width}x{args.height}")
    if not args.rate > 0 or args.speed < 0 or not args.baseline > 0:
        raise UsageError("--rate and --baseline must be positive and --speed non-negative")
    mount = CameraMount(DEFAULT_MOUNT.height_m if args.camera_height is None else args.camera_height,
                        DEFAULT_MOUNT.pitch_deg if args.pitch is None else args.pitch)
    if not (0.05 <= mount.height_m <= 10.0 and abs(mount.pitch_deg) < 60.0):
        raise UsageError("--camera-height must be within 0.05..10 m and --pitch within +-60 degrees")
    out: Path = args.out
    if out.exists() or out.is_symlink():
        if not args.force:
            raise UsageError(f"{out} exists; pass --force to replace it")
        if out.is_dir() and not out.is_symlink():
            if not (out / "metadata.yaml").exists() and any(out.iterdir()):
                raise UsageError(f"{out} is a non-empty directory that is not a bag; not replacing it")
            shutil.rmtree(out)
        else:
            out.unlink()
    if not out.parent.exists():
        raise UsageError(f"the folder {out.parent} does not exist")

    camera = replace(StereoCamera(), baseline_m=args.baseline).scaled(args.width, args.height)
    frames = generate_sequence(args.seed, args.frames, camera, speed_mps=args.speed, rate_hz=args.rate,
                               **mount.scene_options())
    progress = tqdm(frames, total=args.frames, unit="frame", desc="make-bag", disable=None)
    write_stereo_bag(out, progress, camera, storage=args.storage, rate_hz=args.rate, frame_id=args.frame_id,
                     namespace=args.namespace, mount=mount)
    print(f"wrote {out} ({args.frames} frames, {args.width}x{args.height}, {args.storage}, seed {args.seed}; "
          f"camera {mount.height_m:g} m up, {mount.pitch_deg:g} deg down)")
    if mount != DEFAULT_MOUNT:
        print(f"replay it with: camera_height_m: {mount.height_m:g}, camera_pitch_deg: {mount.pitch_deg:g} "
              "in the robot config (the shipped one has the default mount)")
    return 0
