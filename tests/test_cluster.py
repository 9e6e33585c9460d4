"""Scoring fanned out over a real Dask cluster: a `dask scheduler` and two `dask worker` processes
on 127.0.0.1, started here and stopped after. The parts scored there equal the parts scored here,
row for row; a worker killed half way loses nothing and scores nothing twice; a wrong address is
one line within the connect limit, nothing written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crnn.cluster import connect
from crnn.errors import UserError
from crnn.inference.scoring import job_plan, read_scores, score, source_chunks
from tests.conftest import REPO, TINY_LINES
from tests.inference.test_scoring import REF

pytestmark = pytest.mark.integration
DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = open(log, "wb")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    logs = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    scheduler = _start(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
        logs / "scheduler.log",
    )
    workers = [
        _start(
            [
                DASK,
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"w{k}",
            ],  # no nanny: a kill kills the worker
            logs / f"worker-{k}.log",
        )
        for k in range(2)
    ]
    try:
        _wait_for_workers(address, 2)
        yield address, workers
    finally:  # killed: a worker given SIGTERM waits for its tasks' end, 15 s and more here
        for proc in [*workers, scheduler]:
            proc.kill()
        for proc in [*workers, scheduler]:
            proc.wait(timeout=15)


def _wait_for_workers(address: str, count: int, within: float = 60.0) -> None:
    from distributed import Client

    deadline = time.monotonic() + within
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(count, timeout=max(deadline - time.monotonic(), 1))


def test_scoring_on_the_cluster_equals_scoring_here(
    cluster,
    model_and_shards,
    tmp_path,
) -> None:
    address, _ = cluster
    predictor, _, data = model_and_shards
    here = score(predictor, REF, source_chunks(data, 32), tmp_path / "here", "raw")
    model = model_file(model_and_shards)
    with connect(address) as mapper:
        there = score(
            predictor,
            REF,
            source_chunks(data, 32),
            tmp_path / "there",
            "raw",
            fan_out=(mapper, model),
        )
    assert there.rows_scored == here.rows_scored == there.rows_in == 192 + 48 + 48
    assert there.chunks_scored == here.chunks_scored > 2  # several parts, on both workers
    a = read_scores(tmp_path / "here").to_pandas().set_index("sample_id").sort_index()
    b = read_scores(tmp_path / "there").to_pandas().set_index("sample_id").sort_index()
    assert list(a.index) == list(b.index)
    assert (a["prediction"] == b["prediction"]).all()
    assert (a["confidence"] - b["confidence"]).abs().max() < 1e-5
    assert a["confidence"].nunique() > 100  # the inputs move the output: equality means something


def test_a_worker_killed_half_way_loses_nothing(
    cluster,
    model_and_shards,
    tmp_path,
) -> None:
    address, workers = cluster
    predictor, _, data = model_and_shards
    model = model_file(model_and_shards)
    parts: list[str] = []

    def kill_one(chunk_id: str, rows: int) -> None:
        parts.append(chunk_id)
        if len(parts) == 2:  # half way: one worker gone with whatever it was running
            os.kill(workers[0].pid, signal.SIGKILL)

    with connect(address) as mapper:
        done = score(
            predictor,
            REF,
            source_chunks(data, 16),
            tmp_path / "job",
            "raw",
            on_chunk=kill_one,
            plan=job_plan(None, 16),
            fan_out=(mapper, model),
        )
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    ids = read_scores(tmp_path / "job").column("sample_id").to_pylist()
    assert len(ids) == len(set(ids)) == done.rows_in == 192 + 48 + 48  # each row once
    assert sorted(parts) == sorted(set(parts)) and len(parts) == done.chunks_scored


def test_no_scheduler_at_the_address_is_one_line_and_nothing_written(tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(UserError) as info, connect(f"tcp://127.0.0.1:{_free_port()}"):
        (tmp_path / "written").touch()
    assert time.monotonic() - started < 15
    assert "no Dask scheduler answered" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "written").exists()
    with pytest.raises(UserError, match="not a scheduler address"), connect("nowhere"):
        pass


def model_file(fixture: tuple) -> Path:
    """The fixture's model file (beside its shard sets), which the workers read."""
    return Path(fixture[1]).parents[2] / "model.pt"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_preprocessing_on_the_cluster_writes_the_same_shard_set(cluster, tmp_path) -> None:
    """Validation, normalization and augmentation of every chunk on the workers; the manifest
    (its digest) and every shard's bytes as built here."""
    from crnn.config import DigitStringsData, PreprocessingConfig
    from crnn.data.loader import load_manifest
    from crnn.data.preprocess import preprocess

    address, _ = cluster
    data = DigitStringsData(**{**TINY_LINES, "lines": {"train": 150, "val": 40, "test": 40}})
    prep = PreprocessingConfig(
        augmentation={"copies": 2, "rotation_degrees": 3, "noise_std": 0.05}, shard_rows=64
    )
    here = preprocess(data, prep, tmp_path / "here")
    with connect(address) as mapper:
        there = preprocess(data, prep, tmp_path / "there", mapper)
    assert not there.reused and there.digest == here.digest
    assert here.manifest_path.read_bytes() == there.manifest_path.read_bytes()
    a, b = _files(here.root), _files(there.root)
    assert a == b and len(a) > 3
    assert load_manifest(there.manifest_path).splits["train"]["augmented"] == 2 * 150


def test_a_pipeline_preprocesses_where_flag_env_and_config_say(tiny_config, monkeypatch) -> None:
    """--cluster (set as CRNN_CLUSTER by the CLI) beats execution.cluster; a scheduler that does
    not answer fails the preprocessing task in one line, no shard written."""
    from crnn.cluster import ENV, cluster_address
    from crnn.workspace import Workspace
    from flows.tasks import preprocess_task

    monkeypatch.delenv(ENV, raising=False)
    assert cluster_address(None) is None and cluster_address("local:2") == "local:2"
    monkeypatch.setenv(ENV, "tcp://10.0.0.1:8786")
    assert cluster_address(None) == "tcp://10.0.0.1:8786"
    assert cluster_address("local:2") == "local:2"  # the flag wins
    monkeypatch.delenv(ENV)
    config_file, cfg = tiny_config
    nobody = f"tcp://127.0.0.1:{_free_port()}"
    cfg = cfg.model_copy(update={"execution": cfg.execution.model_copy(update={"cluster": nobody})})
    workspace = Workspace(Path(config_file.workspace))
    with pytest.raises(UserError, match="no Dask scheduler answered"):
        preprocess_task.fn(cfg, workspace)
    assert not list(workspace.shards.rglob("*.parquet"))


def test_doctor_checks_the_cluster_it_is_given(cluster, tmp_path, monkeypatch) -> None:
    from crnn.cluster import ENV
    from flows.runtime.doctor import _check_clusters

    address, workers = cluster
    monkeypatch.setenv(ENV, address)
    [check] = _check_clusters(tmp_path / "pipelines.yaml")
    live = sum(w.poll() is None for w in workers)  # the kill test took one
    assert check.status == "ok" and f"{live} worker(s)" in check.detail, check
    import crnn

    monkeypatch.setattr(crnn, "__version__", "0.0.1")  # this machine upgraded, the workers not
    [check] = _check_clusters(tmp_path / "pipelines.yaml")
    assert check.status == "fail" and "crnn-pipelines" in check.detail and "0.0.1" in check.detail
    monkeypatch.setenv(ENV, f"tcp://127.0.0.1:{_free_port()}")
    [check] = _check_clusters(tmp_path / "pipelines.yaml")
    assert check.status == "fail" and "no Dask scheduler answered" in check.detail
