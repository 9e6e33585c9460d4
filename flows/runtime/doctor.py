"""`crnn doctor`: is this machine ready to run the pipelines? Each check says ok, warn or fail,
and a failing one says in one line what to do.

It changes nothing the pipelines own (``--fix`` marks runs whose process died FAILED, which
the next `crnn run` would do too): the tracking check writes one small artifact into a run of
its own experiment (``crnn-doctor``), reads it back and deletes that run and the experiment, which
the UI then does not list; the rest only reads.
Remote checks use the one retry policy (:mod:`crnn.retry`), so a dead URL costs seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crnn.errors import UserError
from crnn.secrets import redact
from crnn.types.records import Check

MIN_FREE_GIB, LOW_FREE_GIB = 1.0, 10.0
# a worker is live while its last heartbeat is within this many of its heartbeat intervals
# (Prefect's own rule for marking one OFFLINE): a SIGKILLed worker's old heartbeats do not count
LIVE_HEARTBEATS = 3
DEFAULT_HEARTBEAT_S = 30  # Prefect's PREFECT_WORKER_HEARTBEAT_SECONDS


def run_checks(config_path: Path, pool: str, fix: bool = False) -> list[Check]:
    """Every check; ``fix``: also mark runs left RUNNING by dead processes FAILED."""
    checks: list[Check] = []
    config = _check_config(config_path, checks)
    if config is not None:
        from crnn.tracking.health import check_tracking

        workspace, tracking = config
        checks += check_tracking(tracking, workspace)
        if checks[-1].status != "fail":
            checks.append(_check_dead_runs(tracking, workspace, fix))
        checks.append(_check_disk(workspace))
    checks += _check_prefect(pool)
    checks.append(_check_gpu())
    return checks + _check_clusters(config_path)


def _check_clusters(config_path: Path) -> list[Check]:
    """The cluster CRNN_CLUSTER names, else those the pipelines' execution.cluster name."""
    from crnn.cluster import check_cluster, cluster_address

    address = cluster_address(None)
    if address is None:
        from crnn.config import load_config

        try:
            pipelines = load_config(config_path).pipelines.values()
        except UserError:
            return []  # the config check says why
        named = {p.execution.cluster for p in pipelines if p.execution.cluster}
        return [check_cluster(a) for a in sorted(named)]
    return [check_cluster(address)]


def _check_config(path: Path, checks: list[Check]) -> tuple[Path, Any] | None:
    from crnn.config import load_config, load_pipeline
    from crnn.workspace import resolve_workspace

    try:
        config = load_config(path)
        _, default = load_pipeline(path)
    except UserError as exc:
        checks.append(Check("config", "fail", str(exc), "fix the file; `crnn schema` has the keys"))
        return None
    workspace = resolve_workspace(config.workspace, path).root
    scheduled = sum(p.schedule is not None for p in config.pipelines.values())
    detail = (
        f"{path}: {len(config.pipelines)} pipelines ({scheduled} scheduled), workspace {workspace}"
    )
    checks.append(Check("config", "ok", detail))
    return workspace, default.tracking


def _check_dead_runs(tracking: Any, workspace: Path, fix: bool) -> Check:
    """Runs of the store left RUNNING by a process gone from this host (live processes and
    other hosts' runs are never touched); ``fix`` marks them FAILED, with the reason."""
    from crnn.tracking import TrackingContext
    from crnn.tracking.liveness import dead_runs, reap_dead_runs
    from crnn.tracking.uri import resolve_tracking_uri

    ctx = TrackingContext(resolve_tracking_uri(tracking, workspace), "", "")  # creates nothing
    ids = [e.experiment_id for e in ctx.client().search_experiments(max_results=1000)]
    runs_root = workspace / "runs"
    if fix:
        fixed = reap_dead_runs(ctx, ids, runs_root)
        if fixed and os.environ.get("PREFECT_API_URL"):  # (locally: the next `crnn run`)
            from flows.runtime.local_prefect import crash_flow_runs

            with contextlib.suppress(Exception):  # a Prefect API that does not answer: MLflow
                crash_flow_runs(fixed)
        return Check("dead runs", "ok", f"marked {len(fixed)} run(s) FAILED" if fixed else "none")
    found = dead_runs(ctx, ids, runs_root)
    if not found:
        return Check("dead runs", "ok", "no run left RUNNING by a dead process on this host")
    shown = "; ".join(f"{r.run_id}: {r.reason}" for r in found[:3])
    return Check("dead runs", "warn", shown, "crnn doctor --fix marks them FAILED")


def _check_prefect(pool: str) -> list[Check]:
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        return [
            Check(
                "prefect",
                "ok",
                "no PREFECT_API_URL: flows run on this machine (a temporary local server); "
                "schedules need `crnn serve` or a server",
            )
        ]
    from flows.runtime.server_process import require_api

    try:
        require_api(api_url)
    except UserError as exc:
        return [Check("prefect", "fail", str(exc), "start the server or fix PREFECT_API_URL")]
    return [Check("prefect", "ok", f"{redact(api_url)} answers"), _check_pool(pool)]


def _check_pool(pool: str) -> Check:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            return Check(
                "work pool", "fail", f"no work pool {pool!r}", f"`crnn deploy --pool {pool}`"
            )
        workers = client.read_workers_for_work_pool(pool)
    now = datetime.now(UTC)
    alive = [w for w in workers if is_live(w, now)]
    if not alive:
        seen = f" ({len(workers)} seen before, none live now)" if workers else ""
        return Check(
            "work pool",
            "fail",
            f"{pool!r} exists, but no live worker polls it{seen}",
            f"start one where the project is: prefect worker start --pool {pool}",
        )
    return Check("work pool", "ok", f"{pool!r}: {len(alive)} live worker(s)")


def is_live(worker: Any, now: datetime) -> bool:
    """A heartbeat within :data:`LIVE_HEARTBEATS` of the worker's own interval, and not marked
    offline by the server."""
    interval = worker.heartbeat_interval_seconds or DEFAULT_HEARTBEAT_S
    last = worker.last_heartbeat_time
    fresh = last is not None and now - last < timedelta(seconds=LIVE_HEARTBEATS * interval)
    return fresh and str(getattr(worker.status, "value", worker.status)).upper() != "OFFLINE"


def _check_gpu() -> Check:
    import torch

    if not torch.cuda.is_available():
        return Check("gpu", "warn", "no CUDA device: training runs on the CPU", "")
    name = torch.cuda.get_device_name(0)
    bf16 = torch.cuda.is_bf16_supported()
    cudnn = torch.backends.cudnn.version()
    detail = f"{torch.cuda.device_count()} x {name}; bf16 {'yes' if bf16 else 'no'}; cuDNN {cudnn}"
    return Check("gpu", "ok", detail)


def _check_disk(workspace: Path) -> Check:
    free = shutil.disk_usage(workspace).free / 2**30
    detail = f"{free:.1f} GiB free in {workspace}"
    if free < MIN_FREE_GIB:
        return Check("disk", "fail", detail, "free space or set CRNN_WORKSPACE to a bigger disk")
    if free < LOW_FREE_GIB:
        return Check("disk", "warn", detail, "shards and checkpoints may not fit")
    return Check("disk", "ok", detail)


def as_json(checks: list[Check]) -> list[dict[str, str]]:
    return [asdict(c) for c in checks]
