"""Keep freed heap memory in the process while frames are generated.

A frame allocates and frees many numpy temporaries of 1-4 MB. glibc's default is to hand such blocks back
to the kernel (munmap, or trimming the top of the heap) as soon as they are freed, so the next frame page-
faults all of them in again: at 640x480 some 5000 faults and 15 ms of kernel time per frame, about a sixth
of the frame. Raising the mmap and trim thresholds keeps the memory in the heap instead; the process then
stays at its high-water mark (a few hundred MB while generating 640x480 frames) plus at most TRIM_BYTES.
"""

from __future__ import annotations

import ctypes
import functools
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20  # glibc's largest allowed mmap threshold on 64-bit systems
TRIM_BYTES = 256 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc (once per process) to keep freed blocks up to 32 MB in the heap; True when it agreed.

    A no-op returning False on other platforms and C libraries."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) == 1
