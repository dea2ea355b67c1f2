"""Keeping the garbage collector off the long-lived heap during bulk work.

CPython's full collections walk every tracked object. After start-up that is mostly what never dies:
modules, SQLAlchemy metadata, the catalog, the policy engine. Ingestion allocates and frees millions of
short-lived dicts and tuples, which keeps triggering collections that re-walk that long-lived heap; on
this project's ingestion benchmark that cost about a sixth of the connector's time. ``gc.freeze`` moves
everything alive now into a permanent generation the collector skips (the technique CPython documents
for pre-fork servers), so only objects made during the work are scanned. Call it when start-up is over,
right before a long run; objects frozen are never collected, so it is for process-lifetime state.
The youngest generation's threshold is raised too (700 objects to 20,000): bulk work makes container
objects in the thousands per batch, and a collection every 700 of them was a few percent of the time.

Bulk work also frees most of what each batch allocated before the next batch allocates as much again.
glibc's malloc hands such memory back to the kernel (blocks over its mmap threshold, and the top of the
heap past its trim threshold), and taking it again costs one page fault per 4 KiB page: measured here,
about 2.7 µs each, and 80,000 of them in the connector workers of one ingestion benchmark run.
:func:`keep_freed_memory` keeps freed memory in the process for the next batch instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

# glibc's mallopt parameters (malloc.h) and the values set: a batch's allocations stay below the fixed
# mmap threshold (the largest glibc allows on 64-bit), and up to the trim threshold of freed memory at
# the top of the heap stays for reuse. A process's peak is unchanged; only its giving back is later.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEEP = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 256 << 20), (_M_TOP_PAD, 16 << 20))


def settle() -> None:
    """Freeze what start-up built, so the collector only looks at what the work allocates; collect the
    young generation less often.

    Only the young generations are collected first, where fresh cyclic garbage is: a full collection
    walks the whole heap, and right after start-up (116,000 objects in a connector run's process) it
    took 66 ms and found nothing to free. That came before every connector run and every materialiser
    start, on one core while the other waited. The old generation holds what survived collections
    already, which is what freezing is for."""
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(20_000, 50, 1000)


def keep_freed_memory() -> bool:
    """Keep memory freed between batches for reuse rather than returning it to the kernel (glibc only;
    elsewhere nothing changes). Returns whether the settings took. For bulk work, not for a server
    whose memory should shrink back after a spike."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in _KEEP)
