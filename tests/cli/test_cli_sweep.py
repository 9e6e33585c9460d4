"""What `crnn sweep` prints: the top trials in an 80-column terminal, each on one line."""

from __future__ import annotations

import pytest

from crnn.cli.sweep import print_sweep

PARAMS = {
    "training.lr": 0.00512,
    "training.batch_size": 32,
    "model.rnn": "gru",
    "model.rnn_hidden": 96,
}


def _summary() -> dict:
    top = [
        {
            "trial": 3,
            "default": False,
            "value": 0.9383,
            "params": PARAMS,
            "epochs": 3,
            "seconds": 41,
        },
        {
            "trial": 0,
            "default": True,
            "value": 0.9167,
            "params": PARAMS,
            "epochs": 3,
            "seconds": 44,
        },
    ]
    return {
        "pipeline": "digit-strings",
        "study": "digit-strings-0123456789ab",
        "metric": "val_sequence_accuracy",
        "best": {"trial": 3, "value": 0.9383, "params": PARAMS},
        "default": {"trial": 0, "value": 0.9167},
        "gain": 0.0216,
        "top": top,
        "trials_complete": 4,
        "trials_pruned": 2,
        "trials_failed": 0,
        "trials_lost_and_rerun": 0,
        "registry": {
            "model_name": "crnn-digit-strings",
            "version": "1",
            "decision": "promoted",
            "reason": "the first version",
        },
        "mlflow": {"parent_run_id": "f" * 32, "experiment": "digit-strings"},
    }


def test_each_trial_is_one_line_in_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    print_sweep(_summary())
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines[:8]) <= 80
    default_rows = [line for line in lines if "(default)" in line]
    best_rows = [line for line in lines if "3 *" in line]
    assert len(default_rows) == 1 and "0.9167" in default_rows[0], lines
    assert len(best_rows) == 1 and "0.9383" in best_rows[0], lines
    assert "gain +0.0216" in " ".join(lines)
