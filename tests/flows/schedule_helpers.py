"""Helpers of the scheduling tests: a tiny image-folder project, a Prefect server and a process
worker on 127.0.0.1 (each in its own process group, stopped after), and flow-run waiting."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from flows.runtime.server_process import free_port, local_server, stop_group
from tests.conftest import run_cli

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

# a scheduler that fills a year of weekly runs at once, checks every 2 s, and fast polling
SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "60",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "100",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME": "P400D",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "PREFECT_WORKER_QUERY_SECONDS": "1",
}


def write_images(root: Path, per_class: int = 30, seed: int = 0) -> None:
    """Two classes of 8x8 images a small CRNN tells apart in two epochs: stripes and dots."""
    rng = np.random.default_rng(seed)
    for c, cls in enumerate(["stripes", "dots"]):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (8, 8)).astype(np.uint8)
            if c == 0:
                img[:, ::2] += 180
            else:
                img[::2, ::2] += 180
            Image.fromarray(img).save(root / cls / f"{i}.png")


def shapes_pipeline(**updates: Any) -> dict[str, Any]:
    pipeline: dict[str, Any] = {
        "description": "two kinds of 8x8 images",
        "data": {"source": "image_folder", "path": "data", "image_size": [8, 8]},
        "preprocessing": {"augmentation": {"copies": 0}, "shard_rows": 64},
        "model": {
            "head": "classification",
            "conv_channels": [8, 16],
            "pool": [[2, 1], [2, 1]],
            "rnn_hidden": 16,
            "rnn_layers": 1,
        },
        "training": {"epochs": 2, "batch_size": 16, "device": "cpu", "loader": {"workers": 0}},
        "evaluation": {"sample_predictions": 0},
        "tracking": {"system_metrics_interval": None},
        "registry": {"first_champion_margin": None},  # two quick epochs: no floor to clear
    }
    pipeline.update(updates)
    return pipeline


def write_project(root: Path, **updates: Any) -> Path:
    """A project folder: data/ with class folders and a pipelines.yaml with pipeline `shapes`."""
    if not (root / "data").exists():
        write_images(root / "data")
    config = {
        "version": 1,
        "workspace": "ws",
        "default_pipeline": "shapes",
        "pipelines": {"shapes": shapes_pipeline(**updates)},
    }
    path = root / "pipelines.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def child_env(api_url: str | None, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(SERVER_ENV, PREFECT_HOME=str(home), **extra)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    with local_server(home, free_port(), home / "server.log", env=SERVER_ENV) as api_url:
        yield api_url


@contextlib.contextmanager
def process_worker(
    api_url: str, pool: str, home: Path, **extra_env: str
) -> Iterator[subprocess.Popen[bytes]]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                pool,
                "--type",
                "process",
            ],
            env=child_env(api_url, home, **extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_group(proc)


def crnn(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env, cwd=cwd, timeout=300)


def client(api_url: str) -> Any:
    """A synchronous Prefect client of the test server (whatever this process's settings)."""
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api_url)


def run_deployment(api_url: str, name: str, count: int = 1, timeout: float = 240) -> list[Any]:
    """Start ``count`` runs of deployment ``name`` at once; wait until all end; their runs."""
    with client(api_url) as c:
        deployment = c.read_deployment_by_name(name)
        ids = [c.create_flow_run_from_deployment(deployment.id).id for _ in range(count)]
        deadline = time.monotonic() + timeout
        while True:
            runs = [c.read_flow_run(i) for i in ids]
            if all(r.state is not None and r.state.type.value in FINAL for r in runs):
                return runs
            assert time.monotonic() < deadline, f"runs of {name} did not end: {runs}"
            time.sleep(0.5)
