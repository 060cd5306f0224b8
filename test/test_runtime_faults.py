"""The engine manager when engines hang, answer late or fail, on two cores, with real threads.

Engines are test/faulty_engines.py's numpy engines, blocked and released by the tests. Assertions follow
events (an engine entered its hang, a core was reported stuck, a future resolved) and never how long
something took, except close()'s bound, which is the requirement itself and is checked with a margin.
The `timeout=` values are safety nets against a hanging test, not timings under test.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait

import pytest
from faulty_engines import Engines, frame, two_core_config

from dla_perception.nodes.diagnostics import ERROR, OK, WARN, DiagnosticsReport, Status, mark_degraded
from dla_perception.runtime.errors import (
    DeadlineExceeded,
    EngineError,
    EngineManagerClosed,
    EngineStuck,
    RequestDropped,
)
from dla_perception.runtime.manager import EngineManager, HealthEvent

SAFETY_S = 20.0
CORES = ["dla0", "dla1", "cpu"]


class HealthLog:
    """Collects the manager's health events; `wait(kind, core)` blocks until one arrives."""

    def __init__(self, manager: EngineManager) -> None:
        self.events: list[HealthEvent] = []
        self._cond = threading.Condition()
        manager.add_health_listener(self._on_event)

    def _on_event(self, event: HealthEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, kind: str, core: str, count: int = 1) -> HealthEvent:
        def matching() -> list[HealthEvent]:
            return [e for e in self.events if e.kind == kind and e.core == core]

        with self._cond:
            assert self._cond.wait_for(lambda: len(matching()) >= count, SAFETY_S), (kind, core, self.events)
            return matching()[count - 1]


def manager_of(engines: Engines, **config_kwargs) -> EngineManager:
    return EngineManager(two_core_config(**config_kwargs), CORES, engine_factory=engines.factory,
                         initial_backoff_s=0.05, close_timeout_s=2.0)


def test_a_hung_core_fails_over_is_reported_stuck_and_restored_by_a_probe():
    engines = Engines()
    manager = manager_of(engines)
    health = HealthLog(manager)
    with manager:
        dla0, dla1 = engines["dla0"], engines["dla1"]
        for value in range(4):  # healthy: round robin over both cores
            assert manager.infer("m", frame(value))["y"][0, 0] == value
        assert dla0.answered and dla1.answered
        dla0.hang_next()
        results = []
        for value in range(10, 20):  # one frame in flight at a time, as a node does
            results.append(float(manager.infer("m", frame(value))["y"][0, 0]))
            if value == 10:
                assert dla0.entered.is_set()
        # No frame lost, and the one on the hung core was answered while its engine was still blocked.
        assert results == [float(v) for v in range(10, 20)]
        assert dla0.entered.is_set() and 10.0 in dla1.answered and 10.0 not in dla0.answered
        stuck = health.wait("stuck", "dla0")
        assert stuck.model == "m" and "200 ms deadline" in stuck.detail
        assert dla1.answered[-9:] == [float(v) for v in range(11, 20)]  # out of rotation while stuck

        stats = manager.statistics()
        engine = stats["engines"]["m@dla0"]
        assert engine["stuck"] is True and engine["in_rotation"] is False and engine["stuck_since"]
        assert engine["deadline_misses"] == 1 and engine["errors"] == 0
        assert stats["cores"]["dla0"]["stuck_engines"] == ["m@dla0"]
        assert manager.health()["m"] == {"state": "degraded", "serving": ["dla1"],
                                         "stuck": {"dla0": engine["stuck_since"]}, "backing_off": []}
        statuses = {s.name: s for s in DiagnosticsReport().statuses(stats, manager.placements())}
        for name in ("dla_perception: engine m@dla0", "dla_perception: core dla0"):
            assert statuses[name].level == ERROR, statuses[name]
        engine_status = statuses["dla_perception: engine m@dla0"]
        assert engine_status.values["stuck_since"] == engine["stuck_since"]
        assert engine_status.values["model"] == "m" and "stuck" in engine_status.message
        assert statuses["dla_perception: engine m@dla1"].level in (OK, WARN)

        dla0.release()  # the hung run returns: its late answer is discarded, then a probe restores the core
        restored = health.wait("restored", "dla0")
        assert "probe answered" in restored.detail
        stats = manager.statistics()["engines"]["m@dla0"]
        assert stats["stuck"] is False and stats["in_rotation"] is True and stats["late_answers"] == 1
        assert manager.health()["m"]["state"] == "ok"
        before = len(dla0.answered)
        for value in range(30, 34):
            manager.infer("m", frame(value))
        assert len(dla0.answered) > before  # back in rotation


