"""A model version registered before the package layout moved (issue 30) still lists, predicts
and loads as an MLflow pyfunc with today's code.

The fixture (tests/fixtures/registered_before_layout/) is the MLflow store of one tiny `crnn run`
made with the code of commit bb5e16d, the last before the move: its database and artifacts, with
the workspace's path written as ``@WORKSPACE@`` (``@PROJECT@`` for the folder above it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "registered_before_layout"
MODEL = "crnn-premove"


def unpack_store(project: Path) -> Path:
    """The fixture's store laid out in ``project/ws``, its recorded paths pointed there."""
    workspace = project / "ws"
    workspace.mkdir(parents=True)
    with tarfile.open(FIXTURE / "store.tar.gz") as tar:
        tar.extractall(workspace, filter="data")
    marks = (("@WORKSPACE@", str(workspace)), ("@PROJECT@", str(project)))
    with sqlite3.connect(workspace / "mlflow.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]:
                for mark, path in marks:
                    db.execute(
                        f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                        f'WHERE instr(CAST("{column}" AS TEXT), ?) > 0',
                        (mark, path, mark),
                    )
    for mlmodel in workspace.rglob("MLmodel"):
        text = mlmodel.read_text(encoding="utf-8")
        mlmodel.write_text(text.replace("@WORKSPACE@", str(workspace)), encoding="utf-8")
    (project / "pipelines.yaml").write_text(
        (FIXTURE / "pipelines.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return workspace


@pytest.mark.integration
def test_a_version_registered_before_the_move_lists_predicts_and_loads(tmp_path: Path) -> None:
    workspace = unpack_store(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CRNN_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'mlflow.db'}"
    listed = run_cli(["models", MODEL, "--json"], env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (model,) = json.loads(listed.stdout)
    assert model["aliases"] == {"challenger": 1, "champion": 1}
    assert [str(v["version"]) for v in model["versions"]] == ["1"]

    line = np.random.default_rng(0).integers(0, 255, (32, 96), dtype=np.uint8)
    image = tmp_path / "line.png"
    Image.fromarray(line).save(image)
    predicted = run_cli(["predict", f"{MODEL}@champion", str(image), "--json"], env, tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    (row,) = json.loads(predicted.stdout)["predictions"]
    assert set(row["prediction"]) <= set("0123456789")

    # the pyfunc as MLflow serves it (a process of its own: it runs the model's bundled code)
    script = (
        "import json, sys, mlflow\n"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@champion')\n"
        "print(json.dumps(m.predict([sys.argv[1]])))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(image)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == [row["prediction"]]


@pytest.mark.integration
def test_a_version_registered_before_drift_profiles_scores_with_no_reference(
    tmp_path: Path,
) -> None:
    """Its model artifacts hold no reference profile: the job scores as before and its drift
    says "no reference" in one line."""
    from crnn.cli.main import score_report
    from flows.score import _ctx, input_spec, score_task

    workspace = unpack_store(tmp_path)
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    from crnn.tracking.scoring import resolve_model

    ref = resolve_model(_ctx(uri, None, str(workspace)), f"{MODEL}@champion")
    out = tmp_path / "scored"
    summary = score_task.fn(
        ref, uri, str(workspace), None, None, str(out), input_spec(None, None), 64, 64
    )
    assert summary.rows_scored == summary.rows_in == 96 + 32 + 32
    assert summary.drift["reference"] is False and not summary.drift["detected"]
    report = score_report({**summary.to_dict(), "mlflow_run_id": "r"})
    drift_lines = [line for line in report.splitlines() if line.startswith("drift:")]
    assert len(drift_lines) == 1 and drift_lines[0].startswith("drift: no reference")
    assert not (out / "_profile").exists()
