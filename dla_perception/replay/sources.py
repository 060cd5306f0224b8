"""Which bags a replay runs, and with which per-bag settings: bags, folders of bags, manifest files.

A manifest is a text file with one bag per line, optionally followed by that bag's own settings in the
command's own flags (`--config`, `--namespace`, `--camera-topics`, `-p`, `--remap`, `--ground-truth`,
`--max-frames`, `--nodes`, `--name`); `#` starts a comment. Relative paths are relative to the manifest.
A line's settings override the command line's; its `-p` and `--remap` add to the command line's:

    # bags/ci.txt
    sidewalk_2024                                   # the command's settings
    zed_run --camera-topics /zed/left/image_rect_color /zed/right/image_rect_color -p alert_distance_m:=1.5
    robot7/front --namespace /robot7/front --config robot7.yaml --name robot7_front
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dla_perception.replay.bag import BagError, bag_directory

BAG_FILE_SUFFIXES = (".db3", ".mcap")


@dataclass
class BagSettings:
    """What may differ from bag to bag."""

    config: Path | None = None  # robot parameters file (None: the command's default)
    namespace: str | None = None
    camera_topics: list[str] | None = None
    parameters: list[str] = field(default_factory=list)
    remaps: list[str] = field(default_factory=list)
    ground_truth: str | None = None
    max_frames: int | None = None
    nodes: list[str] | None = None
    name: str | None = None  # output folder name (default: the bag folder's name)


@dataclass
class BagJob:
    bag: Path  # the rosbag2 folder
    name: str  # its output folder under --out, unique in the run
    settings: BagSettings


def add_bag_arguments(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """The per-bag flags, on the command line and on manifest lines (suppress: absent flags stay absent)."""
    default = argparse.SUPPRESS if suppress else None
    listed = argparse.SUPPRESS if suppress else []
    parser.add_argument("--config", type=Path, default=default, metavar="FILE",
                        help="robot parameters file (ROS 2 params YAML; default: the installed "
                             "config/robot.yaml)")
    parser.add_argument("--namespace", default=default, metavar="NS",
                        help="read the bag's topics under NS without it (/robot1/left/image_rect -> "
                             "left/image_rect)")
    parser.add_argument("--camera-topics", nargs="+", default=default, metavar="TOPIC",
                        help="the bag's camera topics: LEFT RIGHT [LEFT_INFO RIGHT_INFO] (camera_info "
                             "defaults to the one beside each image), or one IMAGE for the detector")
    parser.add_argument("-p", "--param", dest="parameters", action="append", default=listed,
                        metavar="NAME:=VALUE",
                        help="node parameter, as with ros2 run (every node declaring it; NODE:NAME:=VALUE "
                             "for one node), e.g. -p alert_distance_m:=1.5 (repeatable)")
    parser.add_argument("--remap", dest="remaps", action="append", default=listed, metavar="FROM:=TO",
                        help="bag topic -> node topic, e.g. /cam/depth:=ground_truth/disparity (repeatable)")
    parser.add_argument("--ground-truth", default=default, metavar="TOPIC",
                        help="the bag's ground-truth disparity topic (default: ground_truth/disparity, or "
                             "the one topic ending in it)")
    parser.add_argument("--max-frames", type=int, default=default, metavar="N", help="replay only N frames")
    parser.add_argument("--nodes", type=_node_list, default=default, metavar="LIST",
                        help="comma-separated frame nodes to run: proximity,detection (default: every node "
                             "the bag can feed)")


def _node_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def settings_from(namespace: argparse.Namespace) -> BagSettings:
    names = {f.name for f in dataclasses.fields(BagSettings)}
    return BagSettings(**{k: v for k, v in vars(namespace).items() if k in names and v is not None})


def expand(paths: list[Path], defaults: BagSettings) -> list[BagJob]:
    """Every bag the paths name, in order (folders: their bags sorted by path), with unique names."""
    jobs: list[BagJob] = []
    for path in paths:
        jobs += _expand_one(Path(path), defaults)
    if not jobs:
        raise BagError(f"no bag in {', '.join(str(p) for p in paths)}")
    taken: dict[str, int] = {}
    for job in jobs:
        base = job.name
        taken[base] = taken.get(base, 0) + 1
        if taken[base] > 1:
            job.name = f"{base}-{taken[base]}"
    return jobs


def _expand_one(path: Path, defaults: BagSettings) -> list[BagJob]:
    if not path.exists():
        raise BagError(f"no bag at {path}")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return [_job(path, defaults)]
        found = sorted({p.parent for p in path.rglob("metadata.yaml")})
        if not found:
            bag_directory(path)  # raises with the reason (e.g. a recording without metadata.yaml)
        return [_job(folder, defaults) for folder in found]
    if path.suffix in BAG_FILE_SUFFIXES or path.name == "metadata.yaml":
        return [_job(bag_directory(path), defaults)]
    return read_manifest(path, defaults)


def _job(folder: Path, settings: BagSettings) -> BagJob:
    return BagJob(folder, settings.name or folder.name, settings)


def read_manifest(path: Path, defaults: BagSettings) -> list[BagJob]:
    """The bags of a manifest file, each with the command's settings overridden by its line's."""
    parser = argparse.ArgumentParser(prog=f"{path} line", add_help=False, exit_on_error=False)
    add_bag_arguments(parser, suppress=True)
    parser.add_argument("--name", default=argparse.SUPPRESS)
    jobs = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BagError(f"{path} is neither a bag nor a readable manifest: {exc}") from None
    for number, line in enumerate(lines, 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise BagError(f"{path}:{number}: {exc}") from None
        if not words:
            continue
        try:
            given, unknown = parser.parse_known_args(words[1:])
        except (argparse.ArgumentError, SystemExit) as exc:
            raise BagError(f"{path}:{number}: {exc}") from None
        if unknown:
            raise BagError(f"{path}:{number}: unknown setting(s) {' '.join(unknown)}")
        settings = _merged(defaults, vars(given), path.parent)
        bag = Path(words[0]).expanduser()
        bag = bag if bag.is_absolute() else path.parent / bag
        try:
            for job in _expand_one(bag, settings):
                jobs.append(job)
        except BagError as exc:
            raise BagError(f"{path}:{number}: {exc}") from None
    return jobs


def _merged(defaults: BagSettings, given: dict, folder: Path) -> BagSettings:
    values = dataclasses.asdict(defaults)
    for key, value in given.items():
        if key in ("parameters", "remaps"):
            values[key] = [*values[key], *value]
        elif key == "config":
            values[key] = value if value.is_absolute() else folder / value
        else:
            values[key] = value
    return BagSettings(**values)
