"""The doctor's power_rails check: what the INA3221 monitors read now (runtime/power.py finds and reads them;
the engine manager node publishes the same rails on /diagnostics)."""

from __future__ import annotations

from dla_perception.runtime.power import discover_rails, read_rails
from dla_perception.tools.doctor.jetson_formats import is_jetson
from dla_perception.tools.doctor.system import INFO, NOT_A_JETSON, WARN, Finding, System


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
