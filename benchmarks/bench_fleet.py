"""Fleet replay throughput: K bags on 1 worker versus 2 Ray workers here, and a 100-bag projection.

    .venv/bin/python benchmarks/bench_fleet.py [--bags 4] [--frames 10] [--machines 4 --workers-per-machine 2]

K synthetic stereo bags (640x480, default config: proximity and detection) are replayed (a) one after
another in this process with the engines kept across bags (`replay BAGS`), and (b) as Ray tasks on a
local cluster of 2 workers started for the run (`replay BAGS --workers 2`), both through the command's
own code path. Reported: wall time of each, bags per minute, the throughput ratio (b over a, same run,
same bags), and the Ray start-up cost (ray.init of a 2-CPU local cluster, measured on its own). The
projection for 100 bags on M machines is arithmetic on the measured per-bag time, NOT a measurement:
per-bag time x 100 / (M x workers per machine) + start-up, assuming bags of this size, workers that do
not share cores, and shared storage that is not the bottleneck. Prints one JSON object; say the load
average with the figures (this machine's 2 cores are shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
_BASE = int(os.environ.get("DLA_PERCEPTION_TEST_DOMAIN_BASE", "90"))
os.environ.setdefault("DLA_PERCEPTION_REPLAY_DOMAIN_ID", str(_BASE + 5))
os.environ.setdefault("DLA_PERCEPTION_FLEET_DOMAIN_BASE", str(70 + _BASE % 20))


def _ray_startup_s() -> float:
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    elapsed = time.perf_counter() - started
    ray.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=4)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--machines", type=int, default=4, help="M, for the projection")
    parser.add_argument("--workers-per-machine", type=int, default=2, help="for the projection")
    args = parser.parse_args()

    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence
    from dla_perception.tools.cli import main as cli

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        camera = StereoCamera()
        bags = [str(write_stereo_bag(root / f"bag{k}", generate_sequence(9500 + k, args.frames, camera),
                                     camera)) for k in range(args.bags)]
        startup_s = _ray_startup_s()
        timings = {}
        for label, extra in (("one_worker", []), ("two_ray_workers", ["--workers", "2"])):
            started = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the command's summary; stdout keeps the JSON
                code = cli(["replay", *bags, "--out", str(root / label), "--no-progress", *extra])
            timings[label] = time.perf_counter() - started
            if code != 0:
                raise SystemExit(f"{label}: replay exited {code}")
        pooled = json.loads((root / "two_ray_workers" / "metrics.json").read_text())
    per_bag_s = timings["one_worker"] / args.bags
    slots = args.machines * args.workers_per_machine
    print(json.dumps({
        "benchmark": "bench_fleet",
        "bags": args.bags, "frames_per_bag": args.frames, "size": [camera.width, camera.height],
        "one_worker_s": round(timings["one_worker"], 2),
        "two_ray_workers_s": round(timings["two_ray_workers"], 2),
        "bags_per_minute": {"one_worker": round(60 * args.bags / timings["one_worker"], 2),
                            "two_ray_workers": round(60 * args.bags / timings["two_ray_workers"], 2)},
        "throughput_ratio_two_over_one": round(timings["one_worker"] / timings["two_ray_workers"], 3),
        # The same ratio without the cluster's start-up (paid once per run, whatever the bag count).
        "throughput_ratio_two_over_one_less_startup": round(
            timings["one_worker"] / max(1e-6, timings["two_ray_workers"] - startup_s), 3),
        "ray_local_cluster_startup_s": round(startup_s, 2),
        "frames_replayed_on_ray": pooled["frames"],
        "projection_100_bags": {
            "note": "PROJECTION, not a measurement: measured per-bag time x 100 / (machines x workers) "
                    "+ Ray start-up; assumes workers that do not share cores and storage that keeps up",
            "machines": args.machines, "workers_per_machine": args.workers_per_machine,
            "per_bag_s_measured_here": round(per_bag_s, 2),
            "wall_s": round(per_bag_s * 100 / slots + startup_s, 1),
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }, indent=1))


if __name__ == "__main__":
    main()
