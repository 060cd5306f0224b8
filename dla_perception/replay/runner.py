"""Lock-step replay of a bag through the real perception graph.

For each frame: publish /clock at the frame's stamp, then the camera models and images exactly as stored
in the bag, then wait until every node has answered that stamp (its outputs received, or its own report
that it rejected or failed the frame) before the next frame goes out. Nothing is dropped and the results
do not depend on the machine's speed; a node that never answers costs one `frame_timeout_s` and is
reported as a missing output, never a hang.

Outputs are written to the output bag as they arrive; metrics.json and report.html are written at the end,
also when the bag turns out truncated half-way or the user interrupts (partial results stay readable).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dla_perception.models.proximity_geometry import StereoGeometry
from dla_perception.replay import bag as bagmod
from dla_perception.replay.baseline import Regression, Tolerances, compare, load_metrics
from dla_perception.replay.graph import DIAGNOSTICS, GraphNode, PerceptionGraph
from dla_perception.replay.messages import DETECTION_ARRAY_TYPE, typestore
from dla_perception.replay.metrics import ProximityScore, latency_summary
from dla_perception.replay.recorder import OutputBag
from dla_perception.replay.report import FrameRecord, Overlay, write_report

OUTPUT_BAG_NAME = "output_bag"
DISCOVERY_TIMEOUT_S = 30.0
PRIMING_S = 0.5  # camera models of the first frame get this long to reach the node before its images
STRAGGLER_WAIT_S = 0.5
# Camera models before images, so a pair never races its own camera_info.
PUBLISH_ORDER = (bagmod.LEFT_INFO, bagmod.RIGHT_INFO, bagmod.RIGHT_IMAGE, bagmod.LEFT_IMAGE,
                 bagmod.MONO_IMAGE)


@dataclass
class ReplayOptions:
    bag: Path
    out: Path
    engines: Path
    robot_config: Path | None = None
    baseline: Path | None = None
    max_frames: int | None = None
    remaps: list[str] = field(default_factory=list)
    frame_timeout_s: float = 60.0
    tolerances: Tolerances = field(default_factory=Tolerances)
    overlays: int = 4
    progress: bool = True
    nodes: list[str] | None = None  # "proximity", "detection"; None: every node the bag can feed
    domain_id: int | None = None


@dataclass
class ReplayResult:
    metrics: dict
    report: Path | None
    output_bag: Path
    regressions: list[Regression] | None = None
    error: str | None = None  # set when the replay stopped early (partial results were written)


@dataclass
class _Received:
    topic: str
    msgtype: str
    stamp_ns: int
    raw: bytes
    at: float  # time.perf_counter() at arrival


class _Inbox:
    """Outputs and node outcomes as they arrive from executor threads; the main thread waits on it.

    Lock-step means every frame is processed exactly once: a node dropping a frame (busy with another),
    answering a frame twice or answering one the replay never sent (a foreign publisher) breaks that, and
    is kept in `violations` for the run to fail loudly on.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: dict[int, dict[str, _Received]] = {}
        self.outcomes: dict[int, dict[str, Any]] = {}
        self.violations: list[str] = []
        self.played: set[int] = set()  # stamps of the frames sent so far
        self._seen: set[tuple[str, int]] = set()

    def add_message(self, received: _Received) -> None:
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

    def pop(self, stamp_ns: int) -> tuple[dict[str, _Received], dict[str, Any]]:
        with self.cond:
            return self.messages.pop(stamp_ns, {}), self.outcomes.pop(stamp_ns, {})


def lock_step_error(violations: list[str]) -> str:
    return ("lock-step broken, results are not trustworthy: " + "; ".join(violations[:3])
            + (f" (+{len(violations) - 3} more)" if len(violations) > 3 else "")
            + ". The replay sends a frame only once every node answered the previous one and its graph "
            "hears no other process, so this is a bug: please report it with the bag")


