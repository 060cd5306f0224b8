"""Stream scheduling in the engine manager (runtime/streams.py, dispatch.py, streams_gate.py), on fake
engines: priority then age across streams, latest-wins within one, the rate cap, stale drops, the minimum
rate, the core gate across models, and cpuN cores built by the default factory."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from faulty_engines import Engines, frame, two_core_config

from dla_perception.runtime.config import EnginesConfig, ModelSpec
from dla_perception.runtime.dispatch import StreamQueue
from dla_perception.runtime.errors import DeadlineExceeded, RequestDropped
from dla_perception.runtime.manager import EngineManager
from dla_perception.runtime.requests import Request
from dla_perception.runtime.streams import RateCapped, StreamSettings, StreamState
from dla_perception.runtime.streams_gate import CoreGate


def one_core(engines: Engines, queue_size: int = 2, deadline_ms: float = 5000.0) -> EngineManager:
    config = two_core_config(deadline_ms=deadline_ms, policy="pinned", queue_size=queue_size, cores=("dla0",))
    return EngineManager(config, ["dla0"], engine_factory=engines.factory)


def wait_until(condition, timeout: float = 10.0) -> None:
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, "condition not reached"
        time.sleep(0.002)


def test_higher_priority_runs_first_then_the_older_request():
    engines = Engines()
    with one_core(engines) as manager:
        manager.configure_stream("side", StreamSettings(priority=0))
        manager.configure_stream("front", StreamSettings(priority=5))
        gate = threading.Event()
        engines["dla0"].hold(gate)
        first = manager.submit("m", frame(0), stream="side")
        wait_until(engines["dla0"].started.is_set)  # 0 runs; everything below waits behind it
        futures = [manager.submit("m", frame(value), stream=stream)
                   for value, stream in ((1, "side"), (2, "side"), (3, "front"), (4, "front"))]
        gate.set()
        for future in [first, *futures]:
            future.result(5)
        assert engines["dla0"].answered == [0, 3, 4, 1, 2]
        stats = manager.stream_statistics()
        assert stats["front"]["delivered"] == 2 and stats["side"]["delivered"] == 3
        assert stats["front"]["cores"] == {"dla0": 2}


def test_latest_wins_within_a_stream_never_across_streams():
    engines = Engines()
    with one_core(engines, queue_size=1) as manager:
        gate = threading.Event()
        engines["dla0"].hold(gate)
        running = manager.submit("m", frame(0), stream="rear")
        wait_until(engines["dla0"].started.is_set)
        older = manager.submit("m", frame(1), stream="rear")
        other = manager.submit("m", frame(2), stream="left")
        newer = manager.submit("m", frame(3), stream="rear")
        with pytest.raises(RequestDropped):
            older.result(5)
        gate.set()
        for future in (running, other, newer):
            future.result(5)
        assert engines["dla0"].answered == [0, 2, 3]
        stats = manager.stream_statistics()
        assert stats["rear"]["dropped_busy"] == 1 and stats["left"]["dropped_busy"] == 0


def test_rate_cap_drops_early_frames_unrun_and_keeps_the_rate():
    engines = Engines()
    with one_core(engines) as manager:
        manager.configure_stream("front", StreamSettings(max_rate_hz=20.0))
        delivered = capped = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # ~200 frames offered in a second
            try:
                manager.infer("m", frame(1), stream="front")
                delivered += 1
            except RateCapped:
                capped += 1
            time.sleep(0.005)
        # GCRA: at most rate x time + the tolerance's one frame early; a loaded machine delivers fewer
        assert 10 <= delivered <= 22
        stats = manager.stream_statistics()["front"]
        assert stats["delivered"] == delivered and stats["dropped_rate_cap"] == capped
        assert engines["dla0"].runs == delivered


def test_rate_cap_counts_only_the_entry_model():
    engines = Engines()
    config = two_core_config(deadline_ms=5000.0, policy="pinned", cores=("dla0",))
    config.models["head"] = ModelSpec("head", Path("h.onnx"), ("dla0",), precision="fp16")
    with EngineManager(config, ["dla0"], engine_factory=engines.factory) as manager:
        manager.configure_stream("front", StreamSettings(max_rate_hz=2.0, entry_model="m"))
        manager.infer("m", frame(1), stream="front")
        for _ in range(3):  # a frame's follow-up requests are never capped
            manager.infer("head", frame(1), stream="front")
        with pytest.raises(RateCapped):
            manager.infer("m", frame(2), stream="front")
        stats = manager.stream_statistics()["front"]
        assert stats["delivered"] == 1 and stats["dropped_rate_cap"] == 1
        assert stats["cores"] == {"dla0": 4}


def test_a_streams_host_time_is_the_median_of_its_recent_frames():
    from dla_perception.runtime.streams import StreamSettings, StreamState

    state = StreamState("front/proximity", StreamSettings(), window_s=10.0, explicit=True)
    assert state.summary()["host_cpu_ms_p50"] == 0.0  # no frame yet
    now = 1000.0
    state.record_host_time(90.0, now=now - 30.0)  # out of the window: forgotten
    for ms in (10.0, 12.0, 40.0):
        state.record_host_time(ms, now=now - 1.0)
    assert state.summary(now)["host_cpu_ms_p50"] == 12.0


def test_expired_frames_drop_before_inference_as_stale():
    engines = Engines()
    with one_core(engines) as manager:
        manager.configure_stream("left", StreamSettings(deadline_ms=60.0))
        gate = threading.Event()
        engines["dla0"].hold(gate)
        running = manager.submit("m", frame(0), stream="slow", deadline=time.monotonic() + 5.0)
        wait_until(engines["dla0"].started.is_set)
        late = manager.submit("m", frame(1), stream="left")
        with pytest.raises(DeadlineExceeded):
            late.result(5)
        gate.set()
        running.result(5)
        assert engines["dla0"].answered == [0]
        assert manager.stream_statistics()["left"]["dropped_stale"] == 1


def _request(stream: StreamState, seq: int) -> Request:
    return Request("m", {}, stream.name, deadline=time.monotonic() + 10, submitted=time.monotonic(), seq=seq,
                   stream_state=stream)


def test_a_stream_below_its_minimum_rate_is_served_first():
    front = StreamState("front", StreamSettings(priority=9), 10.0, True)
    side = StreamState("side", StreamSettings(priority=0, min_rate_hz=2.0), 10.0, True)
    side.is_entry("m")
    queue = StreamQueue()
    queue.admit(_request(side, 1), 2)
    queue.admit(_request(front, 2), 2)
    now = time.monotonic()
    side.last_started = now - 0.1  # served 0.1 s ago: not starving, priority decides
    assert queue.take_next(now)[0].stream == "front"
    queue.admit(_request(front, 3), 2)
    side.last_started = now - 0.6  # nothing for longer than 1 / 2 Hz
    assert queue.take_next(now)[0].stream == "side"
    assert len(queue) == 1


def test_minimum_rate_holds_against_a_flooding_high_priority_stream():
    engines = Engines()
    with one_core(engines, queue_size=1) as manager:
        manager.configure_stream("front", StreamSettings(priority=5))
        manager.configure_stream("side", StreamSettings(priority=0, min_rate_hz=5.0))
        slow = threading.Event()  # never set: the hold makes each run wait its timeout
        engines["dla0"].hold(None)
        original = engines["dla0"].run

        def run(inputs):
            slow.wait(0.01)  # a 10 ms "inference"
            return original(inputs)

        engines["dla0"].run = run
        stop = threading.Event()

        def flood(stream: str) -> None:
            while not stop.is_set():
                manager.submit("m", frame(1), stream=stream)
                time.sleep(0.002)

        threads = [threading.Thread(target=flood, args=(name,)) for name in ("front", "side")]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        stop.set()
        for thread in threads:
            thread.join()
        stats = manager.stream_statistics()
        assert stats["side"]["delivered"] >= 5  # 5 Hz x 2 s, at least half of it on a loaded machine
        assert stats["front"]["delivered"] > 2 * stats["side"]["delivered"]


def test_core_gate_grants_the_best_waiter_and_gives_up_at_the_deadline():
    gate = CoreGate("dla0")
    assert gate.acquire(lambda now: (1, 0, 0), time.monotonic() + 1)
    order: list[str] = []
    keys = {"low": (1, 0, 5), "high": (1, -3, 9), "late": (0, 0, 1), "gone": (0, 0, 0)}

    def waiter(name: str, until: float) -> None:
        if gate.acquire(lambda now: keys[name], until):
            order.append(name)
            gate.release()
        else:
            order.append(f"{name} timed out")

    threads = [threading.Thread(target=waiter, args=("low", time.monotonic() + 5)),
               threading.Thread(target=waiter, args=("high", time.monotonic() + 5)),
               threading.Thread(target=waiter, args=("gone", time.monotonic() + 5)),
               threading.Thread(target=waiter, args=("late", time.monotonic() + 0.05))]
    for thread in threads:
        thread.start()
    wait_until(lambda: gate.waiting() == 3 and "late timed out" in order)
    keys["gone"] = None  # its queue ran empty while it waited: it leaves at the next election
    keys["low"] = (1, -5, 5)  # a higher-priority request reached low's queue while it waited
    gate.release()
    for thread in threads:
        thread.join()
    assert order[0] == "late timed out" and "gone timed out" in order
    assert [name for name in order if "timed out" not in name] == ["low", "high"]


@contextlib.contextmanager
def dla0_busy_with_a_side_request():
    """Models m and head on dla0 alone; a side-stream m request running (held until `gate` is set) and a
    side-stream head request submitted behind it; "front" is a priority-5 stream."""
    engines: dict[str, Engines] = {"m": Engines(), "head": Engines()}
    config = two_core_config(deadline_ms=5000.0, policy="pinned", cores=("dla0",))
    config.models["head"] = ModelSpec("head", Path("h.onnx"), ("dla0",), precision="fp16")
    with EngineManager(config, ["dla0"], engine_factory=lambda spec, core: engines[spec.name].factory(
            spec, core)) as manager:
        manager.configure_stream("front", StreamSettings(priority=5))
        gate = threading.Event()
        engines["m"]["dla0"].hold(gate)
        running = manager.submit("m", frame(0), stream="side")
        wait_until(engines["m"]["dla0"].started.is_set)
        side = manager.submit("head", frame(1), stream="side")
        yield manager, engines, gate, running, side


def test_a_request_waiting_for_the_core_yields_to_a_more_urgent_one_queued_after_it():
    """Issue 19, defect (a): the head's worker used to take the side camera's request out of its queue and
    wait for dla0 with it, so the front camera's head request, queued while dla0 was busy with another
    model, ran after it. The core now goes to the best request at the moment it is free."""
    with dla0_busy_with_a_side_request() as (manager, engines, gate, running, side):
        wait_until(lambda: manager._gates["dla0"].waiting() == 1)  # head's worker waits for dla0
        front = manager.submit("head", frame(2), stream="front")
        gate.set()
        for future in (running, front, side):
            future.result(5)
        assert engines["head"]["dla0"].answered == [2, 1]


def test_least_loaded_sends_a_request_where_the_least_would_run_before_it():
    """Issue 19: a frame's second head request went behind its first on cpu0 while cpu1 only had side
    cameras' work waiting (which the front's request overtakes): least_loaded counted everything waiting
    (workers waiting for the core, whatever their priority), not what would run before the request."""
    engines: dict[str, Engines] = {name: Engines() for name in ("m", "a", "b", "c")}
    config = two_core_config(deadline_ms=5000.0, policy="least_loaded", queue_size=4, cores=("dla0", "dla1"))
    for name in ("a", "b", "c"):
        config.models[name] = ModelSpec(name, Path(f"{name}.onnx"), ("dla1",), precision="fp16")
    with EngineManager(config, ["dla0", "dla1"], engine_factory=lambda spec, core: engines[spec.name].factory(
            spec, core)) as manager:
        manager.configure_stream("front", StreamSettings(priority=10))
        gate = threading.Event()
        engines["m"]["dla0"].hold(gate)
        engines["a"]["dla1"].hold(gate)
        futures = [manager.submit("m", frame(0), stream="side")]  # runs on dla0
        wait_until(engines["m"]["dla0"].started.is_set)
        futures.append(manager.submit("a", frame(1), stream="side"))  # runs on dla1
        wait_until(engines["a"]["dla1"].started.is_set)
        futures += [manager.submit(name, frame(value), stream="side") for name, value in (("b", 2), ("c", 3))]
        wait_until(lambda: manager._gates["dla1"].waiting() == 2)  # two side requests wait for dla1
        futures.append(manager.submit("m", frame(4), stream="front"))  # a tie: dla0, queued behind 0
        assert manager._models["m"].workers[0].queue_depth() == 1
        futures.append(manager.submit("m", frame(5), stream="front"))  # dla1: nothing of its rank waits
        gate.set()
        for future in futures:
            future.result(5)
        assert engines["m"]["dla0"].answered == [0, 4] and engines["m"]["dla1"].answered == [5]
        assert manager.stream_statistics()["front"]["cores"] == {"dla0": 1, "dla1": 1}


def test_two_models_on_one_exclusive_core_run_one_at_a_time():
    with dla0_busy_with_a_side_request() as (manager, engines, gate, running, side):
        front = manager.submit("m", frame(2), stream="front")
        time.sleep(0.1)
        assert engines["head"]["dla0"].runs == 0  # dla0 is busy with m's run: head waits at the gate
        gate.set()
        for future in (running, front, side):
            future.result(5)
        assert engines["head"]["dla0"].runs == 1


def test_cpu_instances_are_separate_one_thread_cores(tmp_path):
    from test_runtime_manager import relu_model

    path = relu_model(tmp_path / "relu.onnx")
    spec = ModelSpec("relu", path, ("cpu0", "cpu1"), policy="round_robin")
    with EngineManager(EnginesConfig({"relu": spec}, tmp_path, {"cpu": 100.0}), ["cpu"]) as manager:
        assert [p["active"] for p in manager.placements()] == [["cpu0", "cpu1"]]
        x = np.ones((1, 4), np.float32)
        for _ in range(4):
            np.testing.assert_array_equal(manager.infer("relu", {"x": x}, stream="a")["y"], x)
        engines = manager.describe()["engines"]
        assert {engines[name]["core"] for name in engines} == {"cpu0", "cpu1"}
        assert all(worker.engine.intra_op_threads == 1 for worker in manager._models["relu"].workers)
        assert manager.stream_statistics()["a"]["cores"] == {"cpu0": 2, "cpu1": 2}
        assert manager.statistics()["engines"]["relu@cpu0"]["deadline_ms"] == 400.0  # 4 x the cpu budget


def test_stream_settings_are_checked():
    with pytest.raises(ValueError, match="min_rate_hz"):
        StreamSettings(max_rate_hz=5.0, min_rate_hz=10.0)
    with pytest.raises(ValueError, match="max_rate_hz"):
        StreamSettings(max_rate_hz=-1.0)
    assert StreamSettings.from_mapping({"priority": 2, "max_rate_hz": 0.0}).max_rate_hz is None
    with pytest.raises(ValueError, match="unknown"):
        StreamSettings.from_mapping({"prio": 1})
