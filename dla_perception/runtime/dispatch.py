"""The scheduling decisions, all in one place: which core takes a request, which request a full queue
drops, and which request a core runs next.

- `choose_core`: the model's policy over its cores in rotation. `pinned` takes the first (the others are
  warm standbys for failover), `round_robin` alternates, `least_loaded` takes the fewest queued + running
  requests. Stuck cores never take requests; cores backing off after errors are skipped unless every
  healthy core is (then the one back first beats failing outright).
- `StreamQueue.admit`: a worker's queue is bounded per stream and latest-wins: a stream's full queue drops
  its OLDEST request by submission order, counting the newcomer, and never another stream's. A request
  retried from another core is older than what it finds queued, so it is the one dropped rather than a
  newer frame (failover never breaks latest-wins).
- `StreamQueue.take_next`: across streams, `schedule_key` decides: a stream below its minimum rate first,
  then higher priority, then the oldest request; one already older than its deadline is taken out unrun
  (it goes to the deadline handling: a retry elsewhere or a stale drop), never run late. On a gated core
  (runtime/streams_gate.py) workers wait for the core with `peek_key` and take their request only once
  granted, so the order across models is decided when the core is free.
- Rate caps are charged at submission (runtime/streams.py), before a request is queued anywhere.
"""

from __future__ import annotations

import bisect
import itertools
import sys
from collections import deque
from collections.abc import Iterator, Sequence
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

    def load(self, key: tuple[int, int, int] | None = None) -> int: ...


C = TypeVar("C", bound=Candidate)
NEWEST = sys.maxsize  # the seq of a request not submitted yet: behind every queued one of its priority


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
                now: float, stream: Any = None) -> C | None:
    """The worker that takes the next request, or None when every core is excluded or stuck.

    least_loaded with the request's `stream` (its StreamState) counts what would run *before* it on each
    core (the running request and the queued ones with a better schedule_key), not everything queued: a
    front-camera request goes to the core whose queue holds only side-camera work, not behind its own
    frame's other head request (issue 19: a frame's two head requests often ran one after the other)."""
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
        key = None if stream is None else stream_key(stream, NEWEST, now)
        return min(pool, key=lambda worker: worker.load(key))
    return pool[0]


def stream_key(state: Any, seq: int, now: float) -> tuple[int, int, int]:
    """schedule_key of a request `seq` of the stream `state` (None: a stream with default settings)."""
    if state is None:
        return (1, 0, seq)
    return (0 if state.starving(now) else 1, -state.settings.priority, seq)


def schedule_key(request: Request, now: float) -> tuple[int, int, int]:
    """Lower runs first: a stream below its minimum rate, then higher priority, then the older request."""
    return stream_key(request.stream_state, request.seq, now)


def _admit(queue: deque[Request], request: Request, capacity: int) -> Request | None:
    """Queue `request` in one stream's queue (kept in submission order); return the request dropped for
    it, if any: the oldest of the queue and the newcomer together, so it may be the newcomer itself (a
    retried request older than everything waiting)."""
    if queue and request.seq < queue[-1].seq:  # a retried or moved request: back in submission order
        if len(queue) >= capacity and request.seq < queue[0].seq:
            return request
        victim = queue.popleft() if len(queue) >= capacity else None
        queue.insert(bisect.bisect([waiting.seq for waiting in queue], request.seq), request)
        return victim
    victim = queue.popleft() if len(queue) >= capacity else None
    queue.append(request)
    return victim


class StreamQueue:
    """One worker's waiting requests: per stream, at most `capacity` each, in submission order.

    Not thread-safe: the worker holds its lock around every call. Taking the next request looks at the
    head of each stream's queue only, so its cost grows with the number of streams, not of requests.
    """

    def __init__(self) -> None:
        self._streams: dict[str, deque[Request]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Request]:
        for queue in list(self._streams.values()):
            yield from queue

    def admit(self, request: Request, capacity: int) -> Request | None:
        """Queue `request`; return the request of the same stream dropped for it (latest-wins), if any."""
        queue = self._streams.get(request.stream)
        if queue is None:
            queue = self._streams[request.stream] = deque()
        victim = _admit(queue, request, capacity)
        self._count += victim is None
        return victim

    def take_next(self, now: float) -> tuple[Request | None, list[Request]]:
        """(the request to run now, the requests found past their deadline); resolved ones are discarded.

        The winner by schedule_key among the streams' oldest requests; one past its deadline is taken
        out unrun (deadline handling: a retry elsewhere or a stale drop), never run late.
        """
        expired: list[Request] = []
        best: deque[Request] | None = None
        best_key: tuple[int, int, int] | None = None
        for name, queue in list(self._streams.items()):
            while queue and (queue[0].done or now >= queue[0].deadline):
                request = queue.popleft()
                self._count -= 1
                if not request.done:
                    expired.append(request)
            if not queue:
                del self._streams[name]
                continue
            key = schedule_key(queue[0], now)
            if best_key is None or key < best_key:
                best, best_key = queue, key
        if best is None:
            return None, expired
        self._count -= 1
        request = best.popleft()
        if not best:
            del self._streams[request.stream]
        return request, expired

    def peek_key(self, now: float) -> tuple[int, int, int] | None:
        """The schedule_key take_next would run now, without taking anything (None: nothing runnable).

        What a gated worker waits for the core with, asked again whenever the core is free."""
        best = None
        for queue in list(self._streams.values()):
            for request in queue:
                if not request.done and now < request.deadline:
                    key = schedule_key(request, now)
                    best = key if best is None or key < best else best
                    break
        return best

    def take_expired(self, now: float) -> list[Request]:
        """Take out every request past its deadline (the watchdog's sweep); resolved ones are discarded."""
        expired = []
        for name, queue in list(self._streams.items()):
            kept = deque(request for request in queue if not request.done and now < request.deadline)
            expired.extend(request for request in queue if not request.done and now >= request.deadline)
            self._count -= len(queue) - len(kept)
            if kept:
                self._streams[name] = kept
            else:
                del self._streams[name]
        return expired

    def drain(self) -> list[Request]:
        """Everything waiting, oldest first; the queue is empty afterwards."""
        waiting = sorted(self, key=lambda request: request.seq)
        self._streams.clear()
        self._count = 0
        return waiting

    def ahead_of(self, key: tuple[int, int, int], now: float) -> int:
        """How many waiting requests would run before one with `key` (per stream: its key prefix decides
        for all of them, the seq within an equal prefix)."""
        count = 0
        for queue in list(self._streams.values()):
            if not queue:
                continue
            prefix = schedule_key(queue[0], now)[:2]
            if prefix < key[:2]:
                count += len(queue)
            elif prefix == key[:2]:
                count += sum(request.seq < key[2] for request in queue)
        return count

    def next_deadline(self) -> float:
        """The earliest deadline among waiting requests (inf when none)."""
        return min((request.deadline for request in self if not request.done), default=float("inf"))
