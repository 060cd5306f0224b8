"""DDS settings that lose large images: kernel socket buffers, IP fragments, the RMW and its profile, SHM.

Sizes are judged against this project's largest message, a 640x480 float32 DisparityImage (1.2 MB; a
640x480 rgb8 image is 0.9 MB), and against a burst of them: three stereo cameras at 10 Hz move about
55 MB/s, so a receiver that stalls for 0.1 s needs several MiB of buffer. Sources: ROS 2 docs,
How-To-Guides/DDS-tuning (rmem_max, ipfrag_time, ipfrag_high_thresh, Cyclone's SocketReceiveBufferSize);
eProsima Fast-DDS-docs (environment variables, SHM transport; 512 KiB default segment).
"""

from __future__ import annotations

from dla_perception.tools.doctor.dds_profiles import (
    FASTDDS_DEFAULT_SHM_SEGMENT,
    PROFILE_SHM_SEGMENT,
    PROFILE_SOCKET_BUFFER,
    read_cyclone_config,
    read_fastdds_profile,
)
from dla_perception.tools.doctor.system import ERROR, INFO, OK, WARN, Finding, System, mib

LARGEST_MESSAGE_BYTES = 640 * 480 * 4  # stereo_msgs/DisparityImage, 640x480 float32
RECOMMENDED_BUFFER_BYTES = PROFILE_SOCKET_BUFFER  # 16 MiB: ~13 such messages, a 0.25 s burst of 3 cameras
MIN_SHM_SEGMENT_BYTES = 4 * LARGEST_MESSAGE_BYTES  # a few frames in flight per writer
SHM_PARTICIPANTS = 8  # camera drivers, the perception container, a recorder, tools: one segment each
RECOMMENDED_FRAG_BYTES = 128 << 20  # ROS 2 DDS-tuning guide
RECOMMENDED_FRAG_TIME_S = 3
DEFAULT_RMW = "rmw_fastrtps_cpp"  # Humble, Jazzy and Kilted
KNOWN_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp", "rmw_cyclonedds_cpp", "rmw_connextdds",
              "rmw_gurumdds_cpp", "rmw_zenoh_cpp")
PROFILE_FIX = "dla-perception doctor --write-dds-profile ~/.ros/dla_perception_dds.xml"
SYSCTL_FILE = "/etc/sysctl.d/60-dla-perception-dds.conf"


def active_rmw(system: System) -> str:
    return system.env.get("RMW_IMPLEMENTATION", "").strip() or DEFAULT_RMW


def fastdds_profile_path(system: System) -> str | None:
    """FASTDDS_DEFAULT_PROFILES_FILE (Fast DDS 3) or FASTRTPS_DEFAULT_PROFILES_FILE (Fast DDS 2)."""
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        if system.env.get(name, "").strip():
            return system.env[name].strip()
    return None


def _sysctl_fix(*settings: tuple[str, int]) -> str:
    assignments = " ".join(f"{name}={value}" for name, value in settings)
    return f"sudo sysctl -w {assignments}   # persist in {SYSCTL_FILE}"


def check_socket_buffers(system: System) -> list[Finding]:
    values = {name: system.sysctl(name) for name in
              ("net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default")}
    if values["net.core.rmem_max"] is None:
        return [Finding("socket_buffers", INFO, "/proc/sys/net/core unreadable: socket buffers not checked")]
    findings = []
    for name in ("net.core.rmem_max", "net.core.wmem_max"):
        value = values[name]
        if value is None:
            continue
        side = "received" if "rmem" in name else "sent"
        fix = _sysctl_fix((name, RECOMMENDED_BUFFER_BYTES))
        if value < LARGEST_MESSAGE_BYTES:
            text = (f"{name} = {value} ({mib(value)}): no socket buffer can hold one 1.2 MB image {side} "
                    "over UDP, so large best-effort messages are lost between hosts and whenever shared "
                    "memory is not used")
            findings.append(Finding("socket_buffers", ERROR, text, fix, {name: value}))
        elif value < RECOMMENDED_BUFFER_BYTES:
            text = (f"{name} = {value} ({mib(value)}): room for {value // LARGEST_MESSAGE_BYTES} image(s) of "
                    "1.2 MB; a burst from several cameras overflows it "
                    f"(want {mib(RECOMMENDED_BUFFER_BYTES)})")
            findings.append(Finding("socket_buffers", WARN, text, fix, {name: value}))
        else:
            text = f"{name} = {value} ({mib(value)})"
            findings.append(Finding("socket_buffers", OK, text, details={name: value}))
    rmw, default = active_rmw(system), values["net.core.rmem_default"]
    if rmw.startswith("rmw_fastrtps") and default is not None and default < LARGEST_MESSAGE_BYTES:
        path = fastdds_profile_path(system)
        profile = read_fastdds_profile(system, path) if path else None
        if profile is None or profile.error or not profile.udp_receive_bytes:
            findings.append(Finding("socket_buffers", WARN, f"Fast DDS asks for the default receive buffer "
                                    f"(net.core.rmem_default = {mib(default)}) unless a profile sets "
                                    "receiveBufferSize: a 1.2 MB image over UDP does not fit", PROFILE_FIX,
                                    {"net.core.rmem_default": default, "profile": path}))
    return findings


