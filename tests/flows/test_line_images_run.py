"""A user's own line images through `crnn run` and out of the registry: the pyfunc from
``models:/NAME@champion`` in a fresh process, and `crnn score --input`, read the test images
from their files and agree with the evaluation on every test line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from crnn.metrics import sequence_metrics
from tests.conftest import run_cli, user_env, write_config
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
                "training": {"epochs": 4, "batch_size": 8, "lr": 0.005, "device": "cpu"},
                "evaluation": {
                    "sample_predictions": 4,
                    "decoder": {"kind": "beam", "beam_width": 5},
                },
                "registry": {"first_champion_margin": None},
            }
        },
    }


def test_pyfunc_and_scoring_read_the_line_files_as_evaluation_did(
    tmp_path: Path, prefect_server: dict[str, str]
) -> None:
    data = tmp_path / "lines"
    render_lines(data, 240, seed=7, alphabet="abcd", words=(1, 2))  # quick to learn
    config = write_config(tmp_path / "pipelines.yaml", _pipelines(tmp_path / "ws", data))
    env = user_env(**prefect_server)
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
        f"paths = pd.DataFrame({{'path': {paths!r}}})\n"
        "print(json.dumps(list(m.predict(paths))))\n"
        "print(m.predict(paths, params={'confidence': True}).to_json(orient='records'))\n"
    )
    served = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180
    )
    assert served.returncode == 0, served.stderr[-2000:]
    plain, detailed = served.stdout.strip().splitlines()[-2:]
    assert json.loads(plain) == list(evaluated["prediction"])
    with_confidence = pd.DataFrame(json.loads(detailed))
    assert list(with_confidence["prediction"]) == list(evaluated["prediction"])

    test_dir = tmp_path / "to_score"
    test_dir.mkdir()
    for sample_id in evaluated["sample_id"]:
        (test_dir / sample_id).write_bytes((data / sample_id).read_bytes())
    transcribed = list(evaluated["sample_id"][::2])  # half the lines come with their truth
    for sample_id in transcribed:
        gt = Path(sample_id).with_suffix(".gt.txt")
        (test_dir / gt).write_bytes((data / gt).read_bytes())
    out = tmp_path / "scored"
    args = ["--config", str(config), "score", "crnn-lines@champion", "--input", str(test_dir)]
    scored = run_cli(
        [*args, "--out", str(out), "--review-below", "0.9", "--json"], env, cwd=tmp_path
    )
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-2000:]
    job = json.loads(scored.stdout)
    table = pd.read_parquet(out).set_index("sample_id")
    assert table["prediction"].to_dict() == dict(
        zip(evaluated["sample_id"], evaluated["prediction"], strict=True)
    )
    _check_confidences(table, with_confidence.set_index(evaluated["sample_id"]))
    _check_truth_and_review(table, job, evaluated.set_index("sample_id").loc[transcribed], out)
    two = paths[:2]
    args = ["--config", str(config), "predict", "crnn-lines@champion", *two, "--json"]
    predicted = run_cli(args, env, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = json.loads(predicted.stdout)["predictions"]
    for row, sample_id in zip(rows, evaluated["sample_id"][:2], strict=True):
        assert row["char_confidence"] == pytest.approx(
            list(table.loc[sample_id, "char_confidence"]), abs=1e-3
        )


def _check_confidences(table: pd.DataFrame, served: pd.DataFrame) -> None:
    """One probability per character of every line, the same from the pyfunc and the job."""
    for sample_id, row in table.iterrows():
        chars = list(row["char_confidence"])
        assert len(chars) == len(row["prediction"]), sample_id
        assert all(0.0 < c <= 1.0 for c in chars)
        assert served.loc[sample_id, "char_confidence"] == pytest.approx(chars, abs=1e-5)
        assert served.loc[sample_id, "confidence"] == pytest.approx(row["confidence"], abs=1e-5)


def _check_truth_and_review(
    table: pd.DataFrame, job: dict, transcribed: pd.DataFrame, out: Path
) -> None:
    """Metrics against the .gt.txt given beside half the lines; the rows under 0.9 listed."""
    assert table["truth"].notna().sum() == len(transcribed)
    expected = sequence_metrics(list(transcribed["truth"]), list(transcribed["prediction"]))
    assert job["against_truth"]["rows"] == len(transcribed)
    assert job["against_truth"]["cer"] == pytest.approx(expected["cer"])
    review = pd.read_csv(out / "_review.csv", keep_default_na=False)
    low = table[table["confidence"] < 0.9]
    assert job["rows_for_review"] == len(review) == len(low)
    assert set(review["sample_id"]) == set(low.index)
    assert list(review["confidence"]) == sorted(review["confidence"])
