"""Jetson checks: L4T release, power mode, locked clocks, GPU and DLA clocks, CUDA's work queues.

Where the files and commands are absent the finding is "not a Jetson" (info), never an error. What needs
root (jetson_clocks --show, debugfs clocks) is read when allowed, and otherwise replaced by the sysfs files
any user can read, saying what was left out.
"""

from __future__ import annotations

from dla_perception.tools.doctor.jetson_formats import (
    ClocksReport,
    device_tree_text,
    is_jetson,
    parse_jetson_clocks_show,
    parse_nv_tegra_release,
    parse_nvpmodel_conf,
    parse_nvpmodel_query,
)
from dla_perception.tools.doctor.system import ERROR, INFO, NOT_A_JETSON, OK, WARN, Finding, System, mhz

MIN_L4T_MAJOR = 36  # JetPack 6: TensorRT 10.3, the line this project's engines are built against
GPU_COMPATIBLES = ("nvidia,ga10b", "nvidia,gv11b", "nvidia,gp10b")  # Orin, Xavier, TX2 (as jetson_clocks)
HOST1X_NODES = (
    "/sys/devices/platform/bus@0/13e00000.host1x",  # L4T R36 (JetPack 6)
    "/sys/devices/platform/13e40000.host1x",  # L4T R35 (JetPack 5)
)
DLA_NODES = {"dla0": "15880000.nvdla0", "dla1": "158c0000.nvdla1"}
CUDA_DEFAULT_CONNECTIONS, CUDA_MAX_CONNECTIONS = 8, 32  # CUDA Programming Guide, environment variables
MIN_CONNECTIONS = 4  # one stream per TensorRT engine: dla0, dla1, gpu, and one to spare


def _not_a_jetson(check: str, what: str) -> list[Finding]:
    return [Finding(check, INFO, f"{NOT_A_JETSON}: {what}", details={"jetson": False})]


def check_platform(system: System) -> list[Finding]:
    release = parse_nv_tegra_release(system.read_file("/etc/nv_tegra_release"))
    model = device_tree_text(system, "model") or "unknown board"
    if not is_jetson(system):
        return _not_a_jetson("platform", "no /etc/nv_tegra_release and no Tegra SoC in the device tree, so "
                             "power mode, clocks, DLA and power rails are not checked")
    details = {"jetson": True, "model": model, "l4t": release.version if release else None}
    if release is None:
        return [Finding("platform", INFO, f"{model}; L4T release unknown (/etc/nv_tegra_release unreadable)",
                        details=details)]
    text = f"{model}, L4T R{release.version}"
    if release.major < MIN_L4T_MAJOR:
        return [Finding("platform", WARN, f"{text}: older than JetPack 6, so no TensorRT 10.3; DLA engines "
                        "from this project will not build", "flash JetPack 6 (L4T R36) with SDK Manager",
                        details)]
    return [Finding("platform", OK, text, details=details)]


# -- power mode ---------------------------------------------------------------------------------------------
def check_power_mode(system: System) -> list[Finding]:
    result = system.run(["nvpmodel", "-q"])
    if result is None:
        if is_jetson(system):
            text = "nvpmodel not found on this Jetson: the power mode is unknown"
            return [Finding("power_mode", WARN, text, "sudo apt install nvidia-l4t-nvpmodel")]
        return _not_a_jetson("power_mode", "no nvpmodel")
    mode = parse_nvpmodel_query(result.stdout + "\n" + result.stderr)
    if mode is None:
        return [Finding("power_mode", WARN, f"could not read `nvpmodel -q` (exit {result.returncode})",
                        "sudo nvpmodel -q", {"output": (result.stdout + result.stderr)[-400:]})]
    conf = parse_nvpmodel_conf(system.read_file("/etc/nvpmodel.conf"))
    fastest = conf.fastest() if conf else None
    details = {"mode": mode.name, "id": mode.mode_id,
               "modes": {str(k): v for k, v in conf.modes.items()} if conf else None}
    current = f"power mode {mode.name}" + (f" (id {mode.mode_id})" if mode.mode_id is not None else "")
    if fastest is None:
        return [Finding("power_mode", INFO, f"{current}; /etc/nvpmodel.conf unreadable, so the fastest mode "
                        "is unknown", details=details)]
    details["fastest"] = {"name": fastest.name, "id": fastest.mode_id}
    if mode.name == fastest.name or (mode.mode_id is not None and mode.mode_id == fastest.mode_id):
        return [Finding("power_mode", OK, f"{current}: the fastest mode of this module (no power cap; the "
                        "supply and cooling must carry it)", details=details)]
    return [Finding("power_mode", WARN, f"{current} caps the CPU, GPU, DLA and memory clocks below those of "
                    f"{fastest.name}; latency figures assume the fastest mode",
                    f"sudo nvpmodel -m {fastest.mode_id}", details)]


