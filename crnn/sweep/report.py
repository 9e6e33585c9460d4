"""What a sweep found: the best trial against the pipeline as it is (trial 0), the table of all
trials, and Optuna's plots (matplotlib: optimization history, parameter importances, parallel
coordinates, the epochs of each trial)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from crnn.sweep.results import SweepResult, TrialRow
from crnn.sweep.study import DEFAULT, LOST, RETRY_OF, finished

TOP = 5  # trials in the console's table


def trial_row(trial: FrozenTrial) -> TrialRow:
    attrs = trial.user_attrs
    state = "lost" if LOST in attrs else trial.state.name.lower()
    return {
        "trial": trial.number,
        "state": state,
        "value": trial.value if trial.state == TrialState.COMPLETE else None,
        "params": dict(trial.params),
        "epochs": attrs.get("crnn.epochs_run"),
        "best_epoch": attrs.get("crnn.best_epoch"),
        "checkpoint": attrs.get("crnn.checkpoint"),
        "seconds": attrs.get("crnn.wall_s"),
        "run_id": attrs.get("crnn.run_id"),
        "default": bool(attrs.get(DEFAULT)),
        "retry_of": attrs.get(RETRY_OF),
        "error": attrs.get("crnn.error"),
    }


def best_trial(study: Any) -> FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def default_trial(study: Any) -> FrozenTrial | None:
    """Trial 0, the pipeline as it is (or the run of it that completed, when retried)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next((t for t in trials if t.user_attrs.get(DEFAULT)), None)


def summary(study: Any, metric: str, direction: str) -> SweepResult:
    """The sweep in numbers: counts by state, the best and the default trial, the gain (in the
    better direction: positive when the best beats the default), the top trials."""
    trials = study.get_trials(deepcopy=False)
    rows = [trial_row(t) for t in trials]
    best, default = best_trial(study), default_trial(study)
    gain = None
    if best is not None and default is not None:
        sign = 1.0 if direction == "maximize" else -1.0
        gain = sign * (float(best.value or 0.0) - float(default.value or 0.0))
    complete = sorted(
        (r for r in rows if r["state"] == "complete"),
        key=lambda r: r["value"] or 0.0,
        reverse=direction == "maximize",
    )
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "failed")}
    return {
        "trials_complete": counts["complete"],
        "trials_pruned": counts["pruned"],
        "trials_failed": counts["failed"],
        "study": study.study_name,
        "metric": metric,
        "direction": direction,
        "trials_finished": len(finished(trials)),
        "trials_lost": sum(r["state"] == "lost" for r in rows),
        "best": trial_row(best) if best is not None else None,
        "default": trial_row(default) if default is not None else None,
        "gain": gain,
        "top": complete[:TOP],
        "trials": rows,
    }


def trials_table(rows: list[TrialRow]) -> pd.DataFrame:
    """One row per trial, a column per parameter (``param.<path>``)."""
    flat = []
    for row in rows:
        params = {f"param.{k}": v for k, v in row["params"].items()}
        flat.append({k: v for k, v in row.items() if k != "params"} | params)
    return pd.DataFrame(flat)


PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
}


def plots(study: Any, out: Path) -> list[Path]:
    """Optuna's matplotlib plots as PNGs in ``out``; a plot the trials cannot make yet (e.g.
    importances from fewer than two complete trials) is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    from crnn.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, function in PLOTS.items():
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            axes = getattr(views, function)(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(9, 5.5)
            figure.tight_layout()
            save_figure(figure, out / f"{name}.png", dpi=100)
            plt.close(figure)
            written.append(out / f"{name}.png")
    return written
