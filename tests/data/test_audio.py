"""Audio folders: WAV files written for real, labels from names or a CSV, speakers never leak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from crnn.config import AudioFolderData, AugmentationConfig, PreprocessingConfig
from crnn.data.audio import log_mel, mel_filterbank, read_wav
from crnn.data.augment import AUGMENTERS, generator_for
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.data.splits import group_split
from crnn.errors import DataError

TONES = {"0": 300.0, "1": 900.0, "2": 2200.0}
SPEAKERS = ("ann", "bob", "cid", "dan", "eve")


def write_tone(path: Path, freq: float, rate: int, kind: str, rng: np.random.Generator) -> None:
    t = np.arange(int(rate * rng.uniform(0.6, 1.2))) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.normal(size=t.size)
    if kind == "int16":
        wavfile.write(path, rate, (wave * 32767).astype(np.int16))
    elif kind == "stereo":
        wavfile.write(path, rate, np.stack([wave, wave], 1).astype(np.float32))
    else:
        wavfile.write(path, rate, wave.astype(np.float32))


def spoken_folder(root: Path, per_speaker: int = 4) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    kinds = ("int16", "float32", "stereo")
    for s, speaker in enumerate(SPEAKERS):
        for label, freq in TONES.items():
            for k in range(per_speaker):
                rate = (8000, 16000, 11025)[(s + k) % 3]
                write_tone(root / f"{label}_{speaker}_{k}.wav", freq, rate, kinds[k % 3], rng)
    return root


def test_mel_filterbank_shape_and_coverage() -> None:
    fb = mel_filterbank(8000, 256, 40)
    assert fb.shape == (40, 129) and fb.max() <= 1.0 + 1e-6
    assert (fb.max(axis=1) > 0.5).all()  # every filter has a real peak
    assert (np.argmax(fb, axis=1)[1:] >= np.argmax(fb, axis=1)[:-1]).all()  # ordered by pitch


def test_read_wav_resamples_pads_and_mixes_down(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_tone(tmp_path / "a.wav", 440, 16000, "stereo", rng)
    x = read_wav(tmp_path / "a.wav", 8000, 1.5)
    assert x.shape == (12000,) and x.dtype == np.float32 and np.abs(x).max() <= 1.0
    assert np.all(x[-1000:] == 0)  # the clip was shorter than 1.5 s: padded with silence
    spec = log_mel(x, mel_filterbank(8000, 256, 40), 256, 128)
    assert spec.shape == (40, 1 + 12000 // 128)
    # the 440 Hz tone's energy peaks in a low filter (440 Hz is ~ filter 8 of 40 at 8 kHz)
    peak = int(np.argmax(spec[:, :40].mean(axis=1)))
    assert 4 <= peak <= 12


def test_labels_from_names_group_split_and_quarantine(tmp_path: Path) -> None:
    root = spoken_folder(tmp_path / "audio")
    (root / "2_eve_9.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (root / "notes.wav").write_bytes(b"")  # no label in its name
    cfg = AudioFolderData(path=str(root), split={"train": 0.6, "val": 0.2, "test": 0.2})
    src = open_source(cfg)
    speakers = {
        s: {Path(f).name.split("_")[1] for f in np.array(src.files)[src.pools[s]]}
        for s in ("train", "val", "test")
    }
    assert not speakers["train"] & speakers["test"] and not speakers["val"] & speakers["test"]
    assert not speakers["train"] & speakers["val"]
    shards = preprocess(
        cfg,
        PreprocessingConfig(
            normalization="standardize", augmentation={"copies": 0}, max_quarantine_fraction=1.0
        ),
        tmp_path / "s",
    )
    m = load_manifest(shards.manifest_path)
    assert m.quarantine.by_reason == {"unlabeled_file": 1, "unreadable_audio": 1}
    assert sum(c["original"] for c in m.splits.values()) + 2 == len(SPEAKERS) * 12 + 2
    assert m.input_shape == [1, 40, 63] and m.features["sample_rate"] == 8000
    assert m.source["modality"] == "audio"


def test_labels_from_csv(tmp_path: Path) -> None:
    root = spoken_folder(tmp_path / "audio", per_speaker=2)
    files = sorted(p.name for p in root.glob("*.wav"))
    pd.DataFrame(
        {
            "path": files,
            "label": [f"digit{f[0]}" for f in files],
            "who": [f.split("_")[1] for f in files],
        }
    ).to_csv(root / "labels.csv", index=False)
    src = open_source(AudioFolderData(path=str(root), labels_csv="labels.csv", group="who"))
    assert src.info().target.classes == ("digit0", "digit1", "digit2")
    assert sum(len(v) for v in src.pools.values()) == len(files)


def test_group_split_needs_groups() -> None:
    from crnn.config import SplitFractions
    from crnn.errors import DataError

    parts = group_split(np.repeat(np.arange(10), 5), SplitFractions(), 0)
    assert sorted(np.concatenate(list(parts.values()))) == list(range(50))
    with pytest.raises(DataError, match="at least 3 groups"):
        group_split(np.array([0, 0, 1, 1]), SplitFractions(), 0)


def test_spectrogram_augmentation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1, 20, 30)).astype(np.float32)
    cfg = AugmentationConfig(time_shift=0.2, time_masks=2, freq_masks=1, mask_width=0.2)
    a = AUGMENTERS.get("audio")(x, cfg, generator_for(3))
    b = AUGMENTERS.get("audio")(x, cfg, generator_for(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.allclose(a, x)
    shifted = AUGMENTERS.get("audio")(x, AugmentationConfig(time_shift=0.2), generator_for(0))
    # a pure time shift is a roll: every frequency row keeps its values
    np.testing.assert_allclose(np.sort(shifted, axis=-1), np.sort(x, axis=-1))


def test_spoken_tones_end_to_end(tmp_path: Path) -> None:
    from crnn.config import ModelConfig, TrainingConfig
    from crnn.engine.train import train_on_shards
    from crnn.inference.predictor import Predictor

    root = spoken_folder(tmp_path / "audio")
    cfg = AudioFolderData(path=str(root), n_mels=32)
    prep = PreprocessingConfig(
        normalization="standardize", augmentation={"copies": 1, "time_shift": 0.1, "freq_masks": 1}
    )
    shards = preprocess(cfg, prep, tmp_path / "s")
    manifest = load_manifest(shards.manifest_path)
    model_cfg = ModelConfig(
        architecture="audio_crnn", head="classification", conv_channels=(8, 16, 16), rnn_hidden=16
    )
    training = TrainingConfig(
        epochs=6,
        batch_size=8,
        lr=0.01,
        device="cpu",
        schedule="constant",
        early_stopping={"monitor": "val_accuracy", "mode": "max", "patience": 10},
    )
    result = train_on_shards(shards.manifest_path, model_cfg, training, tmp_path / "ckpt")
    test = load_split(shards.manifest_path, "test")
    preds = Predictor.from_checkpoint(result.best_checkpoint, device="cpu").predict_normalized(
        test.inputs
    )
    truth = [manifest.target.classes[i] for i in test.labels.tolist()]
    accuracy = np.mean([p == t for p, t in zip(preds.outputs, truth, strict=True)])
    assert accuracy >= 0.9


def test_a_file_that_is_not_a_wav_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "voice.wav"
    bad.write_text("not audio")
    with pytest.raises(DataError) as info:
        read_wav(bad, 8000, 1.0)
    assert str(info.value).startswith(f"{bad}: not a readable WAV file")
