"""`dla-perception plan` against the container it plans (issue 19): one JSON object.

1. A camera set-up (front priority 10 at up to 2 Hz, five planes; rear, left and right at the drivers' rate,
   24 planes, minimum rates: test/test_cameras.py's overload) on this machine's two one-thread cores
   (config/engines.cpu_cores.yaml).
2. `dla-perception plan --measure --json` predicts each stream's rate from each model timed alone on its
   cores.
3. The perception_container runs those cameras, fed by test/cameras_publisher.py from another process, and
   the rate of each camera's proximity/range is counted over the drive (after a warm-up).
4. `plan --profile` is run again on what the container measured under that load: the engine manager's
   statistics with the streams' (the engine_manager node's statistics_file: engine latencies, and each
   node's own CPU ms per frame outside inference, which runtime/capacity.py takes as the stream's host_ms,
   shared with the cpuN engines' CPUs) -> `plan_statistics_file`; and on the engine latencies alone
   (`plan_in_container_no_host`; `plan_alone_no_host` is step 2's).
5. As a cross-check of the nodes' own figure, the bench also times their per-frame work by wrapping it
   (`node_cpu_ms_p50`); `plan_alone`/`plan_in_container` are the plans with that host time.

Reports, per stream, predicted (both profiles) vs achieved Hz and the relative error; goal within 15 %;
also each stream's median frame wall time, time blocked on the manager, and the plan's frame latency.

    .venv/bin/python benchmarks/bench_plan.py [--rate-hz 6] [--seconds 16]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))

from dla_perception.tools.cli import main as cli  # noqa: E402

ENGINES = REPO / "config" / "engines.cpu_cores.yaml"


def cameras_for(rate_hz: float) -> dict[str, dict]:
    """The set-up: the side cameras' cap is the drivers' rate, so the plan knows what they offer, and every
    camera's expected_rate_hz is the drivers' rate (the plan counts a frame's latency in camera periods)."""
    from test_cameras import HEAVY_PLANES_M as HEAVY

    every = {"expected_rate_hz": rate_hz}
    side = {"max_rate_hz": rate_hz, "planes_m": list(HEAVY), **every}
    return {"front": {"priority": 10, "max_rate_hz": 2.0, **every},
            "rear": {"priority": 5, "min_rate_hz": 0.5, **side, "planes_m": list(HEAVY)},
            "left": {"priority": 0, "min_rate_hz": 0.3, **side, "planes_m": list(HEAVY)},
            "right": {"priority": 0, "min_rate_hz": 0.3, **side, "planes_m": list(HEAVY)}}


def run_plan(params: Path, *extra: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["plan", "--config", str(params), "--engines", str(ENGINES), "--json", *extra]) == 0
    return json.loads(out.getvalue())


def time_frames() -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, bool]]:
    """Wrap the nodes' per-frame work (`_compute`: the slot is held for it) to record, per stream, each
    frame's wall time, its worker thread's CPU time (the node's own work: inference runs on the manager's
    threads, a blocked wait takes no CPU) and the time it was blocked on the manager (infer, a future's
    result). Bench-only wrappers: the nodes and the manager are not changed."""
    from dla_perception.nodes.detection import DetectionNode
    from dla_perception.nodes.proximity import ProximitySegmentationNode
    from dla_perception.runtime.streams import StreamView

    frames: dict[str, list[tuple[float, float, float]]] = {}
    recording = {"on": False}
    blocked = threading.local()

    def waited(function):
        def wrapper(*call_args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*call_args, **kwargs)
            finally:
                blocked.s = getattr(blocked, "s", 0.0) + time.perf_counter() - started
        return wrapper

    original_infer, original_submit = StreamView.infer, StreamView.submit
    StreamView.infer = waited(original_infer)

    def submit(self, *call_args, **kwargs):
        future = original_submit(self, *call_args, **kwargs)
        future.result = waited(future.result)
        return future

    StreamView.submit = submit
    for node_class in (ProximitySegmentationNode, DetectionNode):
        original = node_class._compute

        def compute(self, *call_args, _original=original):
            wall, cpu, before = time.perf_counter(), time.thread_time(), getattr(blocked, "s", 0.0)
            try:
                return _original(self, *call_args)
            finally:
                if recording["on"]:
                    frames.setdefault(self._camera_stream.name, []).append(
                        ((time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3,
                         (getattr(blocked, "s", 0.0) - before) * 1e3))

        node_class._compute = compute
    return frames, recording


def plan_with_host(params: Path, profile: dict[str, dict[str, float]], host_ms: dict[str, float]) -> dict:
    """What `plan` predicts from `profile` when each stream's host_ms is the bench's own measurement of its
    frames' median node CPU time (the cross-check of the nodes' self-reported figure)."""
    import yaml

    from dla_perception.runtime.capacity import plan
    from dla_perception.runtime.config import load_engines_config
    from dla_perception.tools.plan import head_batch_of, planned_streams

    document = yaml.safe_load(params.read_text()) or {}
    engines = load_engines_config(ENGINES, require_files=False)
    streams, placement = planned_streams(document, engines, profile, host_ms,
                                         head_batch_of(engines, document))
    return {"profile": profile, **plan(streams, placement, profile).as_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate-hz", type=float, default=6.0, help="every driver's pairs per second")
    parser.add_argument("--seconds", type=float, default=16.0, help="seconds the drivers publish")
    args = parser.parse_args()
    os.environ.setdefault("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90")
    import test_cameras as tc
    from conftest import ros_domain_id

    tc.DOMAIN_ID = ros_domain_id(8)  # not the tests' domains: the bench may run beside them
    tc.PUBLISH_S = args.seconds
    cameras = cameras_for(args.rate_hz)
    folder = Path(tempfile.mkdtemp(prefix="bench_plan_"))
    params = tc.params_file(folder, cameras)
    measured = run_plan(params, "--measure")  # before the container: each model alone on its cores

    # detection on the front camera's left image, as config/four_cameras.yaml runs it (a launch remaps it)
    frames, recording = time_frames()
    graph = tc.Cameras(params, list(cameras), ros_args=("-r", "/front/image:=/front/left/image_rect"))
    try:
        manager = graph.container.engine_manager.manager
        driven: dict = {}

        def drive() -> None:
            driven["sent"] = tc.drive(list(cameras), args.rate_hz)[2]

        driver = threading.Thread(target=drive)
        driver.start()
        time.sleep(tc.WARM_UP_S)
        recording["on"] = True
        first = {name: s["delivered"] for name, s in manager.stream_statistics().items()}
        opened = time.monotonic()
        driver.join()
        closed = time.monotonic()
        recording["on"] = False
        last = {name: s["delivered"] for name, s in manager.stream_statistics().items()}
        achieved = {name: (last[name] - first.get(name, 0)) / (closed - opened) for name in last}
        outputs = {f"{camera}/proximity": graph.rate(camera, opened, closed) for camera in cameras}
        sent = driven["sent"]
        streams = manager.stream_statistics()
        # what the engine_manager node's statistics_file holds (the nodes' own CPU per frame in `streams`),
        # and the same without the streams (engine latencies only)
        statistics, bare = folder / "statistics.json", folder / "statistics_engines_only.json"
        statistics.write_text(json.dumps({**manager.statistics(), "streams": streams}, default=str))
        bare.write_text(json.dumps(manager.statistics(), default=str))
    finally:
        graph.close()
    cli = run_plan(params, "--profile", str(statistics))  # `plan` as a user runs it on the statistics_file
    in_situ = run_plan(params, "--profile", str(bare))
    def p50(index: int) -> dict[str, float]:
        return {name: sorted(t[index] for t in times)[len(times) // 2] for name, times in frames.items()}

    median = p50(1)
    with_host = plan_with_host(params, in_situ["profile"], median)
    alone_host = plan_with_host(params, measured["profile"], median)
    load = os.getloadavg()

    def table(predicted: dict) -> dict:
        rows = {}
        for stream, rate in predicted["rates_hz"].items():
            got = achieved[stream]
            error = abs(rate - got) / max(got, 1e-9)
            rows[stream] = {"predicted_hz": rate, "achieved_hz": got, "error": error}
        return rows

    alone, loaded = table(alone_host), table(with_host)
    alone_cli, loaded_cli, statistics_file = table(measured), table(in_situ), table(cli)
    result = {
        "cameras": cameras, "rate_hz": args.rate_hz, "sent": sent, "window_s": closed - opened,
        "range_outputs_hz": outputs,
        "profile_alone_ms": measured["profile"], "profile_in_container_ms": in_situ["profile"],
        "plan_alone": alone, "plan_in_container": loaded,
        "plan_alone_no_host": alone_cli, "plan_in_container_no_host": loaded_cli,
        "plan_statistics_file": statistics_file, "host_ms_statistics_file": cli["host_ms"],
        "node_cpu_ms_p50": median, "latency_plan_ms": with_host["latency_ms"],
        "frame_wall_ms_p50": p50(0), "frame_blocked_on_manager_ms_p50": p50(2),
        "utilisation_alone": measured["utilisation"], "utilisation_in_container": in_situ["utilisation"],
        "max_error_alone": max(row["error"] for row in alone.values()),
        "max_error_in_container": max(row["error"] for row in loaded.values()),
        "max_error_alone_no_host": max(row["error"] for row in alone_cli.values()),
        "max_error_in_container_no_host": max(row["error"] for row in loaded_cli.values()),
        "max_error_statistics_file": max(row["error"] for row in statistics_file.values()),
        "stream_latency_ms": {name: {key: s.get(key) for key in ("latency_p50_ms", "latency_p99_ms")}
                              for name, s in streams.items()},
        "error_goal": 0.15, "load_average": load,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
