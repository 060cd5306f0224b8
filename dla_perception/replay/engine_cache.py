"""Engine managers kept for the life of a process, so a worker replaying many bags builds its engines once.

A manager is keyed by the engines file's content and the bytes of every model it names (fingerprint), so an
edited engines file or a retrained model gets new engines. Each replay points the manager's recording
engines at its own RunLog for its duration (lock-step: no run of one replay overlaps another's).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dla_perception.replay.fingerprint import engines_fingerprint
from dla_perception.replay.timing import LogTarget, recording_factory


class EnginesError(Exception):
    """An engines file that cannot be loaded: a message for the user."""


@dataclass
class CachedEngines:
    manager: Any  # dla_perception.runtime.manager.EngineManager
    problems: list[str] = field(default_factory=list)  # models that could not be built, one line each
    target: LogTarget = field(default_factory=LogTarget)
    builds: int = 1  # how many replays used it (1 = built for this one)


class EngineCache:
    """Managers by engines fingerprint; `close()` closes them all (a worker's or a command's end)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, CachedEngines] = {}

    def get(self, engines_file: Path) -> CachedEngines:
        key = engines_fingerprint(engines_file)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry.manager.closed:
                entry.builds += 1
                return entry
            entry = _build(engines_file)
            self._entries[key] = entry
            return entry

    def close(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            entry.manager.close()


def _build(engines_file: Path) -> CachedEngines:
    from dla_perception.nodes.base import forward_core_logging
    from dla_perception.runtime.config import load_engines_config
    from dla_perception.runtime.manager import EngineManager

    try:  # missing model files are reported per model, like the nodes do
        config = load_engines_config(engines_file, require_files=False)
    except (OSError, ValueError) as exc:
        raise EnginesError(str(exc)) from exc
    forward_core_logging()
    target = LogTarget()
    manager, problems = EngineManager.build_available(
        config, engine_factory=recording_factory(target, config.cache_dir))
    return CachedEngines(manager, problems, target)
