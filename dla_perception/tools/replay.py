"""`dla-perception replay BAG [BAG...]`: bags through the real nodes, lock-step; metrics, bags, report.

One bag: `--out` (default replay_results/<bag name>) gets metrics.json, output_bag/, report.html. Several
bags, folders of bags or manifests (replay/sources.py), `--workers N` (Ray) or `--resume`: each bag gets
`OUT/<bag name>/` and OUT (default replay_results/) gets the pooled metrics.json and report.html.

Exit status: 0 replayed (and no regression against --baseline); 1 regression against --baseline, or no
frame produced all of its outputs; 2 a bag or the configuration cannot be used (message says why), a bag
broke off half-way (what was produced is written), or in a many-bag run any bag failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dla_perception.tools.cli import UsageError

RESULTS_ROOT = Path("replay_results")


def add_replay_arguments(parser: argparse.ArgumentParser, with_config: bool = True) -> None:
    """Options shared by `replay` and `demo` (replay's --config comes with the per-bag settings)."""
    if with_config:
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
    from dla_perception.replay import baseline as gate
    from dla_perception.replay.sources import add_bag_arguments

    parser = subparsers.add_parser(
        "replay",
        help="replay rosbag2s through the perception nodes; metrics, output bags, report",
        description="Feed every frame of one or many rosbag2s (sqlite3 or MCAP) to the real perception "
        "nodes, one frame at a time on the bag's clock, and write metrics.json, output_bag/ and report.html "
        "per bag (and pooled ones for many bags). BAG: a bag folder (or a .db3/.mcap in one), a folder of "
        "bags, or a manifest file (one bag per line, optionally with its own flags). Exit 0 on success, 1 "
        "on a regression against --baseline, 2 for a bag or configuration that cannot be used.",
    )
    parser.add_argument("bags", type=Path, nargs="+", metavar="BAG",
                        help="bag folder, folder of bags, or manifest file")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results folder (default replay_results/<bag name> for one bag, "
                             "replay_results/ for many: one folder per bag inside)")
    add_bag_arguments(parser)
    parser.add_argument("--with-inputs", action="store_true",
                        help="also write the input images (and ground truth) into the output bag, for "
                             "RViz/Foxglove (camera_info is always written)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="METRICS_JSON",
                        help="compare with a previous metrics.json; exit 1 naming each regression")
    parser.add_argument("--gate-latency", choices=gate.GATE_LATENCY_CHOICES, default="median",
                        help="latency gate: median (default: each engine's median run time; CPU time on "
                             "the cpu core), tail (also end-to-end and per-core p99), off")
    parser.add_argument("--accuracy-tolerance", type=float, default=gate.DEFAULT_ACCURACY_TOLERANCE,
                        help="absolute drop allowed in IoU/precision/recall/output coverage "
                             f"(default {gate.DEFAULT_ACCURACY_TOLERANCE})")
    parser.add_argument("--latency-tolerance", type=float, default=gate.DEFAULT_LATENCY_TOLERANCE,
                        help="relative rise allowed in a gated latency (default "
                             f"{gate.DEFAULT_LATENCY_TOLERANCE}, i.e. "
                             f"+{gate.DEFAULT_LATENCY_TOLERANCE * 100:.0f}%%)")
    parser.add_argument("--latency-slack-ms", type=float, default=gate.DEFAULT_LATENCY_SLACK_MS,
                        help="absolute rise (ms) a gated latency must also exceed to count "
                             f"(default {gate.DEFAULT_LATENCY_SLACK_MS})")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="run bags as Ray tasks on N workers of a local Ray cluster started for the run "
                             "(needs the fleet extra: pip install 'dla_perception[fleet]')")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="run bags on an existing Ray cluster (e.g. auto, ray://head:10001); workers "
                             "default to its CPUs. Bags, engines and --out must be at the same paths on "
                             "every machine (shared storage)")
    parser.add_argument("--domain-base", type=int, default=None, metavar="ID",
                        help="first DDS domain id of the Ray workers (one each; 0-101 or 215-232; default "
                             "$DLA_PERCEPTION_FLEET_DOMAIN_BASE or 215)")
    parser.add_argument("--resume", action="store_true",
                        help="skip bags whose results in --out were made by the same code, models, "
                             "configuration and bag")
    add_replay_arguments(parser, with_config=False)
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


def execute(call: object, options: object) -> object:
    """Runs a replay (or a fleet), turning the errors a user can act on into UsageError."""
    from dla_perception.replay.bag import BagError
    from dla_perception.replay.engine_cache import EnginesError
    from dla_perception.replay.graph import GraphError
    from dla_perception.replay.ray_pool import FleetError

    try:
        return call(options)
    except (BagError, GraphError, EnginesError, FleetError) as exc:
        raise UsageError(str(exc)) from None
    except ImportError as exc:  # rclpy or message packages missing
        raise UsageError(f"{exc}: replay runs the ROS 2 nodes; source your ROS 2 setup (or use the "
                         "Makefile's .venv)") from None
    except OSError as exc:  # --out not writable, a file where a folder should be, disk full
        raise UsageError(f"cannot write results: {exc}") from None
    except (ValueError, RuntimeError) as exc:  # a baseline that is not metrics.json; nodes never connected
        raise UsageError(str(exc)) from None


