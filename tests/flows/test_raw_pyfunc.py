"""Raw in, answer out: the registered text and audio models take what a user has (strings;
waveforms, WAV bytes, WAV paths), loaded with mlflow.pyfunc in a fresh process, and answer as the
evaluation step did on the same test samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from tests.conftest import REPO
from tests.data.test_audio import spoken_folder
from tests.flows.test_pipelines import ONE_EPOCH, _sentiment_table

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
from pathlib import Path
import mlflow, pandas as pd
uri, name, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
mlflow.set_tracking_uri(uri)
model = mlflow.pyfunc.load_model(f"models:/crnn-{name}@champion")
served = {}
for path in sorted(folder.glob("*.parquet")):
    frame = pd.read_parquet(path)
    served[path.stem] = list(model.predict(frame.text.tolist() if path.stem == "list" else frame))
print(json.dumps(served))
"""


def _retrain(name: str, overrides: list[str], tmp_path: Path, monkeypatch) -> dict:
    from flows.retrain import retrain

    monkeypatch.setenv("CRNN_WORKSPACE", str(tmp_path / "ws"))
    return retrain(
        pipeline=name,
        config_path=str(REPO / "pipelines.yaml"),
        overrides=overrides,
        progress=False,
    )


def _evaluated(summary: dict, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "ws" / "runs" / summary["mlflow"]["run_id"] / "evaluation"
    return pd.read_parquet(path / "test_predictions.parquet")


def _served(summary: dict, name: str, frames: dict[str, pd.DataFrame], tmp_path: Path) -> dict:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for form, frame in frames.items():
        frame.to_parquet(inputs / f"{form}.parquet")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, summary["mlflow"]["tracking_uri"], name, str(inputs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_text_model_takes_strings(prefect_harness, tmp_path, monkeypatch) -> None:
    table = _sentiment_table(tmp_path / "reviews.csv")
    summary = _retrain("sentiment", [f"data.path={table}", *ONE_EPOCH], tmp_path, monkeypatch)
    evaluated = _evaluated(summary, tmp_path)
    rows = pd.read_csv(table)
    texts = [rows.text[int(i.split("-")[1])] for i in evaluated.sample_id]  # table-<row>
    served = _served(
        summary,
        "sentiment",
        {"frame": pd.DataFrame({"text": texts}), "list": pd.DataFrame({"text": texts})},
        tmp_path,
    )
    assert served["frame"] == served["list"] == evaluated.prediction.tolist()


def test_audio_model_takes_waveforms_wav_bytes_and_paths(prefect_harness, tmp_path, monkeypatch):
    root = spoken_folder(tmp_path / "audio", 2)  # 8 / 11.025 / 16 kHz; int16, float, stereo
    summary = _retrain("spoken-digits", [f"data.path={root}", *ONE_EPOCH], tmp_path, monkeypatch)
    evaluated = _evaluated(summary, tmp_path)
    paths = [root / i for i in evaluated.sample_id]
    waves, rates = [], []
    for path in paths:  # as numpy hands audio to a user: float64 in [-1, 1] at the file's rate
        rate, data = wavfile.read(path)
        x = data / 32768.0 if data.dtype == np.int16 else data
        waves.append(np.asarray(x, dtype=np.float64).reshape(len(x), -1).mean(axis=1))
        rates.append(rate)
    frames = {
        "audio": pd.DataFrame({"audio": waves, "sample_rate": rates}),
        "wav": pd.DataFrame({"wav": [p.read_bytes() for p in paths]}),
        "path": pd.DataFrame({"path": [str(p) for p in paths]}),
    }
    served = _served(summary, "spoken-digits", frames, tmp_path)
    want = evaluated.prediction.tolist()
    assert served["path"] == served["wav"] == want
    # resampled from the user's own float samples: the same answers but where a borderline
    # sample's spectrogram moves by float rounding
    agree = np.mean([a == b for a, b in zip(served["audio"], want, strict=True)])
    assert agree >= 0.9, (served["audio"], want)
