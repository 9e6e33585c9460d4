"""The first `crnn run` in a terminal prints no notice from Prefect that it collects usage data:
the local Prefect crnn starts has its analytics off, and crnn tells Prefect's client so."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

FIRST_IMPORT = """
import sys
from pathlib import Path
if sys.argv[1] == "crnn":  # what `crnn run` does before Prefect is first imported
    from flows.runtime.local_prefect import prepare_local_prefect
    prepare_local_prefect(Path(sys.argv[2]))
import prefect
print("imported")
"""
NOTICE = "Prefect collects anonymous usage data"


def _in_a_terminal(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    """What ``args`` prints on a pseudo-terminal (Prefect shows its notice only on one)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out, end = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.kill()
        proc.wait()
    return out.decode(errors="replace")


def test_no_telemetry_notice_on_the_first_run_in_a_terminal(tmp_path: Path) -> None:
    from prefect._internal.analytics.ci_detection import CI_ENV_VARS

    # a new user's machine: a terminal, no Prefect state yet, no opt-out, not a CI runner
    skip = {"DO_NOT_TRACK", *CI_ENV_VARS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k not in skip}
    probe = [sys.executable, "-c", FIRST_IMPORT]
    bare = _in_a_terminal([*probe, "bare"], {**env, "PREFECT_HOME": str(tmp_path / "bare")})
    assert NOTICE in bare and "imported" in bare, bare  # what a first import shows a user
    crnn = _in_a_terminal([*probe, "crnn", str(tmp_path / "ws")], env)
    assert "imported" in crnn and NOTICE not in crnn, crnn
