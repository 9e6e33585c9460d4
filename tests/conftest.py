"""Shared fixtures: small configs and shard sets built with the real code paths."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crnn.config import PipelineConfig, PipelinesFile, load_pipeline

# fixtures shared across folders: the scoring model (inference, reliability, cluster tests)
pytest_plugins = ["tests.scoring_model"]

REPO = Path(__file__).resolve().parents[1]


def share_cores_between_workers() -> None:
    """Under pytest-xdist, each test process (and every process its tests start: they inherit
    OMP_NUM_THREADS) computes on its share of the cores. Two processes each running OpenMP on
    every core thrash: a 13 s test took 188 s so."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        threads = int(os.environ.setdefault("OMP_NUM_THREADS", share))  # a user's setting wins
        import torch

        torch.set_num_threads(threads)


share_cores_between_workers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with end-to-end tests first (each file's tests stay together, in their order):
    pytest-xdist hands files out in this order, so no long file starts last while the other
    process has nothing left to run."""
    slow = {item.path for item in items if item.get_closest_marker("integration")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect test server per test process (its start costs ~10 s), for flows run here."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(prefect_harness, tmp_path_factory) -> dict[str, str]:
    """The environment that points a `crnn` command in another process at the test Prefect
    server: for tests whose subject is not Prefect's temporary local server, which every such
    command otherwise starts (migrating a fresh database: 10-40 s each on 2 busy cores). That
    path stays tested where it is the subject (tests/reliability/test_hard_kill.py,
    tests/flows/test_interrupt.py, tests/flows/test_retrain.py)."""
    from prefect.settings import PREFECT_API_URL

    home = tmp_path_factory.mktemp("prefect-client-home")
    return {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(home)}


def user_env(**extra: str) -> dict[str, str]:
    """This environment less the servers in-process tests point at (a user's fresh shell),
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    return {**env, **extra}


TINY_LINES = {
    "source": "digit_strings",
    "seed": 0,
    "lines": {"train": 192, "val": 48, "test": 48},
    "min_digits": 3,
    "max_digits": 5,
    "digit_scale": 1,
    "max_gap": 2,
}


def tiny_pipelines(workspace: Path, **pipeline_updates: object) -> dict:
    """A pipelines.yaml mapping with one small, fast digit-strings pipeline named `tiny`."""
    pipeline = {
        "description": "tiny test pipeline",
        "data": copy.deepcopy(TINY_LINES),
        "preprocessing": {
            "normalization": "minmax",
            "augmentation": {"copies": 1, "rotation_degrees": 2, "translate_px": [1, 1]},
            "shard_rows": 128,
        },
        "model": {"architecture": "crnn_small", "head": "ctc", "pool": [[2, 2], [2, 2], [2, 1]]},
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.003, "seed": 0, "device": "cpu"},
        "evaluation": {"sample_predictions": 4},
        # two epochs on 192 lines are meant to be quick, not good: the first-champion floor
        # (on by default) is tested on its own in tests/tracking/test_registry.py
        "registry": {"first_champion_margin": None},
    }
    pipeline.update(pipeline_updates)
    return {
        "version": 1,
        "workspace": str(workspace),
        "default_pipeline": "tiny",
        "pipelines": {"tiny": pipeline},
    }


def write_config(path: Path, mapping: dict) -> Path:
    path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def tiny_config(tmp_path: Path) -> tuple[PipelinesFile, PipelineConfig]:
    path = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    return load_pipeline(path)


def start_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    """The `crnn` command started in a session of its own (stop it with its process group),
    its output (stdout and stderr) as text on ``stdout``."""
    return subprocess.Popen(
        [sys.executable, "-m", "crnn.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The `crnn` command in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "crnn.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def registry(tiny_config, tmp_path):
    """A tiny trained checkpoint and a function registering it with a given test score (the
    registry tests, in tests/tracking and tests/reliability)."""
    from crnn.data.loader import load_split
    from crnn.data.preprocess import preprocess
    from crnn.data.raw import squeeze_channel
    from crnn.engine.train import train_on_shards
    from crnn.inference.predictor import Predictor
    from crnn.tracking import log_pyfunc_model, open_tracking, register_with_gate, start_run
    from crnn.tracking.registry import TestSet
    from crnn.types.kinds import SEQUENCE

    config_file, cfg = tiny_config
    workspace = Path(config_file.workspace)
    shards = preprocess(cfg.data, cfg.preprocessing, workspace / "shards")
    training = cfg.training.model_copy(update={"epochs": 1})
    trained = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "ckpt")
    ctx = open_tracking(cfg.tracking, workspace)
    predictor = Predictor.from_checkpoint(trained.best_checkpoint)
    example = load_split(shards.manifest_path, "test").inputs[:2].numpy()
    raw = squeeze_channel(predictor.normalizer.inverse_transform(example), predictor.input_shape)
    test_set = TestSet.of(shards.manifest_path)

    def logged(score: float, log_score=True, key="test/") -> tuple[str, str]:
        """A run that scored ``score`` and logged the model: (its id, the model's URI)."""
        run_id = start_run(ctx, cfg, "tiny")
        if log_score:  # key: under the MLflow group (test/), or the name runs had before it
            ctx.client().log_metric(run_id, key + "sequence_accuracy", score)
        return run_id, log_pyfunc_model(ctx, run_id, trained.best_checkpoint, raw, SEQUENCE)

    def register(score: float, gate=None, test=test_set, log_score=True, trivial=None, key="test/"):
        run_id, uri = logged(score, log_score, key)
        return register_with_gate(
            ctx, run_id, uri, gate or cfg.registry, score, "d", test, trivial=trivial
        )

    register.logged = logged  # type: ignore[attr-defined]  # a run to register elsewhere

    return ctx, cfg, register, trained
