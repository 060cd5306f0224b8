"""Does proximity/range report the nearest real obstacle? A replay's output bag against its input's truth.

    python scripts/check_range.py BAG OUT_BAG [--robot-config config/robot.yaml]

For a synthetic bag (ground-truth disparity, and its camera mount on /tf_static), each frame's true answer
is computed the way the node answers, from the truth instead of the network: the first of the planes and
the alert distance (ascending) with a blob of at least min_blob_px pixels that are nearer than it and more
than ground_clearance_m above the floor (the bag's mount), inside roi. Prints one JSON object: per frame
the reported and true range, and how many frames agree exactly and within one plane. The floor, when it is
mistaken for an obstacle, shows as a reported range far nearer than the true one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def node_parameters(robot_config: Path) -> dict:
    with open(robot_config) as stream:
        return yaml.safe_load(stream)["/**/proximity_segmentation"]["ros__parameters"]


def true_range(disparity: np.ndarray, info, mount, params: dict) -> float:
    """The node's answer computed from ground truth (see the module docstring)."""
    fx, fy, cy = info.p[0], info.p[5], info.p[6]
    with np.errstate(divide="ignore"):
        depth = np.where(disparity > 0, fx * params["baseline_m"] / disparity, np.inf)
    rows = np.arange(disparity.shape[0])[:, None]
    pitch = math.radians(mount.pitch_deg)
    drop = depth * ((rows - cy) / fy * math.cos(pitch) + math.sin(pitch))
    obstacle = np.isfinite(depth) & (mount.height_m - drop > params["ground_clearance_m"])
    x1, y1, x2, y2 = params["roi"] if any(params["roi"]) else (0, 0, disparity.shape[1], disparity.shape[0])
    for distance in sorted(set(params["planes_m"]) | {params["alert_distance_m"]}):
        mask = (obstacle & (depth < distance))[y1:y2, x1:x2].astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if np.any(stats[1:, cv2.CC_STAT_AREA] >= params["min_blob_px"]):
            return float(distance)
    return math.inf


def _index(distances: list[float], value: float) -> int:
    """Position of a distance (a float32 range from a message) among the planes, inf last."""
    return int(np.argmin([0.0 if math.isinf(d) and math.isinf(value) else abs(d - value) for d in distances]))


def _json(value: float | None) -> float | str | None:
    return "inf" if value is not None and math.isinf(value) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bag", type=Path)
    parser.add_argument("out_bag", type=Path, help="the replay's output bag (DIR/output_bag)")
    parser.add_argument("--robot-config", type=Path, default=REPO / "config" / "robot.yaml")
    args = parser.parse_args(argv)

    from dla_perception.replay.messages import typestore
    from dla_perception.synthetic.bag import (
        GROUND_TRUTH,
        LEFT_INFO,
        RIGHT_INFO,
        image_array,
        read_messages,
        read_mount,
    )

    mount = read_mount(args.bag)
    if mount is None:
        print(f"{args.bag} has no camera mount on /tf_static (not a synthetic bag of this version)",
              file=sys.stderr)
        return 2
    params = node_parameters(args.robot_config)
    truth, infos = {}, {}
    for topic, _, _, message in read_messages(args.bag, [GROUND_TRUTH, LEFT_INFO, RIGHT_INFO]):
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        if topic == GROUND_TRUTH:
            truth[stamp] = image_array(message).astype(np.float32)
        else:
            infos.setdefault(stamp, {})[topic] = message
    store = typestore()
    from rosbags.rosbag2 import Reader

    reported = {}
    with Reader(args.out_bag) as reader:
        connections = [c for c in reader.connections if c.topic.strip("/").endswith("proximity/range")]
        for connection, _, raw in reader.messages(connections=connections):
            message = store.deserialize_cdr(raw, connection.msgtype)
            reported[message.header.stamp.sec * 10**9 + message.header.stamp.nanosec] = float(message.range)
    distances = sorted(set(params["planes_m"]) | {params["alert_distance_m"]}) + [math.inf]
    frames, exact, within_one = [], 0, 0
    for stamp in sorted(truth):
        left, right = infos[stamp][LEFT_INFO], infos[stamp][RIGHT_INFO]
        params["baseline_m"] = -right.p[3] / right.p[0]
        expected = true_range(truth[stamp], left, mount, params)
        got = reported.get(stamp)
        steps = None if got is None else abs(_index(distances, got) - _index(distances, expected))
        exact += steps == 0
        within_one += steps is not None and steps <= 1
        frames.append({"stamp_ns": stamp, "range_m": _json(got), "true_m": _json(expected),
                       "planes_apart": steps})
    print(json.dumps({"frames": len(frames), "reported": len(reported), "exact": exact,
                      "within_one_plane": within_one, "mount": [mount.height_m, mount.pitch_deg],
                      "per_frame": frames}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
