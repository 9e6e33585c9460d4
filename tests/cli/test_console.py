"""What a person reads: a progress bar that moves every step (with a time estimate) while the
loss is read back only every few steps, counts as integers, and a run summary that states the
gate's decision once, the quarantined records and a runnable way to open the UI."""

from __future__ import annotations

import io

from rich.console import Console

from crnn.cli.main import print_summary
from crnn.engine.progress import ConsoleProgress


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False, color_system=None), out


def test_the_bar_moves_every_step_and_counts_are_integers() -> None:
    console, out = _console()
    progress = ConsoleProgress(console)
    progress.on_train_start(epochs=3, steps_per_epoch=40)
    progress.on_batch_end(1, 5, 2.5)
    for step in range(6, 13):
        progress.on_step(1, step)  # no loss read back: the bar still moves
    assert progress.progress is not None
    task = progress.progress.tasks[0]
    assert task.completed == 12 and task.fields["loss"] == "2.5000"
    progress.on_epoch_end(1, {"train_loss": 1.23456, "train_samples": 384.0, "lr": 0.1})
    line = out.getvalue().splitlines()[-1]
    assert "train_samples 384 " in f"{line} " and "train_loss 1.2346" in line and "lr" not in line


def test_a_log_file_hears_from_training_before_the_first_epoch_ends() -> None:
    """Where stderr is a file no bar is drawn: a line when training starts, then one every
    ``heartbeat_s`` with the batch and the loss (never a made-up 0.0000 before the first)."""
    console, out = _console()
    progress = ConsoleProgress(console, heartbeat_s=0.0)
    progress.on_train_start(epochs=2, steps_per_epoch=40)
    progress.on_step(1, 1)  # no loss read back yet
    progress.on_batch_end(1, 5, 0.75)
    lines = out.getvalue().splitlines()
    assert lines == [
        "training: 2 epochs of 40 batches",
        "epoch 1/2: batch 1 of 40, loss …",
        "epoch 1/2: batch 5 of 40, loss 0.7500",
    ], lines
    quiet, said = _console()
    progress = ConsoleProgress(quiet)  # every 30 s: not at every batch
    progress.on_train_start(epochs=2, steps_per_epoch=40)
    for step in range(1, 40):
        progress.on_batch_end(1, step, 0.5)
    assert said.getvalue().splitlines() == ["training: 2 epochs of 40 batches"]


def test_the_summary_says_the_decision_once_the_quarantine_and_crnn_ui(capsys) -> None:
    summary = {
        "pipeline": "p",
        "workspace": "/ws",
        "shards": {
            "digest": "a" * 64,
            "reused": False,
            "quarantined": 2,
            "quarantined_by_reason": {"unreadable_file": 2},
        },
        "training": {"epochs_run": 2, "best_epoch": 2, "seconds": 3.0},
        "metrics": {"test_accuracy": 0.5, "test_samples": 48.0},
        "registry": {
            "model_name": "crnn-p",
            "version": "1",
            "decision": "promoted to champion",
            "reason": "the first version, no champion yet",
            "champion_version": "1",
        },
        "mlflow": {"run_id": "r", "experiment": "p", "ui": "crnn ui  (serves ...)"},
    }
    print_summary(summary)
    out = capsys.readouterr().out
    assert "2 quarantined unreadable_file 2" in out
    assert "promoted to champion (the first version, no champion yet)" in " ".join(out.split())
    assert out.count("champion yet") == 1
    assert "48 " in out and "48.0000" not in out
    assert "crnn ui" in out and "mlflow ui" not in out


def test_the_summary_shows_the_model_beside_its_baseline(capsys) -> None:
    summary = {
        "pipeline": "p",
        "workspace": "/ws",
        "shards": {"digest": "a" * 64, "reused": True},
        "training": {"epochs_run": 2, "best_epoch": 2, "seconds": 3.0},
        "metrics": {"test_accuracy": 0.8, "baseline_tfidf_test_accuracy": 0.77},
        "baseline": {"name": "tfidf", "metric": "test_accuracy", "model": 0.8, "baseline": 0.77},
        "registry": {
            "model_name": "m",
            "version": "1",
            "decision": "kept",
            "reason": "r",
            "champion_version": "1",
        },
        "mlflow": {"run_id": "r", "experiment": "p", "ui": "crnn ui"},
    }
    print_summary(summary)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "vs baseline" in out and "test_accuracy: model 0.8000, tfidf baseline" in out
    assert "0.7700 (+0.0300)" in out  # the cell wraps at the console's width
