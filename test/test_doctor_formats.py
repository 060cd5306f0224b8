"""Parsers of L4T outputs and DDS profiles, and the DDS/discovery/CUDA rules on small recorded inputs."""

from __future__ import annotations

import pytest
from doctor_fixtures import FIXTURES, recorded_system

from dla_perception.tools.doctor.checks import diagnose
from dla_perception.tools.doctor.dds_profiles import (
    cyclonedds_config_xml,
    fastdds_profile_xml,
    parse_size,
    read_cyclone_config,
    read_fastdds_profile,
)
from dla_perception.tools.doctor.jetson_formats import (
    parse_jetson_clocks_show,
    parse_nv_tegra_release,
    parse_nvpmodel_conf,
    parse_nvpmodel_query,
)
from dla_perception.tools.doctor.system import ERROR, INFO, OK, WARN, CommandResult

AGX = FIXTURES / "agx_orin_jp6_maxn_root"
NANO = FIXTURES / "orin_nano_jp6_15w_container"


def test_nvpmodel_query_plain_and_verbose() -> None:
    plain = parse_nvpmodel_query("NV Power Mode: MODE_30W\n2\n")
    assert (plain.name, plain.mode_id) == ("MODE_30W", 2)
    # `nvpmodel -q --verbose` on L4T R36 prefixes the same two lines with NVPM VERB lines
    verbose = parse_nvpmodel_query("NVPM VERB: Config file: /etc/nvpmodel.conf\nNVPM VERB: parsing done for "
                                   "/etc/nvpmodel.conf\nNVPM VERB: Current mode: NV Power Mode: 40W\n4\n"
                                   "NVPM VERB: PARAM CPU_ONLINE: ARG CORE_0: PATH "
                                   "/sys/devices/system/cpu/cpu0/online")
    assert (verbose.name, verbose.mode_id) == ("40W", 4)
    # JetPack 4 printed an EMC read error after the mode when not root; the mode still parses
    old = parse_nvpmodel_query("NV Power Mode: 5W\n1\n"
                               "NVPM ERROR: Error opening /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13")
    assert (old.name, old.mode_id) == ("5W", 1)
    assert parse_nvpmodel_query("command not found") is None


def test_nvpmodel_conf_fastest_mode() -> None:
    agx = parse_nvpmodel_conf((AGX / "nvpmodel.conf").read_text())
    assert agx.modes == {0: "MAXN", 1: "MODE_15W", 2: "MODE_30W", 3: "MODE_50W"} and agx.default_id == 2
    assert agx.fastest().mode_id == 0
    nano = parse_nvpmodel_conf((NANO / "nvpmodel.conf").read_text())
    assert nano.fastest().name == "MAXN_SUPER" and nano.fastest().mode_id == 2
    no_maxn = parse_nvpmodel_conf("< POWER_MODEL ID=0 NAME=7W >\n< POWER_MODEL ID=1 NAME=15W >\n")
    assert no_maxn.fastest().name == "15W"
    assert parse_nvpmodel_conf("") is None and parse_nvpmodel_conf("no modes here") is None


def test_jetson_clocks_show_lines() -> None:
    report = parse_jetson_clocks_show((AGX / "jetson_clocks_show.txt").read_text())
    assert report.machine == "NVIDIA Jetson AGX Orin Developer Kit" and report.power_mode == "MAXN"
    assert len(report.cpus()) == 12 and all(cpu.locked for cpu in report.cpus())
    assert report.cpus()[0].idle_states == {"WFI": False, "c7": False}  # jetson_clocks disables idle states
    assert report.lines["EMC"].locked and report.lines["EMC"].number("FreqOverride") == 1
    assert report.lines["DLA1_CORE"].fields == {"Online": "1", "MinFreq": "0", "MaxFreq": "1600000000",
                                                "CurrentFreq": "1600000000"}
    assert "FAN" not in report.lines and "Active" not in report.lines
    nano = parse_jetson_clocks_show((NANO / "jetson_clocks_show.txt").read_text())
    assert not any(name.startswith("DLA") for name in nano.lines)
    assert nano.lines["GPU"].locked is False and nano.lines["EMC"].locked is False
    # R39's format drops Online= from CPU lines and FreqOverride from EMC; min == max still says locked
    r39 = parse_jetson_clocks_show("cpu0:  Governor=schedutil MinFreq=2201600 MaxFreq=2201600 "
                                   "CurrentFreq=2201600 IdleStates: WFI=0 c7=0 \n"
                                   "EMC MinFreq=3199000000 MaxFreq=3199000000 "
                                   "CurrentFreq=3199000000\n")
    assert r39.cpus()[0].locked and r39.lines["EMC"].locked
    assert parse_jetson_clocks_show("Error: Run this script(/usr/bin/jetson_clocks) as a root user") is None


