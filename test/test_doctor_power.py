"""INA3221 power rails: discovery on recorded sysfs trees, watts for /diagnostics, the engine manager node."""

from __future__ import annotations

import pytest
from conftest import ros_domain_id
from doctor_fixtures import recorded_system, scenario

from dla_perception.runtime.power import LiveSysfs, PowerRails, discover_rails, read_rails
from dla_perception.tools.doctor.system import System

RAILS_AGX = {"VDD_GPU_SOC_w": "10.589", "VDD_CPU_CV_w": "3.200", "VIN_SYS_5V0_w": "5.039",
             "VDDQ_VDD2_1V8AO_w": "0.599"}


def test_rails_are_found_wherever_the_hwmon_number_lands() -> None:
    rails = discover_rails(scenario("agx_orin_jp6_maxn_root"))
    assert [(r.sensor, r.channel, r.name) for r in rails] == [
        ("1-0040", 1, "VDD_GPU_SOC"), ("1-0040", 2, "VDD_CPU_CV"), ("1-0040", 3, "VIN_SYS_5V0"),
        ("1-0041", 2, "VDDQ_VDD2_1V8AO")]
    assert rails[-1].folder.endswith("/1-0041/hwmon/hwmon2")
    assert PowerRails(scenario("agx_orin_jp6_maxn_root")).values() == RAILS_AGX


def test_no_rails_off_jetson_and_readings_that_vanish() -> None:
    assert PowerRails(scenario("x86_workstation")).values() == {}
    base = "/sys/bus/i2c/drivers/ina3221/7-0040/hwmon/hwmon6"  # Xavier NX's (alumet plugin README)
    files = {f"{base}/in1_label": "VDD_IN\n", f"{base}/in1_input": "5064\n", f"{base}/curr1_input": "oops\n",
             f"{base}/in2_label": "VDD_CPU_GPU_CV\n", f"{base}/in2_input": "5056\n",
             f"{base}/curr2_input": "500\n"}
    system = recorded_system(files)
    rails = discover_rails(system)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV"]
    assert [r.rail.name for r in read_rails(system, rails)] == ["VDD_CPU_GPU_CV"]  # a non-number is left out


def test_same_label_on_two_sensors_keeps_both_keys() -> None:
    files = {}
    for sensor in ("1-0040", "1-0041"):
        base = f"/sys/bus/i2c/drivers/ina3221/{sensor}/hwmon/hwmon1"
        files |= {f"{base}/in1_label": "VDD_5V\n", f"{base}/in1_input": "5000\n",
                  f"{base}/curr1_input": "1000\n"}
    expected = {"VDD_5V_1-0040_w": "5.000", "VDD_5V_1-0041_w": "5.000"}
    assert PowerRails(recorded_system(files)).values() == expected


def test_a_reader_that_raises_never_reaches_the_node() -> None:
    def boom(path: str) -> str:
        raise OSError("I/O error on the I2C bus")

    healthy = scenario("agx_orin_jp6_maxn_root")
    rails = PowerRails(healthy)
    rails._reader = System(boom, healthy.run, healthy.list_dir, healthy.env)
    assert rails.values() == {}
    assert PowerRails(System(boom, healthy.run, healthy.list_dir, {})).rails == []


def test_engine_manager_node_publishes_a_power_status(monkeypatch: pytest.MonkeyPatch) -> None:
    rclpy = pytest.importorskip("rclpy")
    from dla_perception.nodes import engine_manager
    from dla_perception.runtime.config import EnginesConfig
    from dla_perception.runtime.manager import EngineManager

    monkeypatch.setattr(engine_manager, "PowerRails", lambda: PowerRails(scenario("agx_orin_jp6_maxn_root")))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id(7))
    try:
        with EngineManager(EnginesConfig(), available_cores=["cpu"]) as manager:
            node = engine_manager.EngineManagerNode(manager=manager, context=context)
            try:
                statuses = {status.name: status for status in node.diagnostic_statuses()}
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    power = statuses["engine_manager: power"]
    assert power.level == 0 and power.hardware_id == "ina3221" and power.values == RAILS_AGX


def test_the_live_reader_reads_a_sysfs_tree(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LiveSysfs, the node's reader off the doctor: files and folders on disk, absent ones as None / []."""
    from dla_perception.runtime import power

    hwmon = tmp_path / "ina3221" / "1-0040" / "hwmon" / "hwmon3"
    hwmon.mkdir(parents=True)
    (tmp_path / "ina3221" / "uevent").write_text("DRIVER=ina3221\n")
    for name, text in {"in1_label": "VDD_GPU_SOC\n", "in1_input": "19136\n", "curr1_input": "553\n",
                       "in2_label": "NC\n", "in3_label": "VDD_CPU_CV\n", "in3_input": "oops\n"}.items():
        (hwmon / name).write_text(text)
    reader = LiveSysfs()
    assert reader.list_dir(str(tmp_path / "ina3221")) == ["1-0040", "uevent"]
    absent = str(tmp_path / "absent")
    assert reader.list_dir(absent) == [] and reader.read_file(absent) is None
    assert reader.read_int(absent) is None
    assert reader.read_file(str(hwmon)) is None  # a folder
    assert reader.read_int(str(hwmon / "in1_input")) == 19136
    assert reader.read_int(str(hwmon / "in3_input")) is None  # not a number
    monkeypatch.setattr(power, "INA3221_DRIVER", str(tmp_path / "ina3221"))
    rails = PowerRails(reader)
    assert [r.name for r in rails.rails] == ["VDD_GPU_SOC", "VDD_CPU_CV"]
    assert rails.values() == {"VDD_GPU_SOC_w": f"{19.136 * 0.553:.3f}"}
