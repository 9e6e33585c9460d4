"""Ctrl-C in a terminal, as a user presses it: `crnn run --set ...` in a pseudo-terminal, SIGINT
to its process group (what the terminal sends), the command it says to continue with typed as
given, then SIGTERM to that resumed run."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_pipelines, write_config

pytestmark = pytest.mark.integration
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command on a pseudo-terminal, in its own session (the terminal's foreground group)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.master, self.text = master, ""

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.proc.poll() is None:
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    return
                self.text += ANSI.sub("", chunk)  # colours and cursor moves off

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, self.text)
            if found:
                return found
            assert self.proc.poll() is None, self.text[-2000:]
            self.read(0.5)
        raise AssertionError(f"no {pattern!r} in {timeout} s: {self.text[-2000:]}")

    def stop(self, signum: int, group: bool, timeout: float = 10) -> tuple[int, float]:
        """Send ``signum`` to the process group (Ctrl-C at the terminal) or the process (`kill`,
        `docker stop`); its exit status and seconds to exit."""
        sent = time.monotonic()
        (os.killpg if group else os.kill)(self.proc.pid, signum)
        while self.proc.poll() is None and time.monotonic() - sent < timeout:
            self.read(0.2)
        seconds = time.monotonic() - sent
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.read(0.5)
        return self.proc.returncode, seconds


def _status(workspace: Path, experiment: str = "tiny") -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return [r.info.status for r in client.search_runs([exp.experiment_id])]


def test_ctrl_c_stops_in_seconds_and_resume_continues_from_there(tmp_path: Path) -> None:
    mapping = tiny_pipelines(tmp_path / "ws")
    tiny = mapping["pipelines"]["tiny"]
    tiny["data"]["lines"]["train"] = 1500  # epochs long enough to interrupt one midway
    tiny["training"].update(
        {"epochs": 40, "log_every_steps": 5, "early_stopping": {"patience": 40}}
    )
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env["TERM"] = "xterm"
    # an override a resume must find again (`crnn run --resume` alone is refused)
    run = [sys.executable, "-m", "crnn.cli", "--config", str(config), "run"]
    run += ["--set", "training.lr=0.004"]

    term = Terminal(run, env)
    term.wait_for(r"epoch 2/40")  # training is under way
    status, seconds = term.stop(signal.SIGINT, group=True)
    assert status == 130 and seconds < 10, (status, seconds, term.text[-1500:])
    lines = re.findall(
        r"crnn: interrupted at epoch (\d+) step (\d+); continue with `([^`]+)`", term.text
    )
    assert len(lines) == 1, term.text[-1500:]
    assert "Traceback" not in term.text and "Error logging to API" not in term.text
    assert _status(tmp_path / "ws") == ["KILLED"]
    assert list((tmp_path / "ws" / "runs").glob("*/checkpoints/last.pt"))
    epoch, step = int(lines[0][0]), int(lines[0][1])
    hint = shlex.split(lines[0][2])
    assert hint[-3:] == ["--set", "training.lr=0.004", "--resume"], hint

    again = Terminal(hint, env)  # the command as the hint says it
    said = again.wait_for(r"resumed from last\.pt: epoch (\d+), after batch (\d+)")
    assert (int(said[1]), int(said[2])) == (epoch, step)  # where the first run stopped
    status, seconds = again.stop(signal.SIGTERM, group=False)
    assert status == 143 and seconds < 10, (status, seconds, again.text[-1500:])
    assert "Traceback" not in again.text and "crnn: interrupted at epoch" in again.text
    assert _status(tmp_path / "ws") == ["KILLED"]  # the same MLflow run, resumed and stopped
