"""Where proximity_segmentation's own time goes per frame, outside inference; bench_nodes.py's run, profiled.

    .venv/bin/python benchmarks/profile_nodes.py [--frames 40] [--top 25] [--sort tottime|cumtime]

Runs benchmarks/bench_nodes.py (its JSON on stdout, as usual) with the node's two per-frame paths wrapped:
the executor's image callback (`_on_image`: pairing, stream statistics, admission, the hand-off) and the
worker's `_process` (decode, parameters, the pipeline, mask/disparity/range messages, mount check, publish,
outcome). Each path gets its own cProfile (cProfile is per thread), and a perf_counter_ns split of the
worker's frame into phases (inference = ProximityPipeline.process). On stderr: per-frame medians of the
phases in microseconds, then the top functions of each path (pipeline.process's callees excluded from the
worker's table, so what remains is the node's own work). Profiling slows Python code ~2x: compare the
phases' medians with each other and before/after a change, not with bench_nodes' figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--callers", default="", help="also print the callers of functions matching this")
    parser.add_argument("--executor", action="store_true",
                        help="also profile the node's executor thread over the whole run")
    parser.add_argument("--no-cprofile", action="store_true", help="phases only (no cProfile slow-down)")
    parser.add_argument("--switch-interval-ms", type=float, default=0.0,
                        help="an experiment: sys.setswitchinterval (the GIL hand-over period; 5 ms default)")
    args = parser.parse_args()
    if args.switch_interval_ms > 0:
        sys.setswitchinterval(args.switch_interval_ms / 1e3)

    import bench_nodes
    from rclpy.executors import Executor
    from rclpy.publisher import Publisher

    from dla_perception.models.proximity import ProximityPipeline
    from dla_perception.nodes import proximity
    from dla_perception.nodes.messages import stamp_to_ns
    from dla_perception.nodes.spinning import IsolatedSpinner

    node_class = proximity.ProximitySegmentationNode
    callback_profile, worker_profile = cProfile.Profile(), cProfile.Profile()
    phases: dict[str, list[float]] = defaultdict(list)
    worker_state = {"inside": False, "pipeline_ns": 0}
    marks: dict[int, dict[str, int]] = defaultdict(dict)  # stamp -> event -> perf_counter_ns

    original_on_image, original_process = node_class._on_image, node_class._process
    original_compute, original_pipeline = node_class._compute, ProximityPipeline.process
    original_outputs, original_floor = node_class._outputs, node_class._floor_outputs
    original_finish = node_class._finish

    def profiled(profile: cProfile.Profile, function, *call_args, **kwargs):
        if args.no_cprofile:
            return function(*call_args, **kwargs)
        profile.enable()
        try:
            return function(*call_args, **kwargs)
        finally:
            profile.disable()

    def timed(name: str, function):
        def wrapper(*call_args, **kwargs):
            start, cpu = time.perf_counter_ns(), time.thread_time_ns()
            try:
                return function(*call_args, **kwargs)
            finally:
                phases[name].append((time.perf_counter_ns() - start) / 1e3)
                phases[name + " (thread CPU)"].append((time.thread_time_ns() - cpu) / 1e3)
        return wrapper

    def on_image(self, side, msg):
        start = time.perf_counter_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        marks[stamp].setdefault(f"{side}_callback", start)
        if args.executor:  # one profiler per thread: the executor's whole-thread one is on
            original_on_image(self, side, msg)
        else:
            profiled(callback_profile, original_on_image, self, side, msg)
        marks[stamp][f"{side}_callback_end"] = end = time.perf_counter_ns()
        phases[f"on_image_{side}"].append((end - start) / 1e3)

    def process(self, left, right, geometry):
        worker_state["inside"], worker_state["pipeline_ns"] = True, 0
        start = time.perf_counter_ns()
        stamp = stamp_to_ns(left.header.stamp)
        worker_state["stamp"] = stamp
        marks[stamp]["worker"] = start
        try:
            profiled(worker_profile, original_process, self, left, right, geometry)
        finally:
            worker_state["inside"] = False
        marks[stamp]["worker_end"] = time.perf_counter_ns()
        if "executor_cpu" in marks[stamp]:  # the executor's CPU for this pair: both images, the hand-off
            phases["executor thread CPU, publish -> outcome"].append(
                ((executor_cpu_ns() or 0) - marks[stamp]["executor_cpu"]) / 1e3)
        total = time.perf_counter_ns() - start
        phases["worker_total"].append(total / 1e3)
        phases["worker_outside_inference"].append((total - worker_state["pipeline_ns"]) / 1e3)

    def pipeline_process(self, *call_args, **kwargs):
        if not worker_state["inside"]:  # bench_nodes' own pipeline-alone run
            return original_pipeline(self, *call_args, **kwargs)
        start = time.perf_counter_ns()
        marks[worker_state["stamp"]]["pipeline"] = start
        try:
            return original_pipeline(self, *call_args, **kwargs)
        finally:
            marks[worker_state["stamp"]]["pipeline_end"] = time.perf_counter_ns()
            elapsed = time.perf_counter_ns() - start
            worker_state["pipeline_ns"] += elapsed
            phases["inference(pipeline.process)"].append(elapsed / 1e3)

    def compute(self, *call_args):
        start = time.perf_counter_ns()
        try:
            return original_compute(self, *call_args)
        finally:
            phases["compute(decode+pipeline+messages)"].append((time.perf_counter_ns() - start) / 1e3)

    traced = ("/left/image_rect", "/right/image_rect", "/floor/left/image_rect", "/floor/right/image_rect")
    deliveries: dict[str, dict[str, list[int]]] = {topic: defaultdict(list) for topic in traced}

    def publish(self, msg):
        if self.topic_name in traced:
            start = time.perf_counter_ns()
            if self.topic_name in traced[:2]:
                mark = marks[stamp_to_ns(msg.header.stamp)]
                mark.setdefault("published", start)
                mark.setdefault("executor_cpu", executor_cpu_ns() or 0)
            deliveries[self.topic_name]["publish"].append(start)
            try:
                return original_publish(self, msg)
            finally:
                deliveries[self.topic_name]["publish_end"].append(time.perf_counter_ns())
        return original_publish(self, msg)

    def take_subscription(self, sub):  # the executor taking (deserialising) one message
        if sub.topic_name not in traced:
            return original_take(self, sub)
        deliveries[sub.topic_name]["take"].append(time.perf_counter_ns())
        try:
            return original_take(self, sub)
        finally:
            deliveries[sub.topic_name]["take_end"].append(time.perf_counter_ns())

    original_take = Executor._take_subscription
    Executor._take_subscription = take_subscription

    original_publish = Publisher.publish
    Publisher.publish = publish
    node_class._on_image, node_class._process, node_class._compute = on_image, process, compute
    executor_profile = cProfile.Profile()
    original_spin = IsolatedSpinner._spin

    executor_thread: dict[str, int] = {}

    def executor_cpu_ns() -> int | None:
        ident = executor_thread.get("ident")
        return None if ident is None else time.clock_gettime_ns(time.pthread_getcpuclockid(ident))

    def spin(self, executor):  # the node's executor thread, whole (its waits included, as `wait`)
        mine = any(n.get_name() == "proximity_segmentation" for n in executor.get_nodes())
        if mine:
            executor_thread["ident"] = threading.get_ident()
        if args.executor and mine:
            executor_profile.enable()
            try:
                return original_spin(self, executor)
            finally:
                executor_profile.disable()
        return original_spin(self, executor)

    IsolatedSpinner._spin = spin
    node_class._outputs = timed("outputs(mask,disparity,range)", original_outputs)
    node_class._floor_outputs = timed("floor_outputs(mount,points,grid)", original_floor)
    node_class._finish = timed("finish(listeners)", original_finish)
    ProximityPipeline.process = pipeline_process

    sys.argv = [sys.argv[0], "--frames", str(args.frames)]
    bench_nodes.main()

    err = sys.stderr
    print(f"per-frame phases, microseconds (median / p90 over frames; cProfile "
          f"{'off' if args.no_cprofile else 'on'}):", file=err)
    for name, values in phases.items():
        print(f"  {name:40s} {np.median(values):9.0f} {np.percentile(values, 90):9.0f}  n={len(values)}",
              file=err)
    spans = (("published", "left_callback"), ("left_callback", "right_callback"),
             ("right_callback", "right_callback_end"), ("right_callback_end", "worker"),
             ("worker", "pipeline"), ("pipeline", "pipeline_end"), ("pipeline_end", "worker_end"),
             ("published", "worker_end"))
    print("per-frame timeline, microseconds (median / p90):", file=err)
    for first, second in spans:
        values = [(m[second] - m[first]) / 1e3 for m in marks.values() if first in m and second in m]
        if values:
            print(f"  {first + ' -> ' + second:40s} {np.median(values):9.0f} {np.percentile(values, 90):9.0f}"
                  f"  n={len(values)}", file=err)
    print("deliveries, microseconds from the pair's first publish (median / p90), node inputs and the "
          "floor's (interleaved):", file=err)
    for prefix in ("", "/floor"):
        first = deliveries[f"{prefix}/left/image_rect"]["publish"][-args.frames:]  # the interleaved ones
        for topic in (f"{prefix}/left/image_rect", f"{prefix}/right/image_rect"):
            for event in ("publish_end", "take", "take_end"):
                later = deliveries[topic][event][-args.frames:]
                values = [(b - a) / 1e3 for a, b in zip(first, later, strict=False)]
                if values:
                    print(f"  {topic + ' ' + event:40s} {np.median(values):9.0f} "
                          f"{np.percentile(values, 90):9.0f}  n={len(values)}", file=err)
    if args.no_cprofile:
        return
    tables = [("worker: _process", worker_profile)]
    tables.insert(0, ("executor thread, whole run", executor_profile) if args.executor
                  else ("executor: _on_image", callback_profile))
    for title, profile in tables:
        stream = io.StringIO()
        stats = pstats.Stats(profile, stream=stream)
        if title.startswith("worker"):  # drop inference and what it calls: the node's own work remains
            _exclude_pipeline(stats)
        stats.sort_stats(args.sort).print_stats(args.top)
        if args.callers:
            stats.print_callers(args.callers)
        print(f"== {title} ==", file=err)
        print(stream.getvalue(), file=err)


def _exclude_pipeline(stats: pstats.Stats) -> None:
    """Remove pipeline_process's wrapper and everything only it calls from the table."""
    raw = stats.stats  # {func: (cc, nc, tt, ct, callers)}
    roots = [func for func in raw if func[2] == "pipeline_process"]
    inside = set(roots)
    changed = True
    while changed:
        changed = False
        for func, (_, _, _, _, callers) in raw.items():
            if func not in inside and callers and all(caller in inside for caller in callers):
                inside.add(func)
                changed = True
    for func in inside:
        raw.pop(func, None)


if __name__ == "__main__":
    main()
