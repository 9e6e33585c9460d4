"""The `crnn` commands on registered models: `models` (what is registered, aliases, scores),
`predict` (a quick prediction on a few files), `ui` (the MLflow UI on this store), `promote` and
`rollback`. They work in a project (its store) or anywhere given a tracking URI (``--tracking-uri``
or MLFLOW_TRACKING_URI). Parsing and printing only; the work is in crnn.tracking."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from crnn.errors import UserError

TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the project's store)"
# MLflow's server imports a module Starlette deprecated: a warning from each of its worker
# processes that no user of `crnn ui` can act on. That one only (message, module)
UI_WARNINGS = "ignore:starlette.middleware.wsgi is deprecated::mlflow.server.fastapi_app"


def add_registry_commands(sub: Any) -> None:
    models = sub.add_parser("models", help="registered models: versions, aliases, gate scores")
    models.add_argument("name", nargs="?", help="one registered model (default: all)")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=cmd_models)

    predict = sub.add_parser("predict", help="predict a few files with a registered model")
    predict.add_argument("model", help="NAME@ALIAS (e.g. crnn-digit-strings@champion) or NAME/N")
    predict.add_argument(
        "files",
        nargs="*",
        help="image, WAV or text files (a text per line), folders of them, or - for texts on "
        "stdin (a text model)",
    )
    predict.add_argument(
        "--text", action="append", default=[], help="a text to classify (a text model; repeatable)"
    )
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.set_defaults(handler=cmd_predict)

    ui = sub.add_parser("ui", help="open the MLflow UI on this project's store")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 [5000]")
    ui.set_defaults(handler=cmd_ui)

    promote = sub.add_parser("promote", help="make a registered model version the champion")
    promote.add_argument("name", help="registered model, e.g. crnn-digit-strings")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why (recorded with who and when)")
    promote.set_defaults(handler=cmd_promote)

    rollback = sub.add_parser("rollback", help="move champion back to the version it replaced")
    rollback.add_argument("name", help="registered model, e.g. crnn-digit-strings")
    rollback.add_argument("--reason", required=True, help="why (recorded with who and when)")
    rollback.set_defaults(handler=cmd_rollback)

    for command in (models, predict, ui, promote, rollback):
        command.add_argument("--tracking-uri", help=TRACKING_HELP)


def store_of(args: argparse.Namespace) -> tuple[str, Path]:
    """(tracking URI, local state folder) for a command on registered models: ``--tracking-uri``,
    else the project's (MLFLOW_TRACKING_URI wins there), else MLFLOW_TRACKING_URI outside one."""
    from crnn.tracking.uri import resolve_tracking_uri

    given = getattr(args, "tracking_uri", None)
    if Path(args.config).is_file():
        from crnn.config import load_pipeline
        from crnn.workspace import resolve_workspace

        config_file, cfg = load_pipeline(args.config, None, ())
        workspace = resolve_workspace(config_file.workspace, Path(args.config)).root
        return given or resolve_tracking_uri(cfg.tracking, workspace), workspace
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise UserError(
            f"no {args.config} here and no tracking URI: run in the project folder, pass "
            "--config PATH or --tracking-uri URI, or set MLFLOW_TRACKING_URI"
        )
    from crnn.workspace import state_outside_a_project

    return uri, state_outside_a_project()


def registry_context(args: argparse.Namespace, experiment: str | None = None) -> Any:
    from crnn.config import TrackingConfig
    from crnn.tracking import open_tracking

    uri, workspace = store_of(args)
    # registry commands need no experiment of their own: MLflow's Default is in every store
    cfg = TrackingConfig(tracking_uri=uri, experiment=experiment or "Default")
    return open_tracking(cfg, workspace, uri)


def cmd_models(args: argparse.Namespace) -> int:
    from crnn.tracking.registry import describe_models

    models = describe_models(registry_context(args), args.name)
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("no registered models yet: `crnn run` trains and registers one")
    for m in models:
        aliases = ", ".join(f"{a}: {v}" for a, v in m["aliases"].items()) or "no aliases"
        print(f"{m['name']}  ({len(m['versions'])} versions; {aliases})")
        for v in m["versions"]:
            score = "" if v["score"] is None else f"{v['metric']} {v['score']:.4f}"
            names = ",".join(v["aliases"]) or "-"
            print(f"  v{v['version']:<4} {names:<20} {score:<34} {v['decision']:<9} {v['created']}")
    return 0


def check_model_named(uri: str, spec: str) -> None:
    """A name or alias a local store lacks fails now, before MLflow is imported (well under a
    second); anything else is left to MLflow."""
    from crnn.tracking.model_ref import absent_from_local_store

    why = absent_from_local_store(uri, spec)
    if why is not None:
        raise UserError(why)


