"""The capacity plan (runtime/capacity.py) and `dla-perception plan` on a profile: fits, degrades by
priority with minimum rates first, and suggests a placement that meets the targets."""

from __future__ import annotations

import json

from dla_perception.runtime.capacity import ModelPlacement, StreamDemand, plan, suggest
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
    # r frames/s of 50 ms over two cores: u = 0.025 r; a frame takes 50 ms x (1 + u), so r (1 + 0.025 r) = 20
    rate = alone.rates["front"]
    assert abs(rate * (1 + 0.025 * rate) - 20.0) < 1e-3 and 14 < rate < 15
    # a 6 Hz camera, frames of 3 x 50 ms (two cores) stretched past one 167 ms period: every second frame
    camera = StreamDemand("rear", {"head": 6}, 5, 6.0, frames_in_flight=1, source_rate_hz=6.0)
    assert plan([camera], BOTH, PROFILE, headroom=1.0).rates["rear"] == 3.0


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
