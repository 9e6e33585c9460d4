"""Batch scoring end to end: a registered model from the real `retrain` flow, the real `score`
flow, a real SQLite MLflow store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crnn.inference.scoring import read_scores, score, source_chunks
from tests.conftest import tiny_pipelines, write_config

pytestmark = pytest.mark.integration

ROWS = 192 + 48 + 48  # every line of the tiny source, all splits


@pytest.fixture(scope="module")
def registered(prefect_harness, tmp_path_factory):
    """Two versions of crnn-tiny (the second, trained longer, usually champion)."""
    from flows.retrain import retrain

    root = tmp_path_factory.mktemp("score")
    config = write_config(root / "pipelines.yaml", tiny_pipelines(root / "ws"))
    first = retrain(config_path=str(config), progress=False)
    second = retrain(config_path=str(config), overrides=["training.epochs=3"], progress=False)
    return root, config, first, second


def test_scoring_raw_source_matches_the_evaluation_and_is_logged(registered) -> None:
    from mlflow import MlflowClient

    from flows.score import score_flow

    root, _, first, _ = registered
    uri = first["mlflow"]["tracking_uri"]
    client = MlflowClient(uri, uri)
    champion = client.get_model_version_by_alias("crnn-tiny", "champion")
    out = root / "scored"
    summary = score_flow(
        model="crnn-tiny@champion",
        out=str(out),
        tracking_uri=uri,
        workspace=str(root / "ws"),
        chunk_rows=64,
    )
    assert summary["model"]["version"] == str(champion.version)
    assert summary["rows_scored"] == summary["rows_in"] == ROWS and summary["rows_quarantined"] == 0
    scores = read_scores(out).to_pandas()
    assert len(scores) == ROWS and scores["sample_id"].is_unique
    assert set(scores["model_version"]) == {str(champion.version)}
    assert set(scores["run_id"]) == {champion.run_id}
    assert scores["confidence"].between(0, 1).all()
    # the raw test lines, scored by the job, read exactly as the training run's evaluation
    evaluated = pq.read_table(
        root / "ws" / "runs" / champion.run_id / "evaluation" / "test_predictions.parquet"
    ).to_pandas()
    joined = evaluated.merge(scores, on="sample_id", suffixes=("_eval", "_score"))
    assert len(joined) == 48
    assert (joined["prediction_eval"] == joined["prediction_score"]).all()
    run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "scoring"
    assert run.data.metrics["scoring/rows_scored"] == ROWS
    assert run.data.params["model_version"] == str(champion.version)
    # drift: the champion's profile came with it; its own lines (all splits) compared with it
    drift = summary["drift"]
    assert drift["reference"] and drift["rows"] == ROWS and len(drift["tests"]) == 8
    assert run.data.metrics["drift/detected"] == float(drift["detected"])
    assert "drift.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    model_files = client.list_artifacts(champion.run_id, "model/artifacts")
    assert "model/artifacts/reference_profile.json" in {a.path for a in model_files}
    from prefect.artifacts import Artifact

    table = Artifact.get("drift")
    assert table is not None and table.description.startswith("drift: ")
    _own_test_shards_show_no_drift(root, first, client, champion)


def _own_test_shards_show_no_drift(root: Path, first, client, champion) -> None:
    """The champion's own test shards, scored with the profile logged with it: no drift."""
    import dataclasses

    from crnn.engine.checkpoint import load_checkpoint
    from crnn.inference.monitor import profile_beside
    from crnn.inference.predictor import Predictor
    from crnn.inference.scoring import shard_chunks
    from crnn.tracking.scoring import download_checkpoint
    from crnn.types.records import ModelVersionRef
    from flows.score import _ctx

    ref = ModelVersionRef("crnn-tiny", str(champion.version), champion.run_id)
    ctx = _ctx(first["mlflow"]["tracking_uri"], None, str(root / "ws"))
    checkpoint = download_checkpoint(ctx, ref, root / "champion")
    reference = profile_beside(checkpoint)
    assert reference is not None and reference.rows == 48  # the val split
    predictor = Predictor(load_checkpoint(checkpoint), device="cpu")
    test = [(k, c) for k, c in shard_chunks(Path(first["shards"]["manifest"])) if c.split == "test"]
    own = score(predictor, ref, iter(test), root / "own-test", "t", reference=reference)
    assert own.drift["reference"] and not own.drift["detected"], own.drift
    dim = [(k, dataclasses.replace(c, inputs=c.inputs * 0.3)) for k, c in test]  # low contrast
    dimmed = score(predictor, ref, iter(dim), root / "dim-test", "t", reference=reference)
    assert dimmed.drift["detected"] and "input_std" in {t["feature"] for t in dimmed.drift["moved"]}


class Killed(Exception):
    pass


