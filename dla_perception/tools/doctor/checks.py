"""Every doctor check, in report order: the Jetson's speed settings first, then memory, DDS and discovery."""

from __future__ import annotations

from dla_perception.tools.doctor.dds import (
    check_ip_fragments,
    check_rmw,
    check_shared_memory,
    check_socket_buffers,
)
from dla_perception.tools.doctor.discovery import check_discovery, check_domain_id
from dla_perception.tools.doctor.host import check_swap
from dla_perception.tools.doctor.jetson import (
    check_clocks_locked,
    check_cuda_connections,
    check_dla_clock,
    check_gpu_clock,
    check_platform,
    check_power_mode,
)
from dla_perception.tools.doctor.power import check_power_rails
from dla_perception.tools.doctor.system import Check, Finding, System, live_system, run_checks

CHECKS: tuple[tuple[str, Check], ...] = (
    ("platform", check_platform),
    ("power_mode", check_power_mode),
    ("clocks_locked", check_clocks_locked),
    ("gpu_clock", check_gpu_clock),
    ("dla_clock", check_dla_clock),
    ("power_rails", check_power_rails),
    ("cuda_connections", check_cuda_connections),
    ("swap", check_swap),
    ("socket_buffers", check_socket_buffers),
    ("ip_fragments", check_ip_fragments),
    ("rmw", check_rmw),
    ("shared_memory", check_shared_memory),
    ("ros_domain", check_domain_id),
    ("discovery", check_discovery),
)
CHECK_NAMES = tuple(name for name, _ in CHECKS)


def diagnose(system: System | None = None, only: tuple[str, ...] = ()) -> list[Finding]:
    """Run the checks (all, or those named in `only`) against `system` (default: this machine)."""
    selected = [(name, check) for name, check in CHECKS if not only or name in only]
    return run_checks(system or live_system(), selected)
