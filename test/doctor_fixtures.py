"""Recorded machines for the doctor's checks: test/fixtures/doctor/<scenario>/scenario.json.

A scenario maps absolute paths to file contents (inline text, or {"file": NAME} for a recorded file beside
it), commands (the argv joined by spaces) to what they printed, and the environment. Paths not listed are
absent; commands not listed are "not installed"; folders are the parents of the listed paths plus "dirs".
Each scenario's "sources" say where its formats come from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from dla_perception.tools.doctor.system import CommandResult, System

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "doctor"


def _content(folder: Path, value: str | Mapping[str, str]) -> str:
    return (folder / value["file"]).read_text() if isinstance(value, Mapping) else value


def recorded_system(files: Mapping[str, str] | None = None,
                    commands: Mapping[str, CommandResult] | None = None,
                    env: Mapping[str, str] | None = None, dirs: Sequence[str] = ()) -> System:
    """A System over in-memory files/commands (what a scenario holds, or a test's own few entries)."""
    files, commands = dict(files or {}), dict(commands or {})
    children: dict[str, set[str]] = {}
    for path in [*files, *dirs]:
        parts = path.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]) or "/", set()).add(parts[depth])

    def list_dir(path: str) -> list[str]:
        return sorted(children.get(path.rstrip("/") or "/", ()))

    return System(files.get, lambda argv: commands.get(" ".join(argv)), list_dir, dict(env or {}))


def scenario(name: str) -> System:
    folder = FIXTURES / name
    data = json.loads((folder / "scenario.json").read_text())
    files = {path: _content(folder, value) for path, value in data.get("files", {}).items()}
    commands = {
        command: CommandResult(spec.get("returncode", 0), _content(folder, spec.get("stdout", "")),
                               _content(folder, spec.get("stderr", "")))
        for command, spec in data.get("commands", {}).items()
    }
    return recorded_system(files, commands, data.get("env", {}), data.get("dirs", []))


def scenario_names() -> list[str]:
    return sorted(path.parent.name for path in FIXTURES.glob("*/scenario.json"))
