"""Lock-step replay of a bag through the real perception graph.

For each frame: publish /clock at the frame's stamp, then the camera models and images exactly as stored
in the bag, then wait until every node has answered that stamp (its outputs received, or its own report
that it rejected or failed the frame) before the next frame goes out. Nothing is dropped and the results
do not depend on the machine's speed; a node that never answers costs one `frame_timeout_s` and is
reported as a missing output, never a hang.

Outputs are written to the output bag as they arrive; metrics.json and report.html are written at the end,
also when the bag turns out truncated half-way or the user interrupts (partial results stay readable).
Many bags (sequentially or on Ray) go through `fleet`, which calls `replay` once per bag.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dla_perception.replay import bag as bagmod
from dla_perception.replay.baseline import Regression, Tolerances, compare, load_metrics
from dla_perception.replay.engine_cache import EngineCache
from dla_perception.replay.fingerprint import (
    bag_fingerprint,
    code_fingerprint,
    config_fingerprint,
    engines_fingerprint,
)
from dla_perception.replay.graph import PerceptionGraph
from dla_perception.replay.player import BagPlayer, Received
from dla_perception.replay.recorder import OutputBag
from dla_perception.replay.records import FrameRecord, Overlay
from dla_perception.replay.report import write_report
from dla_perception.replay.results import build_metrics, latencies_by_core, write_results
from dla_perception.replay.scoring import Scorer, frame_detections, score_proximity
from dla_perception.replay.timing import RunLog
from dla_perception.replay.topics import camera_remaps
from dla_perception.replay.worst import WorstFrames

OUTPUT_BAG_NAME = "output_bag"
DISCOVERY_TIMEOUT_S = 30.0
PRIMING_S = 0.5  # camera models of the first frame get this long to reach the node before its images
STRAGGLER_WAIT_S = 0.5


@dataclass
class ReplayOptions:
    bag: Path
    out: Path
    engines: Path
    robot_config: Path | None = None
    baseline: Path | None = None
    max_frames: int | None = None
    remaps: list[str] = field(default_factory=list)
    namespace: str | None = None  # bag topics under it are read without it
    camera_topics: list[str] | None = None  # IMAGE | LEFT RIGHT [LEFT_INFO RIGHT_INFO] (topics.py)
    parameters: list[str] = field(default_factory=list)  # `name:=value` / `node:name:=value`, as ros2 run -p
    ground_truth: str | None = None  # the bag's ground-truth disparity topic; None: detected
    with_inputs: bool = False  # images (and ground truth) into the output bag too; camera_info always
    frame_timeout_s: float = 60.0
    tolerances: Tolerances = field(default_factory=Tolerances)
    overlays: int = 3  # frames shown per criterion (worst IoU, slowest)
    progress: bool = True
    nodes: list[str] | None = None  # "proximity", "detection"; None: every node the bag can feed
    domain_id: int | None = None
    engine_cache: EngineCache | None = None  # engines kept across replays (a fleet worker); None: own

    def settings(self) -> dict:
        """The per-bag choices results depend on (config fingerprint; resume compares them)."""
        return {"max_frames": self.max_frames, "remaps": self.remaps, "namespace": self.namespace,
                "camera_topics": self.camera_topics, "parameters": self.parameters,
                "ground_truth": self.ground_truth, "nodes": self.nodes, "with_inputs": self.with_inputs}

    def fingerprint(self) -> dict[str, str]:
        return {"code": code_fingerprint(), "models": engines_fingerprint(self.engines),
                "config": config_fingerprint(self.robot_config, self.settings()),
                "bag": bag_fingerprint(bagmod.bag_directory(self.bag))}


@dataclass
class ReplayResult:
    metrics: dict
    report: Path | None
    output_bag: Path
    regressions: list[Regression] | None = None
    error: str | None = None  # set when the replay stopped early (partial results were written)


class _Inbox:
    """Outputs and node outcomes as they arrive from executor threads; the main thread waits on it.

    Lock-step means every frame is processed exactly once: a node dropping a frame (busy with another),
    answering a frame twice or answering one the replay never sent (a foreign publisher) breaks that, and
    is kept in `violations` for the run to fail loudly on.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: dict[int, dict[str, Received]] = {}
        self.outcomes: dict[int, dict[str, Any]] = {}
        self.violations: list[str] = []
        self.played: set[int] = set()  # stamps of the frames sent so far
        self._seen: set[tuple[str, int]] = set()

    def add_message(self, received: Received) -> None:
        with self.cond:
            key = (received.topic, received.stamp_ns)
            if received.stamp_ns not in self.played:
                self.violations.append(f"{received.topic} answered a frame the replay never sent (stamp "
                                       f"{received.stamp_ns} ns)")
            elif key in self._seen:
                self.violations.append(f"{received.topic} answered the frame stamped {received.stamp_ns} ns "
                                       "twice")
            self._seen.add(key)
            self.messages.setdefault(received.stamp_ns, {})[received.topic] = received
            self.cond.notify_all()

    def add_outcome(self, node_name: str, outcome: Any) -> None:
        with self.cond:
            if outcome.stamp_ns not in self.played:
                self.violations.append(f"{node_name} processed a frame the replay never sent (stamp "
                                       f"{outcome.stamp_ns} ns, {outcome.status})")
            elif outcome.status == "dropped":
                self.violations.append(f"{node_name} dropped the frame stamped {outcome.stamp_ns} ns "
                                       f"({outcome.reason})")
            else:
                self.outcomes.setdefault(outcome.stamp_ns, {})[node_name] = (outcome, time.perf_counter())
            self.cond.notify_all()

    def pop(self, stamp_ns: int) -> tuple[dict[str, Received], dict[str, Any]]:
        with self.cond:
            return self.messages.pop(stamp_ns, {}), self.outcomes.pop(stamp_ns, {})


