"""Where this package's installed share files (config/, models/, launch/) are, with or without ROS set up.

The ament index wins when AMENT_PREFIX_PATH is set and knows the package (a sourced colcon workspace, or
the venv exported as a prefix): that is where `ros2 launch` and `ros2 run` look too. Without it, the
prefix this code is installed in (`make setup`'s venv is a ROS prefix: <prefix>/share/dla_perception), then
the source checkout (an editable install). No ROS import is needed for the fallbacks, so the CLI and the
replay work from the venv alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "dla_perception"
_SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout (editable) or site-packages (installed)


def _ament_share() -> Path | None:
    if not os.environ.get("AMENT_PREFIX_PATH"):
        return None  # ament_index_python would raise EnvironmentError
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not importable, or the index has no dla_perception: the other places
        return None


def share_directories() -> list[Path]:
    """Candidate share/dla_perception folders, best first (existing ones only)."""
    candidates = [
        _ament_share(),
        Path(sys.prefix) / "share" / PACKAGE,  # the venv (or any prefix) this interpreter runs from
        # installed: <prefix>/lib/pythonX.Y/site-packages -> <prefix>/share (colcon's install/ too)
        _SOURCE_ROOT.parents[2] / "share" / PACKAGE if len(_SOURCE_ROOT.parents) > 2 else None,
        _SOURCE_ROOT,  # a source checkout holds config/ and models/ itself
    ]
    seen, found = set(), []
    for candidate in candidates:
        if candidate is not None and candidate.is_dir() and candidate not in seen:
            seen.add(candidate)
            found.append(candidate)
    return found


def share_path(relative: str) -> Path:
    """A file under share/dla_perception (the first place that has it), else the source tree's path."""
    for directory in share_directories():
        candidate = directory / relative
        if candidate.exists():
            return candidate
    return _SOURCE_ROOT / relative
