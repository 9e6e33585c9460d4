"""Classical baselines fit on the same shards as the CRNN, for side-by-side metrics.

Each is a scikit-learn Pipeline fit on the training originals (augmented copies excluded), its
regularization chosen on the validation split, scored on the test split the CRNN is scored on:

* ``svc``: an RBF SVC on the flattened, normalized inputs (images, clips);
* ``tfidf``: TF-IDF of word 1-2-grams and character 2-5-grams + logistic regression (texts, read
  again from the source by sample id: the shards hold token ids, not the sentences);
* ``mfcc``: MFCC statistics (mean and std over time of 13 coefficients and their deltas, from the
  log-mel spectrograms in the shards) + logistic regression (audio).

Metrics are named ``baseline_<name>_test_<metric>`` (:func:`crnn.metric_names.baseline_metric`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn.data.loader import load_manifest, load_split
from crnn.errors import DataError
from crnn.metrics import classification_metrics

if TYPE_CHECKING:
    from crnn.config import SourceConfig
    from crnn.types.batches import SplitData

SVC_MAX_ROWS = 10000  # an RBF SVC is quadratic in its rows: a seeded sample of the rest
MFCC_COEFFICIENTS = 13


def classical_baseline(
    name: str, manifest_path: Path, data_cfg: SourceConfig | None = None, seed: int = 0
) -> dict[str, float]:
    """Fit baseline ``name`` (svc, tfidf, mfcc) on the train split, choose it on val, score it
    on test. Returns ``baseline_<name>_{val,test}_*`` metrics, its fit time and training rows;
    nothing when the training originals hold fewer than two classes."""
    splits = {s: _originals(load_split(manifest_path, s)) for s in ("train", "val", "test")}
    if any(d.labels is None for d in splits.values()):
        raise ValueError(f"the {name} baseline needs class labels (a classification pipeline)")
    features, candidates = _recipe(name, manifest_path, data_cfg, splits)
    train, val, test = (splits[s] for s in ("train", "val", "test"))
    x_train, y_train = features(train), _labels(train)
    if name == "svc" and len(y_train) > SVC_MAX_ROWS:
        keep = np.random.default_rng(seed).choice(len(y_train), SVC_MAX_ROWS, replace=False)
        x_train, y_train = x_train[np.sort(keep)], y_train[np.sort(keep)]
    if len(np.unique(y_train)) < 2:
        return {}
    started = time.perf_counter()
    best, best_score = None, -1.0
    x_val, y_val = features(val), _labels(val)
    for make in candidates:
        model = make(seed).fit(x_train, y_train)
        score = float((model.predict(x_val) == y_val).mean()) if len(y_val) else 0.0
        if score > best_score:
            best, best_score = model, score
    assert best is not None
    out = {f"baseline_{name}_val_accuracy": best_score}
    predicted = np.asarray(best.predict(features(test)))
    for k, v in classification_metrics(_labels(test), predicted).items():
        out[f"baseline_{name}_test_{k}"] = v
    out[f"baseline_{name}_fit_seconds"] = time.perf_counter() - started
    out[f"baseline_{name}_train_rows"] = float(len(y_train))  # the originals it was fit on
    return out


def svc_baseline(manifest_path: Path, seed: int = 0) -> dict[str, float]:
    """The RBF SVC on flattened inputs (``classical_baseline("svc", ...)``)."""
    return classical_baseline("svc", manifest_path, seed=seed)


Features = Callable[["SplitData"], Any]
Candidates = list[Callable[[int], Any]]


def _recipe(
    name: str, manifest_path: Path, data_cfg: SourceConfig | None, splits: dict[str, SplitData]
) -> tuple[Features, Candidates]:
    """(inputs of a split -> the baseline's features, the Pipelines to choose from on val)."""
    if name == "svc":
        return _flat, [partial(_svc, c) for c in (1.0, 10.0)]
    if name == "mfcc":
        return mfcc_statistics, [partial(_scaled_logistic, c) for c in (0.1, 1.0, 10.0)]
    if name == "tfidf":
        texts = _texts_by_id(manifest_path, data_cfg, splits)
        return lambda d: [texts[s] for s in d.sample_ids], [
            partial(_tfidf_logistic, c) for c in (1.0, 4.0, 16.0)
        ]
    raise ValueError(f"unknown baseline {name!r}; known: svc, tfidf, mfcc")


def _svc(c: float, seed: int) -> Any:
    from sklearn.svm import SVC

    return SVC(C=c, gamma="scale", random_state=seed)


def _logistic(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def _scaled_logistic(c: float, seed: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), _logistic(c, seed))


def _tfidf_logistic(c: float, seed: int) -> Any:
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_tfidf_union(), _logistic(c, seed))


