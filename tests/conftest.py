"""Shared fixtures: small configs and shard sets built with the real code paths."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crnn.config import PipelineConfig, PipelinesFile, load_pipeline

REPO = Path(__file__).resolve().parents[1]

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
        # (on by default) is tested on its own in tests/test_registry.py
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
