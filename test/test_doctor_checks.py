"""The doctor's checks on recorded machines (test/fixtures/doctor/, formats cited in each scenario.json)."""

from __future__ import annotations

import json

import pytest
from doctor_fixtures import FIXTURES, recorded_system, scenario, scenario_names

from dla_perception.tools.doctor import exit_code
from dla_perception.tools.doctor.checks import CHECK_NAMES, CHECKS, diagnose
from dla_perception.tools.doctor.system import ERROR, INFO, NOT_A_JETSON, OK, WARN, CommandResult, Finding


def by_check(findings: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.check, []).append(finding)
    return grouped


def levels(findings: list[Finding], check: str) -> list[str]:
    return [f.level for f in findings if f.check == check]


def test_every_scenario_cites_its_sources_and_runs_every_check() -> None:
    assert len(scenario_names()) >= 4
    for name in scenario_names():
        data = json.loads((FIXTURES / name / "scenario.json").read_text())
        assert data["description"] and data["sources"], name
        findings = diagnose(scenario(name))
        assert set(by_check(findings)) == set(CHECK_NAMES), name
        assert not [f for f in findings if "the check itself failed" in f.finding], name


def test_agx_orin_in_maxn_with_locked_clocks_and_tuned_dds_has_nothing_to_fix() -> None:
    findings = diagnose(scenario("agx_orin_jp6_maxn_root"))
    checks = by_check(findings)
    assert exit_code(findings) == 0, [f.finding for f in findings if f.level in (WARN, ERROR)]
    assert checks["platform"][0].details == {"jetson": True, "model": "NVIDIA Jetson AGX Orin Developer Kit",
                                             "l4t": "36.4.3"}
    assert checks["power_mode"][0].level == OK and checks["power_mode"][0].details["id"] == 0
    assert checks["clocks_locked"][0].details["locked"] == {"CPU": True, "GPU": True, "EMC": True}
    assert checks["clocks_locked"][0].details["source"] == "jetson_clocks --show"
    assert [f.details["max_hz"] for f in checks["dla_clock"]] == [1_600_000_000, 1_600_000_000]
    assert "locked at 1300.5 MHz" in checks["gpu_clock"][0].finding
    rails = {r["name"]: r["watts"] for r in checks["power_rails"][0].details["rails"]}
    # NC channels are skipped, the sum channel (in7) is not a rail; W = mV * mA / 1e6
    assert rails == pytest.approx({"VDD_GPU_SOC": 10.589, "VDD_CPU_CV": 3.200, "VIN_SYS_5V0": 5.039,
                                   "VDDQ_VDD2_1V8AO": 0.599}, abs=1e-3)
    assert checks["rmw"][-1].level == OK and checks["rmw"][-1].details["receive_min_bytes"] == 32 << 20
    assert checks["swap"][0].level == OK


def test_orin_nx_as_a_user_with_stock_settings_gets_each_fix() -> None:
    findings = diagnose(scenario("orin_nx_jp6_40w_user"))
    checks = by_check(findings)
    assert exit_code(findings) == 3
    power = checks["power_mode"][0]
    assert power.level == WARN and power.fix == "sudo nvpmodel -m 0" and "MAXN_SUPER" in power.finding
    clocks = checks["clocks_locked"][0]  # jetson_clocks refused (not root): read from sysfs instead
    assert clocks.level == WARN and clocks.fix == "sudo jetson_clocks"
    assert clocks.details["locked"] == {"CPU": False, "GPU": False, "EMC": None}
    assert clocks.details["source"] == "sysfs (jetson_clocks --show needs root)"
    assert [(f.details["core"], f.details["max_hz"], f.details["cur_hz"]) for f in checks["dla_clock"]] == [
        ("dla0", 908_800_000, None), ("dla1", 908_800_000, None)]
    rails = [r["name"] for r in checks["power_rails"][0].details["rails"]]
    assert rails == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert checks["cuda_connections"][0].level == WARN
    swap = checks["swap"][0]
    assert swap.level == WARN and "/swapfile" in swap.finding and "vm.swappiness=10" in swap.fix
    assert levels(findings, "socket_buffers") == [ERROR, ERROR, WARN]
    assert "net.core.rmem_max=16777216" in checks["socket_buffers"][0].fix
    assert "--write-dds-profile" in checks["socket_buffers"][2].fix  # Fast DDS takes rmem_default
    shm = checks["shared_memory"][0]
    assert shm.level == WARN and shm.details["segment_bytes"] == 512 * 1024
    assert shm.details["leftover_segments"] == 4
    assert checks["ros_domain"][0].level == INFO
    discovery = checks["discovery"]
    assert discovery[0].level == WARN and "deprecated" in discovery[0].finding
    assert "LOCALHOST" in discovery[1].finding  # ROS_LOCALHOST_ONLY=1 still decides the range on Jazzy