def test_an_engine_answering_late_is_overtaken_by_the_retry_and_its_answer_discarded():
    engines = Engines()
    manager = manager_of(engines, policy="pinned")
    health = HealthLog(manager)
    with manager:
        dla0, dla1 = engines["dla0"], engines["dla1"]
        dla0.hang_next()
        future = manager.submit("m", frame(7.0))
        assert future.result(SAFETY_S)["y"][0, 0] == 7.0  # answered by the standby
        assert dla1.answered == [7.0] and dla0.entered.is_set()
        health.wait("stuck", "dla0")
        dla0.release()
        health.wait("restored", "dla0")
        assert dla0.answered[0] == 7.0  # it did answer, late: discarded, the future kept dla1's
        assert manager.statistics()["engines"]["m@dla0"]["late_answers"] == 1
        manager.infer("m", frame(8.0))
        assert dla0.answered[-1] == 8.0  # pinned goes back to its first core once restored


def test_a_failing_core_retries_on_the_other_and_a_request_failing_twice_is_an_engine_error():
    engines = Engines()
    with manager_of(engines, policy="pinned") as manager:
        engines["dla0"].fail_next(1)
        assert manager.infer("m", frame(1.0))["y"][0, 0] == 1.0
        assert engines["dla1"].answered == [1.0]
        engines["dla0"].fail_next(1)
        engines["dla1"].fail_next(1)
        with pytest.raises(EngineError, match="injected failure"):
            manager.infer("m", frame(2.0))
        stats = manager.statistics()["engines"]
        assert stats["m@dla0"]["errors"] == 2 and stats["m@dla1"]["errors"] == 1
        assert not stats["m@dla0"]["stuck"] and not stats["m@dla1"]["stuck"]  # failing is not stuck


def test_with_no_other_core_a_hang_fails_by_the_deadline_then_fast_until_restored():
    engines = Engines()
    manager = manager_of(engines, cores=("dla0",))
    health = HealthLog(manager)
    with manager:
        engine = engines["dla0"]
        engine.hang_next()
        with pytest.raises(DeadlineExceeded, match="still running on dla0 at its deadline.*no other core"):
            manager.infer("m", frame(1.0))
        assert engine.entered.is_set() and not engine.answered  # it returned while the engine was hung
        health.wait("stuck", "dla0")
        with pytest.raises(EngineStuck, match="every core is stuck: dla0 since"):
            manager.infer("m", frame(2.0))
        assert engine.runs == 1  # refused without reaching the engine
        engine.release()
        health.wait("restored", "dla0")
        assert manager.infer("m", frame(3.0))["y"][0, 0] == 3.0


def test_requests_older_than_their_deadline_are_dropped_before_inference_and_counted():
    engines = Engines()
    with manager_of(engines, cores=("dla0",), deadline_ms=10_000.0) as manager:
        engine = engines["dla0"]
        with pytest.raises(DeadlineExceeded, match="'m' request of stream 'front' dropped unrun: already"):
            manager.infer("m", frame(1.0), stream="front", deadline=time.monotonic() - 0.01)
        busy = threading.Event()
        engine.hold(busy)
        first = manager.submit("m", frame(2.0))
        stale = manager.submit("m", frame(3.0), deadline=time.monotonic() + 0.05)
        # The core is still busy with the first request when the second one's deadline passes.
        assert isinstance(stale.exception(SAFETY_S), DeadlineExceeded)
        assert "dropped unrun" in str(stale.exception())
        busy.set()
        assert first.result(SAFETY_S)["y"][0, 0] == 2.0
        assert engine.answered == [2.0]  # neither stale request ever reached the engine
        stats = manager.statistics()["engines"]["m@dla0"]
        assert stats["drops_stale"] == 2 and stats["deadline_misses"] == 1 and stats["inferences"] == 1


@pytest.mark.parametrize("fault", ["fails", "hangs"])
def test_failover_never_evicts_a_newer_request_of_the_stream(fault):
    """dla0 loses frame 0 (an error, or a hang past the deadline) while dla1 is busy with frame 1 and
    frame 3 waits there: the retry of frame 0, and frame 2 moved off dla0, are older than frame 3, so
    they are the ones dropped. Latest wins: frame 3 is answered. Deadlines from the budgets: 200 ms on
    dla0, 10 s on dla1 (busy, not stuck)."""
    engines = Engines()
    manager = manager_of(engines, queue_size=1, deadline_ms=None, budgets={"dla0": 50.0, "dla1": 2500.0})
    with manager:
        dla0, dla1 = engines["dla0"], engines["dla1"]
        busy, gate = threading.Event(), threading.Event()
        dla1.hold(busy)
        if fault == "fails":
            dla0.hold(gate)
            dla0.fail_next(2)
        else:
            dla0.hang_next()
        futures = [manager.submit("m", frame(0.0)), manager.submit("m", frame(1.0))]
        assert dla0.started.wait(SAFETY_S) and dla1.started.wait(SAFETY_S)  # both running, then 2 and 3 queue
        futures += [manager.submit("m", frame(2.0)), manager.submit("m", frame(3.0))]
        gate.set()
        for lost in (futures[0], futures[2]):
            assert isinstance(lost.exception(SAFETY_S), RequestDropped)
            assert "a newer request was already waiting" in str(lost.exception())
        busy.set()
        assert [f.result(SAFETY_S)["y"][0, 0] for f in (futures[1], futures[3])] == [1.0, 3.0]
        assert dla1.answered == [1.0, 3.0]
        assert manager.statistics()["engines"]["m@dla1"]["drops"] == 2
        dla0.release()


