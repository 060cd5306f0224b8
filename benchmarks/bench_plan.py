"""`dla-perception plan` against the container it plans (issue 19): one JSON object.

1. A camera set-up (front priority 10 at up to 2 Hz, five planes; rear, left and right at the drivers' rate,
   24 planes, minimum rates: test/test_cameras.py's overload) on this machine's two one-thread cores
   (config/engines.cpu_cores.yaml).
2. `dla-perception plan --measure --json` predicts each stream's rate from each model timed alone on its
   cores.
3. The perception_container runs those cameras, fed by test/cameras_publisher.py from another process, and
   the rate of each camera's proximity/range is counted over the drive (after a warm-up).
4. `plan --profile` is run again on the latencies the container's engine manager measured under that load
   (EngineManager.statistics(), written with --write-statistics: the profile a running robot gives).

Reports, per stream, predicted (both profiles) vs achieved Hz and the relative error; goal within 15 %.

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
    graph = tc.Cameras(params, list(cameras), ros_args=("-r", "/front/image:=/front/left/image_rect"))
    try:
        manager = graph.container.engine_manager.manager
        driven: dict = {}

        def drive() -> None:
            driven["sent"] = tc.drive(list(cameras), args.rate_hz)[2]

        driver = threading.Thread(target=drive)
        driver.start()
        time.sleep(tc.WARM_UP_S)
        first = {name: s["delivered"] for name, s in manager.stream_statistics().items()}
        opened = time.monotonic()
        driver.join()
        closed = time.monotonic()
        last = {name: s["delivered"] for name, s in manager.stream_statistics().items()}
        achieved = {name: (last[name] - first.get(name, 0)) / (closed - opened) for name in last}
        outputs = {f"{camera}/proximity": graph.rate(camera, opened, closed) for camera in cameras}
        sent = driven["sent"]
        statistics = folder / "statistics.json"
        statistics.write_text(json.dumps(manager.statistics(), default=str))
    finally:
        graph.close()
    in_situ = run_plan(params, "--profile", str(statistics))
    load = os.getloadavg()

    def table(predicted: dict) -> dict:
        rows = {}
        for stream, rate in predicted["rates_hz"].items():
            got = achieved[stream]
            error = abs(rate - got) / max(got, 1e-9)
            rows[stream] = {"predicted_hz": rate, "achieved_hz": got, "error": error}
        return rows

    alone, loaded = table(measured), table(in_situ)
    result = {
        "cameras": cameras, "rate_hz": args.rate_hz, "sent": sent, "window_s": closed - opened,
        "range_outputs_hz": outputs,
        "profile_alone_ms": measured["profile"], "profile_in_container_ms": in_situ["profile"],
        "plan_alone": alone, "plan_in_container": loaded,
        "utilisation_alone": measured["utilisation"], "utilisation_in_container": in_situ["utilisation"],
        "max_error_alone": max(row["error"] for row in alone.values()),
        "max_error_in_container": max(row["error"] for row in loaded.values()),
        "error_goal": 0.15, "load_average": load,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
