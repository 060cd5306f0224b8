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
    streams = [StreamDemand("front", {"head": 1}, 10, 30.0),
               StreamDemand("side", {"head": 1}, 0, 30.0, min_rate_hz=5.0)]
    result = plan(streams, BOTH, PROFILE, headroom=1.0)
    # two cores of 50 ms: 40 frames/s; front takes its 30, side its minimum 5 and then the 5 left
    assert abs(result.rates["front"] - 30.0) < 1e-9 and abs(result.rates["side"] - 10.0) < 1e-9
    streams[0] = StreamDemand("front", {"head": 1}, 10, 60.0)
    result = plan(streams, BOTH, PROFILE, headroom=1.0)
    assert abs(result.rates["side"] - 5.0) < 1e-9 and abs(result.rates["front"] - 35.0) < 1e-9
    assert result.degraded == ["front", "side"]  # side at its minimum, below its 30 Hz


def test_a_placement_meeting_the_targets_is_suggested():
    streams = [StreamDemand("front", {"head": 2}, 10, 30.0)]  # 60 x 50 ms: more than two DLAs
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
