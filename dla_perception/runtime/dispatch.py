"""The scheduling decisions, all in one place: which core takes a request, which request a full queue
drops, and which request a core runs next.

- `choose_core`: the model's policy over its cores in rotation. `pinned` takes the first (the others are
  warm standbys for failover), `round_robin` alternates, `least_loaded` takes the fewest queued + running
  requests. Stuck cores never take requests; cores backing off after errors are skipped unless every
  healthy core is (then the one back first beats failing outright).
- `admit`: queues are bounded and latest-wins: a full queue drops its OLDEST request by submission order,
  counting the newcomer. A request retried from another core is older than what it finds queued, so it
  is the one dropped rather than a newer frame (failover never breaks latest-wins).
- `take_next`: the oldest waiting request runs next; one already older than its deadline is taken out
  unrun (it goes to the deadline handling: a retry elsewhere or a stale drop), never run late.

Streams with priorities and rates (issue 19) change these three functions, not the workers.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from dla_perception.runtime.config import ModelSpec
from dla_perception.runtime.engine import TensorSpec
from dla_perception.runtime.requests import Request


class Candidate(Protocol):
    core: str
    out_until: float

    @property
    def stuck(self) -> bool: ...

    def load(self) -> int: ...


C = TypeVar("C", bound=Candidate)


@dataclass
class ModelEntry:
    """A registered model: its spec, one worker per active core (in preference order), its fallbacks."""

    spec: ModelSpec
    workers: list[Any]
    fallbacks: list[dict[str, str]]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    counter: itertools.count = field(default_factory=itertools.count)


def choose_core(workers: Sequence[C], policy: str, counter: itertools.count, exclude: Sequence[str],
                now: float) -> C | None:
    """The worker that takes the next request, or None when every core is excluded or stuck."""
    candidates = [worker for worker in workers if worker.core not in exclude and not worker.stuck]
    if not candidates:
        return None
    pool = [worker for worker in candidates if now >= worker.out_until]
    if not pool:
        pool = [min(candidates, key=lambda worker: worker.out_until)]
    if len(pool) == 1:
        return pool[0]
    if policy == "round_robin":
        return pool[next(counter) % len(pool)]
    if policy == "least_loaded":
        return min(pool, key=lambda worker: worker.load())
    return pool[0]


def admit(queue: deque[Request], request: Request, capacity: int) -> Request | None:
    """Queue `request` (kept in submission order); return the request dropped for it, if any.

    The dropped one is the oldest of the queue and the newcomer together, so it may be the newcomer
    itself (a retried request older than everything waiting).
    """
    if queue and request.seq < queue[-1].seq:  # a retried or moved request: back in submission order
        if len(queue) >= capacity and request.seq < queue[0].seq:
            return request
        victim = queue.popleft() if len(queue) >= capacity else None
        queue.insert(bisect.bisect([waiting.seq for waiting in queue], request.seq), request)
        return victim
    victim = queue.popleft() if len(queue) >= capacity else None
    queue.append(request)
    return victim


def take_next(queue: deque[Request], now: float) -> tuple[Request | None, list[Request]]:
    """(the request to run now, the requests found past their deadline); resolved ones are discarded."""
    expired = []
    while queue:
        request = queue.popleft()
        if request.done:  # answered by another core or cancelled while it waited
            continue
        if now >= request.deadline:
            expired.append(request)
            continue
        return request, expired
    return None, expired


def next_deadline(queue: deque[Request]) -> float:
    """The earliest deadline among waiting requests (inf when none)."""
    return min((request.deadline for request in queue if not request.done), default=float("inf"))
