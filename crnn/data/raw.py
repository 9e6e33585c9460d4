"""What users hand a registered model, turned into its inputs with the features it was trained with.

A text model takes strings (a list, an array, or a DataFrame with a ``text`` column) and applies
its stored tokenizer; an audio model takes waveforms (a DataFrame with an ``audio`` column of float
arrays and ``sample_rate``), WAV file bytes (a ``wav`` column) or WAV paths (a ``path`` column),
and applies its stored resampling and log-mel parameters. Image-like models take arrays as they
are. One function per source kind, looked up by the source name the checkpoint records.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crnn.config import AudioFolderData
from crnn.data.audio import MEL_KEYS, fit_wave, read_wav, wave_features
from crnn.data.tokenizer import Tokenizer
from crnn.errors import DataError

RawReader = Callable[[Any, dict[str, Any], dict[str, Any]], np.ndarray]


def texts_to_inputs(
    model_input: Any, source: dict[str, Any], features: dict[str, Any]
) -> np.ndarray:
    """Strings -> token ids (N, max_length), with the model's own vocabulary."""
    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input and len(model_input.columns) != 1:
            raise DataError(f"a text model takes a 'text' column; got {list(model_input)[:5]}")
        model_input = model_input["text" if "text" in model_input else model_input.columns[0]]
    texts = [model_input] if isinstance(model_input, str) else list(model_input)
    if not all(isinstance(t, str) for t in texts):
        raise DataError("a text model takes strings (a list or a DataFrame 'text' column)")
    return Tokenizer.from_features(features).transform(texts)


def waves_to_inputs(
    model_input: Any, source: dict[str, Any], features: dict[str, Any]
) -> np.ndarray:
    """Waveforms, WAV bytes or WAV paths -> log-mel spectrograms (N, 1, n_mels, frames)."""
    cfg = AudioFolderData.model_validate({k: source[k] for k in MEL_KEYS})
    spectrogram, _ = wave_features(cfg)
    rate, seconds = cfg.sample_rate, cfg.duration_seconds
    frame = model_input if isinstance(model_input, pd.DataFrame) else None
    if frame is not None and "audio" in frame:
        if "sample_rate" not in frame:
            raise DataError("an 'audio' column needs a 'sample_rate' column (Hz) beside it")
        waves = [
            fit_wave(np.asarray(x, dtype=np.float32), int(r), rate, seconds)
            for x, r in zip(frame["audio"], frame["sample_rate"], strict=True)
        ]
    elif frame is not None and "wav" in frame:
        waves = [read_wav(io.BytesIO(bytes(b)), rate, seconds) for b in frame["wav"]]
    elif frame is not None and "path" in frame:
        waves = [read_wav(Path(p), rate, seconds) for p in frame["path"]]
    else:
        raise DataError(
            "an audio model takes a DataFrame with 'audio' (float arrays) and 'sample_rate', "
            "or 'wav' (WAV file bytes), or 'path' (WAV files)"
        )
    return np.stack([spectrogram(w) for w in waves]) if waves else np.zeros((0, 1, 1, 1))


def channel_axis(input_shape: tuple[int, ...]) -> int | None:
    """Index of the channel axis in a sample's shape: (C, H, W) -> 0, (T, C, H, W) -> 1."""
    return len(input_shape) - 3 if len(input_shape) >= 3 else None


def squeeze_channel(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Drop a single channel axis from a batch: how users hold grey images and clips."""
    axis = channel_axis(input_shape)
    return x if axis is None or input_shape[axis] != 1 else np.squeeze(x, axis=1 + axis)


RAW_READERS: dict[str, RawReader] = {
    "text_table": texts_to_inputs,
    "audio_folder": waves_to_inputs,
    "spoken_digit_strings": waves_to_inputs,
}


def raw_to_inputs(model_input: Any, source: dict[str, Any], features: dict[str, Any]) -> np.ndarray:
    """The model's inputs (source units) from what a user has; arrays pass as they are."""
    reader = RAW_READERS.get(str(source.get("source")))
    if reader is None:
        return np.asarray(model_input, dtype=np.float32)
    return reader(model_input, source, features)


def raw_example(manifest_path: Path, rows: int = 3) -> np.ndarray | pd.DataFrame:
    """The first test samples of a shard set as a user would hand them to the model: texts
    (decoded from their tokens), waveforms (read again from their WAV files at the model's rate)
    or arrays in source units (channel axis dropped for single-channel data)."""
    from crnn.data.loader import load_manifest, load_split
    from crnn.normalization import Normalizer

    manifest = load_manifest(manifest_path)
    test = load_split(manifest_path, "test")
    source, kind = manifest.source.get("config", {}), manifest.source.get("name")
    if kind == "text_table":
        vocabulary = manifest.features["vocabulary"]
        ids = test.inputs[:rows].numpy().astype(int)
        texts = [" ".join(vocabulary[i] for i in row if i > 1) for row in ids]  # no pad, no unk
        return pd.DataFrame({"text": texts})
    if kind == "spoken_digit_strings":
        from crnn.data.speech import raw_waves

        waves = raw_waves(source, rows)
        return pd.DataFrame({"audio": waves, "sample_rate": [int(source["sample_rate"])] * rows})
    if kind == "audio_folder":
        root, rate = Path(source["path"]), int(source["sample_rate"])
        waves = [
            read_wav(root / i, rate, float(source["duration_seconds"]))
            for i in test.sample_ids[:rows]
        ]
        return pd.DataFrame({"audio": waves, "sample_rate": [rate] * len(waves)})
    raw = Normalizer.from_stats(manifest.normalization).inverse_transform(
        test.inputs[:rows].numpy()
    )
    return squeeze_channel(raw, tuple(manifest.input_shape))