def test_killed_job_resumes_once_per_row_with_the_version_it_started_with(registered) -> None:
    from crnn.engine.checkpoint import load_checkpoint
    from crnn.inference.predictor import Predictor
    from crnn.tracking.scoring import download_checkpoint
    from flows.score import _ctx, input_spec, resolve_task

    root, config, first, _ = registered
    uri, ws = first["mlflow"]["tracking_uri"], str(root / "ws")
    client = _ctx(uri, None, ws).client()
    out, spec = root / "killed", input_spec(None, None)
    started_with = resolve_task.fn("crnn-tiny@champion", uri, ws, str(out), spec)
    other = "1" if started_with.version == "2" else "2"
    from crnn.config import load_pipeline

    data = load_pipeline(config)[1].data
    predictor = Predictor(
        load_checkpoint(download_checkpoint(_ctx(uri, None, ws), started_with, root / "ck"))
    )

    def chaos(chunk_id: str, rows: int) -> None:
        done.append(chunk_id)
        if len(done) == 1:  # someone moves the alias while the job runs
            client.set_registered_model_alias("crnn-tiny", "champion", other)
        if len(done) == 3:
            raise Killed

    done: list[str] = []
    with pytest.raises(Killed):
        score(predictor, started_with, source_chunks(data, 32), out, spec, on_chunk=chaos)
    assert len(list(out.glob("part-*.parquet"))) == 3
    # the re-run resolves to the pinned version, not to where the alias points now
    again = resolve_task.fn("crnn-tiny@champion", uri, ws, str(out), spec)
    assert again == started_with
    summary = score(predictor, again, source_chunks(data, 32), out, spec)
    assert summary.chunks_skipped == 3 and summary.rows_scored == ROWS
    scores = read_scores(out).to_pandas()
    assert len(scores) == ROWS and scores["sample_id"].is_unique  # no duplicates, none lost
    assert set(scores["model_version"]) == {started_with.version}
    assert not list(out.glob(".*tmp"))


