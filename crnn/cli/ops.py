"""The `crnn` commands that operate beyond one run: `deploy` (schedules to a Prefect server),
`serve` (schedules on this machine), `server` (a local Prefect server kept between commands)
and `doctor` (is everything reachable). Parsing and printing
only; the work is in flows/."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from crnn.errors import UserError


def add_operations(sub: Any) -> None:
    deploy = sub.add_parser(
        "deploy", help="create or update Prefect deployments of the schedules in pipelines.yaml"
    )
    deploy.add_argument(
        "--pool", default="crnn", help="process work pool the runs go to (created if missing)"
    )
    deploy.add_argument(
        "--workdir",
        help="folder the worker starts runs in, with the project laid out as here "
        "(default: the pipelines file's folder)",
    )
    deploy.add_argument("--dry-run", action="store_true", help="print the deployments only")
    deploy.add_argument("--json", action="store_true", help="machine-readable output")
    deploy.set_defaults(handler=cmd_deploy)

    serve = sub.add_parser(
        "serve", help="run the schedules of pipelines.yaml in this process (no Prefect server)"
    )
    serve.add_argument(
        "--port", type=int, default=4200, help="port of the local Prefect server [4200]"
    )
    serve.add_argument(
        "--keep-schedules",
        action="store_true",
        help="leave the schedules active on the server when stopping (default: paused)",
    )
    serve.set_defaults(handler=cmd_serve)

    server = sub.add_parser(
        "server", help="a local Prefect server kept between commands (start, stop, status)"
    )
    server.add_argument("action", choices=["start", "stop", "status"])
    server.add_argument("--port", type=int, default=4200, help="its port on 127.0.0.1 [4200]")
    server.add_argument("--json", action="store_true", help="machine-readable output")
    server.set_defaults(handler=cmd_server)

    doctor = sub.add_parser(
        "doctor", help="check the config, tracking server, Prefect API, GPU and disk"
    )
    doctor.add_argument("--pool", default="crnn", help="work pool whose workers to look for")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="mark runs left RUNNING by a process that died on this host FAILED",
    )
    doctor.set_defaults(handler=cmd_doctor)


def cmd_deploy(args: argparse.Namespace) -> int:
    from crnn.config import load_config
    from flows.runtime.deployment_plan import describe, plan

    config = load_config(args.config)
    base = Path(args.config).resolve().parent
    # paths in the deployments are relative to the pipelines file's folder; runs start in
    # --workdir, where the worker has the project laid out the same way (default: that folder)
    workdir = Path(args.workdir).expanduser().resolve() if args.workdir else base
    planned = plan(config, Path(args.config), base)
    if args.dry_run:
        if args.json:
            doc = {
                "work_pool": args.pool,
                "workdir": str(workdir),
                "deployments": [p.to_dict() for p in planned],
            }
            print(json.dumps(doc, indent=2))
        else:
            print(f"{len(planned)} deployment(s) for work pool {args.pool!r}, runs in {workdir}:")
            print(describe(planned))
        return 0
    from flows.runtime.deployments import apply

    changes = apply(planned, args.pool, workdir)
    if args.json:
        print(json.dumps([c.__dict__ for c in changes], indent=2))
        return 0
    for change in changes:
        print(change)
    print(f"runs start when a worker polls the pool: prefect worker start --pool {args.pool}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from crnn.config import load_config
    from crnn.workspace import resolve_workspace
    from flows.runtime.deployment_plan import plan

    config = load_config(args.config)
    workspace = resolve_workspace(config.workspace, Path(args.config))
    planned = plan(config, Path(args.config))
    if not planned:
        raise UserError(
            f"{args.config}: no schedules to serve; add `schedule:` or `scoring:` to a pipeline "
            "(README: Scheduled retraining)"
        )
    from flows.runtime.kept_server import home_of, use_service
    from flows.runtime.serve_schedules import serve_schedules

    use_service(workspace.root)  # a running `crnn server` keeps the schedules
    os.environ.setdefault("PREFECT_HOME", str(home_of(workspace.root)))
    served = serve_schedules(
        planned, workspace.root, args.port, pause_on_shutdown=not args.keep_schedules
    )
    print(served.goodbye())
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from crnn.config import load_config
    from crnn.workspace import resolve_workspace
    from flows.runtime.kept_server import (
        LOG_FILE,
        Service,
        home_of,
        read_service,
        start_service,
        stop_service,
    )

    root = resolve_workspace(load_config(args.config).workspace, Path(args.config)).root
    service: Service | None
    if args.action == "start":
        service, started = start_service(root, args.port)
        verb = "started" if started else "already running"
    elif args.action == "stop":
        stopped = stop_service(root)
        service, verb = stopped, "stopped" if stopped else "not running"
    else:
        service = read_service(root)
        verb = "running" if service else "not running"
    if args.json:
        doc: dict[str, Any] = {"state": verb, "home": str(home_of(root))}
        if service is not None:
            doc |= {"pid": service.pid, "api_url": service.api_url, "started": service.started}
        print(json.dumps(doc, indent=2))
        return 0
    if service is None:
        print(f"crnn server: {verb}")
    else:
        print(
            f"crnn server: {verb}: Prefect at {service.ui_url} (pid {service.pid}, since "
            f"{service.started}); log in {home_of(root) / LOG_FILE}"
        )
    if verb in ("started", "already running"):
        print("crnn run, score and serve in this workspace use it until `crnn server stop`")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from flows.runtime.doctor import as_json, run_checks

    checks = run_checks(Path(args.config), args.pool, args.fix)
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": as_json(checks)}, indent=2))
        return 1 if failed else 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="crnn doctor", title_justify="left")
    for column in ("check", "status", "detail", "what to do"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for c in checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.detail, c.fix)
    Console().print(table)
    return 1 if failed else 0
