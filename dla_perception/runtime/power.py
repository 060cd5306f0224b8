"""Power rails of the INA3221 monitors on Jetson modules and devkits, in watts.

JetPack 5.1+ and 6 (L4T R35/R36) expose each INA3221 through the upstream hwmon driver:
/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/ with, per channel n = 1..3, `in<n>_label` (the
rail's name from the device tree: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0 on the AGX Orin devkit; VDD_IN,
VDD_CPU_GPU_CV, VDD_SOC on Orin NX/Nano), `in<n>_input` (bus voltage, mV) and `curr<n>_input` (mA).
Unconnected channels are labelled NC. The hwmon number changes between boots, so it is found, not assumed.

`PowerRails` is what the engine manager node calls each diagnostics period: discovery once, then a few small
sysfs reads; nothing here raises or imports ROS. `dla-perception doctor` reports the same rails
(tools/doctor/power.py) through its own readers, which fit `SysfsReader`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol


class SysfsReader(Protocol):
    """How the rails are read: this machine's sysfs (LiveSysfs), or the doctor's System (recorded machines
    in the tests). Each answers "absent" rather than raising: None / []."""

    def read_file(self, path: str) -> str | None: ...

    def list_dir(self, path: str) -> list[str]: ...

    def read_int(self, path: str) -> int | None: ...


class LiveSysfs:
    """SysfsReader over this machine's files."""

    def read_file(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except (OSError, ValueError):  # absent, a directory, permission denied, EINVAL on some sysfs files
            return None

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def read_int(self, path: str) -> int | None:
        """A sysfs number file (`5064\\n`) as an int; None when absent or not a number."""
        return parse_int(self.read_file(path))


def parse_int(text: str | None) -> int | None:
    """The number a sysfs/procfs file holds; None for an absent file or one that holds no number."""
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


INA3221_DRIVER = "/sys/bus/i2c/drivers/ina3221"
CHANNELS = (1, 2, 3)  # in4..in6 are the shunt voltages, in7/curr4 the sum channel: not rails


@dataclass(frozen=True)
class Rail:
    name: str  # the in<n>_label text
    sensor: str  # "1-0040": I2C bus and address
    channel: int
    folder: str  # .../hwmon/hwmon<N>


@dataclass(frozen=True)
class RailReading:
    rail: Rail
    volts: float
    amps: float

    @property
    def watts(self) -> float:
        return self.volts * self.amps


def discover_rails(reader: SysfsReader) -> list[Rail]:
    """Every labelled, enabled, connected INA3221 channel, in sensor then channel order."""
    rails = []
    for sensor in reader.list_dir(INA3221_DRIVER):
        if not re.fullmatch(r"\d+-[0-9a-f]{4}", sensor):
            continue  # bind, unbind, uevent, module
        for hwmon in reader.list_dir(f"{INA3221_DRIVER}/{sensor}/hwmon"):
            folder = f"{INA3221_DRIVER}/{sensor}/hwmon/{hwmon}"
            for channel in CHANNELS:
                label = (reader.read_file(f"{folder}/in{channel}_label") or "").strip()
                if not label or label.upper() == "NC" or reader.read_int(f"{folder}/in{channel}_enable") == 0:
                    continue
                rails.append(Rail(label, sensor, channel, folder))
    return rails


def read_rails(reader: SysfsReader, rails: list[Rail]) -> list[RailReading]:
    """The rails that answered now (a rail whose files vanished or hold no number is left out)."""
    readings = []
    for rail in rails:
        millivolts = reader.read_int(f"{rail.folder}/in{rail.channel}_input")
        milliamps = reader.read_int(f"{rail.folder}/curr{rail.channel}_input")
        if millivolts is not None and milliamps is not None:
            readings.append(RailReading(rail, millivolts / 1000.0, milliamps / 1000.0))
    return readings


def rail_key(rail: Rail, rails: list[Rail]) -> str:
    """The diagnostics key: `<label>_w`, with the sensor appended when two sensors share a label."""
    shared = sum(1 for other in rails if other.name == rail.name) > 1
    return f"{rail.name}_{rail.sensor}_w" if shared else f"{rail.name}_w"


class PowerRails:
    """Watts per rail for /diagnostics; `values()` is {} where there is no INA3221 (x86, custom carriers)."""

    def __init__(self, reader: SysfsReader | None = None) -> None:
        self._reader = reader or LiveSysfs()
        try:
            self.rails = discover_rails(self._reader)
        except Exception:  # never take a node down for a power reading
            self.rails = []

    def values(self) -> dict[str, str]:
        if not self.rails:
            return {}
        try:
            readings = read_rails(self._reader, self.rails)
        except Exception:
            return {}
        return {rail_key(r.rail, self.rails): f"{r.watts:.3f}" for r in readings}
