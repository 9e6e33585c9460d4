"""Per-sample statistics of model inputs, by modality (``manifest.source.modality``): what a
shift of the inputs moves. Inputs are what the model reads (normalized with its own statistics),
so a training run and a scoring job measure the same thing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from crnn.registry import Registry

InputFeatures = Callable[[np.ndarray], dict[str, np.ndarray]]
INPUT_FEATURES: Registry[InputFeatures] = Registry("input profile")
PAD_ID, UNK_ID = 0, 1  # as in crnn.data.tokenizer (not imported: the floors below data)
PERCENTILE_VALUES = 256  # values of a sample its percentiles are read from (a strided subset)


def input_features(modality: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The per-sample input statistics of ``modality`` over a batch ``x`` (N, ...)."""
    return {k: v.astype(np.float32) for k, v in INPUT_FEATURES.get(modality)(x).items()}


@INPUT_FEATURES.register("image")
def value_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, spread and tails of the values (brightness, contrast), and the mean absolute step
    between neighbours along the last axis (sharpness: blur lowers it, noise raises it)."""
    n = len(x)
    flat = x.reshape(n, -1)
    stride = max(1, flat.shape[1] // PERCENTILE_VALUES)
    p05, p95 = np.percentile(flat[:, ::stride], [5, 95], axis=1)
    return {
        "input_mean": flat.mean(axis=1),
        "input_std": flat.std(axis=1),
        "input_p05": p05,
        "input_p95": p95,
        "input_edge": np.abs(np.diff(x, axis=-1)).reshape(n, -1).mean(axis=1),
    }


@INPUT_FEATURES.register("audio")
def audio_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """A log-mel spectrogram's statistics: its mean is the clip's energy; the step along the
    last axis (time) its spectral flux."""
    values = value_features(x)
    return {
        "input_energy": values.pop("input_mean"),
        **{k.replace("input_edge", "input_flux"): v for k, v in values.items()},
    }


@INPUT_FEATURES.register("video")
def video_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """A clip (N, T, C, H, W): its frames' statistics and the motion between frames."""
    motion = np.abs(np.diff(x, axis=1)).reshape(len(x), -1).mean(axis=1)
    return {**value_features(x), "input_motion": motion}


@INPUT_FEATURES.register("text")
def text_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """Token ids (N, L): the text's length in tokens and its out-of-vocabulary rate."""
    ids = x.reshape(len(x), -1)
    length = (ids != PAD_ID).sum(axis=1)
    oov = (ids == UNK_ID).sum(axis=1) / np.maximum(length, 1)
    return {"text_length": length.astype(np.float32), "text_oov_rate": oov}