def lock_step_error(violations: list[str]) -> str:
    return ("lock-step broken, results are not trustworthy: " + "; ".join(violations[:3])
            + (f" (+{len(violations) - 3} more)" if len(violations) > 3 else "")
            + ". The replay sends a frame only once every node answered the previous one and its graph "
            "hears no other process, so this is a bug: please report it with the bag")


def replay(options: ReplayOptions) -> ReplayResult:
    """Runs a replay and writes metrics.json, the output bag and report.html into options.out.

    Raises BagError (ValueError for a baseline that is not a metrics.json) before anything is written when
    the bag cannot be replayed at all; a bag that breaks half-way returns a result with `error` set,
    after writing what was produced.
    """
    baseline = load_metrics(options.baseline) if options.baseline is not None else None  # fail fast
    remaps = [*camera_remaps(options.camera_topics), *options.remaps]
    bag = bagmod.InputBag(options.bag, remaps, options.namespace, options.ground_truth)
    cache = options.engine_cache or EngineCache()
    try:
        options.out.mkdir(parents=True, exist_ok=True)
        metrics, records, run_log, pictures = _run(bag, cache, options)
    finally:
        bag.close()
        if options.engine_cache is None:
            cache.close()
    metrics["fingerprint"] = options.fingerprint()
    write_results(options.out, metrics, records, run_log)
    regressions = compare(metrics, baseline, options.tolerances) if baseline is not None else None
    report = write_report(options.out, metrics, records, latencies_by_core(run_log), pictures, regressions)
    return ReplayResult(metrics, report, options.out / OUTPUT_BAG_NAME, regressions, metrics["error"])


