"""The capacity plan (runtime/capacity.py) and `dla-perception plan` on a profile: fits, degrades by
priority with minimum rates first, and suggests a placement that meets the targets."""

from __future__ import annotations

import json
import math

import pytest

from dla_perception.runtime.capacity import (
    ModelPlacement,
    StreamDemand,
    host_stretch,
    in_flight_bound,
    plan,
    priority_waits,
    round_wait,
    suggest,
    wait_beyond,
)
from dla_perception.tools.cli import main

PROFILE = {"head": {"dla0": 50.0, "dla1": 50.0, "gpu": 10.0}}
BOTH = {"head": ModelPlacement(("dla0", "dla1"), "round_robin")}


def test_streams_that_fit_get_their_targets_and_the_utilisation_adds_up():
    streams = [StreamDemand("front", {"head": 1}, 10, 10.0), StreamDemand("rear", {"head": 1}, 0, 10.0)]
    result = plan(streams, BOTH, PROFILE)
    assert result.rates == {"front": 10.0, "rear": 10.0} and not result.degraded
    assert result.utilisation == {"dla0": 0.5, "dla1": 0.5}  # 20 requests/s x 50 ms over two cores


def test_overload_serves_minimums_then_priority():
    # frames_in_flight=0: sources that do not wait for their answers (the node's one-frame bound below)
    streams = [StreamDemand("front", {"head": 1}, 10, 30.0, frames_in_flight=0),
               StreamDemand("side", {"head": 1}, 0, 30.0, min_rate_hz=5.0, frames_in_flight=0)]
    result = plan(streams, BOTH, PROFILE, headroom=1.0)
    # two cores of 50 ms: 40 frames/s; front takes its 30, side its minimum 5 and then the 5 left
    assert abs(result.rates["front"] - 30.0) < 1e-9 and abs(result.rates["side"] - 10.0) < 1e-9
    streams[0] = StreamDemand("front", {"head": 1}, 10, 60.0, frames_in_flight=0)
    result = plan(streams, BOTH, PROFILE, headroom=1.0)
    assert abs(result.rates["side"] - 5.0) < 1e-9 and abs(result.rates["front"] - 35.0) < 1e-9
    assert result.degraded == ["front", "side"]  # side at its minimum, below its 30 Hz


def test_a_level_shares_the_cores_time_and_one_frame_in_flight_bounds_a_stream():
    """The oldest request first within a priority level: a cheap stream gets its whole target while an
    expensive one takes the rest (not both scaled down alike); a camera node's one frame in flight caps a
    stream at one frame per frame latency however free the cores are."""
    streams = [StreamDemand("side", {"head": 4}, 0, 30.0, frames_in_flight=0),
               StreamDemand("detection", {"head": 1}, 0, 2.0, frames_in_flight=0)]
    result = plan(streams, BOTH, PROFILE, headroom=1.0)
    assert abs(result.rates["detection"] - 2.0) < 1e-9  # 0.1 s of the 2 s: under its equal share
    assert abs(result.rates["side"] - 9.5) < 1e-9  # the other 1.9 s: 9.5 frames of 0.2 s
    one = StreamDemand("front", {"head": 1}, 10, 30.0, frames_in_flight=1)
    alone = plan([one], BOTH, PROFILE, headroom=1.0)
    # alone on the cores nothing is in its way: one frame per 50 ms
    assert abs(alone.rates["front"] - 20.0) < 1e-9 and alone.latency_ms["front"] == 50.0
    # a 6 Hz camera, frames of 3 rounds x 50 ms (two cores): 150 ms fit one 167 ms period
    camera = StreamDemand("rear", {"head": 6}, 5, 6.0, frames_in_flight=1, source_rate_hz=6.0)
    assert plan([camera], BOTH, PROFILE, headroom=1.0).rates["rear"] == 6.0
    # 8 requests: 4 rounds, 200 ms: every frame spans two periods, the one arriving meanwhile dropped
    camera = StreamDemand("rear", {"head": 8}, 5, 6.0, frames_in_flight=1, source_rate_hz=6.0)
    assert plan([camera], BOTH, PROFILE, headroom=1.0).rates["rear"] == pytest.approx(3.0)


