"""The benchmarks fail when a figure misses its limit: `make bench` keeps every bench's exit
status, and a ratio below its limit fails unless the bound measured in the same run explains it."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO


def verdict_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("verdict", REPO / "bench" / "verdict.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_python(tmp_path: Path, failing: str | None) -> Path:
    """A `python` for the Makefile that exits 1 for the bench script named ``failing``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "python"
    case = f'case "$1" in *{failing}*) exit 1;; esac\n' if failing else ""
    script.write_text(f'#!/bin/sh\necho ran "$1"\n{case}exit 0\n')
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    "failing",
    [
        "preprocess_memory",
        "score_bench",
        "train_bench",
        "startup_bench",
        "integrity_bench",
        "score_memory",
        "redact_bench",
        "cluster_scale",
        "drift_bench",
        "typed_digits",
        None,
    ],
)
def test_make_bench_fails_when_any_bench_fails(tmp_path: Path, failing: str | None) -> None:
    stamp = tmp_path / "stamp"
    stamp.touch()
    fake = fake_python(tmp_path, failing)
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), "bench", f"BIN={fake}", f"STAMP={stamp}"],
        capture_output=True,
        text=True,
    )
    assert done.stdout.count("ran bench/") == 10  # every bench runs, whatever failed before
    assert (done.returncode != 0) == (failing is not None), done.stdout + done.stderr


def test_a_missed_limit_fails_unless_the_measured_bound_explains_it() -> None:
    v = verdict_module()
    assert v.verdict(1.2, ">=", 1.0) == ("ok", True)
    assert v.verdict(0.5, ">=", 1.0) == ("SHORT", False)
    assert v.verdict(0.29, ">=", 0.5, bound=0.30) == ("bounded (0.30 measured)", True)
    assert v.verdict(0.10, ">=", 0.5, bound=0.30) == ("SHORT", False)  # far under its bound too
    assert v.verdict(0.02, "<=", 0.05) == ("ok", True)
