"""Freed activation-sized tensors leave resident memory once map_large_allocations() ran (glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from searchr1.trainers.local.heap import _glibc

# A big free first (glibc then raises its mmap threshold past activation sizes), then 2 MiB tensors
# interleaved with small ones that stay alive, as a backward pass leaves them: how much RSS stays?
_CHILD = """
import sys, torch
from searchr1.trainers.local.heap import map_large_allocations
if sys.argv[1] == "mapped":
    map_large_allocations()
def rss_mib():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
big = torch.ones(1 << 22); del big  # 16 MiB: under glibc's 32 MiB cap for the raised threshold
before = rss_mib()
kept, freed = [], []
for _ in range(100):
    freed.append(torch.ones(1 << 19))  # 2 MiB
    kept.append(torch.ones(1 << 10))   # 4 KiB, survives
del freed
print(rss_mib() - before)
"""


def _retained_mib(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(_glibc() is None or not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_freed_activation_sized_tensors_are_returned_to_the_os():
    assert _retained_mib("mapped") < 40  # of the 200 MiB allocated and freed
    assert _retained_mib("default") > 100  # glibc's defaults keep them: the setting is what helps
