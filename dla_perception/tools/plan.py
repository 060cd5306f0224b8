"""`dla-perception plan`: will the configured cameras fit the cores, before the robot drives?

Reads the cameras and their stream settings from a params file (config/four_cameras.yaml), the models'
cores and policies from an engines file, and per-model, per-core latencies from a profile (JSON
{model: {core: ms}}; the engine_manager node's `statistics_file`, the median latency of each engine under a
running container's load and each node's own CPU ms per frame; a replay's engine_runs.json, every engine
run of a replay) or from `--measure`
(each model timed alone on each of its cores here), then prints what
runtime/capacity.py predicts: each core's utilisation, each stream's rate and latency, which streams
degrade, and a placement meeting every target when one exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dla_perception.runtime.capacity import ModelPlacement, StreamDemand, suggest

DEFAULT_RATE_HZ = 15.0  # a camera without max_rate_hz is planned at a typical stereo camera's rate


def _section(document: dict, node: str, camera: str = "") -> dict[str, Any]:
    """A node's parameters as rcl applies them: the shared `/**/<node>` section, then the camera's own."""
    values = dict((document.get(f"/**/{node}") or {}).get("ros__parameters", {}))
    if camera:
        values.update((document.get(f"/**/{camera}/{node}") or {}).get("ros__parameters", {}))
    return values


def streams_of(document: dict, head_batch: int, features: str, head: str,
               detector: str) -> list[StreamDemand]:
    manager = _section(document, "engine_manager")
    cameras = list(manager.get("cameras", [""])) or [""]
    streams = []
    for camera in cameras:
        values = _section(document, "proximity_segmentation", camera)
        planes = values.get("planes_m", [0.75, 1.0, 1.5, 2.0, 3.0])
        queries = len(set(planes) | {values.get("alert_distance_m", 1.0)})
        if values.get("camera_height_m", 0.0) > 0:
            queries += 1  # the ground
            if values.get("mount_check_tolerance_m", 0.1) > 0 and not values.get("mount_check_period_s", 1.0):
                queries += 2  # the mount check's two floors on every frame (by default on one frame a second)
        streams.append(StreamDemand(f"{camera}/proximity" if camera else "proximity",
                                    {features: 1, head: math.ceil(queries / head_batch)},
                                    int(values.get("priority", 0)),
                                    float(values.get("max_rate_hz") or DEFAULT_RATE_HZ),
                                    float(values.get("min_rate_hz") or 0.0), frames_in_flight=1,
                                    source_rate_hz=float(values.get("expected_rate_hz") or 0.0)))
    detection = _section(document, "detection", manager.get("detection_camera") or cameras[0])
    camera = manager.get("detection_camera") or cameras[0]
    streams.append(StreamDemand(f"{camera}/detection" if camera else "detection", {detector: 1},
                                int(detection.get("priority", 0)),
                                float(detection.get("max_rate_hz") or DEFAULT_RATE_HZ),
                                float(detection.get("min_rate_hz") or 0.0), frames_in_flight=1,
                                source_rate_hz=float(detection.get("expected_rate_hz") or 0.0)))
    return streams


def measure(engines_file: Path, repeats: int = 20) -> dict[str, dict[str, float]]:
    """Median latency (ms) of every model on every core it runs on here, one core at a time."""
    from dla_perception.runtime.manager import EngineManager

    profile: dict[str, dict[str, float]] = {}
    with EngineManager.from_file(engines_file) as manager:
        for placement in manager.placements():
            model = placement["model"]
            specs = manager.input_specs(model)
            inputs = {s.name: np.random.default_rng(0).random([max(1, d) for d in s.shape]).astype(s.dtype)
                      for s in specs}
            for worker in manager._models[model].workers:
                times = []
                for index in range(repeats + 3):
                    started = time.perf_counter()
                    worker.engine.run(inputs)
                    if index >= 3:
                        times.append((time.perf_counter() - started) * 1e3)
                profile.setdefault(model, {})[worker.core] = float(np.median(times))
    return profile


def profile_from_statistics(statistics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{model: {core: latency_p50_ms}} of the engines that answered, from EngineManager.statistics()."""
    profile: dict[str, dict[str, float]] = {}
    for name, engine in statistics.get("engines", {}).items():
        model, core = engine.get("model"), engine.get("core")
        if model is None or core is None:
            model, _, core = name.rpartition("@")
        if engine.get("inferences", 0) > 0 and engine.get("latency_p50_ms", 0.0) > 0:
            profile.setdefault(model, {})[core] = float(engine["latency_p50_ms"])
    return profile


