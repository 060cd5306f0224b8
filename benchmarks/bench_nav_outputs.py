"""What the Nav2 outputs and the mount check cost per frame, on the shipped proximity networks (CPU).

    python benchmarks/bench_nav_outputs.py [--frames 5]

On held-out-style synthetic 640x480 frames with the shipped planes and mount (config/robot.yaml): CPU time of
ProximityPipeline.process without and with the mount check's two floor queries (interleaved, same run), and
of turning one result into proximity/points + proximity/occupancy + the mount evidence
(nodes/proximity_outputs.FloorOutputs). CPU time, not wall time: the numbers hold on a loaded machine.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()

    from dla_perception.models.freespace import GridSpec
    from dla_perception.models.proximity import GroundModel, ProximityPipeline, proximity_model_specs
    from dla_perception.models.proximity_geometry import StereoGeometry
    from dla_perception.nodes.proximity_outputs import FloorOutputs
    from dla_perception.runtime.config import EnginesConfig
    from dla_perception.runtime.manager import EngineManager
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    camera = StereoCamera()
    mount = GroundModel(0.5, math.radians(5.0), 0.1)
    planes = [0.75, 1.0, 1.5, 2.0, 3.0]
    geometry = StereoGeometry.from_projections(camera.projection_left(), camera.projection_right())
    values = {"alert_distance_m": 1.0, "points_plane_m": 3.0, "points_stride": 4, "occupancy_frame": ""}
    specs = proximity_model_specs(REPO / "models" / "proximity", features_cores=("cpu",), head_cores=("cpu",))
    frames = [generate_frame(1_000_000 + i, camera, camera_height_m=0.5, pitch_deg=5.0)
              for i in range(args.frames)]
    plain, checked, outputs = [], [], []
    with EngineManager(EnginesConfig(models={s.name: s for s in specs}), available_cores=("cpu",)) as manager:
        pipeline = ProximityPipeline(manager, ground=mount)
        floor = FloorOutputs()
        floors = floor.mount_floors(mount, 0.1)
        for frame in frames:
            for floors_asked, samples in (((), plain), (floors, checked)):  # interleaved: the same load
                started = time.process_time()
                result = pipeline.process(frame.left, frame.right, "rgb8", camera.projection_left(),
                                          camera.projection_right(), planes, 1.0, floors=floors_asked)
                samples.append((time.process_time() - started) * 1e3)
            started = time.process_time()
            floor.observe_mount(result, geometry)
            floor.messages(result, geometry, mount, values, GridSpec(), None, "camera_left")
            outputs.append((time.process_time() - started) * 1e3)
    print(json.dumps({
        "frames": args.frames, "resolution": [camera.width, camera.height], "planes_m": planes,
        "pipeline_cpu_ms": {"median": round(statistics.median(plain), 1)},
        "pipeline_with_mount_check_cpu_ms": {"median": round(statistics.median(checked), 1)},
        "points_grid_mount_cpu_ms": {"median": round(statistics.median(outputs), 2),
                                     "max": round(max(outputs), 2)},  # the first builds the floor projection
        "load_average_1m": round(os.getloadavg()[0], 2),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