def check_ip_fragments(system: System) -> list[Finding]:
    high, seconds = system.sysctl("net.ipv4.ipfrag_high_thresh"), system.sysctl("net.ipv4.ipfrag_time")
    if high is None or seconds is None:
        return [Finding("ip_fragments", INFO, "/proc/sys/net/ipv4 unreadable: IP fragmentation not checked")]
    details = {"net.ipv4.ipfrag_high_thresh": high, "net.ipv4.ipfrag_time": seconds}
    if high < 2 * LARGEST_MESSAGE_BYTES:
        return [Finding("ip_fragments", WARN, f"net.ipv4.ipfrag_high_thresh = {mib(high)}: the kernel cannot "
                        "reassemble two 1.2 MB messages at once, so images sent over the network are lost",
                        _sysctl_fix(("net.ipv4.ipfrag_high_thresh", RECOMMENDED_FRAG_BYTES),
                                    ("net.ipv4.ipfrag_time", RECOMMENDED_FRAG_TIME_S)), details)]
    if high < RECOMMENDED_FRAG_BYTES or seconds > RECOMMENDED_FRAG_TIME_S:
        text = (f"IP reassembly memory {mib(high)}, a lost fragment holds it for {seconds} s: enough on one "
                "host; over WiFi a few lost fragments stall large messages")
        return [Finding("ip_fragments", INFO, text,
                        _sysctl_fix(("net.ipv4.ipfrag_high_thresh", RECOMMENDED_FRAG_BYTES),
                                    ("net.ipv4.ipfrag_time", RECOMMENDED_FRAG_TIME_S)), details)]
    return [Finding("ip_fragments", OK, f"IP reassembly memory {mib(high)}, fragment timeout {seconds} s",
                    details=details)]


def _rmw_installed(system: System, rmw: str) -> bool | None:
    """Whether lib<rmw>.so is in a prefix of AMENT_PREFIX_PATH; None when there is no prefix to look in."""
    prefixes = [p for p in system.env.get("AMENT_PREFIX_PATH", "").split(":") if p]
    if not prefixes:
        return None
    return any(f"lib{rmw}.so" in system.list_dir(f"{prefix}/lib") for prefix in prefixes)


def check_rmw(system: System) -> list[Finding]:
    value = system.env.get("RMW_IMPLEMENTATION", "").strip()
    rmw = value or DEFAULT_RMW
    findings = []
    installed = _rmw_installed(system, rmw)
    if installed is False:
        text = f"{rmw} is not installed in AMENT_PREFIX_PATH: every node fails to start"
        fix = f"sudo apt install ros-$ROS_DISTRO-{rmw.replace('_', '-')}"
        findings.append(Finding("rmw", ERROR, text, fix, {"rmw": rmw}))
    elif rmw not in KNOWN_RMWS:
        findings.append(Finding("rmw", WARN, f"RMW_IMPLEMENTATION={rmw}: not an RMW this doctor knows, DDS "
                                "checks below assume Fast DDS", "", {"rmw": rmw}))
    else:
        origin = f"RMW_IMPLEMENTATION={rmw}" if value else f"RMW_IMPLEMENTATION unset: {rmw}, the default"
        findings.append(Finding("rmw", INFO, origin, details={"rmw": rmw}))
    if rmw.startswith("rmw_fastrtps"):
        findings.extend(_fastdds_settings(system))
    elif rmw == "rmw_cyclonedds_cpp":
        findings.extend(_cyclone_settings(system))
    return findings


def _fastdds_settings(system: System) -> list[Finding]:
    findings = []
    path = fastdds_profile_path(system)
    if path:
        profile = read_fastdds_profile(system, path)
        if profile.error:
            text = f"Fast DDS profile {path}: {profile.error}; Fast DDS ignores it"
            findings.append(Finding("rmw", ERROR, text, PROFILE_FIX, {"profile": path}))
        else:
            findings.append(Finding("rmw", INFO, f"Fast DDS profile {path}", details={"profile": path}))
    transports = system.env.get("FASTDDS_BUILTIN_TRANSPORTS", "").strip()
    if transports:
        findings.append(Finding("rmw", INFO, f"FASTDDS_BUILTIN_TRANSPORTS={transports}",
                                details={"FASTDDS_BUILTIN_TRANSPORTS": transports}))
    if system.env.get("RMW_FASTRTPS_USE_QOS_FROM_XML", "").strip() == "1":
        text = ("RMW_FASTRTPS_USE_QOS_FROM_XML=1: QoS come from the XML profile, the nodes' sensor-data QoS "
                "and qos_overrides parameters are ignored")
        findings.append(Finding("rmw", INFO, text, "unset RMW_FASTRTPS_USE_QOS_FROM_XML"))
    return findings


