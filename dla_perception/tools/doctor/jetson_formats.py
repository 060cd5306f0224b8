"""Parsers of what L4T prints and exposes: nvpmodel -q, /etc/nvpmodel.conf, jetson_clocks --show, release.

The formats are those of JetPack 6 (L4T R36); the fixtures under test/fixtures/doctor/ cite where each one
comes from. Parsers are lenient (unknown lines are skipped) and return None where the text is not the
expected format, so a new L4T release degrades to "could not read" rather than a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dla_perception.tools.doctor.system import System


@dataclass(frozen=True)
class L4TRelease:
    major: int
    revision: str  # "4.3"

    @property
    def version(self) -> str:
        return f"{self.major}.{self.revision}"


def parse_nv_tegra_release(text: str | None) -> L4TRelease | None:
    """`# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, ...`: line 1 of /etc/nv_tegra_release."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", text or "")
    return L4TRelease(int(match.group(1)), match.group(2).rstrip(".")) if match else None


def device_tree_text(system: System, name: str) -> str | None:
    """/proc/device-tree/<name> (`model`, `compatible`): NUL-separated strings, joined by spaces."""
    text = system.read_file(f"/proc/device-tree/{name}")
    return " ".join(part for part in text.split("\0") if part).strip() if text else None


def is_jetson(system: System) -> bool:
    """L4T's release file, or a Tegra SoC in the device tree (an L4T container may lack the file)."""
    if system.read_file("/etc/nv_tegra_release") is not None:
        return True
    return "nvidia,tegra" in (device_tree_text(system, "compatible") or "")


@dataclass(frozen=True)
class PowerMode:
    name: str
    mode_id: int | None


def parse_nvpmodel_query(text: str | None) -> PowerMode | None:
    """`nvpmodel -q`: `NV Power Mode: MAXN` then the mode id on its own line (also inside --verbose)."""
    lines = (text or "").splitlines()
    for index, line in enumerate(lines):
        match = re.search(r"NV Power Mode:\s*(\S+)", line)
        if not match:
            continue
        mode_id = None
        for following in lines[index + 1:index + 3]:
            if following.strip().isdigit():
                mode_id = int(following.strip())
                break
        return PowerMode(match.group(1), mode_id)
    return None


@dataclass(frozen=True)
class NvpmodelConf:
    modes: dict[int, str]  # id -> name, in file order
    default_id: int | None

    def fastest(self) -> PowerMode | None:
        """MAXN_SUPER, else MAXN, else the mode with the most watts in its name (7W < 15W < 25W)."""
        if not self.modes:
            return None
        for wanted in ("MAXN_SUPER", "MAXN"):
            for mode_id, name in self.modes.items():
                if name.upper() == wanted:
                    return PowerMode(name, mode_id)

        def watts(item: tuple[int, str]) -> float:
            match = re.search(r"(\d+(?:\.\d+)?)\s*W", item[1].upper())
            return float(match.group(1)) if match else -1.0

        mode_id, name = max(self.modes.items(), key=watts)
        return PowerMode(name, mode_id)


def parse_nvpmodel_conf(text: str | None) -> NvpmodelConf | None:
    """`< POWER_MODEL ID=0 NAME=MAXN >` blocks and `< PM_CONFIG DEFAULT=2 >` of /etc/nvpmodel.conf."""
    if not text:
        return None
    modes = {
        int(match.group(1)): match.group(2)
        for match in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+?)\s*>", text)
    }
    default = re.search(r"<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>", text)
    if not modes:
        return None
    return NvpmodelConf(modes, int(default.group(1)) if default else None)


@dataclass
class ClockLine:
    """One `jetson_clocks --show` line: `GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000`."""

    name: str
    fields: dict[str, str]
    idle_states: dict[str, bool] = field(default_factory=dict)

    def number(self, key: str) -> int | None:
        try:
            return int(self.fields[key])
        except (KeyError, ValueError):
            return None

    @property
    def locked(self) -> bool | None:
        """min == max (jetson_clocks raises the floor to the ceiling); EMC: FreqOverride=1 or min == max."""
        if self.fields.get("FreqOverride") == "1":
            return True
        low, high = self.number("MinFreq"), self.number("MaxFreq")
        return None if low is None or high is None else low == high


@dataclass
class ClocksReport:
    lines: dict[str, ClockLine]
    machine: str = ""
    power_mode: str = ""

    def cpus(self) -> list[ClockLine]:
        return [line for name, line in self.lines.items() if re.fullmatch(r"cpu\d+", name)]


def parse_jetson_clocks_show(text: str | None) -> ClocksReport | None:
    """`sudo jetson_clocks --show` (L4T R36): one line per CPU, GPU, EMC, DLA/PVA clock, fan, power mode."""
    if not text or "MinFreq=" not in text:
        return None
    report = ClocksReport({})
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("SOC family:"):
            report.machine = line.partition("Machine:")[2].strip()
            continue
        if line.startswith("NV Power Mode:"):
            report.power_mode = line.partition(":")[2].strip()
            continue
        match = re.match(r"([A-Za-z][A-Za-z0-9_]*):?\s+(.*\bMinFreq=.*)$", line)
        if not match:
            continue
        body, _, idle = match.group(2).partition("IdleStates:")
        fields = dict(re.findall(r"(\w+)=(\S+)", body))
        states = {name: value == "1" for name, value in re.findall(r"(\w+)=(\d)", idle)}
        report.lines[match.group(1)] = ClockLine(match.group(1), fields, states)
    return report if report.lines else None
