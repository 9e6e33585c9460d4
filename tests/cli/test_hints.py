"""The commands a hint names work when typed: after Ctrl-C, the same command with the flags it
was given (and --resume for a run), started the way the user started `crnn`."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from crnn.cli.main import build_parser, how_to_continue


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a virtualenv's `crnn` that PATH does not find (as under `make`)."""
    script = tmp_path / ".venv" / "bin" / "crnn"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    return tmp_path


def _command(hint: str) -> list[str]:
    return shlex.split(hint.split("`")[1])


def test_the_resume_hint_repeats_the_flags_the_run_started_with(project: Path) -> None:
    argv = ["--config", "my pipes.yaml", "run", "tiny", "--set", "training.epochs=1"]
    hint = how_to_continue("run", argv, argv0=".venv/bin/crnn")
    assert hint.startswith("; continue with `.venv/bin/crnn --config 'my pipes.yaml' run ")
    command = _command(hint)
    args = build_parser().parse_args(command[1:])  # what `crnn` makes of the hint
    assert (args.config, args.pipeline, args.overrides) == ("my pipes.yaml", "tiny", argv[-1:])
    assert args.resume
    again = _command(how_to_continue("run", command[1:], argv0=".venv/bin/crnn"))
    assert again == command  # a resumed run stopped again: the same command, --resume once


def test_score_and_sweep_hints_are_the_same_command(project: Path) -> None:
    score = ["score", "crnn-tiny@champion", "--out", "scores/new", "--chunk-rows", "64"]
    hint = how_to_continue("score", score, argv0=str(project / ".venv" / "bin" / "crnn"))
    assert _command(hint) == [".venv/bin/crnn", *score] and "parts written are kept" in hint
    sweep = ["sweep", "tiny", "--set", "sweep.trials=4"]
    assert _command(how_to_continue("sweep", sweep, argv0=".venv/bin/crnn"))[1:] == sweep
    assert how_to_continue("models", ["models"]) == ""  # nothing to continue
