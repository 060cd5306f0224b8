"""What the cuDLA path costs the CPU per frame: converting I/O to and from DLA-native formats with numpy.

    python benchmarks/bench_dla_formats.py [--frames 200] [--repeats 5] [--json out.json]

For each project model that runs on DLA (proximity head, detector; fp16 and their int8 variants) the I/O
shapes are read from the ONNX files (never hard-coded: the proximity head's I/O may change), the DLA types
and formats are the ones `build-engine --loadable` gives them (runtime/cudla_build.py `choose_io`), and the
conversion is the engine's own (runtime/dla_formats.py `Converter`) into a buffer laid out as TensorRT's
header documents each format. Per frame it measures packing every input and unpacking every output, as CPU
time (process_time, which other work on a shared machine does not inflate) and wall time, medians over
repeats; beside it, `copy_ms`: one plain copy of the same float32 I/O (what feeding a linear-I/O engine costs
the CPU at least), so `conversion_vs_copy` is a ratio measured in the same run. `alternatives` gives every
DLA-native format each tensor could use, to show what the choice costs, and `numpy_only_cpu_ms` the same
frame without OpenCV's casts and interleaving (measured in the same run). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dla_perception.runtime import dla_formats  # noqa: E402
from dla_perception.runtime.cudla_build import choose_io, read_cache_scales  # noqa: E402
from dla_perception.runtime.cudla_engine import onnx_io  # noqa: E402
from dla_perception.runtime.dla_formats import Converter, documented_layout  # noqa: E402

MODELS = {
    "proximity_head fp16": (REPO / "models" / "proximity" / "head.onnx", "fp16"),
    "proximity_head int8": (REPO / "models" / "proximity" / "head_int8.onnx", "int8"),
    "detector fp16": (REPO / "models" / "detector" / "detector.onnx", "fp16"),
    "detector int8": (REPO / "models" / "detector" / "detector_int8.onnx", "int8"),
}
FORMATS = {  # "I/O Formats on DLA": (type, input?) -> the DLA-native formats allowed
    ("float16", True): ("DLA_LINEAR", "CHW16", "DLA_HWC4"), ("float16", False): ("DLA_LINEAR", "CHW16"),
    ("int8", True): ("DLA_LINEAR", "CHW32", "DLA_HWC4"), ("int8", False): ("DLA_LINEAR", "CHW32"),
}


def io_scales(path: Path) -> dict[str, float]:
    """The scales a loadable build would use: the Q/DQ scales translated for DLA (or a calibration cache)."""
    import onnx

    from dla_perception.runtime.tensorrt_qdq import is_quantized, translate

    model = onnx.load(str(path))
    return translate(model).scales if is_quantized(model) else read_cache_scales(None)


def converter(name: str, shape: tuple, dtype: str, fmt: str, scale: float | None) -> Converter:
    layout = documented_layout(name, shape, np.float16 if dtype == "float16" else np.int8, fmt)
    return Converter(layout, np.zeros(layout.size, np.uint8), scale)


def timed(step, frames: int, repeats: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) per frame."""
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in range(frames):
            step()
        cpu.append((time.process_time() - start_cpu) / frames * 1e3)
        wall.append((time.perf_counter() - start_wall) / frames * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def measure(path: Path, precision: str, frames: int, repeats: int) -> dict:
    inputs, outputs = onnx_io(path)
    scales = io_scales(path) if precision == "int8" else {}
    rng = np.random.default_rng(0)
    host = {spec.name: rng.random(spec.shape).astype(np.float32) for spec in inputs}
    tensors, alternatives = {}, {}
    packers, unpackers = [], []
    for specs, is_input in ((inputs, True), (outputs, False)):
        for spec in specs:
            choice = choose_io(spec.name, spec.shape, is_input, precision, scales)
            conv = converter(spec.name, spec.shape, choice["dtype"], choice["format"], choice["scale"])
            array = host.get(spec.name, rng.random(spec.shape).astype(np.float32))
            if is_input:
                packers.append((conv, array))
            else:
                conv.pack(array)  # a realistic output buffer to read
                unpackers.append(conv)
            one_cpu, _ = timed((lambda c=conv, a=array: c.pack(a)) if is_input else conv.unpack,
                               frames, repeats)
            tensors[spec.name] = {"direction": "in" if is_input else "out", "shape": list(spec.shape),
                                  "dtype": choice["dtype"], "format": choice["format"],
                                  "cpu_ms": round(one_cpu, 4), "dla_bytes": conv.layout.size}
            options = [f for f in FORMATS[(choice["dtype"], is_input)]
                       if f != "DLA_HWC4" or spec.shape[1] in (1, 3, 4)]
            alternatives[spec.name] = {}
            for fmt in options:
                alt = converter(spec.name, spec.shape, choice["dtype"], fmt, choice["scale"])
                alt.pack(array)
                step = (lambda c=alt, a=array: c.pack(a)) if is_input else alt.unpack
                alternatives[spec.name][fmt] = round(timed(step, frames, repeats)[0], 4)

    def frame() -> None:
        for conv, array in packers:
            conv.pack(array)
        for conv in unpackers:
            conv.unpack()

    cpu, wall = timed(frame, frames, repeats)
    numpy_cpu = None
    if dla_formats.cv2 is not None:  # the same frame with numpy's casts and scatter only, in the same run
        saved, dla_formats.cv2 = dla_formats.cv2, None
        try:
            numpy_cpu = round(timed(frame, frames, repeats)[0], 4)
        finally:
            dla_formats.cv2 = saved
    plain = [rng.random(spec.shape).astype(np.float32) for spec in inputs + outputs]
    targets = [np.empty_like(array) for array in plain]

    def copy() -> None:
        for source, target in zip(plain, targets, strict=True):
            np.copyto(target, source)

    copy_cpu, _ = timed(copy, frames, repeats)
    return {"onnx": str(path.relative_to(REPO)), "precision": precision, "per_frame_cpu_ms": round(cpu, 4),
            "per_frame_wall_ms": round(wall, 4), "numpy_only_cpu_ms": numpy_cpu,
            "copy_ms": round(copy_cpu, 4),
            "conversion_vs_copy": round(cpu / copy_cpu, 2) if copy_cpu else None, "tensors": tensors,
            "alternatives_cpu_ms": alternatives}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the JSON object here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = {"benchmark": "dla_formats", "frames": args.frames, "repeats": args.repeats,
              "numpy": np.__version__, "cpu_count": os.cpu_count(), "load_avg_before": list(load_before),
              "models": {name: measure(path, precision, args.frames, args.repeats)
                         for name, (path, precision) in MODELS.items() if path.is_file()},
              "load_avg_after": list(os.getloadavg())}
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