def _run(bag: bagmod.InputBag, cache: EngineCache, options: ReplayOptions
         ) -> tuple[dict, list[FrameRecord], RunLog, list[Overlay]]:
    from dla_perception.nodes.spinning import IsolatedSpinner

    output_path = options.out / OUTPUT_BAG_NAME
    graph = output = player = spinner = None
    records: list[FrameRecord] = []
    error: str | None = None
    started_wall = time.perf_counter()
    try:
        graph = PerceptionGraph(bag.mode, cache.get(options.engines), options.robot_config, options.nodes,
                                options.domain_id, options.parameters, bag.image_transport)
        output = OutputBag(output_path, bag.storage)
        inbox = _Inbox()
        player = BagPlayer(graph, bag, output, inbox, options.with_inputs)
        for graph_node in graph.nodes:
            add_listener = getattr(graph_node.node, "add_frame_listener", None)
            if add_listener is not None:
                add_listener(lambda outcome, name=graph_node.name: inbox.add_outcome(name, outcome))
        spinner = IsolatedSpinner([*graph.rcl_nodes(), player.node], graph.context).start()
        player.wait_for_connections(graph, DISCOVERY_TIMEOUT_S)

        scorer = Scorer(graph, bag.has_ground_truth)
        worst = WorstFrames(options.overlays)
        total = min(bag.expected_frames, options.max_frames or bag.expected_frames)
        progress = _progress_bar(total, options.progress)
        started_wall = time.perf_counter()
        try:
            for frame in bag.frames(options.max_frames, scorer.pair_slop_ns):
                if frame.index == 0:
                    player.prime(frame)
                    time.sleep(PRIMING_S)
                record = _replay_frame(frame, graph, player, inbox, scorer, options, worst)
                player.flush()
                records.append(record)
                progress.update(1)
                if inbox.violations:
                    error = lock_step_error(inbox.violations)
                    break
                if record.end_to_end_ms is not None:
                    progress.set_postfix_str(f"{record.end_to_end_ms:.0f} ms/frame", refresh=False)
        except bagmod.BagError as exc:
            error = str(exc)
        except KeyboardInterrupt:
            error = "interrupted by the user"
        finally:
            progress.close()
        if not records and error is None:
            error = ("the bag has no complete frame: no left/right image pair with the same header stamp "
                     "and camera_info on both sides" if bag.mode == "stereo" else "the bag has no image")
        time.sleep(STRAGGLER_WAIT_S if records else 0)  # optional outputs (overlay images) still in flight
        if inbox.violations and error is None:
            error = lock_step_error(inbox.violations)
        wall_s = time.perf_counter() - started_wall
        metrics = build_metrics(bag, graph, records, scorer, wall_s, error, output_path)
        pictures = worst.overlays(sorted(scorer.planes_m), scorer.planes_px, scorer.alert_distance_m)
    finally:
        if spinner is not None:
            spinner.shutdown()
        if player is not None:
            player.flush()
            player.destroy()
        if output is not None:
            output.close()
        if graph is not None:
            graph.close()
    metrics["output_bag_messages"] = dict(sorted(output.counts.items()))
    return metrics, records, graph.run_log, pictures


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="replay", disable=not enabled, dynamic_ncols=True)


def _replay_frame(frame: bagmod.Frame, graph: PerceptionGraph, player: BagPlayer, inbox: _Inbox,
                  scorer: Scorer, options: ReplayOptions, worst: WorstFrames) -> FrameRecord:
    with inbox.cond:
        inbox.played.add(frame.stamp_ns)
    started = player.play(frame)
    deadline = time.monotonic() + options.frame_timeout_s
    with inbox.cond:
        inbox.cond.wait_for(lambda: inbox.violations or _answered(frame.stamp_ns, graph, player, inbox),
                            timeout=max(0.0, deadline - time.monotonic()))
    messages, outcomes = inbox.pop(frame.stamp_ns)
    record = FrameRecord(frame.index, frame.stamp_ns)
    finished = []
    for graph_node in graph.frame_nodes():
        outcome, outcome_at = outcomes.get(graph_node.name, (None, None))
        for topic in player.required[graph_node.name]:
            if topic in messages:
                finished.append(messages[topic].at)
            else:
                record.missing.append(topic)
        if outcome is not None and outcome_at is not None:
            finished.append(outcome_at)
            if outcome.status != "published":
                record.missing.append(f"{graph_node.name}: {outcome.status} ({outcome.reason})")
        elif not player.required[graph_node.name]:
            record.missing.append(f"{graph_node.name}: no answer")
    detections = frame_detections(frame, graph, player, messages, outcomes)
    record.detections = None if detections is None else len(detections)
    if not record.missing and finished:
        record.end_to_end_ms = (max(finished) - started) * 1e3
    score_proximity(frame, messages, scorer, record)
    worst.offer(record, frame, messages, detections)
    return record


def _answered(stamp_ns: int, graph: PerceptionGraph, player: BagPlayer, inbox: _Inbox) -> bool:
    """Every node has either sent all its required outputs for the stamp or reported a failure for it."""
    messages = inbox.messages.get(stamp_ns, {})
    outcomes = inbox.outcomes.get(stamp_ns, {})
    for graph_node in graph.frame_nodes():
        outcome = outcomes.get(graph_node.name)
        if outcome is not None and outcome[0].status != "published":
            continue
        required = player.required[graph_node.name]
        if required and all(topic in messages for topic in required):
            continue
        if not required and outcome is not None:
            continue
        return False
    return True
