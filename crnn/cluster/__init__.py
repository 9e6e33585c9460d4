"""Work fanned out over a Dask cluster: ``--cluster ADDRESS`` (or ``CRNN_CLUSTER``).

``ADDRESS`` is a running scheduler (``tcp://HOST:8786``), or ``local:N`` for a
``distributed.LocalCluster`` of N worker processes on this machine, started and stopped with the
job. :func:`connect` yields a mapper: ``mapper(fn, items)`` runs ``fn`` on every item on the
workers and yields the results in the items' order, with a bounded number in flight, so the
memory of the job stays that of a few items. A worker that dies takes its running tasks with it;
the scheduler runs them again on another worker, so the work handed out must be idempotent (a
scoring part is written atomically under its planned name).

What the workers need: this package and its dependencies at the same versions (``crnn doctor``
checks), and the paths the job names (the input, the output folder, the model file it keeps
there) at the same place: a shared file system, or ``s3://`` through the workspace's settings.

Dask is an optional extra (``pip install 'crnn-pipelines[dask]'``); nothing here is imported
unless a cluster is asked for.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from crnn.errors import UserError
from crnn.types.records import Check

ENV = "CRNN_CLUSTER"
CONNECT_SECONDS = 10
LOCAL = re.compile(r"local:(\d+)")


def cluster_address(given: str | None) -> str | None:
    """The cluster a command uses: ``--cluster``, else ``CRNN_CLUSTER``, else none."""
    return given or os.environ.get(ENV) or None


@contextmanager
def connect(address: str) -> Iterator[DaskMapper]:
    """A mapper over the cluster at ``address`` (see the module docstring); one line when it
    cannot be reached within :data:`CONNECT_SECONDS` or is not an address."""
    with session(address) as client:
        yield DaskMapper(client)


@contextmanager
def session(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster at ``address`` (``local:N``: started here and
    stopped after); one line when it cannot be reached or is not an address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError(
            f"--cluster {address}: Dask is not installed; pip install 'crnn-pipelines[dask]'"
        ) from None
    local = LOCAL.fullmatch(address)
    cluster = None
    try:
        if local:
            workers = int(local.group(1))
            if workers < 1:
                raise UserError(f"--cluster {address}: local:N needs at least one worker")
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            client = Client(cluster)
        else:
            client = _client(address)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _client(address: str) -> Any:
    from distributed import Client

    if "://" not in address and ":" not in address:
        raise UserError(
            f"--cluster {address}: not a scheduler address; give tcp://HOST:PORT or local:N"
        )
    try:
        return Client(address, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(
            f"--cluster {address}: no Dask scheduler answered within {CONNECT_SECONDS} s "
            f"({reason}); start one (dask scheduler) or check the address / {ENV}"
        ) from None


class DaskMapper:
    """``fn`` over ``items`` on the workers of ``client``, results in order, at most
    ``window`` tasks in flight (default: two per worker thread)."""

    def __init__(self, client: Any, window: int | None = None) -> None:
        self.client = client
        threads = sum(client.nthreads().values()) or 1
        self.window = window or 2 * threads

    def __call__(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(self.client.submit(fn, item, pure=False))
                if len(pending) >= self.window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, an interrupt): nothing left running for this job
            if pending:
                self.client.cancel(list(pending))


def versions() -> dict[str, str]:
    """What a process runs that must match across the cluster: the package and what it reads
    and computes with."""
    import platform

    import numpy
    import pyarrow
    import torch

    import crnn

    return {
        "crnn-pipelines": crnn.__version__,
        "torch": torch.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def check_cluster(address: str) -> Check:
    """`crnn doctor`'s verdict on the cluster at ``address``: reachable, how many workers, and
    whether each runs the versions this machine runs."""
    if LOCAL.fullmatch(address):
        return Check("cluster", "ok", f"{address}: worker processes started here for each job")
    try:
        client = _client(address)
    except UserError as exc:
        return Check("cluster", "fail", str(exc), "start the scheduler or fix the address")
    with client:
        theirs: dict[str, dict[str, str]] = client.run(versions)
    if not theirs:
        return Check(
            "cluster", "fail", f"{address}: no worker", "start workers: dask worker ADDRESS"
        )
    mine = versions()
    differ = sorted(
        f"{worker}: {name} {value} (here {mine[name]})"
        for worker, found in theirs.items()
        for name, value in found.items()
        if mine.get(name) != value
    )
    if differ:
        return Check(
            "cluster", "fail", f"{address}: {'; '.join(differ[:3])}", "install the same versions"
        )
    return Check(
        "cluster", "ok", f"{address}: {len(theirs)} worker(s), versions match this machine"
    )
