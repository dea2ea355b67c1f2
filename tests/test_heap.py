"""hub.heap: bulk work keeps the memory it freed for the next batch instead of faulting it in again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub import heap

CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
from hub import heap
if sys.argv[1] == "keep":
    assert heap.keep_freed_memory()
def batch():
    return [bytes(2048) for _ in range(20_000)]  # 40 MiB of blocks past pymalloc's size: glibc's heap
kept = batch()
del kept
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kept = batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults_of_the_second_batch(mode: str) -> int:
    code = CHILD.format(root=str(Path(__file__).resolve().parents[1]))
    return int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults() -> None:
    default, kept = _faults_of_the_second_batch("default"), _faults_of_the_second_batch("keep")
    assert default > 5_000  # 40 MiB handed back to the kernel and taken again: about 10,000 pages
    assert kept < default / 10
    assert heap.keep_freed_memory() is True


SETTLE = """
import gc, sys, weakref
sys.path.insert(0, {root!r})
from hub import heap
class Node:
    pass
alive = [{{"kept": i}} for i in range(1000)]
cycle = Node()
cycle.self = cycle  # garbage only the collector can free
gone = weakref.ref(cycle)
del cycle
frozen = gc.get_freeze_count()
heap.settle()
print(gone() is None, gc.get_freeze_count() - frozen >= len(alive), gc.get_threshold()[0])
"""


def test_settling_frees_fresh_cyclic_garbage_and_freezes_what_lives() -> None:
    code = SETTLE.format(root=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "20000"]
