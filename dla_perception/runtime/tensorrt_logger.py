"""One TensorRT logger for the whole process, forwarding to Python logging and capturing each build's report.

TensorRT wants one logger: "the logger used to create an instance of IBuilder, IRuntime or IRefitter is
used for all objects created through that interface", and TensorRT 8.0 called it "internally considered a
singleton, and thus multiple instances of Runtime and/or Builder must all use the same logger" (Python API,
Logger.html). A `trt.Logger(WARNING)` per builder also drops the one message that says where the builder
put every layer: the "Layers Running on DLA" / "Layers Running on GPU" lists, INFO lines in TensorRT 8.4
logs and VERBOSE ("[V] [TRT] [DlaLayer]") on current Jetson releases. So the shared logger listens at
VERBOSE, forwards WARNING and worse to `logging` (INFO to DEBUG), and while `capture()` is active in a
thread keeps that thread's INFO+ lines and the placement lists, which the plan cache stores beside the plan.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

log = logging.getLogger("dla_perception.tensorrt")

MAX_CAPTURED_LINES = 2000
TAGS = (
    "FEWIV"  # trtexec's prefixes by severity: [F]atal (internal error), [E]rror, [W]arning, [I]nfo, [V]erbose
)
_PLACEMENT = re.compile(r"\[(Dla|Gpu)Layer\]|Layers [Rr]unning on (DLA|GPU)")
_loggers: dict[int, tuple[ModuleType, Any]] = {}  # the module is kept so that its id stays its own
_loggers_lock = threading.Lock()
_local = threading.local()


def shared_logger(trt: ModuleType) -> Any:
    """The process's one logger for this `tensorrt` module (an ILogger subclass, made once)."""
    with _loggers_lock:
        known = _loggers.get(id(trt))
        if known is None or known[0] is not trt:
            known = _loggers[id(trt)] = (trt, _make_logger(trt))
        return known[1]


def _make_logger(trt: ModuleType) -> Any:
    severity = trt.ILogger.Severity
    levels = {
        int(severity.INTERNAL_ERROR): logging.ERROR,
        int(severity.ERROR): logging.ERROR,
        int(severity.WARNING): logging.WARNING,
        int(severity.INFO): logging.DEBUG,
    }

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # the binding requires the explicit base __init__
            self.min_severity = severity.VERBOSE

        def log(self, level: Any, msg: str) -> None:
            level, text = int(level), str(msg)
            if level in levels:
                log.log(levels[level], "TensorRT: %s", text)
            lines = getattr(_local, "lines", None)
            if lines is not None and len(lines) < MAX_CAPTURED_LINES:
                if level <= int(severity.INFO) or _PLACEMENT.search(text):
                    lines.append(f"[{TAGS[min(level, 4)]}] {text}")

    return CapturingLogger()


@contextlib.contextmanager
def capture() -> Iterator[list[str]]:
    """Collect what TensorRT logs in this thread (INFO and worse, and the placement lists) until exit.

    Lines carry trtexec's severity prefix: "[E] ...", "[W] ...", "[I] ...", "[V] [DlaLayer] ...".
    """
    previous = getattr(_local, "lines", None)
    _local.lines = lines = []
    try:
        yield lines
    finally:
        _local.lines = previous
        if previous is not None:
            previous.extend(lines)


def builder_placement(lines: list[str]) -> dict[str, list[str]] | None:
    """The builder's own placement lists from captured lines; None when the build did not print them.

    Current form: "---------- Layers Running on DLA ----------", "[DlaLayer] {ForeignNode[a...b]}", ...,
    "---------- Layers Running on GPU ----------", "[GpuLayer] SOFTMAX: prob". TensorRT 7/8.0 printed
    "--------------- Layers running on DLA:" and then one comma-separated line per device.
    """
    placement: dict[str, list[str]] = {"DLA": [], "GPU": []}
    listing, seen = None, False  # listing: the device whose old-style one-line list comes next
    for raw in lines:
        line = re.sub(r"^\[[FEWIV]\]\s*", "", raw.strip())
        header = re.search(r"Layers [Rr]unning on (DLA|GPU)(:?)", line)
        if header:
            listing, seen = (header.group(1) if header.group(2) else None), True
            continue
        tagged = re.match(r"\[(Dla|Gpu)Layer\]\s*(.*)", line)
        if tagged:
            placement[tagged.group(1).upper()].append(tagged.group(2).strip())
        elif listing and line:
            placement[listing] += [
                part.strip() for part in re.split(r",\s*(?![^{]*\})", line) if part.strip()
            ]
            listing = None
    return placement if seen else None