def test_no_frame_is_lost_beyond_one_deadline_with_two_requests_in_flight():
    """A pipeline keeping two requests in flight (as the proximity head does on two cores) through a hang:
    every frame is answered; a lost one would have to lie within one deadline of the hang."""
    engines = Engines()
    manager = manager_of(engines)
    health = HealthLog(manager)
    with manager:
        in_flight, submitted, lost = [], {}, []
        for value in range(40):
            if value == 10:
                engines["dla0"].hang_next()
                hang_started = time.monotonic()
            if len(in_flight) == 2:
                oldest = in_flight.pop(0)
                if oldest.exception(SAFETY_S) is not None:
                    lost.append(submitted[oldest])
            future = manager.submit("m", frame(float(value)))
            submitted[future] = time.monotonic()
            in_flight.append(future)
        wait(in_flight, SAFETY_S)
        lost += [submitted[f] for f in in_flight if f.exception() is not None]
        health.wait("stuck", "dla0")
        assert all(hang_started <= when <= hang_started + 0.2 for when in lost), lost
        assert lost == []
        engines["dla0"].release()


def test_close_returns_within_its_timeout_and_resolves_every_future_despite_hung_engines():
    engines = Engines()
    manager = EngineManager(two_core_config(deadline_ms=10_000.0, queue_size=4), CORES,
                            engine_factory=engines.factory)
    engines["dla0"].hang_next()
    engines["dla1"].hang_next()
    futures = [manager.submit("m", frame(float(value))) for value in range(6)]
    assert engines["dla0"].entered.wait(SAFETY_S) and engines["dla1"].entered.wait(SAFETY_S)
    started = time.monotonic()
    manager.close(timeout=1.0)
    took = time.monotonic() - started
    assert took < 2.5, took  # one timeout for all workers (it used to wait twice per worker: 4 s here)
    assert all(future.done() for future in futures)
    errors = [future.exception() for future in futures]
    assert all(isinstance(error, EngineManagerClosed) for error in errors)
    assert sum("did not answer within the 1 s close timeout" in str(error) for error in errors) == 2
    assert not engines["dla0"].closed  # never freed under the thread still inside run()
    engines["dla0"].release()
    engines["dla1"].release()


def test_node_status_names_the_degraded_outputs():
    health = {"head": {"state": "degraded", "serving": ["dla1"], "stuck": {"dla0": "2026-01-01T00:00:00"},
                       "backing_off": []},
              "features": {"state": "ok", "serving": ["gpu"], "stuck": {}, "backing_off": []}}
    status = Status("dla_perception: proximity", "/proximity")
    mark_degraded(status, health, ["features", "head"], ["/proximity/mask", "/proximity/range"])
    assert status.level == WARN
    assert status.values["degraded_outputs"] == "/proximity/mask,/proximity/range"
    assert status.values["degraded_models"] == "head"
    assert "dla0 stuck since 2026-01-01T00:00:00" in status.message and "running on dla1" in status.message
    health["head"] = {"state": "unavailable", "serving": [], "stuck": {"dla0": "a", "dla1": "b"},
                      "backing_off": []}
    status = Status("dla_perception: proximity", "/proximity")
    mark_degraded(status, health, ["features", "head"], ["/proximity/mask"])
    assert status.level == ERROR and "outputs unavailable: /proximity/mask" in status.message
    status = Status("dla_perception: detection", "/detection")
    mark_degraded(status, health, ["features"], ["/detections"])
    assert status.level == OK and status.values["degraded_outputs"] == ""


def test_the_infer_answer_resolves_once_and_a_cancelled_one_is_skipped():
    from concurrent.futures import InvalidStateError
    from concurrent.futures import TimeoutError as FutureTimeout

    from dla_perception.runtime.requests import Answer

    answer = Answer()
    with pytest.raises(FutureTimeout):
        answer.result(0.0)
    answer.set_result({"y": 1})
    with pytest.raises(InvalidStateError):  # the request's first answer wins, a late one is refused
        answer.set_exception(RuntimeError("late"))
    assert answer.done() and answer.result() == {"y": 1} and answer.result(0.0) == {"y": 1}
    failed = Answer()
    failed.set_exception(DeadlineExceeded("x"))
    with pytest.raises(DeadlineExceeded):
        failed.result()
    cancelled = Answer()
    assert cancelled.cancel() and cancelled.cancelled() and not cancelled.set_running_or_notify_cancel()
    with pytest.raises(InvalidStateError):
        cancelled.set_result({})
