"""A long value in a valid pipelines file does not hang the command that prints it: every line
goes through secret masking, which must stay linear in the line's length, and still masks what
a long line hides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crnn.secrets import MASK, redact
from tests.conftest import run_cli, tiny_pipelines, write_config

PASSWORD = "pw-Zq81xKv9"


def test_crnn_list_prints_a_200k_character_description_masked(tmp_path: Path) -> None:
    # One 100,000-letter word costs the quadratic masking about 10 s, two of them ~40 s; linear
    # masking prints it in well under a second. 20 s is a hang guard, not a timing assert.
    description = (
        "a" * 100_000 + f" see postgresql://mlflow:{PASSWORD}@db:5432/x?token={PASSWORD} "
        "and https://user:" + "p" * 100_000
    )
    pipelines = tiny_pipelines(tmp_path / "ws")
    pipelines["pipelines"]["tiny"]["description"] = description
    config = write_config(tmp_path / "pipelines.yaml", pipelines)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    done = run_cli(["--config", str(config), "list"], env, timeout=20)
    assert done.returncode == 0, done.stderr[-2000:]
    assert PASSWORD not in done.stdout
    assert f"postgresql://mlflow:{MASK}@db:5432/x?token={MASK} and https://user:ppp" in done.stdout
    assert "a" * 100_000 in done.stdout and "p" * 100_000 in done.stdout


@pytest.mark.parametrize("run", [10, 60_000])
def test_secrets_in_long_lines_are_masked_exactly(run: int) -> None:
    word, no_at = "w" * run, "https://user:" + "q" * run
    line = (
        f"{word}1http://u:{PASSWORD}@h/p?token={PASSWORD}&a=1 {no_at} -.x+y://bob:"
        f"{PASSWORD}@host {word}s3://k:{PASSWORD}@b;pwd={PASSWORD} {no_at}@h"
    )
    assert redact(line) == (
        f"{word}1http://u:{MASK}@h/p?token={MASK}&a=1 {no_at} -.x+y://bob:{MASK}@host "
        f"{word}s3://k:{MASK}@b;pwd={MASK} https://user:{MASK}@h"
    )
