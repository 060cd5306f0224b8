"""Power rails of the INA3221 monitors on Jetson modules and devkits, in watts.

JetPack 5.1+ and 6 (L4T R35/R36) expose each INA3221 through the upstream hwmon driver:
/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/ with, per channel n = 1..3, `in<n>_label` (the
rail's name from the device tree: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0 on the AGX Orin devkit; VDD_IN,
VDD_CPU_GPU_CV, VDD_SOC on Orin NX/Nano), `in<n>_input` (bus voltage, mV) and `curr<n>_input` (mA).
Unconnected channels are labelled NC. The hwmon number changes between boots, so it is found, not assumed.

`PowerRails` is what the engine manager node calls each diagnostics period: discovery once, then a few small
sysfs reads; nothing here raises or imports ROS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dla_perception.tools.doctor.jetson_formats import is_jetson
from dla_perception.tools.doctor.system import INFO, NOT_A_JETSON, WARN, Finding, System, live_system

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


def discover_rails(system: System) -> list[Rail]:
    """Every labelled, enabled, connected INA3221 channel, in sensor then channel order."""
    rails = []
    for sensor in system.list_dir(INA3221_DRIVER):
        if not re.fullmatch(r"\d+-[0-9a-f]{4}", sensor):
            continue  # bind, unbind, uevent, module
        for hwmon in system.list_dir(f"{INA3221_DRIVER}/{sensor}/hwmon"):
            folder = f"{INA3221_DRIVER}/{sensor}/hwmon/{hwmon}"
            for channel in CHANNELS:
                label = (system.read_file(f"{folder}/in{channel}_label") or "").strip()
                if not label or label.upper() == "NC" or system.read_int(f"{folder}/in{channel}_enable") == 0:
                    continue
                rails.append(Rail(label, sensor, channel, folder))
    return rails


def read_rails(system: System, rails: list[Rail]) -> list[RailReading]:
    """The rails that answered now (a rail whose files vanished or hold no number is left out)."""
    readings = []
    for rail in rails:
        millivolts = system.read_int(f"{rail.folder}/in{rail.channel}_input")
        milliamps = system.read_int(f"{rail.folder}/curr{rail.channel}_input")
        if millivolts is not None and milliamps is not None:
            readings.append(RailReading(rail, millivolts / 1000.0, milliamps / 1000.0))
    return readings


def rail_key(rail: Rail, rails: list[Rail]) -> str:
    """The diagnostics key: `<label>_w`, with the sensor appended when two sensors share a label."""
    shared = sum(1 for other in rails if other.name == rail.name) > 1
    return f"{rail.name}_{rail.sensor}_w" if shared else f"{rail.name}_w"


class PowerRails:
    """Watts per rail for /diagnostics; `values()` is {} where there is no INA3221 (x86, custom carriers)."""

    def __init__(self, system: System | None = None) -> None:
        self._system = system or live_system()
        try:
            self.rails = discover_rails(self._system)
        except Exception:  # never take a node down for a power reading
            self.rails = []

    def values(self) -> dict[str, str]:
        if not self.rails:
            return {}
        try:
            readings = read_rails(self._system, self.rails)
        except Exception:
            return {}
        return {rail_key(r.rail, self.rails): f"{r.watts:.3f}" for r in readings}


def check_power_rails(system: System) -> list[Finding]:
    rails = discover_rails(system)
    if not rails:
        if is_jetson(system):
            text = "no INA3221 power monitor exposed (custom carrier board?): no watts in /diagnostics"
            return [Finding("power_rails", INFO, text, details={"rails": []})]
        return [Finding("power_rails", INFO, f"{NOT_A_JETSON}: no INA3221 power monitor",
                        details={"jetson": False, "rails": []})]
    readings = read_rails(system, rails)
    details = {"rails": [{"name": r.rail.name, "sensor": r.rail.sensor, "channel": r.rail.channel,
                          "volts": round(r.volts, 3), "amps": round(r.amps, 3), "watts": round(r.watts, 3)}
                         for r in readings]}
    if not readings:
        return [Finding("power_rails", WARN, f"{len(rails)} power rail(s) found but none could be read",
                        f"ls -l {rails[0].folder}", details)]
    text = ", ".join(f"{r.rail.name} {r.watts:.2f} W" for r in readings)
    text += " (the engine manager's /diagnostics shows these while running)"
    return [Finding("power_rails", INFO, text, details=details)]