# -- clocks ---------------------------------------------------------------------------------------------
def _jetson_clocks(system: System) -> tuple[ClocksReport | None, str]:
    """jetson_clocks --show when it runs (root), else (None, why)."""
    result = system.run(["jetson_clocks", "--show"])
    if result is None:
        return None, "jetson_clocks not found"
    report = parse_jetson_clocks_show(result.stdout) if result.returncode == 0 else None
    if report is not None:
        return report, ""
    if "root" in result.stdout + result.stderr:
        return None, "jetson_clocks --show needs root"
    return None, f"jetson_clocks --show failed (exit {result.returncode})"


def gpu_devfreq(system: System) -> str | None:
    """The GPU's devfreq folder (/sys/class/devfreq/17000000.gpu on L4T R36), found as jetson_clocks does."""
    entries = system.list_dir("/sys/class/devfreq")
    for entry in entries:
        compatible = system.read_file(f"/sys/class/devfreq/{entry}/device/of_node/compatible") or ""
        if any(name in compatible for name in GPU_COMPATIBLES):
            return f"/sys/class/devfreq/{entry}"
    named = [entry for entry in entries if entry.endswith(".gpu")]
    return f"/sys/class/devfreq/{named[0]}" if named else None


def _sysfs_locks(system: System) -> dict[str, bool | None]:
    """CPU and GPU lock state from the files any user can read; EMC needs debugfs (root)."""
    cpu_locks = []
    for name in system.list_dir("/sys/devices/system/cpu"):
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        base = f"/sys/devices/system/cpu/{name}"
        if system.read_int(f"{base}/online") == 0:
            continue
        low, high = system.read_int(f"{base}/cpufreq/scaling_min_freq"), system.read_int(
            f"{base}/cpufreq/scaling_max_freq")
        if low is not None and high is not None:
            cpu_locks.append(low == high)
    locks: dict[str, bool | None] = {"CPU": all(cpu_locks) if cpu_locks else None}
    gpu = gpu_devfreq(system)
    low = system.read_int(f"{gpu}/min_freq") if gpu else None
    high = system.read_int(f"{gpu}/max_freq") if gpu else None
    locks["GPU"] = None if low is None or high is None else low == high
    emc_override = system.read_int("/sys/kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked")
    locks["EMC"] = None if emc_override is None else emc_override == 1
    return locks


def check_clocks_locked(system: System) -> list[Finding]:
    if not is_jetson(system):
        return _not_a_jetson("clocks_locked", "no jetson_clocks")
    report, why = _jetson_clocks(system)
    if report is not None:
        cpus = report.cpus()
        locks = {
            "CPU": all(cpu.locked for cpu in cpus) if cpus else None,
            "GPU": report.lines["GPU"].locked if "GPU" in report.lines else None,
            "EMC": report.lines["EMC"].locked if "EMC" in report.lines else None,
        }
        source = "jetson_clocks --show"
    else:
        locks, source = _sysfs_locks(system), f"sysfs ({why})"
    details = {"source": source, "locked": locks}
    unlocked = [name for name, locked in locks.items() if locked is False]
    unknown = [name for name, locked in locks.items() if locked is None]
    note = f" ({', '.join(unknown)} unknown: run as root to read it)" if unknown else ""
    if unlocked:
        text = (f"{', '.join(unlocked)} clocks scale with load (DVFS): the first frames after an idle spell "
                f"run at low clocks and take longer{note}")
        return [Finding("clocks_locked", WARN, text, "sudo jetson_clocks", details)]
    if not [locked for locked in locks.values() if locked]:
        text = f"clock lock state unknown{note}"
        return [Finding("clocks_locked", INFO, text, "sudo dla-perception doctor", details)]
    return [Finding("clocks_locked", OK, f"clocks locked at their maximum for this power mode{note}",
                    details=details)]


def check_gpu_clock(system: System) -> list[Finding]:
    if not is_jetson(system):
        return _not_a_jetson("gpu_clock", "no Tegra GPU devfreq")
    base = gpu_devfreq(system)
    if base is None:
        return [Finding("gpu_clock", INFO, "GPU frequency scaling not registered yet (the GPU registers with "
                        "devfreq when first powered; run doctor again after a CUDA program ran)")]
    current, low, high = (system.read_int(f"{base}/{name}") for name in ("cur_freq", "min_freq", "max_freq"))
    table = system.read_file(f"{base}/available_frequencies") or ""
    available = [int(f) for f in table.split() if f.isdigit()]
    governor = (system.read_file(f"{base}/governor") or "?").strip()
    details = {"devfreq": base, "cur_hz": current, "min_hz": low, "max_hz": high, "governor": governor,
               "available_max_hz": max(available) if available else None}
    span = f"locked at {mhz(high)}" if low == high else f"range {mhz(low)} to {mhz(high)}"
    text = f"GPU at {mhz(current)}, {span} (governor {governor})"
    if available and high is not None and high < max(available):
        text += f"; capped below its {mhz(max(available))} maximum by the power mode (see power_mode)"
        return [Finding("gpu_clock", INFO, text, details=details)]
    return [Finding("gpu_clock", INFO, text, details=details)]


