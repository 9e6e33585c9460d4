"""`crnn ui` on a port that is taken fails at once, in one line, before printing any address."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import run_cli, tiny_pipelines, write_config


def test_a_taken_port_fails_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with socket.socket() as taken:  # bound, not even listening: a server could not bind it
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        started = time.monotonic()
        try:
            done = run_cli(["--config", str(config), "ui", "--port", str(port)], env, timeout=60)
        except subprocess.TimeoutExpired as hung:
            raise AssertionError(f"`crnn ui` on a taken port ran on: {hung.output!r}") from None
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""  # no address of a UI that is not there
    said = f"crnn: error: port {port} on 127.0.0.1 is in use; pass --port with a free one\n"
    assert done.stderr == said
    assert time.monotonic() - started < 30