def profile_from_engine_runs(runs: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{model: {core: median ms}} from a replay's engine_runs.json (model@core -> latency_ms samples)."""
    profile: dict[str, dict[str, float]] = {}
    for name, figures in runs.items():
        model, _, core = name.rpartition("@")
        samples = figures.get("latency_ms") if isinstance(figures, dict) else None
        if model and core and samples:
            profile.setdefault(model, {})[core] = float(np.median(samples))
    return profile


def load_profile(path: Path) -> dict[str, dict[str, float]]:
    """Latencies per model and core from: a profile file ({model: {core: ms}}, as --write-profile saves it),
    an engine manager's statistics (the engine_manager node's `statistics_file`), a replay's
    engine_runs.json, or a replay's output folder (its engine_runs.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "engine_runs.json"
    if not path.is_file():
        raise SystemExit(f"plan: no profile at {path}")
    document = json.loads(path.read_text())
    if isinstance(document.get("engines"), dict) and isinstance(document.get("cores"), dict):
        profile = profile_from_statistics(document)
        source = "these statistics has answered a request"
    elif document and all("@" in name for name in document):
        profile = profile_from_engine_runs(document)
        source = "this replay's engine runs succeeded"
    else:
        try:
            return {model: {core: float(ms) for core, ms in cores.items()}
                    for model, cores in document.items()}
        except (AttributeError, TypeError, ValueError):
            raise SystemExit(f"plan: {path} is no profile: expected {{model: {{core: latency_ms}}}}, a "
                             "statistics_file, or a replay's engine_runs.json") from None
    if not profile:
        raise SystemExit(f"plan: {path}: no engine in {source}")
    return profile


def host_times(path: Path) -> dict[str, float]:
    """Each stream's median node CPU ms per frame outside inference, from an engine_manager node's
    statistics_file (its `streams`); empty for other profiles, whose streams the plan then costs nothing
    beyond their engines."""
    path = Path(path)
    if path.is_dir() or not path.is_file():
        return {}
    streams = json.loads(path.read_text()).get("streams")
    if not isinstance(streams, dict):
        return {}
    return {name: float(s["host_cpu_ms_p50"]) for name, s in streams.items()
            if isinstance(s, dict) and float(s.get("host_cpu_ms_p50") or 0.0) > 0}


def head_batch_of(engines: Any, document: dict) -> int:
    """The proximity head's static batch, from its ONNX file as the engines file names it: a profile's
    head latency is per request, and a request answers that many queries."""
    import onnx

    from dla_perception.dla.calibration_data import model_inputs

    head = _section(document, "proximity_segmentation").get("head_model", "proximity_head")
    spec = engines.models.get(head)
    if spec is None or not spec.onnx.is_file():
        raise SystemExit(f"plan: cannot read the head batch of {head!r} (no ONNX file); give --head-batch")
    shapes = model_inputs(onnx.load(str(spec.onnx), load_external_data=False))
    return max(1, next(iter(shapes.values()))[0])


def planned_streams(document: dict, engines: Any, profile: Mapping[str, Mapping[str, float]],
                    host: Mapping[str, float], head_batch: int,
                    ) -> tuple[list[StreamDemand], dict[str, ModelPlacement]]:
    """The params file's streams (each with its node CPU ms per frame from `host`) whose models the
    profile covers, and those models' placements from the engines config."""
    proximity = _section(document, "proximity_segmentation")
    features = proximity.get("features_model", "proximity_features")
    head = proximity.get("head_model", "proximity_head")
    detector = _section(document, "detection").get("engine_name") or "detector"
    placement = {name: ModelPlacement(tuple(spec.cores), spec.policy) for name, spec in engines.models.items()
                 if name in profile}
    streams = [dataclasses.replace(s, host_ms=host.get(s.name, 0.0))
               for s in streams_of(document, head_batch, features, head, detector)
               if all(model in placement for model in s.requests)]
    return streams, placement


def run(args: argparse.Namespace) -> int:
    from dla_perception.runtime.config import load_engines_config

    document = yaml.safe_load(Path(args.config).read_text()) or {}
    engines = load_engines_config(args.engines, require_files=False)
    if args.measure:
        profile = measure(Path(args.engines))
        if args.write_profile:
            Path(args.write_profile).write_text(json.dumps(profile, indent=2))
        host = {}
    elif args.profile:
        profile = load_profile(Path(args.profile))
        host = host_times(Path(args.profile))
    else:
        raise SystemExit("plan: give --profile latencies.json or --measure")
    head_batch = args.head_batch or head_batch_of(engines, document)
    streams, placement = planned_streams(document, engines, profile, host, head_batch)
    result = suggest(streams, placement, profile)
    if args.json:
        print(json.dumps({"profile": profile, "host_ms": host, **result.as_dict()}, indent=2))
        return 0
    print("core utilisation: " + ", ".join(f"{core} {u:.0%}" for core, u in result.utilisation.items()))
    for stream in streams:
        mark = "DEGRADED" if stream.name in result.degraded else "ok"
        print(f"  {stream.name:22s} {result.rates[stream.name]:5.1f} of {stream.max_rate_hz:g} Hz "
              f"(min {stream.min_rate_hz:g}, priority {stream.priority}), "
              f"~{result.latency_ms[stream.name]:.0f} ms  {mark}")
    if result.suggestion:
        print("meets every target: " + "; ".join(f"{m} on {','.join(p.cores)} ({p.policy})"
                                                 for m, p in result.suggestion.items()))
    for note in result.notes:
        print(note)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="predict whether the configured cameras fit the cores",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="params file with cameras (config/four_cameras.yaml)")
    parser.add_argument("--engines", required=True, help="engines file (config/engines.yaml)")
    parser.add_argument("--profile", help="measured latencies: JSON {model: {core: latency_ms}}, the "
                        "engine_manager node's statistics_file, a replay's engine_runs.json or its output "
                        "folder")
    parser.add_argument("--measure", action="store_true", help="time every model on its cores here")
    parser.add_argument("--write-profile", help="with --measure: save the profile here")
    parser.add_argument("--head-batch", type=int, default=None,
                        help="plane queries per head request (default: the head ONNX file's batch)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.set_defaults(handler=run)
