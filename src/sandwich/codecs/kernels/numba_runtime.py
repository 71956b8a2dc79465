"""What every numba kernel of sandwich shares: its compile options and the threads that run it.

Kernels are compiled with :data:`JIT` and take ``(first, last, ...)``: they process work items
``first .. last - 1`` (strips of blocks, images, ...), so that :func:`run_items` can split the items
over ``torch.get_num_threads()`` plain Python threads. The kernels release the GIL (``nogil``), so the
threads run in parallel; numba's own ``parallel=True`` would triple the compile time.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

# Fused multiply-adds allowed (nothing else of fastmath: the quantiser's roundings must stay exact);
# cached on disk (next to the module, or in $NUMBA_CACHE_DIR); no GIL, so threads run in parallel.
JIT = {"fastmath": {"contract"}, "cache": True, "nogil": True, "error_model": "numpy"}


@functools.lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` workers, made on first use."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sandwich-numba")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads


def run_items(kernel: Callable, items: int, *args) -> None:
    """``kernel(first, last, *args)`` over ``items`` work items, split across ``torch.get_num_threads()`` threads."""
    threads = max(1, min(torch.get_num_threads(), items))
    if threads == 1:
        kernel(0, items, *args)
        return
    bounds = np.linspace(0, items, threads + 1).astype(int)
    jobs = [_pool(threads).submit(kernel, int(a), int(b), *args) for a, b in zip(bounds[:-1], bounds[1:])]
    for job in jobs:
        job.result()
