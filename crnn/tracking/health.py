"""What `crnn doctor` and `crnn ui` ask of an MLflow store: does it answer, can it keep an
artifact and read it back, is its registry usable, which experiments' runs tables carry the
project's view.

The artifact check writes one small artifact into a run of its own experiment
(:data:`DOCTOR_EXPERIMENT`), reads it back and deletes that run; the rest only reads. Remote
checks use the one retry policy (:mod:`crnn.retry`), so a dead URL costs seconds.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from crnn.secrets import redact
from crnn.tracking.runs import RUNS_VIEW
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
    """Write a small artifact to a run of the doctor's experiment, read it back, delete the run."""
    try:
        exp = client.get_experiment_by_name(DOCTOR_EXPERIMENT)
        location = None
        if uri.startswith(("sqlite:", "file:")):
            location = (workspace / "mlartifacts" / DOCTOR_EXPERIMENT).as_uri()
        exp_id = exp.experiment_id if exp else client.create_experiment(DOCTOR_EXPERIMENT, location)
        run = client.create_run(exp_id, run_name="doctor")
        with tempfile.TemporaryDirectory(prefix="crnn-doctor-") as tmp:
            probe = Path(tmp) / "probe.txt"
            probe.write_text(run.info.run_id)
            client.log_artifact(run.info.run_id, str(probe))
            back = Path(client.download_artifacts(run.info.run_id, "probe.txt", tmp + "/back"))
            same = back.read_text() == run.info.run_id
        client.delete_run(run.info.run_id)
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


def runs_table_links(uri: str, site: str) -> list[tuple[str, str]]:
    """Each pipeline experiment's runs table, opened on its view of the metrics that matter."""
    key = f"mlflow.sharedViewState.{RUNS_VIEW}"
    found = MlflowClient(uri).search_experiments(filter_string=f"tags.`{key}` != ''")
    query = f"viewStateShareKey={RUNS_VIEW}&workflowType=machine_learning"
    return [(e.name, f"{site}/{e.experiment_id}/runs?{query}") for e in found]
