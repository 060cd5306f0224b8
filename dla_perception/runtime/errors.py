"""Exceptions of the runtime layer, so callers can tell a bad request from a failing core."""

from __future__ import annotations


class InputValidationError(ValueError):
    """The request does not match the model (unknown model, wrong tensor names, shapes or dtypes).

    Raised by `submit`/`infer` before anything reaches an engine; retrying on another core cannot help.
    """


class EngineManagerClosed(RuntimeError):
    """The manager was closed: new requests are refused and queued ones fail with this error."""


class EngineError(RuntimeError):
    """An engine could not be built, loaded or run (a core's fault, not the request's)."""


class RequestDropped(EngineError):
    """A queued request was pushed out of a full queue by a newer one (latest-wins, see docs/runtime.md)."""


class DeadlineExceeded(EngineError):
    """No answer by the request's deadline: dropped unrun because it was already older than its deadline,
    or its engine ran past the deadline with no other core to answer it (see docs/runtime.md)."""


class EngineStuck(EngineError):
    """Every core of the model is stuck (a run went past its deadline and no probe has succeeded since)."""


class EnginesConfigError(ValueError):
    """`engines.yaml` (or a ModelSpec) is invalid; the message names the model, key and file."""
