"""MLflow runs: one per pipeline run, logged by run id so any task (or process) can add to it."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import Array

import crnn
from crnn.config import PipelineConfig, TrackingConfig, flatten
from crnn.data.shards import Manifest
from crnn.errors import ServiceError
from crnn.inference.evaluate import EvalReport
from crnn.metric_names import tracked
from crnn.plots import display_image
from crnn.retry import apply_defaults, service_error
from crnn.secrets import redact
from crnn.tracking import uri as store_uri  # its USER_* read at call time
from crnn.tracking.locks import local_store_path
from crnn.tracking.runs_view import VIEW_TAG, run_name, runs_view
from crnn.tracking.uri import resolve_tracking_uri, without_credentials
from crnn.types.kinds import TaskKind

apply_defaults()  # MLflow's HTTP client retries by the one policy (read at each request)

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
CRNN_PACKAGE = Path(crnn.__file__).parent
MLFLOW_BATCH = 100  # params per log_batch call
MLFLOW_METRICS_BATCH = 1000  # metrics per log_batch call (the REST limit)


@dataclass(frozen=True)
class TrackingContext:
    tracking_uri: str
    experiment_id: str
    experiment_name: str

    @property
    def registry_uri(self) -> str:
        return store_uri.USER_REGISTRY_URI or self.tracking_uri

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)


# mlflow.set_tracking_uri() / set_registry_uri() export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI;
# what the *user* set is read once, here, before this process ever sets them
SWEEP_STUDY_TAG = "crnn.sweep.study"  # a sweep's runs (parent and trials): not resumable
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def open_tracking(cfg: TrackingConfig, workspace: Path, uri: str | None = None) -> TrackingContext:
    """Connect to the store and get (or create) the experiment.

    With a local store the experiment's artifacts live in the workspace too (not ./mlruns).
    ``uri``: a tracking URI given explicitly (``--tracking-uri``), ahead of everything else.
    """
    uri = without_credentials(uri) or resolve_tracking_uri(cfg, workspace)
    registry_uri = store_uri.USER_REGISTRY_URI or uri
    mlflow.set_tracking_uri(uri)  # the fluent calls (log_model, register_model) use these
    mlflow.set_registry_uri(registry_uri)
    name = cfg.experiment or "crnn"
    started = time.monotonic()
    try:  # the first contact: MLflow's client retries transient failures (crnn.retry)
        with first_use_lock(uri):  # a SQLite store is created (migrated) here
            client = MlflowClient(tracking_uri=uri, registry_uri=registry_uri)
            exp = client.get_experiment_by_name(name)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        setting = "MLFLOW_TRACKING_URI (or tracking.tracking_uri in the pipelines file)"
        message = service_error(
            "MLflow tracking server", uri, exc, setting, time.monotonic() - started
        )
        raise ServiceError(message) from None
    if exp is None:
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            location = (workspace.resolve() / "mlartifacts" / name).as_uri()
        try:  # the UI opens a model-training experiment on its runs (not as a GenAI one)
            exp_id = client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING}
            )
        except mlflow.exceptions.MlflowException:
            existing = client.get_experiment_by_name(name)  # created concurrently
            if existing is None:
                raise
            exp_id = existing.experiment_id
    else:
        exp_id = exp.experiment_id
        if EXPERIMENT_KIND not in (exp.tags or {}) and name != "Default":
            client.set_experiment_tag(exp_id, EXPERIMENT_KIND, MODEL_TRAINING)
    return TrackingContext(uri, exp_id, name)


@contextlib.contextmanager
def first_use_lock(uri: str) -> Iterator[None]:
    """A local SQLite store is created and migrated by its first user: two processes using a
    fresh store at once would race in MLflow's migrations (Alembic). A file lock beside the
    database makes them take turns; other stores migrate on their server. A new store is a copy
    of the first empty one this MLflow version made, when there is one (:mod:`.sqlite_store`)."""
    db = local_store_path(uri)
    if db is None:
        yield
        return
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    from crnn.tracking import sqlite_store

    with FileLock(str(db) + ".lock"):
        fresh = not db.exists() and not sqlite_store.seed(db)
        yield
        if fresh and db.exists():  # migrated by MLflow just now, nothing in it yet
            sqlite_store.keep_template(db)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=CRNN_PACKAGE,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def start_run(
    ctx: TrackingContext,
    cfg: PipelineConfig,
    config_text: str,
    overrides: Sequence[str] = (),
    shard_digest: str = "",
    used: Callable[[str], bool] | None = None,
    name: str = "",
    tags: dict[str, str] | None = None,
) -> str:
    """Create the pipeline's run: a name that says what it is (``name``, the pipeline, data
    digest, the overrides), tags (and ``tags``), the settings the pipeline uses as params
    (``used``: which keys; default all), and the resolved config as an artifact."""
    client = ctx.client()
    changes = [redact(o) for o in overrides]
    changed = " ".join(changes)
    name = run_name(changes, name, cfg.name, shard_digest[:8])
    run = client.create_run(
        ctx.experiment_id,
        run_name=name,
        tags={
            "pipeline": cfg.name,
            "crnn.version": crnn.__version__,
            "mlflow.source.git.commit": git_commit(),
            "mlflow.note.content": cfg.description,
            "crnn.config_digest": config_digest(config_text),
            "crnn.overrides": changed or "none",
            **(tags or {}),
        },
    )
    run_id: str = run.info.run_id
    view = client.get_experiment(ctx.experiment_id).tags.get(VIEW_TAG)
    client.set_experiment_tag(ctx.experiment_id, VIEW_TAG, runs_view(cfg, view, changes))
    params = [
        Param(k, redact(v)[:6000])
        for k, v in flatten(cfg).items()
        if k not in ("name", "description") and (used is None or used(k))
    ]
    for i in range(0, len(params), MLFLOW_BATCH):
        client.log_batch(run_id, params=params[i : i + MLFLOW_BATCH])
    client.log_text(run_id, config_text, "config/pipeline.yaml")
    return run_id


def settings_used(cfg: PipelineConfig, manifest: Manifest) -> Callable[[str], bool]:
    """Which flat config keys (``model.rnn_hidden``...) this pipeline's run uses: the keys its
    architecture takes, the augmentation its modality reads, the optimizer and schedule options
    that apply; not the schedules, scoring jobs and sweep (they do not shape the run's result;
    a sweep's parent run holds its own)."""
    from crnn.data.augment import AUGMENTATION_KEYS
    from crnn.models import model_kwargs

    model = {"architecture", "head", *model_kwargs(cfg.model, manifest.features)}
    modality = str(manifest.source.get("modality", "image"))
    augmentation = {"copies", "seed", *AUGMENTATION_KEYS.get(modality, ())}
    t = cfg.training
    unused = {"momentum"} if t.optimizer != "sgd" else set()
    unused |= {"step_size", "gamma"} if t.schedule != "step" else set()

    def used(key: str) -> bool:
        parts = key.split(".")
        if parts[0] == "model":
            return parts[1] in model
        if parts[:2] == ["preprocessing", "augmentation"]:
            return parts[2] in augmentation
        if parts[0] == "training" and len(parts) == 2:
            return parts[1] not in unused
        return parts[0] not in ("schedule", "scoring", "sweep")

    return used


def config_digest(config_text: str) -> str:
    """Names a resolved pipeline config: a run is resumed only under the same one."""
    return hashlib.sha256(config_text.encode()).hexdigest()[:16]


def find_resumable_run(ctx: TrackingContext, pipeline: str) -> str | None:
    """The latest run of ``pipeline`` that did not finish, if any (whether its checkpoint may be
    continued is :mod:`crnn.engine.resume`'s to say)."""
    runs = ctx.client().search_runs(
        [ctx.experiment_id],
        filter_string=f"tags.pipeline = '{pipeline}'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    unfinished = [
        r for r in runs if r.info.status != "FINISHED" and SWEEP_STUDY_TAG not in r.data.tags
    ]
    return unfinished[0].info.run_id if unfinished else None


def reopen_run(ctx: TrackingContext, run_id: str) -> None:
    ctx.client().update_run(run_id, status="RUNNING")


def as_metrics(values: dict[str, float], ts: int, step: int = 0) -> list[Metric]:
    """``values`` (product names) as MLflow metrics under their grouped keys."""
    return [Metric(tracked(k), float(v), ts, step) for k, v in values.items()]


def log_evaluation(ctx: TrackingContext, run_id: str, report: EvalReport) -> None:
    client = ctx.client()
    ts = _now()
    client.log_batch(run_id, metrics=as_metrics(report.metrics, ts))
    for path in [*report.artifacts, report.predictions_path]:
        # the figures at the top, where the compare view sets them side by side for two runs
        folder = None if path.suffix == ".png" else "evaluation"
        client.log_artifact(run_id, str(path), folder)
    if report.samples:
        table = pd.DataFrame(report.samples)
        if report.sample_images is not None:
            table.insert(0, "image", [mlflow.Image(to_uint8(x)) for x in report.sample_images])
        client.log_table(run_id, table, "evaluation/sample_predictions.json")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """One image as 0..255 for display: grey as dark ink on white (like the gallery), RGB as is."""
    x = display_image(image)
    return ((1 - x if x.ndim == 2 else x) * 255).astype(np.uint8)


def input_schema(input_example: np.ndarray | pd.DataFrame) -> Schema:
    """What the pyfunc takes, from a raw example: strings (a ``text`` column), audio (waveforms
    with their rate, WAV bytes or WAV paths: one of them), or float32 arrays of a fixed shape."""
    if isinstance(input_example, np.ndarray):
        return Schema([TensorSpec(np.dtype(np.float32), (-1, *input_example.shape[1:]))])
    if "text" in input_example:  # unnamed: a list of strings or a one-column frame
        return Schema([ColSpec(DataType.string)])
    return Schema(
        [
            ColSpec(Array(DataType.double), "audio", required=False),  # float64, as numpy has it
            ColSpec(DataType.long, "sample_rate", required=False),
            ColSpec(DataType.binary, "wav", required=False),
            ColSpec(DataType.string, "path", required=False),
        ]
    )


def log_pyfunc_model(
    ctx: TrackingContext,
    run_id: str,
    checkpoint: Path,
    input_example: np.ndarray | pd.DataFrame,
    kind: TaskKind,
    profile: Path | None = None,
) -> str:
    """Log the model as a pyfunc built from code: raw inputs in (see :func:`input_schema`),
    what the task kind predicts out (strings, labels or numbers). ``profile``: its reference
    profile (:mod:`crnn.monitoring`), logged beside the checkpoint.

    Weights travel as a state_dict checkpoint (loaded with weights_only=True); the crnn package is
    bundled as code, so nothing pickled is ever loaded. Returns the model URI.
    """
    from crnn.engine.checkpoint import load_checkpoint

    # an image model takes images of any size, arrays, files or bytes: no fixed input schema
    # (its own checks answer bad input in one line, see crnn.data.user_images)
    images = load_checkpoint(checkpoint).preprocessing.image_model
    signature = ModelSignature(
        inputs=None if images else input_schema(input_example),
        outputs=Schema([ColSpec(DataType[kind.prediction[1]], kind.prediction[0])]),
        params=ParamSchema([ParamSpec("confidence", "boolean", False)]),  # see pyfunc_model
    )
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={
                "checkpoint": str(checkpoint),
                **({"profile": str(profile)} if profile else {}),
            },
            signature=signature,
            input_example=input_example,
            pip_requirements=model_requirements(),
            code_paths=[str(CRNN_PACKAGE)],
        )
    # leaving start_run marks the run FINISHED; the pipeline still has steps to log
    ctx.client().update_run(run_id, status="RUNNING")
    return str(info.model_uri)


def model_requirements() -> list[str]:
    """Pinned requirements of the inference path (local version labels such as +cpu dropped)."""
    reqs = []
    for dist in (
        "mlflow",
        "torch",
        "numpy",
        "pandas",
        "pyarrow",
        "scikit-learn",
        "pydantic",
        "pyyaml",
    ):
        try:
            reqs.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


def finish_run(ctx: TrackingContext, run_id: str, ok: bool, killed: bool = False) -> None:
    """FINISHED, FAILED, or KILLED (stopped by a signal; `crnn run --resume` continues it)."""
    state = RunStatus.FINISHED if ok else RunStatus.KILLED if killed else RunStatus.FAILED
    ctx.client().set_terminated(run_id, status=RunStatus.to_string(state))


def run_url_hint(ctx: TrackingContext) -> str:
    """How to open the MLflow UI on this store: the server's address, or `crnn ui` (which
    serves a local store on http://127.0.0.1:5000)."""
    if ctx.tracking_uri.startswith(("http://", "https://")):
        return f"open {redact(ctx.tracking_uri)}"
    return "crnn ui  (serves this store on http://127.0.0.1:5000)"


def _now() -> int:
    return int(time.time() * 1000)
