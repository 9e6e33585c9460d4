"""Classical baselines scored on the same shards as the CRNN, for side-by-side metrics."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

from crnn.data.loader import load_split
from crnn.metrics import classification_metrics


def svc_baseline(manifest_path: Path, seed: int = 0) -> dict[str, float]:
    """An RBF SVC on flattened, normalized training originals (augmented copies excluded).

    Returns ``baseline_svc_test_*`` metrics on the same test split the CRNN is scored on.
    """
    train, test = load_split(manifest_path, "train"), load_split(manifest_path, "test")
    if train.labels is None or test.labels is None:
        raise ValueError("the SVC baseline needs class labels (a classification pipeline)")
    originals = train.aug == 0 if train.aug is not None else slice(None)
    x_train = train.inputs[originals].flatten(1).numpy()
    y_train = train.labels[originals].numpy()
    started = time.perf_counter()
    model = SVC(gamma="scale", random_state=seed).fit(x_train, y_train)
    predicted = model.predict(test.inputs.flatten(1).numpy())
    metrics = classification_metrics(test.labels.numpy(), np.asarray(predicted))
    out = {f"baseline_svc_test_{k}": v for k, v in metrics.items()}
    out["baseline_svc_fit_seconds"] = time.perf_counter() - started
    out["baseline_svc_train_rows"] = float(len(y_train))  # the originals it was fit on
    return out