def test_nv_tegra_release() -> None:
    release = parse_nv_tegra_release((AGX / "nv_tegra_release.txt").read_text())
    assert (release.major, release.revision, release.version) == (36, "4.3", "36.4.3")
    assert parse_nv_tegra_release("# R32 (release), REVISION: 7.1, GCID: 29818004").major == 32
    assert parse_nv_tegra_release("Ubuntu 22.04") is None


def test_fastdds_profiles_read_back_what_they_set(tmp_path) -> None:
    system = recorded_system({"/p.xml": fastdds_profile_xml(), "/bad.xml": "<profiles>", "/udp_only.xml": (
        '<profiles><transport_descriptors><transport_descriptor><transport_id>u</transport_id><type>UDPv4</type>'
        '</transport_descriptor></transport_descriptors><participant profile_name="p"><rtps><userTransports>'
        '<transport_id>u</transport_id></userTransports><useBuiltinTransports>false</useBuiltinTransports>'
        '</rtps></participant></profiles>')})
    written = read_fastdds_profile(system, "/p.xml")
    assert (written.error, written.shm_enabled, written.shm_segment_bytes) == (None, True, 16 << 20)
    assert written.udp_receive_bytes == written.udp_send_bytes == 16 << 20
    assert "not valid XML" in read_fastdds_profile(system, "/bad.xml").error
    assert read_fastdds_profile(system, "/missing.xml").error == "file not found or unreadable"
    udp_only = read_fastdds_profile(system, "/udp_only.xml")
    assert not udp_only.shm_enabled and udp_only.udp_receive_bytes is None


def test_cyclone_configuration_forms() -> None:
    assert [parse_size(t) for t in ("10MB", "1 MiB", "64kB", "65536", "default", "")] == [
        10 << 20, 1 << 20, 64 << 10, 65536, None, None]
    system = recorded_system({"/c.xml": cyclonedds_config_xml()})
    assert read_cyclone_config(system, "file:///c.xml").receive_min_bytes == 16 << 20
    inline = read_cyclone_config(system, '<Internal><SocketReceiveBufferSize min="8MB"/></Internal>'
                                 '<SharedMemory><Enable>true</Enable></SharedMemory>')
    assert inline.receive_min_bytes == 8 << 20 and inline.shared_memory
    assert "not found" in read_cyclone_config(system, "file:///nope.xml").error


def dds_system(env: dict[str, str], rmem_max: int = 16 << 20, files: dict[str, str] | None = None):
    sysctl = {"/proc/sys/net/core/rmem_max": f"{rmem_max}\n", "/proc/sys/net/core/wmem_max": f"{16 << 20}\n",
              "/proc/sys/net/core/rmem_default": "212992\n",
              "/opt/ros/jazzy/lib/librmw_cyclonedds_cpp.so": "",
              "/opt/ros/jazzy/lib/librmw_fastrtps_cpp.so": ""}
    return recorded_system({**sysctl, **(files or {})}, env={"AMENT_PREFIX_PATH": "/opt/ros/jazzy", **env})


