"""The shipped `text-lines` pipeline on line images as users lay them out, end to end.

Renders lines with Pillow (two fonts and sizes; lower-case letters, digits, punctuation) as
``NAME.png`` + ``NAME.gt.txt`` with no split given, runs `crnn run text-lines` at the shipped
defaults (only ``data.path`` set) in a fresh workspace, then loads ``models:/crnn-text-lines@champion``
in a fresh process and reads every test line from its file. Limits (issue 27): test CER <= 0.03
on >= 300 test lines, the run within 600 s, and the pyfunc agreeing with the evaluation on every
test line. Exits 1 when a limit is missed, saying which.

    python bench/line_images_accuracy.py [--lines 3000] [--set KEY=VALUE ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the line renderer the tests use

from tests.lines import render_lines  # noqa: E402

LIMITS = {"test_cer": 0.03, "test_lines": 300, "run_seconds": 600.0, "agreement": 1.0}


def run_pipeline(data: Path, workspace: Path, overrides: list[str]) -> tuple[dict, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env["CRNN_WORKSPACE"] = str(workspace)
    sets = [a for kv in [f"data.path={data}", *overrides] for a in ("--set", kv)]
    args = ["--config", str(REPO / "pipelines.yaml"), "run", "text-lines", *sets, "--json"]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "crnn.cli", *args], capture_output=True, text=True, env=env
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"crnn run failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(proc.stdout), seconds


def served_by_the_registry(summary: dict, paths: list[str]) -> list[str]:
    """The champion's predictions for ``paths``, from a fresh process."""
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({summary['mlflow']['tracking_uri']!r})\n"
        "m = mlflow.pyfunc.load_model('models:/crnn-text-lines@champion')\n"
        "paths = json.load(sys.stdin)\n"
        "print(json.dumps(list(m.predict(pd.DataFrame({'path': paths})))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(paths), capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"the pyfunc failed: {proc.stderr[-1500:]}")
    served: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return served


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/line_images.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "lines"
        render_lines(data, args.lines, seed=0)
        summary, seconds = run_pipeline(data, Path(tmp) / "ws", args.overrides)
        run_dir = Path(summary["workspace"]) / "runs" / summary["mlflow"]["run_id"]
        evaluated = pd.read_parquet(run_dir / "evaluation" / "test_predictions.parquet")
        served = served_by_the_registry(summary, [str(data / i) for i in evaluated["sample_id"]])
    agree = sum(a == b for a, b in zip(served, evaluated["prediction"], strict=True))
    figures = {
        "test_cer": summary["metrics"]["test_cer"],
        "test_sequence_accuracy": summary["metrics"]["test_sequence_accuracy"],
        "test_lines": len(evaluated),
        "run_seconds": round(seconds, 1),
        "epochs": summary["training"].get("epochs_run", None),
        "agreement": agree / max(len(evaluated), 1),
        "cpu_threads": os.cpu_count(),
    }
    checks = {
        "test_cer": figures["test_cer"] <= LIMITS["test_cer"],
        "test_lines": figures["test_lines"] >= LIMITS["test_lines"],
        "run_seconds": figures["run_seconds"] <= LIMITS["run_seconds"],
        "agreement": figures["agreement"] >= LIMITS["agreement"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"figures": figures, "limits": LIMITS, "ok": checks}, indent=2))
    for name, ok in checks.items():
        print(f"{name:14} {figures[name]!s:>10}  limit {LIMITS[name]!s:>6}  {'ok' if ok else 'SHORT'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
