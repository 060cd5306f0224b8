"""Discover the inference cores of this machine and the versions of the inference stacks.

Cores are discovered, never assumed: `cpu` always, `gpu` when the CUDA driver reports a device, `dla0`/`dla1`
when TensorRT reports DLA cores. Every probe degrades to "absent, with a reason" instead of raising, so
`dla-perception devices` works on a laptop, a CI runner and a Jetson alike.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

CORE_NAMES = ("dla0", "dla1", "gpu", "cpu")
# `cpu0`, `cpu1`, ...: CPU engine instances of one thread each that the manager treats as separate cores
# (one run at a time each, like a DLA), so scheduling across two "DLAs" is testable on a CPU-only machine.
# They are present wherever `cpu` is; config/engines.cpu_cores.yaml uses them.
CPU_INSTANCE = re.compile(r"cpu(\d+)")


def is_core_name(name: str) -> bool:
    return name in CORE_NAMES or CPU_INSTANCE.fullmatch(name) is not None


def base_core(core: str) -> str:
    """The core kind that builds `core`'s engine: `cpu` for a cpuN instance, else the core itself."""
    return "cpu" if CPU_INSTANCE.fullmatch(core) else core


def present(core: str, available: tuple[str, ...] | list[str]) -> bool:
    """Whether `core` can run here: discovered, or a cpuN instance on a machine with a cpu."""
    return core in available or (base_core(core) != core and base_core(core) in available)


def exclusive(core: str) -> bool:
    """Cores that run one task at a time (a DLA, a cpuN instance): runs there are gated by priority."""
    return core.startswith("dla") or base_core(core) != core


@dataclass(frozen=True)
class Probe:
    """What one probe found: a version (None when absent) and why it is absent or extra details."""

    version: str | None
    detail: str = ""


@dataclass(frozen=True)
class MachineInventory:
    cores: tuple[str, ...]
    gpu_name: str | None
    versions: dict[str, Probe] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "cores": list(self.cores),
            "gpu_name": self.gpu_name,
            "versions": {name: probe.version for name, probe in self.versions.items()},
            "details": {name: probe.detail for name, probe in self.versions.items() if probe.detail},
        }


def probe_cuda() -> tuple[Probe, str | None]:
    """Ask the CUDA driver (libcuda) directly: no framework needed, works on Jetson and desktops."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return Probe(None, f"no CUDA driver ({exc})"), None
    if libcuda.cuInit(0) != 0:
        return Probe(None, "CUDA driver present but cuInit failed (no usable device)"), None
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    libcuda.cuDriverGetVersion(ctypes.byref(version))
    libcuda.cuDeviceGetCount(ctypes.byref(count))
    driver = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    if count.value < 1:
        return Probe(driver, "CUDA driver reports no device"), None
    name = ctypes.create_string_buffer(256)
    device = ctypes.c_int(0)
    libcuda.cuDeviceGet(ctypes.byref(device), 0)
    libcuda.cuDeviceGetName(name, 256, device)
    gpu_name = name.value.decode(errors="replace")
    return Probe(driver, f"{count.value} device(s): {gpu_name}"), gpu_name


def probe_tensorrt() -> tuple[Probe, int]:
    """TensorRT version and the number of DLA cores its builder reports (0 on desktops)."""
    if importlib.util.find_spec("tensorrt") is None:
        return Probe(None, "python module 'tensorrt' not installed"), 0
    try:
        import tensorrt as trt

        version = str(trt.__version__)
    except Exception as exc:  # a registry stub raises on import
        return Probe(None, f"'tensorrt' does not import: {exc}"), 0
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        dla_cores = int(builder.num_DLA_cores)
    except Exception as exc:
        return Probe(version, f"builder unavailable: {exc}"), 0
    return Probe(version, f"{dla_cores} DLA core(s)"), dla_cores


def probe_onnxruntime() -> Probe:
    if importlib.util.find_spec("onnxruntime") is None:
        return Probe(None, "python module 'onnxruntime' not installed")
    import onnxruntime

    return Probe(onnxruntime.__version__, "providers: " + ", ".join(onnxruntime.get_available_providers()))


def probe_rclpy() -> Probe:
    """rclpy's version from the pip wheel's metadata or the ROS install's package.xml; never imports it."""
    distro = os.environ.get("ROS_DISTRO", "")
    if importlib.util.find_spec("rclpy") is None:
        return Probe(None, "rclpy not found (source a ROS 2 setup.bash, or `make setup`)")
    for dist in ("ros-rclpy", "rclpy"):
        try:
            return Probe(importlib.metadata.version(dist), f"ROS_DISTRO={distro}" if distro else "")
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import xml.etree.ElementTree as ElementTree

        from ament_index_python.packages import get_package_share_directory

        package_xml = os.path.join(get_package_share_directory("rclpy"), "package.xml")
        version = ElementTree.parse(package_xml).getroot().findtext("version")
        return Probe(version, f"ROS_DISTRO={distro}" if distro else "")
    except Exception as exc:
        return Probe("unknown", f"rclpy importable, version unreadable ({exc})")


@lru_cache(maxsize=1)
def discover() -> MachineInventory:
    """Probe once per process; cores in the fixed order dla0, dla1, gpu, cpu."""
    cuda, gpu_name = probe_cuda()
    tensorrt, dla_cores = probe_tensorrt()
    cores = [f"dla{index}" for index in range(min(dla_cores, 2))]
    if gpu_name is not None:
        cores.append("gpu")
    cores.append("cpu")
    versions = {
        "onnxruntime": probe_onnxruntime(),
        "tensorrt": tensorrt,
        "cuda": cuda,
        "rclpy": probe_rclpy(),
    }
    return MachineInventory(cores=tuple(cores), gpu_name=gpu_name, versions=versions)
