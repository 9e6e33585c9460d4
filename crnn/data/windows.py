"""Where loader windows live and how loader workers start: shared memory for a window built in a
worker, pinned memory for asynchronous copies to a GPU, Arrow's pool otherwise; fork where safe."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import torch


def window_tensor(
    shape: tuple[int, ...], dtype: torch.dtype, shared: bool, pinned: bool
) -> torch.Tensor:
    if shared:  # what torch's default collate does in workers
        storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape)  # type: ignore[call-overload]
    if pinned and torch.cuda.is_available():
        return torch.empty(shape, dtype=dtype, pin_memory=True)  # torch caches pinned blocks
    # Arrow's pool (jemalloc / mimalloc) keeps freed windows for the next one; a fresh malloc of
    # this size would be a new mmap each time, every page faulted in again
    nbytes = math.prod(shape) * dtype.itemsize
    array = np.frombuffer(pa.allocate_buffer(nbytes), dtype=np.uint8)
    return torch.from_numpy(array).view(dtype).view(shape)


def worker_context() -> Any:
    """How loader workers start. fork is fastest, but forking a process that runs other threads
    (Prefect's server, MLflow's async logging) can deadlock a child; then forkserver, with the
    loader preloaded so a worker does not import torch again. (Like any non-fork start,
    forkserver runs the main script again in each worker: a script needs
    ``if __name__ == "__main__":``.)"""
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["crnn.data.loader"])
        return ctx
    return multiprocessing.get_context("spawn")
