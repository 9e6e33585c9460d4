"""A full disk under `crnn run` (issue 33 item 4): the workspace on a small tmpfs, so the
checkpoint write finds it full. One line on stderr naming the file, a non-zero status, no
traceback, the MLflow run FAILED, and no partial or temporary file left.

The tmpfs is mounted directly when this runs as root (containers, CI), else in a user and mount
namespace of its own (``unshare -rm``); the command runs there and the workspace is copied out
before the tmpfs goes. Prefect's local database is kept off the tmpfs: its write-ahead log grows
by how the server's writes happen to fall, which would make the failing write a matter of timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_pipelines, write_config

pytestmark = pytest.mark.integration

# the store (~1 MB fresh), the shard set (~1.5 MB) and best.pt (~0.4 MB) fit; last.pt (~0.55 MB)
# does not
DISK_SIZE = "3M"

SCRIPT = """
set -u
mount -t tmpfs -o size={size} tmpfs "$DISK" || exit 90
"$PYTHON" -m crnn.cli --config "$CONFIG" run >"$OUT/stdout" 2>"$OUT/stderr"
echo $? >"$OUT/rc"
cp -a "$DISK/ws" "$OUT/ws"
umount "$DISK"
"""


def _namespace() -> list[str] | None:
    """How to mount a tmpfs here: directly as root, else in a namespace of our own; None when
    neither is allowed."""
    if os.geteuid() == 0:
        return []
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rm"]
    return None


def _run_on_small_disk(tmp_path: Path) -> tuple[int, str, Path]:
    prefix = _namespace()
    if prefix is None:
        pytest.skip("no way to mount a tmpfs here (not root, and no user namespaces)")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    mapping = tiny_pipelines(disk / "ws")
    mapping["pipelines"]["tiny"]["training"]["epochs"] = 1
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(
        DISK=str(disk),
        OUT=str(out),
        CONFIG=str(config),
        PYTHON=sys.executable,
        PREFECT_HOME=str(tmp_path / "prefect"),
    )
    script = SCRIPT.format(size=DISK_SIZE)
    done = subprocess.run([*prefix, "sh", "-c", script], env=env, timeout=300)
    if done.returncode == 90:
        pytest.skip("mounting a tmpfs was refused")
    stderr = (out / "stderr").read_text()
    return int((out / "rc").read_text()), stderr, out / "ws"


def test_a_full_disk_is_one_line_a_failed_run_and_no_partial_file(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    rc, stderr, workspace = _run_on_small_disk(tmp_path)
    assert rc != 0
    assert "Traceback" not in stderr, stderr
    [said] = [line for line in stderr.splitlines() if "crnn" in line or "rror" in line]
    checkpoints = next((workspace / "runs").iterdir()) / "checkpoints"
    disk_path = str(tmp_path / "disk" / "ws" / "runs")
    assert said.startswith(f"crnn: error: no space left on device writing {disk_path}"), said
    assert said.split(" writing ")[1].split(" ")[0].endswith("/checkpoints/last.pt"), said
    assert "MB free" in said and "needs more than" in said

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"

    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt"]  # whole, or not there
    files = [p for p in workspace.rglob("*") if p.is_file()]
    hidden = [p for p in files if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not hidden, hidden  # no temporary of an atomic write


def test_a_full_disk_is_told_the_same_way_however_a_library_words_it(tmp_path: Path) -> None:
    """torch's writer (a RuntimeError, the OSError its context), shutil's copy (the target in
    filename2, as MLflow's local artifact store copies), SQLite: one decision, one line; any
    other error is not a user's (its traceback is shown)."""
    import errno
    import sqlite3

    from crnn.errors import NoSpaceError, as_user_error

    target = tmp_path / "runs" / "last.pt"
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos")
    torch_error.__context__ = OSError(errno.ENOSPC, "No space left on device", str(target))
    torch_said = as_user_error(torch_error)
    copy = OSError(errno.ENOSPC, "No space left on device", "src", None, str(target))
    sqlite = sqlite3.OperationalError("database or disk is full")
    for told in [torch_said, as_user_error(copy)]:
        assert isinstance(told, NoSpaceError)
        assert str(told).startswith(f"no space left on device writing {target} (")
    assert "writing a database (SQLite)" in str(as_user_error(sqlite))
    assert as_user_error(RuntimeError("a bug")) is None
    assert as_user_error(OSError(errno.EACCES, "Permission denied")) is None
