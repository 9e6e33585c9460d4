"""What `crnn doctor` and `crnn ui` ask of an MLflow store: does it answer, can it keep an
artifact and read it back, is its registry usable, which experiments' runs tables carry the
project's view.

The artifact check writes one small artifact into a run of its own experiment
(:data:`DOCTOR_EXPERIMENT`), reads it back and deletes that run and the experiment (MLflow keeps
both, deleted, out of the UI: no API deletes them for good; the next check restores the
experiment), and a local store's probe files; the rest only reads. Remote checks use the one
retry policy (:mod:`crnn.retry`), so a dead URL costs seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow import MlflowClient

from crnn.secrets import redact
from crnn.tracking.runs_view import VIEW_TAG
from crnn.tracking.ui_app import VIEW_ROUTE
from crnn.types.records import Check

DOCTOR_EXPERIMENT = "crnn-doctor"


def check_tracking(tracking: Any, workspace: Path) -> list[Check]:
    """The store answers, keeps an artifact and reads it back, and its registry is usable; a
    store that does not answer is one failing check naming the setting to fix."""
    from crnn.retry import apply_defaults, service_error
    from crnn.tracking.uri import resolve_tracking_uri

    apply_defaults()  # MLflow's client retries by the one policy: a dead URL costs seconds
    uri = resolve_tracking_uri(tracking, workspace)
    client = MlflowClient(uri, os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    started = time.monotonic()
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:
        setting = "MLFLOW_TRACKING_URI (or tracking.tracking_uri)"
        message = service_error("tracking server", uri, exc, setting, time.monotonic() - started)
        return [Check("tracking", "fail", message, "start the server or fix the URI")]
    checks = [Check("tracking", "ok", f"{redact(uri)} answers")]
    checks.append(_check_artifacts(client, workspace, uri))
    try:
        models = client.search_registered_models(max_results=100)
        checks.append(Check("registry", "ok", f"usable: {len(models)} registered model(s)"))
    except Exception as exc:
        checks.append(
            Check("registry", "fail", redact(str(exc))[:200], "check MLFLOW_REGISTRY_URI")
        )
    return checks


def _check_artifacts(client: Any, workspace: Path, uri: str) -> Check:
    """Write a small artifact to a run of the doctor's experiment and read it back; the run and
    the experiment are deleted after (a local store's probe files too)."""
    try:
        exp_id = _probe_experiment(client, workspace, uri)
        try:
            run = client.create_run(exp_id, run_name="doctor")
            with tempfile.TemporaryDirectory(prefix="crnn-doctor-") as tmp:
                probe = Path(tmp) / "probe.txt"
                probe.write_text(run.info.run_id)
                client.log_artifact(run.info.run_id, str(probe))
                back = Path(client.download_artifacts(run.info.run_id, "probe.txt", tmp + "/back"))
                same = back.read_text() == run.info.run_id
            client.delete_run(run.info.run_id)
        finally:
            client.delete_experiment(exp_id)  # out of the UI's list: it shows active ones
        if run.info.artifact_uri.startswith("file:"):
            shutil.rmtree(local_path(run.info.artifact_uri).parent, ignore_errors=True)
    except Exception as exc:
        return Check(
            "artifacts",
            "fail",
            redact(str(exc).splitlines()[0])[:200],
            "check the artifact store (the server's --artifacts-destination, its S3 credentials)",
        )
    if not same:
        return Check("artifacts", "fail", "the artifact read back differs", "check the store")
    return Check(
        "artifacts", "ok", f"wrote and read back an artifact at {redact(run.info.artifact_uri)}"
    )


def _probe_experiment(client: Any, workspace: Path, uri: str) -> str:
    """The doctor's experiment, active: created the first time (a local store's artifacts in
    the workspace), restored from the deleted state each earlier check left it in."""
    exp = client.get_experiment_by_name(DOCTOR_EXPERIMENT)
    if exp is None:
        location = None
        if uri.startswith(("sqlite:", "file:")):
            location = (workspace / "mlartifacts" / DOCTOR_EXPERIMENT).as_uri()
        return str(client.create_experiment(DOCTOR_EXPERIMENT, location))
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


def local_path(file_uri: str) -> Path:
    """The folder a ``file:`` URI names."""
    return Path(url2pathname(urlparse(file_uri).path))


def runs_table_links(uri: str, site: str) -> list[tuple[str, str]]:
    """Each pipeline experiment's runs table on the view of the metrics that matter: a page of
    `crnn ui`'s server (``site``) that keeps the view as the user's own (crnn.tracking.ui_app)."""
    found = MlflowClient(uri).search_experiments(filter_string=f"tags.`{VIEW_TAG}` != ''")
    return [(e.name, f"{site}{VIEW_ROUTE}{e.experiment_id}") for e in found]
