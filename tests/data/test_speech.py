"""Speech to text: spoken digit strings composed from single-word recordings the test makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

from crnn.config import (
    EvaluationConfig,
    ModelConfig,
    PreprocessingConfig,
    SpokenDigitStringsData,
    TrainingConfig,
)
from crnn.data.catalog import open_source
from crnn.data.preprocess import preprocess
from crnn.data.sources import SPLITS
from crnn.data.speech import trim_silence
from crnn.engine.train import train_on_shards
from crnn.inference.evaluate import evaluate_checkpoint

SPEAKERS = ("ann", "bob", "cid", "dan", "eve")
RATE = 8000


def spoken_words(root: Path, per_speaker: int = 6, seed: int = 0) -> Path:
    """One recording per file, {digit}_{speaker}_{n}.wav: a voiced tone per digit (its pitch
    moved a little per speaker), 0.2-0.35 s long, with silence before and after."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for s, speaker in enumerate(SPEAKERS):
        pitch = 1 + 0.015 * (s - 2)  # speakers differ, less than digits do
        for digit in range(10):
            base = (300 + 180 * digit) * pitch
            for k in range(per_speaker):
                t = np.arange(int(RATE * rng.uniform(0.2, 0.35))) / RATE
                harmonics = [h for h in (1, 2, 3) if base * h < RATE / 2]
                voice = sum(np.sin(2 * np.pi * base * h * t) / h for h in harmonics)
                voice *= np.hanning(len(t)) * rng.uniform(0.3, 0.6)
                pad = np.zeros(int(RATE * rng.uniform(0.05, 0.15)))
                wave = np.concatenate([pad, voice, pad]) + 0.005 * rng.normal(
                    size=2 * len(pad) + len(t)
                )
                wavfile.write(
                    root / f"{digit}_{speaker}_{k}.wav", RATE, (wave * 32767).astype(np.int16)
                )
    return root


def config(root: Path, **kw: object) -> SpokenDigitStringsData:
    base = {
        "path": str(root),
        "lines": {"train": 600, "val": 60, "test": 100},
        "min_words": 2,
        "max_words": 4,
        "duration_seconds": 2.0,
        "n_mels": 24,
    }
    return SpokenDigitStringsData.model_validate({**base, **kw})


def test_trim_silence_keeps_the_word_only() -> None:
    word = np.sin(np.linspace(0, 200, 1600)).astype(np.float32)
    padded = np.concatenate([np.zeros(800, np.float32), word, np.zeros(1200, np.float32)])
    trimmed = trim_silence(padded, RATE)
    assert 1500 <= len(trimmed) <= 1700 and np.abs(trimmed).max() > 0.9


def test_utterances_use_each_recording_and_speaker_in_one_split_only(tmp_path) -> None:
    src = open_source(config(spoken_words(tmp_path / "words")))
    pools = {s: set(src.pools[s].tolist()) for s in SPLITS}
    assert not (
        pools["train"] & pools["val"]
        or pools["train"] & pools["test"]
        or pools["val"] & pools["test"]
    )
    speakers = {s: {src.files[i].name.split("_")[1] for i in pools[s]} for s in SPLITS}
    assert not speakers["train"] & speakers["test"] and not speakers["val"] & speakers["test"]
    info = src.info()
    assert info.target.kind == "sequence" and info.target.charset == "0123456789"
    utterances = list(src.utterances("test"))
    assert len(utterances) == 100
    assert all(1 <= len(text) <= 4 for _, _, text in utterances)
    assert np.mean([len(text) >= 2 for _, _, text in utterances]) > 0.9  # few cut short
    again = [text for _, _, text in open_source(config(tmp_path / "words")).utterances("test")]
    assert again == [text for _, _, text in utterances]  # deterministic


def test_spoken_digit_strings_are_recognized_with_ctc(tmp_path) -> None:
    root = spoken_words(tmp_path / "words")  # 300 recordings
    prep = PreprocessingConfig(normalization="standardize", augmentation={"copies": 0})
    shards = preprocess(config(root), prep, tmp_path / "shards")
    model = ModelConfig(
        architecture="audio_crnn", head="ctc", conv_channels=(16, 32, 32), rnn_hidden=48
    )
    training = TrainingConfig(
        epochs=12,
        batch_size=16,
        lr=0.003,
        device="cpu",
        early_stopping={"monitor": "val_cer", "mode": "min", "patience": 12},
    )
    result = train_on_shards(shards.manifest_path, model, training, tmp_path / "ckpt")
    report = evaluate_checkpoint(
        result.best_checkpoint,
        shards.manifest_path,
        tmp_path / "eval",
        EvaluationConfig(sample_predictions=0),
    )
    assert report.metrics["test_cer"] <= 0.05, report.metrics


def test_new_utterances_to_transcribe_read_as_training_read_them(tmp_path) -> None:
    """`crnn score --input DIR` on a folder of whole utterances: one sample per WAV file, the same
    spectrogram as the composed utterance had in the shards."""
    cfg = config(spoken_words(tmp_path / "words"), lines={"train": 8, "val": 4, "test": 6})
    src = open_source(cfg)
    (tmp_path / "new").mkdir()
    utterances = list(src.utterances("test"))
    for sample_id, wave, _ in utterances:
        wavfile.write(tmp_path / "new" / f"{sample_id}.wav", RATE, wave)  # float32 WAV: exact
    composed = np.concatenate([c.inputs for c in src.chunks("test", 100)])
    new = list(type(src).new_data(cfg.model_copy(update={"path": str(tmp_path / "new")}), {}, 4))
    assert [len(c) for c in new] == [4, 2]
    ids = [i for c in new for i in c.sample_ids]
    assert ids == [f"{sample_id}.wav" for sample_id, _, _ in utterances]
    np.testing.assert_allclose(np.concatenate([c.inputs for c in new]), composed, atol=1e-5)
