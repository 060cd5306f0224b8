"""`dla-perception doctor`: table, --json, --only, exit codes, --write-dds-profile, a run on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from doctor_fixtures import scenario

from dla_perception.tools.cli import main
from dla_perception.tools.doctor import exit_code, format_table, report_dict
from dla_perception.tools.doctor.checks import CHECK_NAMES, diagnose
from dla_perception.tools.doctor.system import Finding


def test_exit_code_is_the_worst_level() -> None:
    def of(*levels: str) -> int:
        return exit_code([Finding("x", level, "") for level in levels])

    assert (of(), of("ok", "info"), of("ok", "warn", "info"), of("warn", "error")) == (0, 0, 1, 3)


def test_table_puts_each_fix_under_its_finding_and_ends_with_the_verdict() -> None:
    findings = diagnose(scenario("orin_nx_jp6_40w_user"))
    lines = format_table(findings, exit_code(findings), width=100).splitlines()
    assert lines[0].split() == ["LEVEL", "CHECK", "FINDING", "/", "FIX"]
    assert max(len(line) for line in lines) <= 100
    power = next(i for i, line in enumerate(lines) if line.startswith("warn   power_mode"))
    assert lines[power + 2].strip() == "fix: sudo nvpmodel -m 0"
    assert lines[-1] == "2 error(s), 7 warning(s): errors (exit 3)"


def test_json_report_has_the_findings_and_the_summary() -> None:
    findings = diagnose(scenario("agx_orin_jp6_maxn_root"))
    report = json.loads(json.dumps(report_dict(findings, exit_code(findings))))
    assert report["exit_code"] == 0 and report["jetson"] is True
    assert report["summary"]["warn"] == report["summary"]["error"] == 0
    assert {f["check"] for f in report["findings"]} == set(CHECK_NAMES)
    assert set(report["findings"][0]) == {"check", "level", "finding", "fix", "details"}


def test_on_this_machine_json_says_not_a_jetson_and_reads_the_real_sysctls(capsys) -> None:
    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == report["exit_code"] in (0, 1, 3)
    assert {f["check"] for f in report["findings"]} == set(CHECK_NAMES)
    assert not [f for f in report["findings"] if "the check itself failed" in f["finding"]]
    rmem_max = Path("/proc/sys/net/core/rmem_max")
    if not rmem_max.exists():
        pytest.skip("no /proc/sys/net/core here")
    buffers = [f for f in report["findings"] if f["check"] == "socket_buffers"]
    assert buffers[0]["details"] == {"net.core.rmem_max": int(rmem_max.read_text())}
    if not Path("/etc/nv_tegra_release").exists():
        assert report["jetson"] is False
        jetson = [f for f in report["findings"] if f["check"] in ("power_mode", "clocks_locked", "dla_clock")]
        assert jetson
        assert all(f["level"] == "info" and f["finding"].startswith("not a Jetson") for f in jetson)


def test_only_and_unknown_checks(capsys, monkeypatch) -> None:
    for name in ("ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
                 "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROS_DOMAIN_ID", "5")
    assert main(["doctor", "--only", "ros_domain,discovery"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert {line.split()[1] for line in out[1:-1] if line[:1] != " "} == {"ros_domain", "discovery"}
    assert main(["doctor", "--only", "nvpmodel"]) == 2
    assert "unknown check(s) nvpmodel" in capsys.readouterr().err


def test_write_dds_profile_for_fastdds_and_cyclone(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    target = tmp_path / "ros" / "fastdds.xml"
    assert main(["doctor", "--write-dds-profile", str(target)]) == 0
    assert f"export FASTRTPS_DEFAULT_PROFILES_FILE={target}" in capsys.readouterr().out
    root = ET.parse(target).getroot()
    assert root.tag.endswith("profiles") and "16777216" in target.read_text()
    assert main(["doctor", "--write-dds-profile", str(target)]) == 2  # never overwrites silently
    assert "exists" in capsys.readouterr().err
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    assert main(["doctor", "--write-dds-profile", str(target), "--force"]) == 0
    assert f"export CYCLONEDDS_URI=file://{target}" in capsys.readouterr().out
    assert ET.parse(target).getroot().tag.endswith("CycloneDDS")
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_zenoh_cpp")
    assert main(["doctor", "--write-dds-profile", str(tmp_path / "z.xml")]) == 2


def test_console_script_exit_status() -> None:
    script = Path(sys.executable).parent / "dla-perception"
    result = subprocess.run([str(script), "doctor", "--only", "ros_domain"], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "ROS_DOMAIN_ID": "robot"})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ROS_DOMAIN_ID='robot' is not a number" in result.stdout


def test_live_commands_run_once_per_diagnosis(monkeypatch) -> None:
    from dla_perception.tools.doctor import system as system_module

    calls = []
    monkeypatch.setattr(system_module, "_run", lambda argv: calls.append(argv) or None)
    live = system_module.live_system({})
    assert live.run(["jetson_clocks", "--show"]) is None and live.run(["jetson_clocks", "--show"]) is None
    assert calls == [("jetson_clocks", "--show")]
    assert live.run(["true"]) is None and len(calls) == 2


def test_live_readers_answer_absent_instead_of_raising(tmp_path) -> None:
    from dla_perception.tools.doctor.system import live_system

    live = live_system({})
    assert live.run(["dla-perception-no-such-program"]) is None
    assert live.read_file(str(tmp_path)) is None and live.read_file(str(tmp_path / "missing")) is None
    assert live.list_dir(str(tmp_path / "missing")) == []
    (tmp_path / "n").write_text("212992\n")
    assert live.read_int(str(tmp_path / "n")) == 212992
    echo = live.run([sys.executable, "-c", "print('NV Power Mode: MAXN'); print(0)"])
    assert echo.returncode == 0 and echo.stdout.splitlines() == ["NV Power Mode: MAXN", "0"]
