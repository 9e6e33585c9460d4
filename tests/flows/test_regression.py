"""The shipped regression pipeline (`digit-value`: a handwritten digit's value from its image)
through the real retrain flow: MSE on a standardized target, an RMSE gate minimized, and a
registered pyfunc that returns the numbers the evaluation scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_digit_value_regression_end_to_end(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from crnn.data.raw import raw_example
    from flows.retrain import retrain

    monkeypatch.setenv("CRNN_WORKSPACE", str(tmp_path / "ws"))
    summary = retrain(
        pipeline="digit-value",
        config_path=str(REPO / "pipelines.yaml"),
        overrides=["training.epochs=10"],
        progress=False,
    )
    metrics, registry = summary["metrics"], summary["registry"]
    assert metrics["test_r2"] >= 0.5  # the acceptance figure; about 0.9 in 10 epochs
    assert metrics["test_rmse"] < metrics["trivial_test_rmse"] and metrics["test_mae"] > 0
    assert registry["promoted"]  # beat the training-mean predictor by the default margin
    assert registry["challenger_score"] == pytest.approx(metrics["test_rmse"])

    uri = summary["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    tags = client.get_model_version("crnn-digit-value", registry["version"]).tags
    assert (tags["gate.metric"], tags["gate.direction"]) == ("test_rmse", "minimize")

    run_id = summary["mlflow"]["run_id"]
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="evaluation", dst_path=str(tmp_path / "eval")
    )
    scored = pd.read_parquet(Path(local) / "test_predictions.parquet")
    assert scored["prediction"].dtype == np.float64  # numbers, not labels
    assert "regression_report.txt" in {p.name for p in Path(local).iterdir()}
    figures = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id)}
    assert "predicted_vs_true.png" in figures  # at the top, for the compare view
    manifest = Path(summary["shards"]["manifest"])
    raw = raw_example(manifest, 20)  # the first test images, as a user has them
    model = mlflow.pyfunc.load_model("models:/crnn-digit-value@champion")
    served = np.asarray(list(model.predict(raw)), dtype=np.float64)
    np.testing.assert_allclose(served, scored["prediction"].to_numpy()[:20], rtol=1e-5, atol=1e-5)
