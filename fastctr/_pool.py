"""Shared worker threads for the kernels that release the GIL (Hogwild learning, batch
scoring)."""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor


@functools.cache
def thread_pool(n_jobs: int) -> ThreadPoolExecutor:
    """One shared pool of ``n_jobs`` threads per size, created on first use."""
    return ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="fastctr")