def test_cli_score_of_a_shard_set_and_its_errors(registered, capsys) -> None:
    from crnn.cli import main

    root, config, first, _ = registered
    shards = first["shards"]["manifest"]
    out = root / "from-shards"
    args = ["--config", str(config), "score", "crnn-tiny/1", "--shards", shards, "--out", str(out)]
    assert main(args) == 0
    assert "scored 480 of 480 rows with crnn-tiny version 1" in capsys.readouterr().out
    assert len(read_scores(out)) == 480  # the shard set's rows, augmented copies included
    # the same folder cannot take another job's rows
    other = ["--config", str(config), "score", "crnn-tiny/2", "--shards", shards, "--out", str(out)]
    assert main(other) == 2
    assert "holds the output of another job" in capsys.readouterr().err
    assert main(["--config", str(config), "score", "crnn-tiny@nope", "--out", str(root / "x")]) == 2
    assert "has no version with the alias 'nope' yet" in capsys.readouterr().err
    assert main(["--config", str(config), "score", "crnn-tiny", "--out", str(root / "x")]) == 2
    assert "NAME@ALIAS" in capsys.readouterr().err
    # a line model reads image files; a folder without any says so in one line, writes nothing
    (root / "empty").mkdir()
    embedded = ["score", "crnn-tiny/1", "--input", str(root / "empty"), "--out", str(root / "y")]
    assert main(["--config", str(config), *embedded]) == 2
    assert "no image files to score" in capsys.readouterr().err
    assert not list((root / "y").glob("part-*"))
    missing = ["score", "crnn-tiny/1", "--input", str(root / "nope"), "--out", str(root / "z")]
    assert main(["--config", str(config), *missing]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    _on_a_cluster(root, config, shards, out, capsys)


def _on_a_cluster(root: Path, config: Path, shards: str, here: Path, capsys) -> None:
    """`--cluster local:2`: two worker processes score the parts, row for row as here; an address
    where no scheduler answers is one line, nothing written."""
    import socket

    from crnn.cli import main

    there = root / "on-a-cluster"
    args = ["--config", str(config), "score", "crnn-tiny/1", "--shards", shards]
    assert main([*args, "--out", str(there), "--cluster", "local:2"]) == 0
    assert "scored 480 of 480 rows" in capsys.readouterr().out
    a, b = (read_scores(p).to_pandas().set_index("sample_id").sort_index() for p in (here, there))
    assert (a["prediction"] == b["prediction"]).all() and len(b) == 480
    assert (a["confidence"] - b["confidence"]).abs().max() < 1e-5
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    assert main([*args, "--out", str(root / "never"), "--cluster", nobody]) == 2
    said = capsys.readouterr().err.strip()
    assert "no Dask scheduler answered" in said and "\n" not in said, said
    assert not (root / "never").exists()


def test_ctrl_c_stops_scoring_in_one_line_that_says_the_command_to_continue(registered) -> None:
    """Ctrl-C at the terminal (SIGINT to the command's process group) while `crnn score` writes
    its parts: one line, no Prefect crash report, exit 130, the parts written kept, and the
    command that continues them is the one that was run."""
    import os
    import re
    import shlex
    import signal

    from crnn.cli import main
    from tests.conftest import start_cli

    root, config, _, _ = registered
    out = root / "stopped"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    args = ["--config", str(config), "score", "crnn-tiny/1", "--out", str(out)]
    args += ["--chunk-rows", "1", "--batch-size", "1"]  # a part per row: a job long enough
    proc = start_cli(args, env)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    said = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, said
    lines = said.strip().splitlines()
    assert len(lines) == 1, said  # (it was three Prefect "Crash detected!" lines and one more)
    found = re.fullmatch(
        r"crnn: interrupted at scoring part \S+; the parts written are kept: `(.+)` continues",
        lines[0],
    )
    assert found and shlex.split(found[1])[-len(args) :] == args, said
    assert 2 <= len(list(out.glob("part-*.parquet"))) < ROWS
    # re-run without --chunk-rows: the job's recorded plan (a row a part) is kept, not refused
    assert main(["--config", str(config), "score", "crnn-tiny/1", "--out", str(out)]) == 0
    assert len(list(out.glob("part-*.parquet"))) == ROWS


def test_line_image_files_score_like_the_pyfunc_reads_them(registered, capsys) -> None:
    """`crnn score --input DIR` on line images as users have them (any width, 8-bit, either
    polarity, PNG / JPEG) and the registered pyfunc on the same files agree row by row."""
    import mlflow
    import pandas as pd

    from crnn.cli import main
    from crnn.data.loader import load_manifest, load_split
    from crnn.normalization import Normalizer
    from tests.data.test_user_images import render_lines

    root, config, first, _ = registered
    manifest = load_manifest(first["shards"]["manifest"])
    test = load_split(manifest, "test")
    raw = Normalizer.from_stats(manifest.normalization).inverse_transform(test.inputs.numpy())
    files = render_lines(raw[:, 0], test.sample_ids, root / "lines")
    (root / "lines" / "broken.png").write_bytes(b"not an image")
    out = root / "scored-lines"
    args = ["--config", str(config), "score", "crnn-tiny/1", "--input", str(root / "lines")]
    assert main([*args, "--out", str(out)]) == 0
    assert "scored 48 of 49 rows" in capsys.readouterr().out
    scores = pd.read_parquet(out).set_index("sample_id")
    assert pd.read_parquet(out / "_quarantine")["reason"].tolist() == ["unreadable_image"]
    uri = first["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/crnn-tiny/1")
    served = list(model.predict(pd.DataFrame({"path": [str(f) for f in files]})))
    assert served == [scores.loc[f.name, "prediction"] for f in files]


def test_the_mlflow_ui_shows_what_matters(registered, tmp_path) -> None:
    """Through the MLflow API, what the UI shows: a model-training experiment, run names that
    say what differs, the overrides, only the settings the pipeline uses, versions and models
    described in words, and a scoring run with its real duration and its model version."""
    from mlflow import MlflowClient

    from flows.score import score_flow

    root, _, first, second = registered
    uri = first["mlflow"]["tracking_uri"]
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name("tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    a, b = (client.get_run(s["mlflow"]["run_id"]) for s in (first, second))
    digest = first["shards"]["digest"][:8]
    assert a.info.run_name == f"tiny {digest}"
    assert b.info.run_name == f"epochs=3 tiny {digest}"  # what differs first: not cut off
    assert (
        b.data.tags["crnn.overrides"] == "training.epochs=3"
        and a.data.tags["crnn.overrides"] == "none"
    )
    params = set(b.data.params)
    view = json.loads(exp.tags["mlflow.sharedViewState.crnn"])  # the view `crnn ui` opens
    assert "params.`training.epochs`" in view["selectedColumns"] and "training.epochs" in params
    assert {
        "model.rnn_hidden",
        "training.lr",
        "preprocessing.augmentation.rotation_degrees",
    } <= params
    for unused in (
        "model.embedding_dim",
        "preprocessing.augmentation.time_shift",
        "preprocessing.augmentation.token_dropout",
        "training.momentum",
    ):
        assert unused not in params, unused
    version = client.get_model_version("crnn-tiny", first["registry"]["version"])
    assert version.description.startswith(f"tiny on shard set {first['shards']['digest'][:16]}:")
    assert "Gate: promoted to champion" in version.description
    model = client.get_registered_model("crnn-tiny")
    assert (
        model.description.startswith("**Champion history**")
        and "version 1: promote" in model.description
    )

    started = time.time()
    summary = score_flow(
        model="crnn-tiny/1",
        out=str(tmp_path / "s"),
        tracking_uri=uri,
        workspace=str(root / "ws"),
        chunk_rows=64,
    )
    run = client.get_run(summary["mlflow_run_id"])
    took = (run.info.end_time - run.info.start_time) / 1000
    assert summary["seconds"] * 0.9 <= took <= time.time() - started + 1  # the job's duration
    assert "#/models/crnn-tiny/versions/1" in run.data.tags["mlflow.note.content"]
    assert (run.data.tags["crnn.model_name"], run.data.tags["crnn.model_version"]) == (
        "crnn-tiny",
        "1",
    )
