"""Latency profiles that `dla-perception plan --profile` reads from what ran: the engine_manager node's
statistics_file (a running container) and a replay's engine_runs.json (or its output folder)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT, ros_domain_id

from dla_perception.replay.timing import EngineRun, RunLog
from dla_perception.tools.cli import main
from dla_perception.tools.plan import load_profile


def test_a_replays_engine_runs_are_a_profile(tmp_path, capsys):
    log = RunLog()
    for ms in (7.0, 8.0, 30.0):  # the median, not the mean: one slow run does not move it
        log.add(EngineRun("dla0", "proximity_head", ms, True))
        log.add(EngineRun("dla1", "proximity_head", ms + 1.0, True))
    log.add(EngineRun("gpu", "proximity_features", 3.0, True))
    log.add(EngineRun("gpu", "detector", 4.0, False))  # failed runs are no latency
    (tmp_path / "engine_runs.json").write_text(json.dumps(log.samples()))
    expected = {"proximity_head": {"dla0": 8.0, "dla1": 9.0}, "proximity_features": {"gpu": 3.0}}
    assert load_profile(tmp_path / "engine_runs.json") == expected
    assert load_profile(tmp_path) == expected  # the replay's output folder
    assert main(["plan", "--config", str(REPO_ROOT / "config/four_cameras.yaml"), "--engines",
                 str(REPO_ROOT / "config/engines.yaml"), "--profile", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["profile"] == expected and "front/detection" not in printed["rates_hz"]


def test_the_nodes_cpu_time_in_a_statistics_file_slows_the_plan(tmp_path, capsys):
    """A statistics_file's streams carry each node's CPU ms per frame; on a CPU core it shares the CPUs
    with the engines, so the same engine latencies plan slower with it than without."""
    from dla_perception.tools.plan import host_times

    statistics = {"cores": {"cpu0": {}, "cpu1": {}}, "engines": {
        f"{model}@{core}": {"model": model, "core": core, "inferences": 50, "latency_p50_ms": ms}
        for model, ms in (("proximity_features", 8.0), ("proximity_head", 25.0), ("detector", 20.0))
        for core in ("cpu0", "cpu1")}}
    bare = tmp_path / "engines_only.json"
    bare.write_text(json.dumps(statistics))
    streams = {"front/proximity": {"host_cpu_ms_p50": 40.0}, "rear/proximity": {"host_cpu_ms_p50": 0.0}}
    full = tmp_path / "statistics.json"
    full.write_text(json.dumps({**statistics, "streams": streams}))
    assert host_times(full) == {"front/proximity": 40.0} and host_times(bare) == {}

    def planned(path):
        assert main(["plan", "--config", str(REPO_ROOT / "config/four_cameras.yaml"), "--engines",
                     str(REPO_ROOT / "config/engines.cpu_cores.yaml"), "--profile", str(path), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    without, with_host = planned(bare), planned(full)
    assert with_host["host_ms"] == {"front/proximity": 40.0} and without["host_ms"] == {}
    assert with_host["latency_ms"]["front/proximity"] > without["latency_ms"]["front/proximity"] + 40.0


def test_a_profile_that_is_missing_or_empty_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no profile"):
        load_profile(tmp_path)
    (tmp_path / "engine_runs.json").write_text(json.dumps({"detector@gpu": {"latency_ms": [], "cpu_ms": []}}))
    with pytest.raises(SystemExit, match="no engine"):
        load_profile(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"rates": {"front": {"hz": [2.0]}}}))
    with pytest.raises(SystemExit, match="is no profile"):
        load_profile(tmp_path / "report.json")


def test_the_engine_manager_node_keeps_its_statistics_in_a_file(tmp_path):
    rclpy = pytest.importorskip("rclpy")
    from faulty_engines import Engines, frame, two_core_config
    from rclpy.parameter import Parameter

    from dla_perception.nodes.engine_manager import EngineManagerNode
    from dla_perception.runtime.manager import EngineManager

    target = tmp_path / "run" / "statistics.json"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id(7))
    try:
        with EngineManager(two_core_config(deadline_ms=5000.0, policy="round_robin"), ["dla0", "dla1"],
                           engine_factory=Engines().factory) as manager:
            for value in range(6):
                manager.infer("m", frame(value), stream="front")
            node = EngineManagerNode(manager=manager, context=context,
                                     parameter_overrides=[Parameter("statistics_file", value=str(target))])
            try:
                node.publish_diagnostics()  # what the diagnostics timer does every period
                written = json.loads(target.read_text())
                assert written["streams"] and set(load_profile(target)["m"]) == {"dla0", "dla1"}
                assert not list(target.parent.glob(".*partial"))
                target.unlink()
            finally:
                node.destroy_node()  # and once more at shutdown
            assert set(load_profile(target)["m"]) == {"dla0", "dla1"}
    finally:
        rclpy.shutdown(context=context)


def test_an_unwritable_statistics_file_is_a_warning_not_a_crash(tmp_path):
    rclpy = pytest.importorskip("rclpy")
    from rclpy.parameter import Parameter

    from dla_perception.nodes.engine_manager import EngineManagerNode
    from dla_perception.runtime.config import EnginesConfig
    from dla_perception.runtime.manager import EngineManager

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id(7))
    try:
        with EngineManager(EnginesConfig(), available_cores=["cpu"]) as manager:
            node = EngineManagerNode(manager=manager, context=context, parameter_overrides=[
                Parameter("statistics_file", value=str(blocker / "statistics.json"))])
            try:
                assert node.write_statistics() is None
                assert node.health.counters["statistics_file_errors"] == 1
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
