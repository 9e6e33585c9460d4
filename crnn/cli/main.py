"""The `crnn` command: parses arguments, calls flows or the library, prints. Nothing else."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import crnn
from crnn.cli.invocation import DEFAULT_CONFIG, crnn_for
from crnn.cli.models import add_registry_commands
from crnn.cli.ops import add_operations
from crnn.cli.services import check_services, flow_command, start_prefect
from crnn.cli.sweep import add_sweep_command
from crnn.errors import UserError, as_user_error
from crnn.interrupt import Interrupted

if TYPE_CHECKING:
    from flows.summaries import RunSummary, SkippedSummary

CONFIG_HELP = "pipelines file (default: ./pipelines.yaml or $CRNN_CONFIG)"


def command() -> None:
    """The `crnn` executable: :func:`main`, then exit with its status.

    The process ends right after the command, so what it made is frozen out of the garbage
    collection Python runs while it shuts down: with torch, MLflow and Prefect loaded, that
    collection kept a finished (or Ctrl-C'd) command alive about 3 s more on a 2-core machine,
    and 0.4 s with the freeze. Memory goes back to the system at exit either way."""
    status = main()
    gc.freeze()
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    from crnn.secrets import install

    install()  # nothing this process prints carries a password, key or token
    parser = build_parser()
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(given)
    try:
        result: int = args.handler(args)
        return result
    except Interrupted as stopped:  # Ctrl-C / SIGTERM, stopped at a safe point
        # Prefect drains its queued events at exit, with a "Still processing items" warning
        logging.getLogger("EventsWorker").setLevel(logging.ERROR)
        print(f"crnn: {stopped}{how_to_continue(args.command, given)}", file=sys.stderr)
        return stopped.exit_status
    except UserError as exc:
        print(f"crnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `crnn schema | head`: the reader left; nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141
    except Exception as exc:  # last: a full disk anywhere is a user's to fix, one line too
        told = as_user_error(exc)
        if told is None:
            raise
        print(f"crnn: error: {told}", file=sys.stderr)
        return 2


def how_to_continue(command: str, argv: list[str], argv0: str | None = None) -> str:
    """What continues the work of ``command`` (run with arguments ``argv``) that a signal
    stopped: the same command, with the same flags (a resume takes only the config the run
    started with), plus --resume for a run."""
    from crnn.cli.invocation import repeated

    if command == "run":
        return f"; continue with `{repeated(argv, '--resume', argv0=argv0)}`"
    if command == "score":
        return f"; the parts written are kept: `{repeated(argv, argv0=argv0)}` continues"
    if command == "sweep":
        return f"; `{repeated(argv, argv0=argv0)}` continues the study"
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crnn", description="Train, track, register and score CRNN pipelines."
    )
    parser.add_argument(
        "--config", default=os.environ.get("CRNN_CONFIG", DEFAULT_CONFIG), help=CONFIG_HELP
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {crnn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    add_run_command(sub)
    add_score_command(sub)
    add_join_command(sub)
    add_sweep_command(sub)

    lst = sub.add_parser("list", help="list pipelines and registered architectures")
    lst.set_defaults(handler=cmd_list)

    schema = sub.add_parser("schema", help="print the JSON Schema of pipelines.yaml")
    schema.add_argument("--output", "-o", help="write to this file instead of stdout")
    schema.set_defaults(handler=cmd_schema)
    add_operations(sub)  # deploy, serve, doctor: crnn/cli/ops.py
    add_registry_commands(sub)  # models, predict, ui, promote, rollback: crnn/cli/models.py
    for command in sub.choices.values():  # --config before or after the command
        command.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def add_run_command(sub: Any) -> None:
    run = sub.add_parser("run", help="preprocess -> train -> evaluate -> register one pipeline")
    run.add_argument("pipeline", nargs="?", help="pipeline name (default: default_pipeline)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the pipeline, e.g. --set training.epochs=1 (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print a machine-readable summary only")
    run.add_argument("--verbose", action="store_true", help="show Prefect's own log lines too")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of this same config from its last checkpoint",
    )
    run.add_argument(
        "--if-changed",
        action="store_true",
        help="train only when the data or the training config changed since the last version "
        "this pipeline registered (what scheduled runs do)",
    )
    run.add_argument(
        "--from-sweep",
        metavar="RUN_ID",
        help="train with a sweep's best values: its parent run id, or latest (the pipeline's "
        "newest finished sweep); --set still wins",
    )
    run.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="preprocess the chunks on a Dask cluster: tcp://HOST:PORT, or local:N for N worker "
        "processes here (default: CRNN_CLUSTER, else execution.cluster, else this process)",
    )
    run.set_defaults(handler=cmd_run)


def add_join_command(sub: Any) -> None:
    join = sub.add_parser(
        "join", help="train on this machine with a pipeline another machine is training"
    )
    join.add_argument("pipeline", nargs="?", help="pipeline name (default: default_pipeline)")
    join.add_argument(
        "--wait", type=float, default=600.0, help="seconds to wait for that run to start [600]"
    )
    join.set_defaults(handler=cmd_join)


def cmd_join(args: argparse.Namespace) -> int:
    """This machine's ranks of a `training.distributed` run: it reads the node spec the launching
    machine wrote in the shared workspace, which holds the rendezvous (crnn.distributed.join)."""
    from crnn.config import load_pipeline
    from crnn.workspace import resolve_workspace

    config_file, cfg = load_pipeline(args.config, args.pipeline, ())
    workspace = resolve_workspace(config_file.workspace, Path(args.config))
    from crnn.distributed import join

    return join(workspace.node_spec(cfg.name), args.wait)


def add_score_command(sub: Any) -> None:
    sc = sub.add_parser("score", help="score new data with a registered model (batch job)")
    sc.add_argument("model", help="NAME@ALIAS (e.g. crnn-digit-strings@champion) or NAME/VERSION")
    src = sc.add_mutually_exclusive_group()
    src.add_argument(
        "--input",
        help="new data in the model's source format (a folder or a table); "
        "default: the source's own data, for embedded sources",
    )
    src.add_argument("--shards", help="an existing shard set (its folder or manifest.json)")
    sc.add_argument("--out", required=True, help="output folder (Parquet parts; re-run resumes)")
    sc.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="rows per output part [a re-run: the job's own; else 4096]",
    )
    sc.add_argument("--batch-size", type=int, default=256)
    sc.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="score the parts on a Dask cluster: tcp://HOST:PORT, or local:N for N worker "
        "processes here (default: CRNN_CLUSTER, else this process)",
    )
    sc.add_argument(
        "--review-below",
        type=float,
        metavar="P",
        help="list the rows less confident than P (0..1) in OUT/_review.csv, least first",
    )
    sc.add_argument("--json", action="store_true", help="print a machine-readable summary only")
    sc.add_argument("--verbose", action="store_true", help="show Prefect's own log lines too")
    sc.set_defaults(handler=cmd_score)


def cmd_run(args: argparse.Namespace) -> int:
    from crnn.config import load_pipeline
    from crnn.workspace import resolve_workspace

    # validate before anything heavy starts: a bad config fails in milliseconds, in one line
    config_file, cfg = load_pipeline(args.config, args.pipeline, args.overrides)
    workspace = resolve_workspace(config_file.workspace, Path(args.config))
    if args.cluster:  # read where the work runs (crnn.cluster), above the config's own
        os.environ["CRNN_CLUSTER"] = args.cluster
    with flow_command(
        cfg, args.config, workspace.root, "retrain", args.json, args.verbose
    ) as retrain:
        summary = retrain(
            pipeline=cfg.name,
            config_path=str(args.config),
            overrides=list(args.overrides),
            progress=not args.json,
            resume=args.resume,
            if_changed=args.if_changed,
            from_sweep=args.from_sweep,
        )
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary, crnn_for(args.config))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from crnn import interrupt
    from crnn.cli.models import check_model_named, store_of
    from crnn.config import TrackingConfig

    # the project's store, or MLFLOW_TRACKING_URI outside a project (never a URI in flow params)
    uri, state = store_of(args)
    if args.review_below is not None and not 0.0 <= args.review_below <= 1.0:
        raise UserError(f"--review-below {args.review_below}: a probability, from 0 to 1")
    for given in (args.input, args.shards):
        if given and not Path(given).expanduser().exists():
            raise UserError(f"{given}: no such file or folder")
    check_model_named(uri, args.model)  # a typo in a local store: answered at once
    server = start_prefect(state, args.json)  # in the background, while the store is read
    ctx = check_services(TrackingConfig(tracking_uri=uri, experiment="scoring"), state)
    from crnn.cluster import cluster_address
    from crnn.inference.scoring import planned_chunk_rows
    from crnn.tracking.scoring import resolve_model

    resolve_model(ctx, args.model)  # a wrong name or alias fails now, before the flow
    from flows.runtime.local_prefect import local_flow_runs, quiet_user_errors
    from flows.score import score_flow

    if server is not None:
        server.join()

    quiet_user_errors(args.verbose)
    out = Path(args.out).expanduser().resolve()
    chunk_rows = planned_chunk_rows(out, args.chunk_rows)
    with local_flow_runs(), interrupt.graceful():  # Ctrl-C: stop after the part being written
        summary = score_flow(
            model=args.model,
            out=str(out),
            config_path=str(args.config),  # the store is resolved in the flow: no URI in params
            input_path=str(Path(args.input).expanduser()) if args.input else None,
            shards=args.shards,
            chunk_rows=chunk_rows,
            batch_size=args.batch_size,
            review_below=args.review_below,
            cluster=cluster_address(args.cluster),
        )
    print(json.dumps(summary, indent=2, default=str) if args.json else score_report(summary))
    return 0


def score_report(summary: dict[str, Any]) -> str:
    """A scoring job's summary for a person: counts, metrics against the truths the input gave,
    the review list, where the output is."""
    m = summary["model"]
    lines = [
        f"scored {summary['rows_scored']} of {summary['rows_in']} rows with {m['name']} version "
        f"{m['version']} ({summary['rows_per_s']:.0f} rows/s; {summary['chunks_skipped']} parts "
        f"already done); quarantined {summary['rows_quarantined']} "
        f"{summary['quarantined_by_reason'] or ''}".rstrip()
    ]
    truth = dict(summary.get("against_truth") or {})
    if truth:
        rows = int(truth.pop("rows"))
        shown = ", ".join(f"{k} {v:.4f}" for k, v in truth.items())
        lines.append(f"against the {rows} given transcriptions/labels: {shown}")
    if summary.get("review_file"):
        lines.append(f"{summary['rows_for_review']} rows to review: {summary['review_file']}")
    if summary.get("drift"):
        from crnn.monitoring import drift_line

        lines.append(drift_line(summary["drift"]))
    lines.append(
        f"output: {summary['output']}  mlflow run: {summary['mlflow_run_id']} (experiment scoring)"
    )
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from crnn.config import load_config
    from crnn.models import ARCHITECTURES

    config = load_config(args.config)
    print("pipelines:")
    for name, p in config.pipelines.items():
        mark = "*" if name == config.default_pipeline else " "
        print(f" {mark} {name:<18} {p.data.source:<14} {p.model.head:<15} {p.description}")
    print("architectures:")
    for name in ARCHITECTURES.names():
        print(f"   {name:<18} {ARCHITECTURES.get(name).description}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from crnn.config import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def number(value: float) -> str:
    """A count as an integer, anything else to four decimals."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4f}"


def print_summary(summary: RunSummary | SkippedSummary, crnn: str = "crnn") -> None:
    """The run's summary table; ``crnn``: the command the UI hint starts with (:func:`crnn_for`:
    after `make run`, `crnn` is not on PATH)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if "skipped" in summary:
        console.print(f"pipeline {summary['pipeline']}: {summary['reason']}")
        return
    table = Table(title=f"pipeline {summary['pipeline']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    shards = summary["shards"]
    reuse = "reused (cache hit)" if shards["reused"] else "built"
    bad = shards.get("quarantined", 0)
    why = ", ".join(f"{k} {v}" for k, v in shards.get("quarantined_by_reason", {}).items())
    table.add_row("shards", f"{shards['digest'][:16]}  {reuse}; {bad} quarantined {why}".strip())
    t = summary["training"]
    table.add_row("training", f"{t['epochs_run']} epochs, best {t['best_epoch']}, {t['seconds']} s")
    for key, value in summary["metrics"].items():
        table.add_row(key, number(value))
    side = summary.get("baseline")
    if side:  # the model beside the classical baseline fit in the same run
        gain = side["model"] - side["baseline"]
        table.add_row(
            "vs baseline",
            f"{side['metric']}: model {side['model']:.4f}, {side['name']} baseline "
            f"{side['baseline']:.4f} ({gain:+.4f})",
        )
    reg = summary["registry"]
    table.add_row("model", f"{reg['model_name']} version {reg['version']} (challenger)")
    table.add_row("gate", f"{reg['decision']} ({reg['reason']})")
    table.add_row("champion", f"version {reg['champion_version']}")
    ml = summary["mlflow"]
    resumed = " (resumed)" if ml.get("resumed") else ""
    table.add_row("mlflow run", f"{ml['run_id']} in experiment {ml['experiment']}{resumed}")
    table.add_row("workspace", summary["workspace"])
    console.print(table)
    ui = ml["ui"]
    if ui.startswith("crnn ui"):  # a local store, served by `crnn ui`: as this user starts it
        ui = f"{crnn} ui{ui.removeprefix('crnn ui')}"
    console.print(f"Open the MLflow UI: [bold]{escape(ui)}[/bold]", soft_wrap=True)  # one line
