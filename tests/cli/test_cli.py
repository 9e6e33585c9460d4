"""The command line itself: --version, --config after the command, every config problem at once
(a few lines), near-miss names, and no traceback when a reader closes the pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import crnn
from crnn.cli import main
from tests.conftest import REPO, tiny_pipelines, write_config


def test_version(capsys) -> None:
    try:
        main(["--version"])
    except SystemExit as done:
        assert done.code == 0
    assert capsys.readouterr().out.strip() == f"crnn {crnn.__version__}"


def test_config_after_the_command_and_near_miss_names(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "p.yaml", tiny_pipelines(tmp_path / "ws"))
    assert main(["list", "--config", str(config)]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["run", "tinny", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "no pipeline named 'tinny' (did you mean 'tiny'?); known: tiny" in err
    assert err.count("\n") == 1  # one line


def test_every_config_problem_is_shown_once_a_line(tmp_path: Path, capsys) -> None:
    mapping = tiny_pipelines(tmp_path / "ws")
    tiny = mapping["pipelines"]["tiny"]
    tiny["training"].update({"lr": -1, "epochs": 0, "optimiser": "adam"})
    tiny["model"]["rnn_hiden"] = 4
    config = write_config(tmp_path / "p.yaml", mapping)
    assert main(["--config", str(config), "run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert 4 <= len(lines) <= 6, lines
    text = "\n".join(lines)
    assert "training.lr: Input should be greater than 0 (got -1)" in text
    assert "training.epochs:" in text
    assert "training.optimiser: unknown key (did you mean 'optimizer'?)" in text
    assert "model.rnn_hiden: unknown key (did you mean 'rnn_hidden'?)" in text
    assert "Traceback" not in text


def test_a_closed_pipe_ends_quietly() -> None:
    """`crnn schema | head -1`: the reader leaves before the output is written (here: at once);
    no BrokenPipeError traceback, the exit status a shell expects of a closed pipe."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crnn.cli", "--config", str(REPO / "pipelines.yaml"), "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=dict(os.environ),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_an_unset_or_empty_data_path_is_said_before_anything_starts(tmp_path: Path) -> None:
    """Before Prefect starts (its home in the workspace is never made) and before any reader is
    imported: one line naming the key (bench/startup_bench.py times it)."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("")  # hidden files are not data
    config = tiny_pipelines(tmp_path / "ws")
    tiny = config["pipelines"]["tiny"]
    config["pipelines"] = {
        "nopath": {**tiny, "data": {"source": "line_images", "path": None}},
        "empty": {**tiny, "data": {"source": "line_images", "path": str(tmp_path / "empty")}},
    }
    path = write_config(tmp_path / "pipelines.yaml", {**config, "default_pipeline": "nopath"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    for name, said in (("nopath", "data.path is not set"), ("empty", "holds no files")):
        done = subprocess.run(
            [sys.executable, "-m", "crnn.cli", "--config", str(path), "run", name],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert done.stderr.strip().count("\n") == 0 and "--set data.path=DIR" in done.stderr
        assert not (tmp_path / "ws" / "prefect").exists()  # Prefect never started
