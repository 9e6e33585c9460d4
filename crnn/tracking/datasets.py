"""A run's data: the shard set's splits as MLflow dataset inputs (one identity: the set's
digest), its manifest and quarantine list as artifacts, its row and quarantine counts as tags."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, RunTag

from crnn.data.shards import Manifest
from crnn.tracking.runs import TrackingContext

DATA_TAG = "crnn.data."  # the shard set's row and quarantine counts: crnn.data.train_rows, ...


def log_inputs(client: MlflowClient, run_id: str, inputs: list[DatasetInput]) -> None:
    """Link ``inputs`` to the run. The store creates a dataset the first time it sees it; two
    runs that start at once (a sweep's parallel trials) both create it, and the second insert
    breaks the store's unique constraint: tried again, it finds the dataset and links it."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_inputs(run_id, datasets=inputs)
    except MlflowException as exc:
        said = str(exc).lower()
        if "unique constraint" not in said and "duplicate key" not in said:
            raise
        client.log_inputs(run_id, datasets=inputs)


def log_dataset_inputs(
    ctx: TrackingContext, run_id: str, manifest_path: Path, manifest: Manifest
) -> None:
    """Record train/val/test as dataset inputs, named by the shard-set digest (one identity),
    the manifest (and quarantine file) as artifacts, the row and quarantine counts as tags."""
    client = ctx.client()
    digest = manifest.digest[:16]
    inputs = []
    for split, counts in manifest.splits.items():
        ds = Dataset(
            name=f"{manifest.source['name']}-{split}",
            digest=digest,
            source_type="local",
            source=f'{{"uri": "{manifest_path.resolve().as_posix()}"}}',
            profile=f'{{"num_rows": {counts["rows"]}}}',
        )
        inputs.append(DatasetInput(ds, tags=[InputTag("mlflow.data.context", split)]))
    log_inputs(client, run_id, inputs)
    client.set_tag(run_id, "crnn.shard_digest", manifest.digest)
    client.log_artifact(run_id, str(manifest_path), "data")
    quarantine = manifest.quarantine
    if quarantine.file and (manifest_path.parent / quarantine.file).is_file():
        client.log_artifact(run_id, str(manifest_path.parent / quarantine.file), "data")
    # counts of the shard set, not measures of the run: tags. As metrics (data/*, runs logged
    # before) they were the first metrics a run logged, so what MLflow's compare page plots
    # first, and the first section of its default charts (sections A to Z)
    counts = {f"{split}_rows": c["rows"] for split, c in manifest.splits.items()}
    counts["quarantined"] = quarantine.total
    counts |= {f"quarantined_{reason}": n for reason, n in quarantine.by_reason.items()}
    client.log_batch(run_id, tags=[RunTag(DATA_TAG + k, str(n)) for k, n in counts.items()])