def test_cyclone_minimum_above_rmem_max_is_an_error() -> None:
    system = dds_system({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp", "CYCLONEDDS_URI": "file:///c.xml"},
                        rmem_max=4 << 20, files={"/c.xml": cyclonedds_config_xml()})
    finding = diagnose(system, only=("rmw",))[-1]
    assert finding.level == ERROR and "refuses to start" in finding.finding
    assert "net.core.rmem_max=16777216" in finding.fix
    no_uri = diagnose(dds_system({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}), only=("rmw",))[-1]
    assert no_uri.level == WARN and "--write-dds-profile" in no_uri.fix


def test_rmw_that_is_not_installed_and_fastdds_transport_switches() -> None:
    missing = diagnose(dds_system({"RMW_IMPLEMENTATION": "rmw_connextdds"}), only=("rmw",))[0]
    assert missing.level == ERROR and missing.fix == "sudo apt install ros-$ROS_DISTRO-rmw-connextdds"
    udp = diagnose(dds_system({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}), only=("shared_memory",))[0]
    assert udp.level == WARN and "shared memory is off" in udp.finding
    large = diagnose(dds_system({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA?max_msg_size=1MB"}),
                     only=("shared_memory",))[0]
    assert large.level == OK
    broken = diagnose(dds_system({"FASTRTPS_DEFAULT_PROFILES_FILE": "/nope.xml"}), only=("rmw",))
    assert [f.level for f in broken] == [INFO, ERROR] and "ignores it" in broken[1].finding
    qos = diagnose(dds_system({"RMW_FASTRTPS_USE_QOS_FROM_XML": "1"}), only=("rmw",))
    assert "qos_overrides parameters are ignored" in qos[-1].finding


@pytest.mark.parametrize(("value", "level"), [
    ("0", OK), ("101", OK), ("150", WARN), ("233", ERROR), ("robot", ERROR),
])
def test_domain_id_ranges(value: str, level: str) -> None:
    assert diagnose(recorded_system(env={"ROS_DOMAIN_ID": value}), only=("ros_domain",))[0].level == level


def test_discovery_range_off_unknown_and_zenoh() -> None:
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF", "ROS_STATIC_PEERS": "10.0.0.2"}
    off = diagnose(recorded_system(env=env), only=("discovery",))[0]
    assert off.level == ERROR and off.fix == "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST"
    typo = diagnose(recorded_system(env={"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCAL"}), only=("discovery",))[0]
    assert typo.level == WARN
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "localhost", "ROS_STATIC_PEERS": "192.168.0.1;base.local;"}
    peers = diagnose(recorded_system(env=env), only=("discovery",))[0]
    assert peers.level == INFO and "192.168.0.1, base.local" in peers.finding
    env = {"RMW_IMPLEMENTATION": "rmw_zenoh_cpp", "ROS_STATIC_PEERS": "10.0.0.2"}
    zenoh = diagnose(recorded_system(env=env), only=("discovery",))[0]
    assert zenoh.level == WARN and "rmw_zenoh ignores" in zenoh.finding


@pytest.mark.parametrize(("value", "level"), [
    (None, OK), ("8", OK), ("32", OK), ("1", WARN), ("3", WARN), ("64", INFO), ("many", ERROR),
])
def test_cuda_device_max_connections(value: str | None, level: str) -> None:
    env = {} if value is None else {"CUDA_DEVICE_MAX_CONNECTIONS": value}
    assert diagnose(recorded_system(env=env), only=("cuda_connections",))[0].level == level


def test_small_ip_reassembly_memory_warns() -> None:
    system = recorded_system({"/proc/sys/net/ipv4/ipfrag_high_thresh": "262144\n",
                              "/proc/sys/net/ipv4/ipfrag_time": "30\n"})
    finding = diagnose(system, only=("ip_fragments",))[0]
    assert finding.level == WARN
    assert "net.ipv4.ipfrag_high_thresh=134217728 net.ipv4.ipfrag_time=3" in finding.fix


def test_docker_shm_with_the_default_segment_gets_both_fixes() -> None:
    df = ("Filesystem     1024-blocks  Used Available Capacity Mounted on\n"
          "shm                  65536     0     65536       0% /dev/shm\n")
    system = recorded_system(commands={"df -Pk /dev/shm": CommandResult(0, df)})
    findings = diagnose(system, only=("shared_memory",))
    assert [f.level for f in findings] == [WARN, WARN]
    assert [f.fix.split()[0] for f in findings] == ["dla-perception", "docker"]
