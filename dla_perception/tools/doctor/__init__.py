"""`dla-perception doctor [--json]`: what decides latency on this robot, and the command that fixes each.

Exit status: 0 nothing to fix (only ok/info findings), 1 at least one warning, 3 at least one error,
2 a usage error (as every subcommand). The checks live in ROS-free modules beside this one (docs/doctor.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from pathlib import Path

from dla_perception import __version__

EXIT_OK, EXIT_WARN, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check power mode, clocks, swap, DDS buffers and discovery settings; say how to fix each",
        description="Check what decides perception latency on this machine: on a Jetson the power mode, "
        "locked clocks, GPU/DLA clocks and power rails; everywhere swap, CUDA_DEVICE_MAX_CONNECTIONS, the "
        "kernel socket buffers and IP fragmentation that lose large images, the RMW and its DDS profile, "
        "shared memory, and ROS discovery. Exit 0: nothing to fix; 1: warnings; 3: errors.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--only", default="", metavar="CHECK[,CHECK]",
                        help="run only these checks (names as in the CHECK column)")
    parser.add_argument("--write-dds-profile", type=Path, metavar="FILE",
                        help="write a Fast DDS profile (or, with RMW_IMPLEMENTATION=rmw_cyclonedds_cpp, a "
                        "Cyclone configuration) sized for 1.2 MB images, print how to use it, and exit")
    parser.add_argument("--force", action="store_true", help="with --write-dds-profile, overwrite FILE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dla_perception.tools.cli import UsageError
    from dla_perception.tools.doctor.checks import CHECK_NAMES, diagnose

    if args.write_dds_profile:
        return write_dds_profile(args.write_dds_profile.expanduser(), args.force)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(CHECK_NAMES))
    if unknown:
        raise UsageError(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECK_NAMES)}")
    findings = diagnose(only=only)
    code = exit_code(findings)
    if args.json:
        print(json.dumps(report_dict(findings, code), sort_keys=True))
    else:
        print(format_table(findings, code))
    return code


def exit_code(findings) -> int:
    levels = {finding.level for finding in findings}
    return EXIT_ERROR if "error" in levels else EXIT_WARN if "warn" in levels else EXIT_OK


def report_dict(findings, code: int) -> dict:
    from dla_perception.tools.doctor.system import LEVELS

    platform = next((f for f in findings if f.check == "platform"), None)
    return {
        "version": __version__,
        "exit_code": code,
        "jetson": bool(platform and platform.details.get("jetson")),
        "summary": {level: sum(1 for f in findings if f.level == level) for level in LEVELS},
        "findings": [finding.as_dict() for finding in findings],
    }


def format_table(findings, code: int, width: int | None = None) -> str:
    """LEVEL | CHECK | FINDING, the fix under its finding; wrapped to the terminal."""
    width = width or max(80, shutil.get_terminal_size((110, 24)).columns)
    check_width = max([len("CHECK"), *(len(f.check) for f in findings)])
    indent = 7 + check_width + 1
    text_width = max(30, width - indent)
    lines = [f"{'LEVEL':<6} {'CHECK':<{check_width}} FINDING / FIX"]
    for finding in findings:
        wrapped = textwrap.wrap(finding.finding, text_width) or [""]
        lines.append(f"{finding.level:<6} {finding.check:<{check_width}} {wrapped[0]}")
        lines.extend(" " * indent + rest for rest in wrapped[1:])
        if finding.fix:
            fix = textwrap.wrap("fix: " + finding.fix, text_width, subsequent_indent="     ",
                                break_on_hyphens=False, break_long_words=False)
            lines.extend(" " * indent + part for part in fix)
    counts = {level: sum(1 for f in findings if f.level == level) for level in ("warn", "error")}
    verdict = {EXIT_OK: "nothing to fix", EXIT_WARN: "warnings", EXIT_ERROR: "errors"}[code]
    lines.append(f"{counts['error']} error(s), {counts['warn']} warning(s): {verdict} (exit {code})")
    return "\n".join(lines)


def write_dds_profile(path: Path, force: bool) -> int:
    from dla_perception.tools.cli import UsageError
    from dla_perception.tools.doctor.dds import active_rmw
    from dla_perception.tools.doctor.dds_profiles import cyclonedds_config_xml, fastdds_profile_xml
    from dla_perception.tools.doctor.system import live_system

    rmw = active_rmw(live_system())
    if path.exists() and not force:
        raise UsageError(f"{path} exists (add --force to overwrite)")
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if rmw == "rmw_cyclonedds_cpp":
        path.write_text(cyclonedds_config_xml())
        print(f"wrote a Cyclone DDS configuration to {path}; use it with:\n  export CYCLONEDDS_URI=file://{path}")
    elif rmw.startswith("rmw_fastrtps"):
        path.write_text(fastdds_profile_xml())
        print(f"wrote a Fast DDS profile to {path}; use it with:\n"
              f"  export FASTRTPS_DEFAULT_PROFILES_FILE={path}   # Fast DDS 2.x (Humble, Jazzy)\n"
              f"  export FASTDDS_DEFAULT_PROFILES_FILE={path}    # Fast DDS 3.x (Kilted)")
    else:
        raise UsageError(f"no DDS profile for {rmw}: set RMW_IMPLEMENTATION to rmw_fastrtps_cpp or "
                         "rmw_cyclonedds_cpp")
    print("and raise the kernel's caps to match: sudo sysctl -w net.core.rmem_max=16777216 "
          "net.core.wmem_max=16777216")
    return EXIT_OK