def test_orin_nano_in_a_container_without_dla_or_power_monitor() -> None:
    findings = diagnose(scenario("orin_nano_jp6_15w_container"))
    checks = by_check(findings)
    assert checks["power_mode"][0].fix == "sudo nvpmodel -m 2"  # MAXN_SUPER is id 2 on Orin Nano
    assert checks["clocks_locked"][0].details["locked"] == {"CPU": False, "GPU": False, "EMC": False}
    assert "capped below its 1020.0 MHz maximum" in checks["gpu_clock"][0].finding
    assert [f.level for f in checks["dla_clock"]] == [WARN]
    assert "no DLA cores" in checks["dla_clock"][0].finding
    assert checks["power_rails"][0].level == INFO and checks["power_rails"][0].details["rails"] == []
    assert checks["swap"][0].level == INFO and "zram" in checks["swap"][0].finding
    assert levels(findings, "socket_buffers") == [OK, OK]  # the profile sets receiveBufferSize
    shm = checks["shared_memory"][0]
    assert shm.level == WARN and shm.details["dev_shm_bytes"] == 64 << 20 and "--shm-size" in shm.fix
    assert checks["ros_domain"][0].level == WARN
    assert checks["discovery"][0].level == WARN and "ignored on humble" in checks["discovery"][0].finding


def test_x86_machine_reports_not_a_jetson_never_an_error() -> None:
    findings = diagnose(scenario("x86_workstation"))
    jetson_checks = ("platform", "power_mode", "clocks_locked", "gpu_clock", "dla_clock", "power_rails")
    for finding in findings:
        if finding.check in jetson_checks:
            assert finding.level == INFO and finding.finding.startswith(NOT_A_JETSON), finding
    assert levels(findings, "socket_buffers") == [WARN, WARN, WARN]
    assert exit_code(findings) == 1


def test_a_check_that_raises_is_reported_and_the_others_still_run() -> None:
    def broken(system):
        raise KeyError("boom")

    from dla_perception.tools.doctor.system import run_checks

    findings = run_checks(scenario("x86_workstation"), [("broken", broken), *CHECKS[-2:]])
    assert findings[0].check == "broken" and findings[0].level == WARN and "KeyError" in findings[0].finding
    assert [f.check for f in findings[1:]] == ["ros_domain", "discovery"]


def test_unknown_outputs_degrade_to_could_not_read() -> None:
    jetson = {"/etc/nv_tegra_release": "# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic\n"}
    garbled = recorded_system(jetson, {"nvpmodel -q": CommandResult(255, "", "NVPM ERROR: failed to open")})
    finding = diagnose(garbled, only=("power_mode",))[0]
    assert finding.level == WARN and "could not read" in finding.finding
    absent = recorded_system(jetson)  # a Jetson image without nvpmodel, jetson_clocks, devfreq or host1x
    checks = by_check(diagnose(absent))
    assert checks["power_mode"][0].fix == "sudo apt install nvidia-l4t-nvpmodel"
    assert checks["clocks_locked"][0].level == INFO and "unknown" in checks["clocks_locked"][0].finding
    assert checks["dla_clock"][0].level == INFO and "unknown" in checks["dla_clock"][0].finding
    assert not [f for f in diagnose(absent) if "the check itself failed" in f.finding]


def test_jetpack_5_is_told_to_move_to_jetpack_6() -> None:
    system = recorded_system({"/etc/nv_tegra_release": "# R35 (release), REVISION: 4.1, GCID: 33958178\n"})
    finding = diagnose(system, only=("platform",))[0]
    assert finding.level == WARN and "R35.4.1" in finding.finding and "JetPack 6" in finding.fix
