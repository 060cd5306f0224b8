"""What a hung core costs a camera pipeline: failover time, frames lost, time to restore.

    python benchmarks/bench_faults.py [--rate-hz 30] [--deadline-ms 100] [--hang-s 1.5] [--repeats 3]

Two real onnxruntime CPU engines (one intra-op thread each, a MatMul+Tanh model of a few ms) are placed as
dla0 and dla1, round robin, as the proximity head runs on a Jetson's two DLAs. A node-like loop sends one
frame per tick at `--rate-hz`, one frame in flight (a frame arriving while the previous is in flight is
skipped, as the nodes drop it). At frame 30 dla0's engine hangs inside `run` (blocked, as a wedged driver
call); it is released `--hang-s` later. Then the same with the model on dla0 alone (no core to fail over
to), which shows what the deadline buys without a second core. Prints one JSON object:

- `hang_to_failover_ms`: from the engine blocking to the hung frame's answer from dla1 (the deadline plus
  the retry's run). `hang_to_stuck_ms`: to dla0 reported stuck. `blocked_max_ms`: the longest a frame
  kept the loop waiting (the issue's bound: deadline + retry).
- `frames_lost`: frames without outputs from the hang on (until the hung run returned), split in
  `frames_failed` (an error came back) and `frames_skipped_busy` (arrived while the loop waited);
  `frames` in total; `frames_skipped_outside_hang` counts the loop falling behind for other reasons (a
  loaded machine), to read the rest against. `blocked_max_ms` is over the frames of the hang too.
- `release_to_restore_ms`: from the hung run returning to dla0 back in rotation (its late answer is
  discarded, then a probe must answer within the deadline).
- `single_core`: the same figures with no second core, where frames during the hang fail: the first at
  its deadline, the rest at once with EngineStuck until the core is restored.
Medians over `--repeats` runs, with the per-run values and the load average (wall-clock figures: read them
against the load; the counts do not depend on it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_runtime import compute_model  # noqa: E402

from dla_perception.runtime.config import EnginesConfig, ModelSpec  # noqa: E402
from dla_perception.runtime.engine import Engine  # noqa: E402
from dla_perception.runtime.manager import EngineManager, HealthEvent  # noqa: E402
from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine  # noqa: E402

HANG_AT_FRAME = 30


class HangableEngine(Engine):
    """A real onnxruntime CPU engine whose next run blocks inside `run` once armed, until released."""

    def __init__(self, spec: ModelSpec, core: str) -> None:
        self.inner = OnnxRuntimeEngine(spec.onnx, model=spec.name, core="cpu", intra_op_threads=1)
        self.model, self.core, self.precision, self.backend = spec.name, core, "fp32", "onnxruntime"
        self.armed = False
        self.gate = threading.Event()
        self.gate.set()
        self.hung_at = 0.0
        self.returned_at = 0.0

    def input_specs(self):
        return self.inner.input_specs()

    def output_specs(self):
        return self.inner.output_specs()

    def arm(self) -> None:
        self.gate.clear()
        self.armed = True

    def run(self, inputs):
        if self.armed:
            self.armed = False
            self.hung_at = time.monotonic()
            self.gate.wait()
            self.returned_at = time.monotonic()
        return self.inner.run(inputs)


def one_run(onnx: Path, cores: tuple[str, ...], rate_hz: float, deadline_ms: float, hang_s: float,
            frames: int, workdir: Path) -> dict:
    engines: dict[str, HangableEngine] = {}

    def factory(spec: ModelSpec, core: str) -> HangableEngine:
        engines[core] = HangableEngine(spec, core)
        return engines[core]

    spec = ModelSpec("head", onnx, cores, precision="fp16", policy="round_robin", deadline_ms=deadline_ms)
    events: dict[str, float] = {}
    restored = threading.Event()

    def on_health(event: HealthEvent) -> None:
        events.setdefault(event.kind, event.monotonic)
        if event.kind == "restored":
            restored.set()

    x = {"x": np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)}
    manager = EngineManager(EnginesConfig({"head": spec}, workdir, {}), [*cores, "cpu"],
                            engine_factory=factory, initial_backoff_s=0.1)
    manager.add_health_listener(on_health)
    hung = engines["dla0"]
    failed = skipped = skipped_elsewhere = 0
    blocked_max = failover_at = 0.0
    period = 1.0 / rate_hz
    with manager:
        for _ in range(5):
            manager.infer("head", x)
        start = time.monotonic()
        tick = 0
        while tick < frames:
            due = start + tick * period
            if time.monotonic() < due:
                time.sleep(due - time.monotonic())
            if tick == HANG_AT_FRAME:
                hung.arm()
                threading.Timer(hang_s, hung.gate.set).start()
            began = time.monotonic()
            try:
                manager.infer("head", x)
                ok = True
                if hung.hung_at and not failover_at and len(cores) > 1:
                    failover_at = time.monotonic()
            except Exception:
                ok = False
            ended = time.monotonic()
            next_tick = int((ended - start) / period) + 1  # ticks that passed while waiting were skipped
            missed = max(0, next_tick - tick - 1)
            during_hang = tick >= HANG_AT_FRAME and (not hung.returned_at or began <= hung.returned_at)
            if during_hang:  # what the hang cost; other skips are this machine's load
                failed += int(not ok)
                skipped += missed
                blocked_max = max(blocked_max, ended - began)
            else:
                failed += int(not ok)
                skipped_elsewhere += missed
            tick = max(tick + 1, next_tick)
        restored.wait(hang_s + 30.0)
        late = manager.statistics()["engines"]["head@dla0"]["late_answers"]
    ms = lambda a, b: round((b - a) * 1e3, 1) if a and b else None  # noqa: E731
    return {
        "hang_to_failover_ms": ms(hung.hung_at, failover_at),
        "hang_to_stuck_ms": ms(hung.hung_at, events.get("stuck", 0.0)),
        "blocked_max_ms": round(blocked_max * 1e3, 1),
        "frames": frames,
        "frames_lost": failed + skipped,
        "frames_failed": failed,
        "frames_skipped_busy": skipped,
        "frames_skipped_outside_hang": skipped_elsewhere,
        "release_to_restore_ms": ms(hung.returned_at, events.get("restored", 0.0)),
        "late_answers_discarded": late,
    }


def median_of(runs: list[dict]) -> dict:
    keys = [key for key, value in runs[0].items() if isinstance(value, (int, float))]
    summary = {}
    for key in keys:
        values = [run[key] for run in runs if run[key] is not None]
        summary[key] = round(float(np.median(values)), 1) if values else None
    summary["runs"] = runs
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate-hz", type=float, default=30.0, help="frame rate of the loop (default 30)")
    parser.add_argument("--deadline-ms", type=float, default=100.0, help="the model's deadline_ms (100)")
    parser.add_argument("--hang-s", type=float, default=1.5, help="how long dla0 stays hung (1.5 s)")
    parser.add_argument("--frames", type=int, default=150, help="frames per run (default 150)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario; medians reported")
    args = parser.parse_args()
    result = {"benchmark": "faults", "cpu_count": os.cpu_count(),
              "load_average_before": [round(v, 2) for v in os.getloadavg()],
              "rate_hz": args.rate_hz, "deadline_ms": args.deadline_ms, "hang_s": args.hang_s,
              "hang_at_frame": HANG_AT_FRAME}
    with tempfile.TemporaryDirectory() as folder:
        onnx = compute_model(Path(folder) / "compute.onnx", layers=2)
        for name, cores in (("two_cores", ("dla0", "dla1")), ("single_core", ("dla0",))):
            runs = [one_run(onnx, cores, args.rate_hz, args.deadline_ms, args.hang_s, args.frames,
                            Path(folder)) for _ in range(args.repeats)]
            result[name] = median_of(runs)
    result.update({key: result["two_cores"][key] for key in (
        "hang_to_failover_ms", "frames_lost", "release_to_restore_ms", "blocked_max_ms")})
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