def test_a_placement_meeting_the_targets_is_suggested():
    streams = [StreamDemand("front", {"head": 2}, 10, 30.0, frames_in_flight=0)]  # 60 x 50 ms: > two DLAs
    result = suggest(streams, BOTH, PROFILE)
    assert result.degraded == ["front"] and result.suggestion is not None
    assert "gpu" in result.suggestion["head"].cores


def test_cli_plans_the_four_camera_example_from_a_profile(tmp_path, capsys):
    from conftest import REPO_ROOT

    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"proximity_features": {"gpu": 3.0, "cpu": 60.0},
                                   "proximity_head": {"dla0": 8.0, "dla1": 8.0, "cpu": 200.0},
                                   "detector": {"gpu": 4.0, "cpu": 100.0}}))
    assert main(["plan", "--config", str(REPO_ROOT / "config/four_cameras.yaml"), "--engines",
                 str(REPO_ROOT / "config/engines.yaml"), "--profile", str(profile), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["rates_hz"]) == {"front/proximity", "rear/proximity", "left/proximity",
                                        "right/proximity", "front/detection"}
    assert printed["rates_hz"]["front/proximity"] == 15.0


def test_cli_plans_from_an_engine_managers_statistics(tmp_path, capsys):
    """The latencies a running container or replay measured (EngineManager.statistics(), as JSON) are a
    profile too: the median of each engine that answered; engines that never ran are left out."""
    from conftest import REPO_ROOT
    from faulty_engines import Engines, frame, two_core_config

    from dla_perception.runtime.manager import EngineManager
    from dla_perception.tools.plan import profile_from_statistics

    engines = Engines()
    with EngineManager(two_core_config(deadline_ms=5000.0, policy="round_robin"), ["dla0", "dla1"],
                       engine_factory=engines.factory) as manager:
        for value in range(6):
            manager.infer("m", frame(value), stream="front")
        statistics = json.loads(json.dumps(manager.statistics(), default=str))
    profile = profile_from_statistics(statistics)
    assert set(profile) == {"m"} and set(profile["m"]) == {"dla0", "dla1"}
    assert all(ms > 0 for ms in profile["m"].values())
    statistics["engines"]["proximity_head@dla0"] = {**statistics["engines"]["m@dla0"],
                                                    "model": "proximity_head", "latency_p50_ms": 8.0}
    statistics["engines"]["proximity_head@dla1"] = {**statistics["engines"]["m@dla1"],
                                                    "model": "proximity_head", "core": "dla1",
                                                    "latency_p50_ms": 8.0}
    statistics["engines"]["proximity_features@gpu"] = {"model": "proximity_features", "core": "gpu",
                                                       "inferences": 10, "latency_p50_ms": 3.0}
    statistics["engines"]["detector@gpu"] = {"model": "detector", "core": "gpu", "inferences": 0,
                                             "latency_p50_ms": 0.0}  # never ran: not profiled
    path = tmp_path / "statistics.json"
    path.write_text(json.dumps(statistics))
    assert main(["plan", "--config", str(REPO_ROOT / "config/four_cameras.yaml"), "--engines",
                 str(REPO_ROOT / "config/engines.yaml"), "--profile", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["profile"]["proximity_head"] == {"dla0": 8.0, "dla1": 8.0}
    assert "detector" not in printed["profile"] and "front/detection" not in printed["rates_hz"]
    assert printed["rates_hz"]["front/proximity"] == 15.0


ONE = {"head": ModelPlacement(("dla0",), "pinned")}


def test_a_request_waits_for_what_runs_its_level_and_the_higher_ones():
    """W = (R + Q) / (1 - U_higher): R the rest of what runs, Q the queued work ahead by Little's law."""
    front = StreamDemand("front", {"head": 1}, 10, 10.0)
    side = StreamDemand("side", {"head": 1}, 0, 10.0)
    rates = {"front": 10.0, "side": 4.0}  # 50 ms requests on one core: 0.01 and 0.004 per ms, u 0.5, 0.2
    waits = priority_waits([front, side], rates, ONE, PROFILE)
    # the front: only the side request it finds running, 0.004 x 50^2 / 2
    assert waits[("front", "dla0")] == pytest.approx((5.0, 0.2))
    # the side: R 0.01 x 50^2 / 2 = 12.5, the front's queued 0.01 x 5 x 50 = 2.5, over 1 - 0.5
    assert waits[("side", "dla0")] == pytest.approx((30.0, 0.5))
    other = StreamDemand("other", {"head": 1}, 0, 10.0)
    waits = priority_waits([side, other], {"side": 4.0, "other": 4.0}, ONE, PROFILE)
    # one level: W = 5 + 0.5 x 0.004 x W x 50 (the other's older half): W = 5 / 0.9
    assert waits[("side", "dla0")] == pytest.approx((5.0 / 0.9, 0.2))
    # a round of two such requests ends with the longer wait: E[max] = m / b (2 b - b^2 / 2)
    assert round_wait(10.0, 0.5, 2) == pytest.approx((20.0 * 0.875, 0.75))
    assert round_wait(10.0, 0.5, 1) == (10.0, 0.5)


def test_frames_of_two_or_three_periods_by_turns_give_a_rate_in_between():
    """A wait is 0 with probability `busy`, else exponential: E[ceil(L / T)] camera periods a frame."""
    assert wait_beyond(10.0, 1, 20.0, 0.5) == pytest.approx(0.5 * math.exp(-10.0 * 0.5 / 20.0))
    # two waits: P(both) e^{-mx}(1 + mx) + P(one) e^{-mx}, m = busy / mean
    m = 0.5 / 20.0
    assert wait_beyond(30.0, 2, 20.0, 0.5) == pytest.approx(
        0.25 * math.exp(-m * 30) * (1 + m * 30) + 0.5 * math.exp(-m * 30))
    camera = StreamDemand("cam", {"head": 1}, 0, 10.0, frames_in_flight=1, source_rate_hz=10.0)
    # an 80 ms chain and one wait (mean 20 ms, busy half the time) against 100 ms periods:
    # E = 1 + sum over k of 0.5 exp(-(100 k - 80) / 40) = 1 + 0.5 e^-0.5 / (1 - e^-2.5)
    periods = 1 + 0.5 * math.exp(-0.5) / (1 - math.exp(-2.5))
    assert in_flight_bound(camera, 100.0, 1, 20.0, 0.5) == pytest.approx(10.0 / periods, rel=1e-5)
    assert in_flight_bound(camera, 80.0) == 10.0  # no wait: every frame in one period


def test_the_nodes_own_work_is_slowed_by_the_cpu_cores_it_shares():
    """host_ms runs on the host's CPUs: cpu/cpuN engines share them, DLAs do not."""
    stream = StreamDemand("cam", {"head": 1}, 0, 10.0, host_ms=20.0)
    other = StreamDemand("other", {"head": 1}, 0, 10.0, host_ms=50.0)
    rates = {"cam": 2.0, "other": 4.0}  # the other's host work: 0.2 of a CPU
    assert host_stretch(stream, [stream, other], rates, {"cpu0": 0.9, "cpu1": 0.9}, 2) == pytest.approx(1.5)
    assert host_stretch(stream, [stream, other], rates, {"dla0": 0.9, "dla1": 0.9}, 1) == pytest.approx(1.2)
    assert host_stretch(stream, [stream], rates, {"dla0": 0.9}, 2) == 1.0  # a free CPU: its own time
    cpu = {"head": {"cpu0": 50.0}}
    pinned = {"head": ModelPlacement(("cpu0",), "pinned")}
    result = plan([StreamDemand("cam", {"head": 1}, 0, 10.0, frames_in_flight=1, host_ms=50.0)], pinned,
                  cpu, headroom=1.0, cpus=1)
    # r (50 + 50 (1 + 0.05 r)) = 1000 ms: 2.5 r^2 + 100 r - 1000 = 0
    rate = (-100 + math.sqrt(100 ** 2 + 4 * 2.5 * 1000)) / 5
    assert result.rates["cam"] == pytest.approx(rate, rel=1e-3)
