"""A user's own line images through `crnn run` and out of the registry: the pyfunc from
``models:/NAME@champion`` in a fresh process, and `crnn score --input`, read the test images
from their files and agree with the evaluation on every test line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import run_cli, write_config
from tests.lines import render_lines

pytestmark = pytest.mark.integration


def _pipelines(workspace: Path, data: Path) -> dict:
    return {
        "version": 1,
        "workspace": str(workspace),
        "default_pipeline": "lines",
        "pipelines": {
            "lines": {
                "data": {"source": "line_images", "path": str(data), "height": 24, "width": 160},
                "preprocessing": {"augmentation": {"copies": 0}, "max_quarantine_fraction": 0.2},
                "model": {"architecture": "crnn_small", "head": "ctc"},
                "training": {"epochs": 6, "batch_size": 8, "lr": 0.005, "device": "cpu"},
                "evaluation": {
                    "sample_predictions": 4,
                    "decoder": {"kind": "beam", "beam_width": 5},
                },
                "registry": {"first_champion_margin": None},
            }
        },
    }


def test_pyfunc_and_scoring_read_the_line_files_as_evaluation_did(tmp_path: Path) -> None:
    data = tmp_path / "lines"
    render_lines(data, 240, seed=7, alphabet="abcd", words=(1, 2))  # quick to learn
    config = write_config(tmp_path / "pipelines.yaml", _pipelines(tmp_path / "ws", data))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    proc = run_cli(["--config", str(config), "run", "--json"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    run_dir = Path(summary["workspace"]) / "runs" / summary["mlflow"]["run_id"]
    evaluated = pd.read_parquet(run_dir / "evaluation" / "test_predictions.parquet")
    paths = [str(data / i) for i in evaluated["sample_id"]]
    assert len(paths) == 24
    assert sum(p != "" for p in evaluated["prediction"]) >= 12  # it reads something
    registered = torch.load(run_dir / "checkpoints" / "model.pt", weights_only=True)
    assert registered["decoder"] == {"kind": "beam", "beam_width": 5}  # travels with the model

    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({summary['mlflow']['tracking_uri']!r})\n"
        "m = mlflow.pyfunc.load_model('models:/crnn-lines@champion')\n"
        f"print(json.dumps(list(m.predict(pd.DataFrame({{'path': {paths!r}}})))))\n"
    )
    served = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180
    )
    assert served.returncode == 0, served.stderr[-2000:]
    assert json.loads(served.stdout.strip().splitlines()[-1]) == list(evaluated["prediction"])

    test_dir = tmp_path / "to_score"
    test_dir.mkdir()
    for sample_id in evaluated["sample_id"]:
        (test_dir / sample_id).write_bytes((data / sample_id).read_bytes())
    out = tmp_path / "scored"
    args = ["--config", str(config), "score", "crnn-lines@champion", "--input", str(test_dir)]
    scored = run_cli([*args, "--out", str(out)], env, cwd=tmp_path)
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-2000:]
    table = pd.concat(pd.read_parquet(p) for p in sorted(out.rglob("*.parquet")))
    by_id = dict(zip(table["sample_id"], table["prediction"], strict=True))
    assert by_id == dict(zip(evaluated["sample_id"], evaluated["prediction"], strict=True))
