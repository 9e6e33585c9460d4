"""What a command that runs a flow checks and starts first: the data, the Prefect API it runs
on, the tracking store; each fails in one line before any work starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def check_data(cfg: Any, config: str, quick: bool = False) -> None:
    """The pipeline's data is there and readable, or one line naming it. ``quick``: only what
    can be said without reading it or importing a reader (milliseconds)."""
    from crnn.data.files import check_path_now
    from crnn.errors import DataError

    try:
        check_path_now(cfg.data)
        if not quick:
            from crnn.data.catalog import check_source

            check_source(cfg.data)
    except DataError as exc:
        raise DataError(
            f"pipeline {cfg.name!r}: {exc} (in {config} or with --set data.path=DIR)"
        ) from None


def start_prefect(workspace: Path, quiet: bool) -> Any:
    """The Prefect this command runs on: PREFECT_API_URL when set; else the workspace's
    `crnn server` when it answers (said in one line unless ``quiet``); else Prefect's temporary
    local server, started now in the background (the thread to join before the first flow)."""
    from flows.runtime.kept_server import use_service
    from flows.runtime.local_prefect import prepare_local_prefect, start_temporary_server

    service = use_service(workspace)
    if service is not None:
        if not quiet:
            print(f"Prefect: the local server at {service.ui_url} (crnn server stop stops it)")
        return None
    prepare_local_prefect(workspace)
    return start_temporary_server()


def check_services(tracking: Any, workspace: Path) -> Any:
    """Fail in one line, before any work, when the Prefect API (if one is configured) or the
    tracking store does not answer (both tried by the one retry policy); the store's context."""
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        from flows.runtime.server_process import require_api

        require_api(api_url)
    from crnn.tracking import open_tracking

    return open_tracking(tracking, workspace)


@contextmanager
def flow_command(
    cfg: Any, config: str, workspace: Path, flow: str, quiet: bool, verbose: bool
) -> Iterator[Any]:
    """The start of a command that runs the flow ``flows.<flow>.<flow>`` (given to the body):
    Prefect starting in the background while the data and the tracking store are checked (each
    failing in one line before any work) and the flow imported; Prefect's console quiet unless
    ``verbose``; Ctrl-C and SIGTERM taken at the flow's safe points."""
    from importlib import import_module

    from crnn import interrupt

    check_data(cfg, config, quick=True)  # an unset or empty data.path: said at once
    server = start_prefect(workspace, quiet)  # it takes seconds: it starts first
    check_data(cfg, config)
    from flows.runtime.local_prefect import local_flow_runs, quiet_user_errors

    check_services(cfg.tracking, workspace)
    run_flow = getattr(import_module(f"flows.{flow}"), flow)
    quiet_user_errors(verbose)  # after the flow's import: its loggers' handlers get the filters
    if server is not None:
        server.join()
    with local_flow_runs(), interrupt.graceful():
        yield run_flow
