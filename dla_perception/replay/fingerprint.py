"""What a replay's results depend on, as short digests: code, models, configuration, and the bag itself.

`--resume` reuses a bag's results only when all four match: a changed node, a retrained model, an edited
robot config or `-p` override, or a re-recorded bag each make the bag run again.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

MODEL_SIDE_FILES = (".yaml", ".yml", ".txt", ".names")  # model descriptions and label files beside an ONNX


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Every Python source of the installed dla_perception package (what the graph and replay run)."""
    import dla_perception

    root = Path(dla_perception.__file__).resolve().parent
    parts: list[bytes] = [dla_perception.__version__.encode()]
    for source in sorted(root.rglob("*.py")):
        parts += [str(source.relative_to(root)).encode(), source.read_bytes()]
    return _digest(*parts)


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"<missing>"


def engines_fingerprint(engines_file: Path) -> str:
    """The engines file and the bytes of every model it names (ONNX, and descriptions/labels beside it)."""
    from dla_perception.runtime.config import load_engines_config

    engines_file = Path(engines_file).resolve()
    parts = [_file_bytes(engines_file)]
    try:
        config = load_engines_config(engines_file, require_files=False)
    except (OSError, ValueError):
        return _digest(*parts)  # unusable: the build reports why; the digest still differs per content
    folders: set[Path] = set()
    for name, spec in sorted(config.models.items()):
        onnx = Path(spec.onnx)
        parts += [name.encode(), _file_bytes(onnx)]
        folders.add(onnx.parent)
    for folder in sorted(folders):
        for side in sorted(p for p in folder.glob("*") if p.suffix in MODEL_SIDE_FILES):
            parts += [side.name.encode(), _file_bytes(side)]
    return _digest(*parts)


def config_fingerprint(robot_config: Path | None, settings: dict) -> str:
    """The robot parameters file and every per-bag setting (topics, `-p`, nodes, frames...)."""
    config = _file_bytes(Path(robot_config)) if robot_config is not None else b"<none>"
    return _digest(config, json.dumps(settings, sort_keys=True, default=str).encode())


def bag_fingerprint(bag_folder: Path) -> str:
    """The bag's metadata.yaml (topics, message counts, duration, files): a re-recorded bag differs."""
    return _digest(_file_bytes(Path(bag_folder) / "metadata.yaml"))