class _ReplayNode:
    """The replay's own rclpy node: plays the bag (inputs and /clock) and records every output."""

    def __init__(self, graph: PerceptionGraph, bag: bagmod.InputBag, output: OutputBag,
                 inbox: _Inbox) -> None:
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, Image

        self.node = Node("replay", context=graph.context)
        self.output, self.inbox = output, inbox
        self.write_lock = threading.Lock()
        self.to_write: list[tuple[str, str, int, bytes]] = []  # written by the main thread (flush)
        self.log_time_of_stamp: dict[int, int] = {}
        self.current_log_time_ns = 0
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.clock = self.node.create_publisher(Clock, "/clock", reliable)
        inputs = bagmod.STEREO_TOPICS if bag.mode == "stereo" else {bagmod.MONO_IMAGE: bagmod.IMAGE}
        classes = {bagmod.IMAGE: Image, bagmod.CAMERA_INFO: CameraInfo}
        self.inputs = {topic: self.node.create_publisher(classes[msgtype], topic, reliable)
                       for topic, msgtype in inputs.items()}
        self.required: dict[str, list[str]] = {}  # node name -> output topics it publishes and we wait for
        self.subscriptions = []
        self.subscribed: set[str] = set()
        for graph_node in graph.nodes:
            self.required[graph_node.name] = self._subscribe(graph_node)

    def _subscribe(self, graph_node: GraphNode) -> list[str]:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        publishers = {p.topic_name.lstrip("/"): p for p in graph_node.node.publishers}
        required = []
        for topic in graph_node.required + graph_node.optional:
            publisher = publishers.get(topic)
            if publisher is None:
                continue  # e.g. `detections` where vision_msgs is missing: taken from the node's outcome
            if topic in graph_node.required:
                required.append(topic)
            if topic in self.subscribed:
                continue  # /diagnostics has several publishers; one subscription records them all
            msg_class = publisher.msg_type
            msgtype = _ros_type_name(msg_class)
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self.subscriptions.append(self.node.create_subscription(
                msg_class, topic, self._callback(topic, msgtype), qos, raw=True))
            self.subscribed.add(topic)
        return required

    def _callback(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        def receive(raw: bytes) -> None:
            at = time.perf_counter()
            try:
                stamp_ns = _stamp_of(typestore().deserialize_cdr(raw, msgtype))
            except Exception:  # a type the typestore lacks: not decodable here, not recordable either
                return
            with self.write_lock:
                log_time = self.log_time_of_stamp.get(stamp_ns, self.current_log_time_ns)
                self.to_write.append((topic, msgtype, log_time, raw))
            if topic != DIAGNOSTICS:
                self.inbox.add_message(_Received(topic, msgtype, stamp_ns, raw, at))

        return receive

    def write(self, topic: str, msgtype: str, stamp_ns: int, raw: bytes) -> None:
        """Queues a message for the output bag at the bag time of the frame with this stamp."""
        with self.write_lock:
            log_time = self.log_time_of_stamp.get(stamp_ns, self.current_log_time_ns)
            self.to_write.append((topic, msgtype, log_time, raw))

    def flush(self) -> None:
        """Writes the queued messages; main thread only (the sqlite3 writer is bound to its thread)."""
        with self.write_lock:
            pending, self.to_write = self.to_write, []
        for topic, msgtype, log_time, raw in pending:
            self.output.write(topic, msgtype, log_time, raw)

    def play(self, frame: bagmod.Frame) -> float:
        """Publishes one frame (clock, camera models, right then left image); returns the start time."""
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        with self.write_lock:
            self.log_time_of_stamp[frame.stamp_ns] = frame.log_time_ns
            self.current_log_time_ns = frame.log_time_ns
        sec, nanosec = divmod(frame.stamp_ns, 1_000_000_000)
        started = time.perf_counter()
        self.clock.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
        for topic in PUBLISH_ORDER:
            message = frame.messages.get(topic)
            if message is not None and topic in self.inputs:
                self.inputs[topic].publish(message.raw)
        return started

    def prime(self, frame: bagmod.Frame) -> None:
        """Camera models first, so the first stereo pair does not race its own camera_info."""
        for topic in (bagmod.LEFT_INFO, bagmod.RIGHT_INFO):
            message = frame.messages.get(topic)
            if message is not None and topic in self.inputs:
                self.inputs[topic].publish(message.raw)

    def wait_for_connections(self, graph: PerceptionGraph, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            inputs_ok = all(p.get_subscription_count() > 0 for p in self.inputs.values())
            outputs_ok = all(s.get_publisher_count() > 0 for s in self.subscriptions)
            if inputs_ok and outputs_ok:
                return
            time.sleep(0.02)
        unconnected = [t for t, p in self.inputs.items() if p.get_subscription_count() == 0]
        unconnected += [s.topic_name for s in self.subscriptions if s.get_publisher_count() == 0]
        raise RuntimeError(f"the perception nodes did not connect within {timeout_s:.0f} s: {unconnected}")

    def destroy(self) -> None:
        self.node.destroy_node()


def _ros_type_name(msg_class: type) -> str:
    package = msg_class.__module__.split(".")[0]
    return f"{package}/msg/{msg_class.__name__}"


def _stamp_of(message: Any) -> int:
    header = getattr(message, "header", None)
    if header is None:
        return -1
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def replay(options: ReplayOptions) -> ReplayResult:
    """Runs a replay and writes metrics.json, the output bag and report.html into options.out.

    Raises BagError (ValueError for a baseline that is not a metrics.json) before anything is written when
    the bag cannot be replayed at all; a bag that breaks half-way returns a result with `error` set,
    after writing what was produced.
    """
    from dla_perception.nodes.spinning import IsolatedSpinner

    baseline = load_metrics(options.baseline) if options.baseline is not None else None  # fail fast
    bag = bagmod.InputBag(options.bag, options.remaps)
    options.out.mkdir(parents=True, exist_ok=True)
    output_path = options.out / OUTPUT_BAG_NAME
    graph = output = player = spinner = None
    records: list[FrameRecord] = []
    overlays: list[Overlay] = []
    error: str | None = None
    started_wall = time.perf_counter()
    try:
        graph = PerceptionGraph(bag.mode, options.engines, options.robot_config, options.nodes,
                                options.domain_id)
        output = OutputBag(output_path, bag.storage)
        inbox = _Inbox()
        player = _ReplayNode(graph, bag, output, inbox)
        for graph_node in graph.nodes:
            add_listener = getattr(graph_node.node, "add_frame_listener", None)
            if add_listener is not None:
                add_listener(lambda outcome, name=graph_node.name: inbox.add_outcome(name, outcome))
        spinner = IsolatedSpinner([*graph.rcl_nodes(), player.node], graph.context).start()
        player.wait_for_connections(graph, DISCOVERY_TIMEOUT_S)

        scorer = _Scorer(graph, bag.has_ground_truth)
        total = min(bag.expected_frames, options.max_frames or bag.expected_frames)
        overlay_at = set(np.linspace(0, max(0, total - 1), min(options.overlays, total)).round().astype(int))
        progress = _progress_bar(total, options.progress)
        started_wall = time.perf_counter()
        try:
            for frame in bag.frames(options.max_frames, scorer.pair_slop_ns):
                if frame.index == 0:
                    player.prime(frame)
                    time.sleep(PRIMING_S)
                record, overlay = _replay_frame(frame, graph, player, inbox, scorer, options,
                                                frame.index in overlay_at)
                player.flush()
                records.append(record)
                if overlay is not None:
                    overlays.append(overlay)
                if inbox.violations:
                    error = lock_step_error(inbox.violations)
                    break
                progress.update(1)
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
        metrics = _metrics(bag, graph, records, scorer, wall_s, error, output_path)
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
        bag.close()
    if output is not None:
        metrics["output_bag_messages"] = dict(sorted(output.counts.items()))
    (options.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (options.out / "frames.jsonl").open("w") as per_frame:  # one line per frame, for digging in
        for record in records:
            per_frame.write(json.dumps(dataclasses.asdict(record)) + "\n")
    regressions = compare(metrics, baseline, options.tolerances) if baseline is not None else None
    latencies: dict[str, dict[str, list[float]]] = {}
    for core, runs in graph.run_log.by_core().items():
        for run in runs:
            if run.ok:
                latencies.setdefault(core, {}).setdefault(run.model, []).append(run.latency_ms)
    report = write_report(options.out, metrics, records, latencies, overlays, regressions)
    return ReplayResult(metrics, report, output_path, regressions, error)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="replay", disable=not enabled, dynamic_ncols=True)


class _Scorer:
    """Proximity accuracy against ground truth, with the node's own planes, alert distance and pairing."""

    def __init__(self, graph: PerceptionGraph, has_ground_truth: bool) -> None:
        self.planes_m = [float(p) for p in graph.parameter("proximity_segmentation", "planes_m", []) or []]
        self.alert_distance_m = graph.parameter("proximity_segmentation", "alert_distance_m")
        # Frames pair left and right images as the node does.
        self.pair_slop_ns = int(float(graph.parameter("proximity_segmentation", "sync_slop_s", 0.0)) * 1e9)
        self.score = ProximityScore(sorted(self.planes_m)) if has_ground_truth and self.planes_m else None
        self.problems: list[str] = []  # ground truth that could not be scored, once per kind

    def geometry(self, frame: bagmod.Frame) -> StereoGeometry:
        """The frame's stereo model (ValueError for an unusable camera_info pair)."""
        left = bagmod.decode(frame.messages[bagmod.LEFT_INFO])
        right = bagmod.decode(frame.messages[bagmod.RIGHT_INFO])
        return StereoGeometry.from_projections(left.p, right.p)


def _replay_frame(frame: bagmod.Frame, graph: PerceptionGraph, player: _ReplayNode, inbox: _Inbox,
                  scorer: _Scorer, options: ReplayOptions, keep_overlay: bool
                  ) -> tuple[FrameRecord, Overlay | None]:
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
    detections = _detections(frame, graph, player, messages, outcomes)
    record.detections = None if detections is None else len(detections)
    if not record.missing and finished:
        record.end_to_end_ms = (max(finished) - started) * 1e3
    _proximity(frame, messages, scorer, record)
    overlay = _overlay(frame, messages, scorer, detections or []) if keep_overlay else None
    return record, overlay


def _answered(stamp_ns: int, graph: PerceptionGraph, player: _ReplayNode, inbox: _Inbox) -> bool:
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


def _detections(frame: bagmod.Frame, graph: PerceptionGraph, player: _ReplayNode,
                messages: dict[str, _Received], outcomes: dict[str, Any]
                ) -> list[tuple[str, float, tuple[float, float, float, float]]] | None:
    """The frame's detections as (label, score, box); written to the bag when only the outcome had them."""
    received = messages.get("detections")
    if received is not None and received.msgtype == DETECTION_ARRAY_TYPE:
        return _detection_tuples(typestore().deserialize_cdr(received.raw, DETECTION_ARRAY_TYPE))
    outcome = outcomes.get("detection", (None, None))[0]
    if outcome is None or outcome.status != "published":
        return None
    fields = outcome.outputs.get("detections")
    if not isinstance(fields, dict):
        return None
    from dla_perception.nodes.messages import rosbags_message

    message = rosbags_message(typestore(), DETECTION_ARRAY_TYPE, fields)
    player.write("detections", DETECTION_ARRAY_TYPE, frame.stamp_ns,
                 bytes(typestore().serialize_cdr(message, DETECTION_ARRAY_TYPE)))
    return _detection_tuples(message)


def _detection_tuples(array: Any) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    items = []
    for detection in array.detections:
        box = detection.bbox
        cx, cy = box.center.position.x, box.center.position.y
        hypothesis = detection.results[0].hypothesis if len(detection.results) else None
        label = hypothesis.class_id if hypothesis else "?"
        score = hypothesis.score if hypothesis else 0.0
        items.append((label, float(score), (cx - box.size_x / 2, cy - box.size_y / 2,
                                             cx + box.size_x / 2, cy + box.size_y / 2)))
    return items


def _proximity(frame: bagmod.Frame, messages: dict[str, _Received], scorer: _Scorer,
               record: FrameRecord) -> None:
    range_message = messages.get("proximity/range")
    if range_message is not None:
        value = float(typestore().deserialize_cdr(range_message.raw, range_message.msgtype).range)
        record.nearest_m = value if np.isfinite(value) else None
    disparity = messages.get("proximity/disparity")
    truth = frame.ground_truth_disparity() if scorer.score is not None else None
    if disparity is None or truth is None:
        return
    level = bagmod.image_array(typestore().deserialize_cdr(disparity.raw, disparity.msgtype).image)
    try:
        planes_px = scorer.geometry(frame).disparity_px(scorer.score.thresholds_m).tolist()
        record.iou = scorer.score.add(frame.index, np.asarray(level, dtype=np.float32), truth, planes_px)
    except ValueError as exc:  # bad camera_info, or ground truth of another size: not scored
        problem = f"ground truth not scored: {exc}"
        if problem not in scorer.problems:
            scorer.problems.append(problem)


def _overlay(frame: bagmod.Frame, messages: dict[str, _Received], scorer: _Scorer,
             detections: list) -> Overlay | None:
    from rosbags.image import message_to_cvimage

    image = frame.messages.get(bagmod.LEFT_IMAGE) or frame.messages.get(bagmod.MONO_IMAGE)
    try:
        rgb = np.ascontiguousarray(message_to_cvimage(bagmod.decode(image), "rgb8"))
    except Exception:  # an image the graph rejected may not decode either; no picture then
        return None
    overlay = Overlay(frame.index, rgb, detections=detections)
    mask = messages.get("proximity/mask")
    if mask is not None:
        mask_message = typestore().deserialize_cdr(mask.raw, mask.msgtype)
        overlay.alert_mask = np.asarray(bagmod.image_array(mask_message))
    truth = frame.ground_truth_disparity()
    if truth is not None and scorer.alert_distance_m and frame.messages.get(bagmod.LEFT_INFO):
        try:
            alert_px = float(scorer.geometry(frame).disparity_px(float(scorer.alert_distance_m)))
            overlay.truth_mask = np.nan_to_num(truth) > alert_px
        except ValueError:  # unusable camera_info: the picture goes without the ground-truth outline
            pass
    return overlay


def _metrics(bag: bagmod.InputBag, graph: PerceptionGraph, records: list[FrameRecord], scorer: _Scorer,
             wall_s: float, error: str | None, output_path: Path) -> dict:
    runs_by_core = graph.run_log.by_core()
    manager_cores = {}
    if graph.manager is not None:
        manager_cores = graph.manager.statistics().get("cores", {})
    cores = {}
    for core, runs in runs_by_core.items():
        ok = [r.latency_ms for r in runs if r.ok]
        latency = latency_summary(ok)
        cores[core] = {
            "inferences": len(ok),
            "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max")},
            "fps": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
            "errors": len(runs) - len(ok),
            "drops": int((manager_cores.get(core) or {}).get("drops", 0)),
            "engines": sorted({r.model for r in runs}),
        }
    engines = {}
    for core, runs in runs_by_core.items():
        for model in sorted({r.model for r in runs}):
            ok = [r.latency_ms for r in runs if r.model == model and r.ok]
            latency = latency_summary(ok)
            engines[f"{model}@{core}"] = {
                "inferences": len(ok),
                "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max")},
                "errors": sum(1 for r in runs if r.model == model and not r.ok),
            }
    missing: dict[str, int] = {}
    for record in records:
        for item in record.missing:
            missing[item] = missing.get(item, 0) + 1
    end_to_end = latency_summary(r.end_to_end_ms for r in records)
    metrics = {
        "frames": len(records),
        "frames_with_output": sum(1 for r in records if not r.missing),
        "cores": cores,
        "engines": engines,
        "end_to_end_ms": end_to_end,
        "missing_outputs": dict(sorted(missing.items())),
        "bag": {"path": str(bag.path), "storage": bag.storage, "mode": bag.mode,
                "frames_in_bag": bag.expected_frames, "topics": bag.topics},
        "output_bag": str(output_path),
        "wall_s": round(wall_s, 3),
        "complete": error is None,
        "error": error,
        "graph": {"nodes": [n.name for n in graph.nodes], "problems": graph.problems + scorer.problems,
                  "placements": graph.manager.placements() if graph.manager is not None else []},
    }
    if scorer.score is not None:
        metrics["proximity"] = scorer.score.as_dict()
        metrics["proximity"]["alert_distance_m"] = scorer.alert_distance_m
    counted = [r.detections for r in records if r.detections is not None]
    if counted or any(n.name == "detection" for n in graph.nodes):
        metrics["detection"] = {"frames": len(counted), "detections": int(sum(counted))}
    return metrics
