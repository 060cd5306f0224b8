"""Built engines on disk (TensorRT plans; DLA loadables share it): keyed, verified, pruned, and never fatal.

One folder holds `<model>-<core>-<precision>-<digest><suffix>` files, each with a JSON record beside it
(`<file>.json`) holding the key it was built for and the file's own sha256. A file is used only when both
match, so a truncated, corrupt, foreign or half-written file is rebuilt (with a warning), never loaded.

The disk may fail: a read-only, full or misplaced folder, a file where the folder should be, a directory
where a plan should be. None of that stops a robot: the engine just built is used anyway, one WARNING
says which path failed and why, and the next start says the plan must be rebuilt (and why it will not be
saved again while the folder stays broken). Older plans of the same model and core are pruned (newest
`keep` kept) and temporary files left by a process killed mid-write are removed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dla_perception.runtime.config import DEFAULT_PLANS_TO_KEEP, PRECISIONS

log = logging.getLogger(__name__)

LEFTOVER_AGE_S = 600.0  # a .tmp file older than this belongs to a writer that died (a write takes seconds)

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_once(path: Path, kind: str, message: str, *args: Any) -> None:
    """WARNING the first time (path, kind) fails in this process, DEBUG afterwards (no log flood)."""
    with _warned_lock:
        first = (str(path), kind) not in _warned
        _warned.add((str(path), kind))
    log.log(logging.WARNING if first else logging.DEBUG, message, *args)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_all(descriptor: int, data: bytes) -> None:
    """os.write until everything is written (the one call that meets a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file.

    Raises OSError (the temporary file is removed first); creates missing parent folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            _write_all(descriptor, bytes(data))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text


class PlanCache:
    """One cache folder. `suffix` names the artefact (".plan" for TensorRT, ".dla" for DLA loadables)."""

    def __init__(
        self,
        directory: Path | str,
        *,
        keep: int = DEFAULT_PLANS_TO_KEEP,
        suffix: str = ".plan",
        leftover_age_s: float = LEFTOVER_AGE_S,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory).expanduser()
        self.keep = keep
        self.suffix = suffix
        self.leftover_age_s = leftover_age_s
        self.last_error: str | None = None  # why the last store() did not save (None: it did)
        self._swept = False

    # -- names ---------------------------------------------------------------------------------------

    def paths(self, model: str, key: Mapping[str, Any]) -> tuple[Path, Path]:
        """(artefact, record) for a key; the same key gives the same stem whatever the suffix."""
        digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:20]
        name = f"{model}-{key['core']}-{key['precision']}-{digest}{self.suffix}"
        return self.directory / name, self.directory / f"{name}.json"

    def _family(self, model: str, core: str) -> list[Path]:
        """This model's artefacts for this core (any precision or key), newest first."""
        pattern = re.compile(
            rf"{re.escape(model)}-{re.escape(core)}-({'|'.join(PRECISIONS)})-[0-9a-f]{{20}}"
            rf"{re.escape(self.suffix)}"
        )
        try:
            found = [p for p in self.directory.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
        except OSError:
            return []
        return sorted(found, key=_mtime, reverse=True)

    # -- the folder itself ---------------------------------------------------------------------------

    def folder_problem(self) -> str | None:
        """Why plans cannot be saved in this folder right now (None: they can, as far as can be told)."""
        if self.directory.exists() and not self.directory.is_dir():
            return f"{self.directory} is a file, not a folder"
        folder = self.directory
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            return f"{folder} is a file, so the folder {self.directory} cannot be created"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{folder} is not writable"
        return None

    def _sweep(self) -> None:
        """Once per process and folder: remove temporary files that a killed writer left behind."""
        if self._swept or not self.directory.is_dir():
            return
        self._swept = True
        now = time.time()
        for path in self.directory.glob(".*.tmp"):
            try:
                if now - path.stat().st_mtime > self.leftover_age_s:
                    path.unlink()
                    log.info("removed %s, left by a plan write that did not finish", path)
            except OSError as exc:
                log.debug("could not remove leftover %s: %s", path, exc)

    # -- load / store --------------------------------------------------------------------------------

    def load(self, model: str, key: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]] | None:
        """The cached artefact and its record when both match `key`; None (with the reason logged) if not."""
        artefact, record_path = self.paths(model, key)
        if self.directory.exists() and not self.directory.is_dir():
            warn_once(
                self.directory,
                "not-a-folder",
                "plan cache %s is a file, not a folder: plans cannot be "
                "cached there (remove it, or set cache_dir in engines.yaml)",
                self.directory,
            )
            return None
        self._sweep()
        if artefact.is_dir():
            warn_once(
                artefact,
                "in-the-way",
                "a directory is in the way of plan %s: the plan cannot be "
                "loaded or saved until it is removed",
                artefact,
            )
            return None
        if not artefact.exists():
            self._say_rebuild(model, key, artefact)
            return None
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            data = artefact.read_bytes()
        except (OSError, ValueError) as exc:
            log.warning("plan %s has no readable record (%s): rebuilding", artefact, exc)
            return None
        if not isinstance(record, dict) or not isinstance(record.get("key"), dict):
            log.warning("plan %s has a malformed record (%.80r): rebuilding", artefact, record)
            return None
        if record["key"] != dict(key):
            log.warning("plan %s was built for %s, not %s: rebuilding", artefact, record["key"], dict(key))
            return None
        if hashlib.sha256(data).hexdigest() != record.get("plan_sha256"):
            log.warning("plan %s is corrupt (sha256 differs from its record): rebuilding", artefact)
            return None
        if not isinstance(record.get("build"), dict):
            record["build"] = {}
        return data, record

    def _say_rebuild(self, model: str, key: Mapping[str, Any], artefact: Path) -> None:
        others = [p for p in self._family(model, str(key["core"])) if p != artefact]
        why = (
            (
                f"{len(others)} older plan(s) of {model} on {key['core']} were built for another ONNX, "
                "TensorRT, GPU, calibration or options"
            )
            if others
            else "none was saved"
        )
        problem = self.folder_problem()
        if problem:
            warn_once(
                self.directory,
                "unsaved",
                "no cached plan %s (%s): it must be rebuilt, and it cannot be "
                "saved there (%s), so every start rebuilds until the folder is fixed",
                artefact,
                why,
                problem,
            )
        else:
            log.warning("no cached plan %s (%s): it must be rebuilt (this can take minutes)", artefact, why)

    def store(
        self, model: str, key: Mapping[str, Any], data: bytes, build_info: Mapping[str, Any]
    ) -> Path | None:
        """Save an artefact and its record; None when the disk refused (the reason in `last_error`).

        Never raises for the disk: the caller keeps using the engine it built.
        """
        artefact, record_path = self.paths(model, key)
        record = {
            "model": model,
            "key": dict(key),
            "plan_sha256": hashlib.sha256(data).hexdigest(),
            "build": dict(build_info),
        }
        try:
            if artefact.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a directory is in the way", str(artefact))
            atomic_write(artefact, data)
            try:
                atomic_write(record_path, json.dumps(record, indent=1, sort_keys=True, default=str).encode())
            except BaseException:
                artefact.unlink(missing_ok=True)  # a plan without its record would never be used
                raise
        except OSError as exc:
            self.last_error = f"{exc.filename or artefact}: {_reason(exc)}"
            warn_once(
                self.directory,
                f"store:{exc.errno}",
                "could not save plan %s (%s); the engine just built "
                "is used anyway, but the next start must rebuild it",
                artefact,
                self.last_error,
            )
            return None
        self.last_error = None
        self._prune(model, str(key["core"]), artefact)
        return artefact

    def _prune(self, model: str, core: str, newest: Path) -> None:
        """Keep the newest `keep` artefacts of (model, core), the one just written always among them."""
        family = [newest] + [p for p in self._family(model, core) if p != newest]
        for path in family[self.keep :]:
            # its record, and the record name of plans cached before the records were "<plan>.json"
            for stale in (path, path.with_name(path.name + ".json"), path.with_suffix(".json")):
                try:
                    stale.unlink(missing_ok=True)
                except OSError as exc:
                    log.debug("could not prune %s: %s", stale, exc)
            log.info("pruned stale plan %s (keeping the newest %d of %s on %s)", path, self.keep, model, core)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
