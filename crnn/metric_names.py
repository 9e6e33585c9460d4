"""How a metric is named in MLflow: grouped by what it measures, so the UI puts each group in a
section of its own (``train/``, ``val/``, ``test/``, ``scoring/``, ``drift/``; MLflow's
``system/``; ``data/``, the row and quarantine counts of runs logged before those became tags).

The product names a metric ``val_cer``, ``test_sequence_accuracy``, ``train_loss`` (in the
console, ``test_metrics.json`` and the pipelines file); MLflow holds ``val/cer``,
``test/sequence_accuracy``, ``train/loss``. This module is the one place that maps the two.
Both spellings are accepted wherever a user names a metric. Runs logged before the grouping hold
the product names: :func:`mlflow_keys` lists both, so the gate still finds a champion's score.
"""

from __future__ import annotations

GROUPS = ("train", "val", "test", "data", "scoring", "drift", "baseline")
TRAINING = {  # names of training's figures without a group of their own
    "lr": "train/lr",
    "best_epoch": "train/best_epoch",
    "epochs_run": "train/epochs_run",
}
TRIVIAL = "trivial_test_"  # the trivial predictor's test scores sit beside the model's
# classical baselines scored beside the model (crnn.inference.baselines): baseline_<name>_<metric>
BASELINES = ("svc", "tfidf", "mfcc")


def baseline_metric(baseline: str, metric: str) -> str:
    """The product name of a baseline's score on ``metric`` (``tfidf``, ``test_accuracy`` ->
    ``baseline_tfidf_test_accuracy``; in MLflow ``baseline/tfidf_test_accuracy``)."""
    return f"baseline_{baseline}_{product_name(metric)}"


def tracked(name: str) -> str:
    """The MLflow key of a product metric name (``val_cer`` → ``val/cer``); a name already
    grouped, or of no group, is returned as it is."""
    if "/" in name:
        return name
    if name in TRAINING:
        return TRAINING[name]
    if name.startswith(TRIVIAL):
        return f"test/trivial_{name[len(TRIVIAL) :]}"
    group, sep, rest = name.partition("_")
    return f"{group}/{rest}" if sep and rest and group in GROUPS else name


def product_name(key: str) -> str:
    """The product name of an MLflow key (``val/cer`` → ``val_cer``): the inverse of
    :func:`tracked`; a name without a group is returned as it is."""
    if "/" not in key:
        return key
    for name, grouped in TRAINING.items():
        if key == grouped:
            return name
    group, _, rest = key.partition("/")
    if group == "test" and rest.startswith("trivial_"):
        return TRIVIAL + rest[len("trivial_") :]
    return f"{group}_{rest}" if group in GROUPS else key


def mlflow_keys(name: str) -> tuple[str, ...]:
    """Where a run may hold metric ``name``: its grouped key, then the ungrouped one of runs
    logged before the grouping."""
    new, old = tracked(name), product_name(name)
    return (new,) if new == old else (new, old)
