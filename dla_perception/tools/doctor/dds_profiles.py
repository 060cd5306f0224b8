"""Fast DDS XML profiles and Cyclone DDS configurations: what they set for large data, and ones that fix it.

Read: the transport settings that decide whether a 1.2 MB image survives (Fast DDS: shared-memory
`segment_size`, UDP `receiveBufferSize`/`sendBufferSize`, `useBuiltinTransports`; Cyclone:
`Internal/SocketReceiveBufferSize@min`, `SharedMemory/Enable`). Written: the smallest profile that carries
this project's images (`fastdds_profile_xml`, `cyclonedds_config_xml`), for `doctor --write-dds-profile`.
Formats: Fast DDS 2.x/3.x XML profiles (eProsima Fast-DDS-docs, "XML profiles" and "Shared Memory
Transport"), Cyclone DDS configuration (ROS 2 docs, How-To-Guides/DDS-tuning).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from dla_perception.tools.doctor.system import System

FASTDDS_DEFAULT_SHM_SEGMENT = 512 * 1024  # Fast DDS SharedMemTransport: shm_default_segment_size
PROFILE_SHM_SEGMENT = 16 << 20
PROFILE_SOCKET_BUFFER = 16 << 20
_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20, "gb": 1 << 30,
          "gib": 1 << 30}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element.iter() if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    found = [child for child in element if _local(child.tag) == name]
    return found[0].text.strip() if found and found[0].text else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class FastDDSProfile:
    path: str
    shm_enabled: bool = True
    shm_segment_bytes: int = FASTDDS_DEFAULT_SHM_SEGMENT
    udp_receive_bytes: int | None = None  # None: the OS default (net.core.rmem_default)
    udp_send_bytes: int | None = None
    error: str | None = None


def read_fastdds_profile(system: System, path: str) -> FastDDSProfile:
    """The transports a profile file gives its participants (user transports, else the builtin ones)."""
    profile = FastDDSProfile(path)
    text = system.read_file(path)
    if text is None:
        profile.error = "file not found or unreadable"
        return profile
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        profile.error = f"not valid XML ({exc})"
        return profile
    descriptors = {_text(d, "transport_id"): d for d in _children(root, "transport_descriptor")}
    used = [descriptors[t.text.strip()] for user in _children(root, "userTransports")
            for t in user if _local(t.tag) == "transport_id" and t.text and t.text.strip() in descriptors]
    builtin = all((_text(p, "useBuiltinTransports") or "true").lower() != "false"
                  for p in _children(root, "rtps"))
    shm = [d for d in used if (_text(d, "type") or "").upper() == "SHM"]
    udp = [d for d in used if (_text(d, "type") or "").upper().startswith("UDP")]
    if shm:
        sizes = [_int(_text(d, "segment_size")) or FASTDDS_DEFAULT_SHM_SEGMENT for d in shm]
        profile.shm_segment_bytes = max(sizes)
    profile.shm_enabled = bool(shm) or builtin
    receive = [_int(_text(d, "receiveBufferSize")) for d in udp]
    send = [_int(_text(d, "sendBufferSize")) for d in udp]
    profile.udp_receive_bytes = min((v for v in receive if v), default=None)
    profile.udp_send_bytes = min((v for v in send if v), default=None)
    return profile


def parse_size(text: str | None) -> int | None:
    """Cyclone sizes: `10MB`, `1 MiB`, `65536` (kB/KiB = 1024 as Cyclone reads them); None for `default`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?i?[bB]?)\s*", text or "")
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass
class CycloneConfig:
    source: str
    receive_min_bytes: int | None = None
    shared_memory: bool = False
    error: str | None = None


def read_cyclone_config(system: System, uri: str) -> CycloneConfig:
    """CYCLONEDDS_URI: `file:///abs/path.xml`, a bare path, inline `<CycloneDDS>...` XML, or a comma list."""
    config = CycloneConfig(uri)
    for part in [p.strip() for p in uri.split(",") if p.strip()] or [uri]:
        text = part if part.lstrip().startswith("<") else system.read_file(part.removeprefix("file://"))
        if text is None:
            config.error = f"{part}: file not found or unreadable"
            continue
        try:
            root = ET.fromstring(text if text.lstrip().startswith("<?") or "<CycloneDDS" in text
                                 else f"<CycloneDDS>{text}</CycloneDDS>")
        except ET.ParseError as exc:
            config.error = f"{part}: not valid XML ({exc})"
            continue
        for element in _children(root, "SocketReceiveBufferSize"):
            config.receive_min_bytes = parse_size(element.get("min")) or config.receive_min_bytes
        for element in _children(root, "SharedMemory"):
            config.shared_memory = (_text(element, "Enable") or "false").lower() == "true"
    return config


def fastdds_profile_xml(segment_bytes: int = PROFILE_SHM_SEGMENT,
                        buffer_bytes: int = PROFILE_SOCKET_BUFFER) -> str:
    """A default participant profile with a shared-memory segment and UDP buffers that hold large images."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- dla_perception: Fast DDS transports for 1.2 MB images, written by `dla-perception doctor`.
     Use: export FASTRTPS_DEFAULT_PROFILES_FILE=<this file> (Fast DDS 2.x, Humble/Jazzy)
          export FASTDDS_DEFAULT_PROFILES_FILE=<this file>  (Fast DDS 3.x, Kilted)
     UDP buffers above net.core.rmem_max / wmem_max are silently capped by the kernel. -->
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>dla_perception_shm</transport_id>
      <type>SHM</type>
      <segment_size>{segment_bytes}</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>dla_perception_udp</transport_id>
      <type>UDPv4</type>
      <sendBufferSize>{buffer_bytes}</sendBufferSize>
      <receiveBufferSize>{buffer_bytes}</receiveBufferSize>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="dla_perception_large_data" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>dla_perception_shm</transport_id>
        <transport_id>dla_perception_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def cyclonedds_config_xml(buffer_bytes: int = PROFILE_SOCKET_BUFFER) -> str:
    """A Cyclone DDS configuration that asks the kernel for large socket receive buffers."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- dla_perception: Cyclone DDS socket buffers for 1.2 MB images, written by `dla-perception doctor`.
     Use: export CYCLONEDDS_URI=file://<absolute path of this file>
     Cyclone refuses to start when net.core.rmem_max is below the minimum asked for here. -->
<CycloneDDS xmlns="https://cdds.io/config">
  <Domain id="any">
    <Internal>
      <SocketReceiveBufferSize min="{buffer_bytes >> 20}MiB"/>
    </Internal>
  </Domain>
</CycloneDDS>
"""