def _tfidf_union() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    # token pattern keeps one-letter words, apostrophes and punctuation: "n't", "!" carry polarity
    words = TfidfVectorizer(
        ngram_range=(1, 2), token_pattern=r"[\w']+|[^\w\s]", sublinear_tf=True, min_df=1
    )
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    return make_union(words, chars)


def _texts_by_id(
    manifest_path: Path, data_cfg: SourceConfig | None, splits: dict[str, SplitData]
) -> dict[str, str]:
    """The sentences behind the shards' rows, read again from the source and matched by
    sample id (the same split by construction)."""
    from crnn.data.catalog import open_source

    manifest = load_manifest(manifest_path)
    if data_cfg is None or manifest.source.get("modality") != "text":
        raise DataError("evaluation.baseline tfidf needs a text source (data.source: text_table)")
    source = open_source(data_cfg)
    wanted = {s for d in splits.values() for s in d.sample_ids}
    texts: dict[str, str] = {}
    for split in splits:
        for chunk in source.chunks(split, 4096):
            for sample_id, text in zip(chunk.sample_ids, chunk.texts or [], strict=False):
                if sample_id in wanted:
                    texts[sample_id] = text
    missing = wanted - texts.keys()
    if missing:
        raise DataError(
            f"{len(missing)} texts of the shard set are no longer in "
            f"{getattr(data_cfg, 'path', '')} (changed since preprocessing?); run again"
        )
    return texts


def mfcc_statistics(data: SplitData) -> np.ndarray:
    """(N, 1, n_mels, frames) log-mel spectrograms -> (N, 4 * 13): mean and std over time of the
    first 13 MFCCs (a DCT-II over the mel axis) and of their frame-to-frame deltas."""
    from scipy.fft import dct

    mels = data.inputs.numpy().reshape(len(data), -1, data.inputs.shape[-1])  # (N, M, T)
    mfcc = dct(mels, type=2, axis=1, norm="ortho")[:, :MFCC_COEFFICIENTS]
    delta = np.diff(mfcc, axis=2) if mfcc.shape[2] > 1 else np.zeros_like(mfcc)
    parts = [mfcc.mean(2), mfcc.std(2), delta.mean(2), delta.std(2)]
    return np.concatenate(parts, axis=1).astype(np.float64)


def _flat(data: SplitData) -> np.ndarray:
    return data.inputs.flatten(1).numpy()


def _labels(data: SplitData) -> np.ndarray:
    assert data.labels is not None
    return data.labels.numpy()


def _originals(data: SplitData) -> SplitData:
    """The rows of ``data`` that are originals (aug 0), not augmented copies."""
    from dataclasses import replace

    if data.aug is None or bool((data.aug == 0).all()):
        return data
    keep = data.aug == 0
    rows = keep.nonzero().flatten().tolist()
    return replace(
        data,
        sample_ids=[data.sample_ids[i] for i in rows],
        inputs=data.inputs[keep],
        labels=None if data.labels is None else data.labels[keep],
        aug=data.aug[keep],
    )
