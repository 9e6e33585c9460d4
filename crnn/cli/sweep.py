"""`crnn sweep`: a hyperparameter sweep of one pipeline (its ``sweep:`` block), and its summary."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.summaries import SweepSummary


def add_sweep_command(sub: Any) -> None:
    sw = sub.add_parser(
        "sweep",
        help="tune one pipeline: trials of its sweep: space, the best through the gate",
    )
    sw.add_argument("pipeline", nargs="?", help="pipeline name (default: default_pipeline)")
    sw.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the pipeline (sweep.* too), e.g. --set sweep.trials=4",
    )
    sw.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the trials (and preprocessing) as tasks on a Dask cluster: tcp://HOST:PORT, or "
        "local:N for N worker processes here (default: CRNN_CLUSTER, else execution.cluster, "
        "else processes here); the workers need the workspace (README: Sweeps)",
    )
    sw.add_argument("--json", action="store_true", help="print a machine-readable summary only")
    sw.add_argument("--verbose", action="store_true", help="show Prefect's own log lines too")
    sw.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from crnn.cli.services import flow_command
    from crnn.config import load_pipeline
    from crnn.errors import UserError
    from crnn.workspace import resolve_workspace

    config_file, cfg = load_pipeline(args.config, args.pipeline, args.overrides)
    if cfg.sweep is None:
        raise UserError(
            f"pipeline {cfg.name!r} has no sweep: block in {args.config}; add one (README: Sweeps)"
        )
    workspace = resolve_workspace(config_file.workspace, Path(args.config))
    if args.cluster:  # read where the work runs (crnn.cluster), above the config's own
        os.environ["CRNN_CLUSTER"] = args.cluster
    with flow_command(cfg, args.config, workspace.root, "sweep", args.json, args.verbose) as sweep:
        summary = sweep(
            pipeline=cfg.name,
            config_path=str(args.config),
            overrides=list(args.overrides),
            progress=not args.json,
        )
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        from crnn.cli.invocation import crnn_for

        print_sweep(summary, crnn_for(args.config))
    return 0


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _headers(paths: list[str]) -> list[str]:
    """Each dot path's last key where no other path ends the same (the title names the rest)."""
    leaves = [p.rsplit(".", 1)[-1] for p in paths]
    return [leaf if leaves.count(leaf) == 1 else p for p, leaf in zip(paths, leaves, strict=True)]


def print_sweep(summary: SweepSummary, crnn: str = "crnn") -> None:
    """The top trials, the gain over the pipeline as it is, what the gate said; ``crnn``: the
    command the closing hint starts with (:func:`crnn.cli.invocation.crnn_for`)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console, metric = Console(), summary["metric"]
    best, default = summary["best"], summary["default"]
    assert best is not None  # a sweep without a complete trial ends in one line before this
    paths = list(best["params"])
    title = f"sweep {summary['study']}: top trials by {metric}"
    table = Table(title=title, title_justify="left")
    for column in ("trial", metric, *_headers(paths), "epochs", "s"):
        # a row is one line in 80 columns: the trial's mark ("(default)") never wraps, a long
        # header folds instead of losing its end
        table.add_column(column, justify="right", no_wrap=column == "trial", overflow="fold")
    for row in summary["top"]:
        mark = " *" if row["trial"] == best["trial"] else " (default)" if row["default"] else ""
        cells = [f"{row['trial']}{mark}", f"{row['value']:.4f}"]
        cells += [_value(row["params"].get(p)) for p in paths]
        table.add_row(*cells, str(row["epochs"]), str(row["seconds"]))
    console.print(table)
    counts = (
        f"{summary['trials_complete']} complete, {summary['trials_pruned']} pruned, "
        f"{summary['trials_failed']} failed"
    )
    console.print(f"trials: {counts}; {summary['trials_lost_and_rerun']} lost and run again")
    if default is not None:
        console.print(
            f"best trial {best['trial']}: {metric} {best['value']:.4f} against "
            f"{default['value']:.4f} for the pipeline as it is (gain {summary['gain']:+.4f})"
        )
    reg = summary.get("registry", {})
    if "already" in reg:
        console.print(f"model: {reg['already']} (registered by this sweep before)")
    else:
        console.print(
            f"model: {reg['model_name']} version {reg['version']} (challenger); gate: "
            f"{reg['decision']} ({reg['reason']})"
        )
    ml = summary["mlflow"]
    console.print(f"mlflow parent run: {ml['parent_run_id']} in experiment {ml['experiment']}")
    console.print(
        f"train with these values: {escape(crnn)} run {summary['pipeline']} --from-sweep "
        f"{ml['parent_run_id']}",
        soft_wrap=True,  # one line, to copy
    )
