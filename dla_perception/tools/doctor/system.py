"""What the doctor's checks read, as injected callables, and what they report.

Every check is a function `check(system) -> list[Finding]` that reads the machine only through `System`:
`read_file(path)`, `run(argv)`, `list_dir(path)` and `env`. Tests hand it recorded outputs (test/fixtures/
doctor/); `live_system()` hands it this machine. Nothing here imports rclpy, so the engine manager node can
use the power reader and the CLI runs where ROS is absent.
"""

from __future__ import annotations

import os
import subprocess
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dla_perception.runtime.power import LiveSysfs, parse_int

OK, INFO, WARN, ERROR = "ok", "info", "warn", "error"
LEVELS = (OK, INFO, WARN, ERROR)
NOT_A_JETSON = "not a Jetson"
COMMAND_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CommandResult:
    """What a command printed; `returncode` 124 when it ran past its timeout."""

    returncode: int
    stdout: str
    stderr: str = ""


@dataclass(frozen=True)
class System:
    """The readers a check may use. Each answers "absent" rather than raising: None / [] / None."""

    read_file: Callable[[str], str | None]
    run: Callable[[Sequence[str]], CommandResult | None]
    list_dir: Callable[[str], list[str]]
    env: Mapping[str, str]

    def read_int(self, path: str) -> int | None:
        """A sysfs/procfs number file (`212992\\n`) as an int; None when absent or not a number."""
        return parse_int(self.read_file(path))

    def sysctl(self, name: str) -> int | None:
        """`net.core.rmem_max` read from /proc/sys/net/core/rmem_max (what `sysctl -n` prints)."""
        return self.read_int("/proc/sys/" + name.replace(".", "/"))


@dataclass
class Finding:
    """One line of the report: what was found, how bad it is, and the command that fixes it."""

    check: str
    level: str
    finding: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level {self.level!r} is not one of {LEVELS}")

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level, "finding": self.finding, "fix": self.fix,
                "details": self.details}


Check = Callable[[System], list[Finding]]


def run_checks(system: System, checks: Iterable[tuple[str, Check]]) -> list[Finding]:
    """Every check in order; one that raises is reported as a warning and the others still run."""
    findings: list[Finding] = []
    for name, check in checks:
        try:
            findings.extend(check(system))
        except Exception as exc:  # a doctor bug or a format never seen: report it, keep going
            findings.append(Finding(
                name, WARN, f"the check itself failed ({type(exc).__name__}: {exc}); nothing was concluded",
                "report it with the output of `dla-perception doctor --json`",
                {"traceback": traceback.format_exc(limit=5)},
            ))
    return findings


# -- this machine ---------------------------------------------------------------------------------------
def _run(argv: Sequence[str]) -> CommandResult | None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return CommandResult(124, stdout, f"timed out after {COMMAND_TIMEOUT_S:g} s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def live_system(env: Mapping[str, str] | None = None) -> System:
    """The readers over this machine (files, PATH commands with a timeout, os.environ).

    A command runs once per System: two checks reading `jetson_clocks --show` share its output.
    """
    results: dict[tuple[str, ...], CommandResult | None] = {}

    def run_once(argv: Sequence[str]) -> CommandResult | None:
        key = tuple(argv)
        if key not in results:
            results[key] = _run(key)
        return results[key]

    files = LiveSysfs()  # the same file readers the engine manager node reads power rails with
    return System(files.read_file, run_once, files.list_dir, dict(os.environ if env is None else env))


# -- small helpers the checks share ----------------------------------------------------------------------
def mib(n_bytes: float) -> str:
    """1048576 -> '1 MiB', 212992 -> '208 KiB' (as sysctl users think of these numbers)."""
    if n_bytes >= 1 << 30:
        return f"{n_bytes / (1 << 30):.3g} GiB"
    if n_bytes >= 1 << 20:
        return f"{n_bytes / (1 << 20):.3g} MiB"
    return f"{n_bytes / 1024:.3g} KiB"


def mhz(hertz: int | None) -> str:
    return "?" if hertz is None else f"{hertz / 1e6:.1f} MHz"