def _check(args: argparse.Namespace) -> None:
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if args.frame_timeout <= 0:
        raise UsageError("--frame-timeout must be positive")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.baseline is not None and not args.baseline.is_file():
        raise UsageError(f"baseline {args.baseline} not found")
    if args.workers > 1 or args.ray_address:
        from dla_perception.replay.ray_pool import FleetError, import_ray

        try:
            import_ray()
        except FleetError as exc:
            raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from dla_perception.replay.bag import BagError
    from dla_perception.replay.baseline import Tolerances
    from dla_perception.replay.sources import expand, settings_from
    from dla_perception.replay.topics import TopicError, camera_remaps

    _check(args)
    engines, robot = resolve_configs(args)
    defaults = settings_from(args)
    try:
        camera_remaps(defaults.camera_topics)  # a bad --camera-topics fails before anything runs
        jobs = expand(list(args.bags), defaults)
    except (BagError, TopicError) as exc:
        raise UsageError(str(exc)) from None
    tolerances = Tolerances(args.accuracy_tolerance, args.latency_tolerance, args.latency_slack_ms,
                            args.gate_latency)
    if len(jobs) == 1 and args.workers == 1 and not args.ray_address and not args.resume:
        return _run_one(args, jobs[0], engines, robot, tolerances)
    return _run_many(args, jobs, engines, robot, tolerances)


def _run_one(args: argparse.Namespace, job: object, engines: Path, robot: Path | None,
             tolerances: object) -> int:
    from dla_perception.replay.baseline import latency_comparisons, load_metrics
    from dla_perception.replay.runner import ReplayOptions, replay
    from dla_perception.replay.summary import latency_table, summary_text

    settings = job.settings
    out = args.out or RESULTS_ROOT / job.name
    options = ReplayOptions(
        bag=job.bag, out=out, engines=engines, robot_config=settings.config or robot, baseline=args.baseline,
        max_frames=settings.max_frames, remaps=list(settings.remaps), namespace=settings.namespace,
        camera_topics=settings.camera_topics, parameters=list(settings.parameters),
        ground_truth=settings.ground_truth, with_inputs=args.with_inputs, frame_timeout_s=args.frame_timeout,
        tolerances=tolerances, progress=not args.no_progress, nodes=settings.nodes,
    )
    result = execute(replay, options)
    print(summary_text(result.metrics, result.regressions))
    if args.baseline is not None:
        print()
        print(latency_table(latency_comparisons(result.metrics, load_metrics(args.baseline), tolerances)))
    print(f"\nmetrics: {out / 'metrics.json'}\noutput bag: {result.output_bag}\nreport: {result.report}")
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


def _run_many(args: argparse.Namespace, jobs: list, engines: Path, robot: Path | None,
              tolerances: object) -> int:
    from dla_perception.replay.baseline import load_metrics
    from dla_perception.replay.fleet import FleetOptions, run_fleet
    from dla_perception.replay.fleet_report import fleet_summary_text

    finished = []

    def progress(outcome: object) -> None:
        finished.append(outcome)
        metrics = outcome.metrics or {}
        what = outcome.error if outcome.status == "failed" else (
            f"{metrics.get('frames', 0)} frames, {metrics.get('frames_with_output', 0)} with every output")
        print(f"[{len(finished)}/{len(jobs)}] {outcome.name}: {outcome.status}: {what}", flush=True)

    out = args.out or RESULTS_ROOT
    options = FleetOptions(
        jobs=jobs, out=out, engines=engines, robot_config=robot, baseline=args.baseline,
        tolerances=tolerances, frame_timeout_s=args.frame_timeout, with_inputs=args.with_inputs,
        workers=args.workers, ray_address=args.ray_address, domain_base=args.domain_base,
        resume=args.resume, on_bag=progress)
    result = execute(run_fleet, options)
    baseline = load_metrics(args.baseline) if args.baseline is not None else None
    print()
    print(fleet_summary_text(result.metrics, baseline, tolerances, result.regressions))
    print(f"\nmetrics: {out / 'metrics.json'}\nreport: {result.report}")
    if result.metrics["bags_failed"]:
        print(f"dla-perception replay: error: {result.metrics['bags_failed']} bag(s) failed (see above)",
              file=sys.stderr)
        return 2
    if result.regressions:
        return 1
    if result.metrics["frames"] and not result.metrics["frames_with_output"]:
        print("dla-perception replay: no frame produced all of its outputs", file=sys.stderr)
        return 1
    return 0
