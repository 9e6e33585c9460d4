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


RUN_SUMMARY = {
    "pipeline": "p",
    "workspace": "/ws",
    "shards": {"digest": "a" * 64, "reused": True},
    "training": {"epochs_run": 1, "best_epoch": 1, "seconds": 1.0},
    "metrics": {"test_cer": 0.5},
    "registry": {
        "model_name": "crnn-p",
        "version": "1",
        "decision": "promoted to champion",
        "reason": "the first version",
        "champion_version": "1",
    },
    "mlflow": {"run_id": "r", "experiment": "p", "ui": "crnn ui  (serves this store on ...)"},
}


def test_after_make_run_the_ui_hint_names_the_virtualenvs_crnn(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crnn.cli.invocation import crnn_for, program
    from crnn.cli.main import print_summary

    monkeypatch.delenv("CRNN_CONFIG", raising=False)
    crnn = crnn_for("pipelines.yaml", argv0=".venv/bin/crnn")  # what `make run` starts
    assert crnn == ".venv/bin/crnn"
    print_summary(RUN_SUMMARY, crnn)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "Open the MLflow UI: .venv/bin/crnn ui  (serves this store on ...)\n" in out
    assert crnn_for("other.yaml", argv0=".venv/bin/crnn") == ".venv/bin/crnn --config other.yaml"
    # an activated virtualenv: PATH finds this very crnn, so the hint may say `crnn`
    monkeypatch.setenv("PATH", str(project / ".venv" / "bin"))
    assert crnn_for("pipelines.yaml", argv0=str(project / ".venv" / "bin" / "crnn")) == "crnn"
    # python -m crnn.cli: the interpreter that ran it (not on PATH here)
    python = str(project / "py" / "bin" / "python")
    assert program("/site/crnn/cli/__main__.py", python) == "py/bin/python -m crnn.cli"
    assert program("-c") == "crnn"  # main() called from `python -c`: no path to give
