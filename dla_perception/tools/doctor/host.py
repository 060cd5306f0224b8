"""Host checks that matter on any Linux robot computer: swap."""

from __future__ import annotations

from dataclasses import dataclass

from dla_perception.tools.doctor.system import INFO, OK, WARN, Finding, System, mib

SWAP_USED_WARN_BYTES = 64 << 20  # below: a few idle daemons' pages; above: perception's pages may be there
LOW_SWAPPINESS = 10


@dataclass(frozen=True)
class SwapArea:
    name: str
    kind: str  # partition | file
    size_bytes: int
    used_bytes: int

    @property
    def compressed_in_ram(self) -> bool:
        return self.name.startswith("/dev/zram")  # L4T's nvzramconfig makes one zram device per CPU


def parse_proc_swaps(text: str | None) -> list[SwapArea]:
    """/proc/swaps: a header, then `Filename Type Size Used Priority` per area, sizes in KiB."""
    areas = []
    for line in (text or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            areas.append(SwapArea(parts[0], parts[1], int(parts[2]) * 1024, int(parts[3]) * 1024))
    return areas


def check_swap(system: System) -> list[Finding]:
    text = system.read_file("/proc/swaps")
    if text is None:
        return [Finding("swap", INFO, "/proc/swaps unreadable: swap not checked")]
    areas = parse_proc_swaps(text)
    swappiness = system.read_int("/proc/sys/vm/swappiness")
    details = {"areas": [area.__dict__ for area in areas], "swappiness": swappiness}
    if not areas:
        return [Finding("swap", OK, "no swap: nothing can be paged out", details=details)]
    on_disk = [a for a in areas if not a.compressed_in_ram]
    disk_used = sum(a.used_bytes for a in on_disk)
    zram_used = sum(a.used_bytes for a in areas if a.compressed_in_ram)
    total = sum(a.size_bytes for a in areas)
    if disk_used > SWAP_USED_WARN_BYTES:
        names = ", ".join(a.name for a in on_disk if a.used_bytes)
        fix = "sudo swapoff -a && sudo swapon -a   # pages come back to RAM if it fits"
        if swappiness is not None and swappiness > LOW_SWAPPINESS:
            fix += f"; sudo sysctl -w vm.swappiness={LOW_SWAPPINESS}"
        text = (f"{mib(disk_used)} paged out to {names}: a frame that touches a paged-out page waits for the "
                "disk (milliseconds per page)")
        return [Finding("swap", WARN, text, fix, details)]
    if zram_used > SWAP_USED_WARN_BYTES:
        return [Finding("swap", INFO, f"{mib(zram_used)} compressed in zram: no disk waits, but each page "
                        "costs CPU time to decompress; memory is tight", details=details)]
    kind = "zram (compressed RAM)" if not on_disk else ", ".join(a.name for a in on_disk)
    return [Finding("swap", OK, f"{mib(total)} of swap on {kind}, {mib(disk_used + zram_used)} in use",
                    details=details)]