def _cyclone_settings(system: System) -> list[Finding]:
    uri = system.env.get("CYCLONEDDS_URI", "").strip()
    if not uri:
        text = ("Cyclone DDS without CYCLONEDDS_URI: no minimum socket receive buffer is asked for, so a "
                "burst of 1.2 MB images can overflow what the kernel grants")
        return [Finding("rmw", WARN, text, PROFILE_FIX)]
    config = read_cyclone_config(system, uri)
    if config.error:
        return [Finding("rmw", ERROR, f"CYCLONEDDS_URI: {config.error}", PROFILE_FIX, {"uri": uri})]
    details = {"uri": uri, "receive_min_bytes": config.receive_min_bytes}
    rmem_max = system.sysctl("net.core.rmem_max")
    if config.receive_min_bytes and rmem_max is not None and config.receive_min_bytes > rmem_max:
        text = (f"Cyclone asks for a {mib(config.receive_min_bytes)} receive buffer but net.core.rmem_max is "
                f"{mib(rmem_max)}: Cyclone refuses to start")
        return [Finding("rmw", ERROR, text,
                        _sysctl_fix(("net.core.rmem_max", config.receive_min_bytes)), details)]
    if not config.receive_min_bytes or config.receive_min_bytes < RECOMMENDED_BUFFER_BYTES:
        asked = mib(config.receive_min_bytes) if config.receive_min_bytes else "unset"
        text = f"Cyclone's SocketReceiveBufferSize min is {asked}: a burst of 1.2 MB images overflows it"
        return [Finding("rmw", WARN, text, PROFILE_FIX, details)]
    return [Finding("rmw", OK, f"Cyclone receive buffer at least {mib(config.receive_min_bytes)} ({uri})",
                    details=details)]


def _dev_shm(system: System) -> tuple[int | None, int | None]:
    """(size, available) of /dev/shm in bytes from `df -Pk /dev/shm` (POSIX output, 1024-byte blocks)."""
    result = system.run(["df", "-Pk", "/dev/shm"])
    if result is None or result.returncode != 0:
        return None, None
    for line in result.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[1].isdigit() and parts[3].isdigit():
            return int(parts[1]) * 1024, int(parts[3]) * 1024
    return None, None


def check_shared_memory(system: System) -> list[Finding]:
    rmw = active_rmw(system)
    if rmw == "rmw_cyclonedds_cpp":
        uri = system.env.get("CYCLONEDDS_URI", "").strip()
        if uri and read_cyclone_config(system, uri).shared_memory:
            return [Finding("shared_memory", INFO, "Cyclone shared memory (iceoryx) on: iox-roudi must run")]
        text = ("Cyclone DDS without shared memory: images between processes go over loopback UDP, so the "
                "socket buffers above decide what arrives")
        return [Finding("shared_memory", INFO, text)]
    if not rmw.startswith("rmw_fastrtps"):
        return [Finding("shared_memory", INFO, f"{rmw}: the Fast DDS shared-memory checks do not apply")]
    transports = system.env.get("FASTDDS_BUILTIN_TRANSPORTS", "").strip().upper().partition("?")[0]
    path = fastdds_profile_path(system)
    profile = read_fastdds_profile(system, path) if path else None
    if profile is not None and profile.error:
        profile = None
    size, available = _dev_shm(system)
    segment = profile.shm_segment_bytes if profile else FASTDDS_DEFAULT_SHM_SEGMENT
    leftovers = [name for name in system.list_dir("/dev/shm") if name.startswith(("fastrtps_", "fastdds_"))]
    details = {"segment_bytes": segment, "dev_shm_bytes": size, "dev_shm_available_bytes": available,
               "builtin_transports": transports or None, "leftover_segments": len(leftovers)}
    if (profile and not profile.shm_enabled) or transports in ("UDPV4", "UDPV6"):
        text = "Fast DDS shared memory is off: images between processes go over loopback UDP"
        return [Finding("shared_memory", WARN, text, PROFILE_FIX, details)]
    if transports.startswith("LARGE_DATA"):
        text = "Fast DDS LARGE_DATA: shared memory on one host, TCP across hosts"
        return [Finding("shared_memory", OK, text, details=details)]
    findings = []
    if segment < MIN_SHM_SEGMENT_BYTES:
        origin = f"profile {path}" if profile else "Fast DDS default"
        text = (f"Fast DDS shared-memory segment {mib(segment)} ({origin}): holds no burst of 1.2 MB images, "
                "so best-effort images between processes are dropped")
        findings.append(Finding("shared_memory", WARN, text, PROFILE_FIX, details))
    wanted = max(segment, PROFILE_SHM_SEGMENT)  # the segment in use, or the one the fix above brings
    if size is not None and size < SHM_PARTICIPANTS * wanted:
        text = (f"/dev/shm is {mib(size)}: too small for {SHM_PARTICIPANTS} ROS processes with a "
                f"{mib(wanted)} segment each; Fast DDS then falls back to UDP")
        fix = "docker run --shm-size=1g ...   # on the host: sudo mount -o remount,size=1G /dev/shm"
        findings.append(Finding("shared_memory", WARN, text, fix, details))
    if findings:
        return findings
    return [Finding("shared_memory", OK, f"Fast DDS shared-memory segment {mib(segment)}, /dev/shm "
                    f"{mib(size) if size else 'size unknown'}", details=details)]
