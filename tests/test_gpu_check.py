"""bench/gpu_check.sh, the one prepared GPU check, run here on the CPU so it cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ["machine", "tests", "train", "score", "pipeline"]


def gpu_check(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", "bench/gpu_check.sh", str(out), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
def test_quick_cpu_run_writes_every_part_into_at_most_eight_files(tmp_path) -> None:
    out = tmp_path / "gpu"
    proc = gpu_check(out, "--device", "cpu", "--quick")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(
        ["gpu_check.json", "gpu_check.log", "tests.txt", "train.txt", "score.txt", "pipeline.txt"]
    )
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["parts"]) == PARTS
    assert {r["status"] for r in report["parts"].values()} == {"ok"}
    assert "torch" in report["machine"] and "cores" in report["machine"]
    parts = {name: r["figures"] for name, r in report["parts"].items()}
    autocast = parts["tests"][
        "test_training_under_autocast_is_finite_and_says_what_the_rnn_ran_in[cpu-bf16]"
    ]
    assert autocast["outcome"] == "ok" and autocast["rnn_dtype_cpu_bf16"] in {"bfloat16", "float32"}
    step = parts["train"]["step_default_b32"]
    assert step["R3"] > 0 and step["steps"] == 2
    assert parts["score"]["ratio"] > 0 and parts["score"]["rows"] > 0
    assert parts["pipeline"]["epochs"][0]["test_accuracy"] >= 0
    assert sum(r["limit_s"] for r in report["parts"].values()) <= 240

    # a rerun of one part keeps the others' figures and appends to the log
    log_size = (out / "gpu_check.log").stat().st_size
    proc = gpu_check(out, "--device", "cpu", "--quick", "--only", "machine")
    assert proc.returncode == 0, proc.stdout[-2000:]
    again = json.loads((out / "gpu_check.json").read_text())
    assert list(again["parts"]) == PARTS and again["parts"]["train"] == report["parts"]["train"]
    assert (out / "gpu_check.log").stat().st_size > log_size


def test_failing_parts_are_recorded_and_fail_the_check(tmp_path) -> None:
    """--device cuda where there is none: each part fails, and the JSON still says so."""
    out = tmp_path / "gpu"
    proc = gpu_check(out, "--device", "cuda", "--quick", "--only", "machine", "score")
    assert proc.returncode == 1
    report = json.loads((out / "gpu_check.json").read_text())
    assert {n: r["status"] for n, r in report["parts"].items()} == {
        "machine": "failed",
        "score": "failed",
    }
    assert any("no CUDA device" in line for line in report["parts"]["machine"]["tail"])
    assert "not ok: machine, score" in proc.stdout
