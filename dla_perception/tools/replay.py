"""`dla-perception replay BAG --out DIR`: a bag through the real nodes, lock-step; metrics, bag, report.

Exit status: 0 replayed (and no regression against --baseline); 1 regression against --baseline;
2 the bag or the configuration cannot be used (message says why), or the bag broke off half-way
(what was produced up to there is written and readable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dla_perception.tools.cli import UsageError


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `replay` and `demo`."""
    parser.add_argument("--config", type=Path, default=None,
                        help="robot parameters file (ROS 2 params YAML; default: the installed "
                             "config/robot.yaml when present)")
    parser.add_argument("--engines", type=Path, default=None,
                        help="engines file (default: the installed config/engines.yaml)")
    parser.add_argument("--frame-timeout", type=float, default=60.0, metavar="S",
                        help="seconds to wait for a frame's outputs before counting them missing "
                             "(default 60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    from dla_perception.replay.baseline import (
        DEFAULT_ACCURACY_TOLERANCE,
        DEFAULT_LATENCY_SLACK_MS,
        DEFAULT_LATENCY_TOLERANCE,
    )

    parser = subparsers.add_parser(
        "replay",
        help="replay a rosbag2 through the perception nodes; metrics, output bag, report",
        description="Feed every frame of a rosbag2 (sqlite3 or MCAP) to the real perception nodes in this "
        "process, one frame at a time on the bag's clock, and write DIR/metrics.json, DIR/output_bag and "
        "DIR/report.html. Exit 0 on success, 1 on a regression against --baseline, 2 for a bag or "
        "configuration that cannot be used.",
    )
    parser.add_argument("bag", type=Path, help="rosbag2 folder (or a .db3/.mcap file inside one)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the results")
    parser.add_argument("--baseline", type=Path, default=None, metavar="METRICS_JSON",
                        help="compare with a previous metrics.json; exit 1 naming each regression")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="replay only N frames")
    parser.add_argument("--nodes", default=None, metavar="LIST",
                        help="comma-separated frame nodes to run: proximity,detection (default: every node "
                             "the bag can feed)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="bag topic -> node topic, e.g. /cam/left/image_raw:=left/image_rect "
                             "(repeatable)")
    parser.add_argument("--accuracy-tolerance", type=float, default=DEFAULT_ACCURACY_TOLERANCE,
                        help="absolute drop allowed in IoU/precision/recall/output coverage "
                             f"(default {DEFAULT_ACCURACY_TOLERANCE})")
    parser.add_argument("--latency-tolerance", type=float, default=DEFAULT_LATENCY_TOLERANCE,
                        help="relative rise allowed in a p99 latency (default "
                             f"{DEFAULT_LATENCY_TOLERANCE}, i.e. +{DEFAULT_LATENCY_TOLERANCE * 100:.0f}%%)")
    parser.add_argument("--latency-slack-ms", type=float, default=DEFAULT_LATENCY_SLACK_MS,
                        help="absolute rise (ms) a p99 latency must also exceed to count "
                             f"(default {DEFAULT_LATENCY_SLACK_MS})")
    add_replay_arguments(parser)
    parser.set_defaults(handler=run)


def resolve_configs(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The engines file and robot parameters file to use; UsageError when a given one does not exist."""
    from dla_perception.replay.graph import package_file

    engines = args.engines or package_file("config/engines.yaml")
    if not engines.is_file():
        raise UsageError(f"engines file {engines} not found")
    robot = args.config
    if robot is None:
        default = package_file("config/robot.yaml")
        robot = default if default.is_file() else None
    elif not robot.is_file():
        raise UsageError(f"robot config {robot} not found")
    return engines, robot


def execute(options: object) -> object:
    """Runs a replay, turning the errors a user can act on into UsageError."""
    from dla_perception.replay.bag import BagError
    from dla_perception.replay.graph import GraphError
    from dla_perception.replay.runner import replay

    try:
        return replay(options)
    except (BagError, GraphError) as exc:
        raise UsageError(str(exc)) from None
    except ImportError as exc:  # rclpy or message packages missing
        raise UsageError(f"{exc}: replay runs the ROS 2 nodes; source your ROS 2 setup (or use the "
                         "Makefile's .venv)") from None
    except OSError as exc:  # --out not writable, a file where a folder should be, disk full
        raise UsageError(f"cannot write results: {exc}") from None
    except ValueError as exc:  # a baseline that is not a metrics.json
        raise UsageError(str(exc)) from None
    except RuntimeError as exc:  # the nodes never connected
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from dla_perception.replay.baseline import Tolerances
    from dla_perception.replay.runner import ReplayOptions
    from dla_perception.replay.summary import summary_text

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if args.frame_timeout <= 0:
        raise UsageError("--frame-timeout must be positive")
    if args.baseline is not None and not args.baseline.is_file():
        raise UsageError(f"baseline {args.baseline} not found")
    engines, robot = resolve_configs(args)
    options = ReplayOptions(
        bag=args.bag, out=args.out, engines=engines, robot_config=robot, baseline=args.baseline,
        max_frames=args.max_frames, remaps=list(args.remap), frame_timeout_s=args.frame_timeout,
        tolerances=Tolerances(args.accuracy_tolerance, args.latency_tolerance, args.latency_slack_ms),
        progress=not args.no_progress,
        nodes=[name.strip() for name in args.nodes.split(",") if name.strip()] if args.nodes else None,
    )
    result = execute(options)
    print(summary_text(result.metrics, result.regressions))
    print(f"\nmetrics: {args.out / 'metrics.json'}\noutput bag: {result.output_bag}\nreport: {result.report}")
    if result.error:
        print(f"dla-perception replay: error: {result.error} (partial results written)", file=sys.stderr)
        return 2
    if result.regressions:
        return 1
    if result.metrics["frames"] and not result.metrics["frames_with_output"]:
        print("dla-perception replay: no frame produced all of its outputs (see the warnings above)",
              file=sys.stderr)
        return 1
    return 0