def cmd_predict(args: argparse.Namespace) -> int:
    missing = [f for f in args.files if f != "-" and not Path(f).expanduser().exists()]
    if missing:
        raise UserError(f"{missing[0]}: no such file or folder")
    if not args.files and not args.text:
        raise UserError("nothing to predict: give files, folders, - (texts on stdin) or --text")
    check_model_named(store_of(args)[0], args.model)
    from crnn.inference.predictor import Predictor
    from crnn.tracking.scoring import download_checkpoint, resolve_model

    ctx = registry_context(args)
    ref = resolve_model(ctx, args.model)
    with tempfile.TemporaryDirectory(prefix="crnn-predict-") as tmp:
        predictor = Predictor.from_checkpoint(download_checkpoint(ctx, ref, Path(tmp)), "auto")
    names, model_input = predict_inputs(args, str(predictor.source.get("source")), predictor)
    preds = predictor.predict_input(model_input)
    rows = [
        {"input": n, "prediction": p, "confidence": float(c)}
        for n, p, c in zip(names, preds.outputs, preds.confidence, strict=True)
    ]
    for row, chars in zip(rows, preds.char_confidence or [], strict=False):
        row["char_confidence"] = [round(c, 4) for c in chars]  # a line model's, per character
    if args.json:
        print(json.dumps({"model": f"{ref.name}/{ref.version}", "predictions": rows}, indent=2))
        return 0
    for r in rows:
        confidence = "" if r["confidence"] != r["confidence"] else f"\t{r['confidence']:.3f}"
        print(f"{r['input']}\t{predictor.task.show(r['prediction'])}{confidence}")
    return 0


def predict_inputs(args: argparse.Namespace, source: str, predictor: Any) -> tuple[list[str], Any]:
    """(a name per input, what the model takes) from ``crnn predict``'s files, folders, stdin
    and ``--text``: texts only for a text model, said in one line otherwise."""
    from crnn.data.raw import expand_folders, files_input, reads_text

    texts = [(f"text {k}", t) for k, t in enumerate(args.text, 1)]
    if "-" in args.files:
        lines = sys.stdin.read().splitlines()
        texts += [(f"stdin:{k}", t) for k, t in enumerate(lines, 1) if t.strip()]
    if texts and not reads_text(source):
        raise UserError(f"{args.model} does not read texts: give it files or folders")
    paths = [Path(f).expanduser() for f in args.files if f != "-"]
    files = expand_folders(source, paths, predictor.image_model)
    if paths and not files:
        raise UserError(f"{paths[0]}: holds no file {args.model} reads")
    names, model_input = files_input(source, files, predictor.image_model) if files else ([], [])
    if texts:  # a text model takes a list of strings
        return names + [n for n, _ in texts], list(model_input) + [t for _, t in texts]
    return names, model_input


def cmd_ui(args: argparse.Namespace) -> int:
    from crnn.secrets import redact

    uri, _ = store_of(args)
    if uri.startswith(("http://", "https://")):
        print(f"the tracking server has its own UI: open {redact(uri)}")
        return 0
    from flows.runtime.server_process import port_in_use

    if port_in_use(args.port):  # else MLflow's server would fail to bind, and exit 0
        raise UserError(f"port {args.port} on 127.0.0.1 is in use; pass --port with a free one")
    from importlib.metadata import entry_points

    from crnn.tracking.ui_app import APP_NAME

    if not entry_points(group="mlflow.app", name=APP_NAME):  # a checkout not installed again
        raise UserError("crnn's MLflow server app is not installed: run `make setup` here")
    # the UI opens in its GenAI mode unless told: this link opens it on model training (runs)
    site = f"http://127.0.0.1:{args.port}"
    home = f"{site}/#/experiments?workflowType=machine_learning"
    print(f"MLflow UI on {redact(uri)}: {home}  (Ctrl-C stops it)")
    from crnn.tracking.health import runs_table_links

    links = runs_table_links(uri, site)
    for name, link in links:
        print(f"  {name}: {link}")
    if links:  # kept in the browser as the user's own view: no shared-view banner
        print("  (each opens the runs table on the pipeline's view; a view you change is yours)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(args.port), "--app-name", APP_NAME]
    # no GenAI job runners: MLflow would start several worker processes no pipeline uses
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # ahead of the user's own filters, so that theirs win
    env["PYTHONWARNINGS"] = ",".join(filter(None, [UI_WARNINGS, os.environ.get("PYTHONWARNINGS")]))
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from crnn.tracking.registry import promote

    previous = promote(registry_context(args), args.name, args.version, args.reason)
    print(f"{args.name}: champion is version {args.version} (was {previous or 'none'})")
    from flows.notices import tell_promotion

    tell_promotion(str(args.config), args.name, str(args.version), args.reason)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from crnn.tracking.registry import rollback

    was, now = rollback(registry_context(args), args.name, args.reason)
    print(f"{args.name}: champion rolled back from version {was} to version {now}")
    return 0
