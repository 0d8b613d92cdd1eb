"""How many CPUs this process may run on (its affinity mask, e.g. under `taskset` or a container's
cpuset), which is what thread pools and worker counts should be sized by; `os.cpu_count()` is the
machine's."""

from __future__ import annotations

import os

__all__ = ["usable_cpus"]


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
