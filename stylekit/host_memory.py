"""Keep freed host memory for reuse instead of handing it back to the kernel after every large tensor.

glibc serves an allocation above its mmap threshold (32 MiB at most) with a fresh `mmap` and unmaps it
on free, so on CPU every large activation of a forward/backward pass is page-faulted and zeroed by the
kernel again, call after call: measured as ~30% of StyleGAN2 G inference time at 256 px on the
project's 2-core machine (docs/performance.md). PyTorch's CPU allocator has no cache (its caching
allocator is CUDA-only) and jemalloc/tcmalloc need an LD_PRELOAD before the process starts, so the
command process asks glibc itself (`mallopt`) to serve every size from its heap and not to trim the
heap. The peak is unchanged; what was freed stays with the process, for reuse, until it exits.

Nothing here imports torch: `stylekit.cli.app.main` calls `keep_freed_host_memory()` first thing.
No-op off glibc (macOS, musl, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

_NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes (2 GiB): a heap top that large is returned
# What a default glibc process settles at once it has freed one mmapped chunk of >= 32 MiB (its dynamic
# threshold rises to that size, capped at 32 MiB, and the trim threshold to twice it): used to put a
# process back to the default behaviour (benchmarks time reference code as its users run it).
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_SETTLED_MMAP_THRESHOLD = 32 * 2**20
_DEFAULT_SETTLED_TRIM_THRESHOLD = 64 * 2**20


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def available() -> bool:
    """This process runs on glibc, whose policy `keep_freed_host_memory` sets."""
    return _libc() is not None


def keep_freed_host_memory(enabled: bool = True) -> bool:
    """Serve every allocation from the heap and never trim it (enabled), or go back to glibc's settled
    default (disabled). True when the policy was applied (glibc), False where this is a no-op."""
    libc = _libc()
    if libc is None:
        return False
    if enabled:
        settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))
    else:
        settings = ((_M_MMAP_MAX, _DEFAULT_MMAP_MAX), (_M_MMAP_THRESHOLD, _DEFAULT_SETTLED_MMAP_THRESHOLD),
                    (_M_TRIM_THRESHOLD, _DEFAULT_SETTLED_TRIM_THRESHOLD))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