def _dla_online(system: System, node: str) -> bool:
    return any(node in system.list_dir(host1x) for host1x in HOST1X_NODES)


def _dla_cap(system: System, core: str, node: str) -> int | None:
    """The nvpmodel clock cap of a DLA core (readable without root)."""
    for host1x in HOST1X_NODES:
        for folder in ("clk_cap", "acm/clk_cap"):  # R36, R35
            value = system.read_int(f"{host1x}/{node}/{folder}/{core}_core")
            if value is not None:
                return value
    return None


def check_dla_clock(system: System) -> list[Finding]:
    if not is_jetson(system):
        return _not_a_jetson("dla_clock", "no DLA cores")
    report, _ = _jetson_clocks(system)
    findings = []
    for core, node in DLA_NODES.items():
        line = report.lines.get(f"{core.upper()}_CORE") if report else None
        online = line.fields.get("Online") == "1" if line else _dla_online(system, node)
        cap = (line.number("MaxFreq") if line else None) or _dla_cap(system, core, node)
        current = (line.number("CurrentFreq") if line
                   else system.read_int(f"/sys/kernel/debug/clk/{core}_core/clk_rate"))
        if not online and cap is None:
            continue
        details = {"core": core, "online": online, "max_hz": cap, "cur_hz": current}
        if not online:
            text = f"{core} is present but offline: requests for it fall back"
            findings.append(Finding("dla_clock", WARN, text, "sudo reboot (the nvdla driver probes at boot)",
                                    details))
            continue
        now = f", now {mhz(current)}" if current else " (current rate needs root)"
        text = f"{core} core clock up to {mhz(cap)}{now}"
        findings.append(Finding("dla_clock", INFO, text, details=details))
    if not findings:
        if not any(system.list_dir(host1x) for host1x in HOST1X_NODES):
            return [Finding("dla_clock", INFO, "DLA state unknown: no host1x device folder found",
                            details={"searched": list(HOST1X_NODES)})]
        model = device_tree_text(system, "model") or "this module"
        text = f"{model} has no DLA cores: models asking for dla0/dla1 run on the GPU instead"
        fix = "list gpu first in the model's cores in engines.yaml"
        findings.append(Finding("dla_clock", WARN, text, fix, {"cores": []}))
    return findings


# -- CUDA ---------------------------------------------------------------------------------------------------
def check_cuda_connections(system: System) -> list[Finding]:
    value = system.env.get("CUDA_DEVICE_MAX_CONNECTIONS")
    if value is None:
        return [Finding("cuda_connections", OK, f"CUDA_DEVICE_MAX_CONNECTIONS unset: CUDA's default of "
                        f"{CUDA_DEFAULT_CONNECTIONS} hardware work queues, one per engine stream")]
    details = {"value": value}
    fix = "unset CUDA_DEVICE_MAX_CONNECTIONS"
    try:
        number = int(value)
    except ValueError:
        return [Finding("cuda_connections", ERROR, f"CUDA_DEVICE_MAX_CONNECTIONS={value!r} is not a number",
                        fix, details)]
    if number == 1:
        text = ("CUDA_DEVICE_MAX_CONNECTIONS=1 (a training-framework setting) puts every CUDA stream in one "
                "hardware queue: DLA and GPU engines no longer overlap")
        return [Finding("cuda_connections", WARN, text, fix, details)]
    if number < MIN_CONNECTIONS:
        return [Finding("cuda_connections", WARN, f"CUDA_DEVICE_MAX_CONNECTIONS={number}: fewer work queues "
                        "than engine streams (dla0, dla1, gpu), so independent engines wait on each other",
                        fix, details)]
    if number > CUDA_MAX_CONNECTIONS:
        text = f"CUDA_DEVICE_MAX_CONNECTIONS={number}: CUDA uses at most {CUDA_MAX_CONNECTIONS}"
        fix = f"export CUDA_DEVICE_MAX_CONNECTIONS={CUDA_MAX_CONNECTIONS}"
        return [Finding("cuda_connections", INFO, text, fix, details)]
    text = f"CUDA_DEVICE_MAX_CONNECTIONS={number} work queues"
    return [Finding("cuda_connections", OK, text, details=details)]
