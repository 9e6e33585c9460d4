"""Audio: folders of WAV files -> log-mel spectrograms (1, n_mels, frames), and their augmentation.

WAV reading and resampling use SciPy (already installed with scikit-learn); the STFT is torch's.
The mel filterbank is the standard HTK formula in a few lines: torchaudio has no CPU build here
and librosa would add numba and llvmlite for this one function.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np
import pandas as pd
import torch
from scipy.io import wavfile

from crnn.config import AudioFolderData, AugmentationConfig, Recordings
from crnn.data.augment import AUGMENTERS
from crnn.data.files import (
    files_digest,
    new_data_files,
    refusal,
    refused,
    require_input,
    require_path,
)
from crnn.data.sources import SOURCES, SPLITS, TargetSpec, per_file_chunks
from crnn.data.splits import group_split, kept_split, split_indices, split_of
from crnn.errors import DataError, unreadable
from crnn.types.kinds import parse_value
from crnn.types.records import Chunk, Quarantined, SourceFeatures, SourceInfo

if TYPE_CHECKING:
    from crnn.data.shards import Manifest
    from crnn.types.batches import SplitData

MEL_KEYS = ("sample_rate", "duration_seconds", "n_mels", "n_fft", "hop_length")


def mel_features(config: dict[str, Any]) -> SourceFeatures:
    """What a model's checkpoint keeps to turn new audio into its inputs (a source's config)."""
    return cast(SourceFeatures, {"kind": "log_mel", **{k: config[k] for k in MEL_KEYS}})


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters evenly spaced on the HTK mel scale."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    top = 2595 * np.log10(1 + (sample_rate / 2) / 700)
    edges = 700 * (10 ** (np.linspace(0, top, n_mels + 2) / 2595) - 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (center - lower)
    falling = (upper - freqs) / (upper - center)
    return np.maximum(0, np.minimum(rising, falling)).astype(np.float32)


def read_wav(path: Path | BinaryIO, sample_rate: int, duration: float | None) -> np.ndarray:
    """Mono float32 in [-1, 1] at ``sample_rate``, padded with silence or cut to ``duration``
    (None: as long as it is)."""
    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError, EOFError) as exc:  # not a WAV file, or a truncated one
        name = path if isinstance(path, Path) else "a WAV stream"
        raise unreadable(name, "WAV file", exc) from None
    return fit_wave(np.asarray(data), rate, sample_rate, duration)


def fit_wave(x: np.ndarray, rate: int, sample_rate: int, duration: float | None) -> np.ndarray:
    """Samples (integer PCM or float in [-1, 1]; mono or (samples, channels)) at ``rate`` ->
    mono float32 at ``sample_rate``, padded with silence or cut to ``duration``."""
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        x = (x.astype(np.float32) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        raise ValueError("no samples")
    if rate != sample_rate:
        from scipy.signal import resample_poly  # ~0.7 s to import: only when a rate differs

        g = math.gcd(rate, sample_rate)
        x = resample_poly(x, sample_rate // g, rate // g).astype(np.float32)
    if duration is None:
        return x
    n = round(duration * sample_rate)
    return np.pad(x[:n], (0, max(0, n - len(x))))


def log_mel(wave: np.ndarray, fbank: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(samples,) -> (n_mels, frames) log power mel spectrogram."""
    spec = torch.stft(
        torch.from_numpy(wave),
        n_fft=n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft),
        center=True,
        return_complex=True,
    )
    power = spec.abs().square().numpy()  # (n_fft // 2 + 1, frames)
    return np.log(fbank @ power + 1e-6).astype(np.float32)


def numeric_labels(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows whose label is a finite number, the other rows)."""
    ok = table["label"].map(lambda v: parse_value(str(v)) is not None).astype(bool)
    return table[ok].reset_index(drop=True), table[~ok]


@SOURCES.register("audio_folder")
class AudioFolderSource:
    """WAV files under ``data.path``; labels from ``labels_csv`` or the file-name pattern."""

    WHAT = "WAV files (labels from labels_csv or data.filename_pattern)"
    INPUT_SUFFIXES = frozenset({".wav"})  # what a folder given to `crnn predict` stands for

    def __init__(self, cfg: AudioFolderData) -> None:
        self.cfg = cfg
        self.root = require_path(cfg.path, self.WHAT)
        table, self.unlabeled = self._label_table()
        self.numeric = cfg.target == "value"  # labels are numbers (regression)
        table, self.not_numbers = numeric_labels(table) if self.numeric else (table, table[:0])
        if table.empty:
            raise DataError(f"{self.root}: no labelled WAV files; check data.filename_pattern")
        self.files = [self.root / p for p in table["path"]]
        self.classes = () if self.numeric else tuple(sorted(table["label"].unique()))
        labels = (
            table["label"].astype(float).to_numpy()
            if self.numeric
            else np.array([self.classes.index(v) for v in table["label"]])
        )
        self.labels = labels
        groups = table["group"].to_numpy() if cfg.group and "group" in table else None
        given = self._given_split(table)
        if given is not None:
            self.pools = kept_split(given, labels, groups, cfg.val_fraction, cfg.seed)
        elif groups is not None:
            self.pools = group_split(groups, cfg.split, cfg.seed)
        else:
            self.pools = split_indices(labels, cfg.split, cfg.seed)
        self.read, self.shape = spectrogram_reader(cfg)

    def _given_split(self, table: pd.DataFrame) -> np.ndarray | None:
        """Split code (0 train, 1 val, 2 test) of each labelled file where the dataset gives
        its split (a CSV column, sub-folders or a file-name rule); None where it does not."""
        cfg, named = self.cfg, None
        ways = {
            f"labels_csv column {cfg.split_column!r}": "split" in table,
            "train/ val/ test/ sub-folders": (self.root / "train").is_dir(),
            "data.split_rule": cfg.split_rule is not None,
        }
        given = [way for way, present in ways.items() if present]
        if len(given) > 1:
            raise DataError(f"{self.root}: the split is given twice ({' and '.join(given)})")
        if not given:
            return None
        if "split" in table:
            named = table["split"].fillna("").str.strip().str.lower()
            where = f"{self.root / str(cfg.labels_csv)}: column {cfg.split_column!r}"
        elif cfg.split_rule is None:
            named = table["path"].str.split("/").str[0]
            where = f"{self.root}: sub-folder"
        else:
            rule = cfg.split_rule
            named = table["split_key"].map(lambda v: split_of(v, rule.test, rule.val))
            where = "data.split_rule"
        bad = sorted(set(named) - set(SPLITS))
        if bad:
            raise DataError(f"{where} holds {bad[:3]}; allowed: {', '.join(SPLITS)}")
        return named.map(SPLITS.index).to_numpy(np.int8)

    def _label_table(self) -> tuple[pd.DataFrame, list[str]]:
        """(path, label[, group]) of every labelled file, and the WAV files without a label."""
        follow = self.cfg.follow_symlinks
        found = {p: refusal(p, self.root, follow) for p in sorted(self.root.rglob("*.wav"))}
        wavs = sorted(p.relative_to(self.root).as_posix() for p, why in found.items() if not why)
        # files that cannot be records, and rows of labels_csv that name no usable file
        self.rejected = [refused(p, self.root, "train", why) for p, why in found.items() if why]
        if self.cfg.labels_csv:
            table, rejected = self._csv_table(set(wavs))
            self.rejected += rejected
            listed = set(table["path"])
            return table, [w for w in wavs if w not in listed]
        pattern = re.compile(self.cfg.filename_pattern or "")
        rows, unlabeled = [], []
        for rel in wavs:
            m = pattern.fullmatch(Path(rel).name)
            if m is None or "label" not in m.groupdict():
                unlabeled.append(rel)
                continue
            row = {"path": rel, "label": m["label"]}
            if self.cfg.group and self.cfg.group in m.groupdict():
                row["group"] = m[self.cfg.group]
            if self.cfg.split_rule is not None:
                row["split_key"] = m[self.cfg.split_rule.group]
            rows.append(row)
        return pd.DataFrame(rows), unlabeled

    def _csv_table(self, wavs: set[str]) -> tuple[pd.DataFrame, list[Quarantined]]:
        """labels_csv's usable rows (paths as found under data.path), and the others as
        quarantine records: a path outside data.path, a file not there, an empty label."""
        cfg = self.cfg
        csv = self.root / str(cfg.labels_csv)
        try:
            table = pd.read_csv(csv, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataError(f"{csv}: unreadable labels_csv ({exc}); fix or replace it") from None
        lacking = [c for c in ("path", "label") if c not in table]
        if lacking:
            raise DataError(
                f"{csv}: no column {lacking[0]!r} (it has {', '.join(map(str, table.columns[:8]))}"
                "); labels_csv needs the columns path,label[,group][,split]"
            )
        table = table.rename(columns={cfg.group or "": "group", cfg.split_column: "split"})
        root, keep, rejected = self.root.resolve(), [], []
        for row, (path, label) in enumerate(zip(table["path"], table["label"], strict=True)):
            where = f"{csv}:{row + 2}"  # the CSV's own line number (after its header)
            found = (self.root / path.strip()).resolve()
            problem = None
            if not found.is_relative_to(root):
                problem = ("path_outside_data", f"{path!r} is outside data.path")
            elif found.relative_to(root).as_posix() not in wavs:
                problem = ("missing_file", f"{path!r} is not a WAV file under data.path")
            elif not label.strip():
                problem = ("empty_label", "the label is empty")
            if problem is None:
                keep.append(row)
                table.loc[row, "path"] = found.relative_to(root).as_posix()
            else:
                rejected.append(Quarantined(path, "train", where, *problem))
        return table.iloc[keep].reset_index(drop=True), rejected

    def info(self) -> SourceInfo:
        cfg = self.cfg
        config = cfg.model_dump(mode="json")
        return SourceInfo(
            name="audio_folder",
            description=f"WAV folder {self.root}: {len(self.files)} files, "
            + ("numeric labels" if self.numeric else f"{len(self.classes)} classes"),
            digest=files_digest(self.files, {k: v for k, v in config.items() if k != "path"}),
            input_shape=self.shape,
            target=TargetSpec(kind="value")
            if self.numeric
            else TargetSpec(kind="class", classes=self.classes),
            config=config,
            modality="audio",
            features=mel_features(config),
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        pool = self.pools[split]
        unusable = self.unlabeled or len(self.not_numbers) or self.rejected
        if split == "train" and unusable:  # reported once
            yield Chunk(
                split, [], np.zeros((0, *self.shape), np.float32), quarantined=self._unusable()
            )
        files = [self.files[i] for i in pool]
        targets = {"values" if self.numeric else "labels": self.labels[pool]}
        yield from per_file_chunks(
            files,
            self.root,
            chunk_rows,
            self.read,
            self.shape,
            "unreadable_audio",
            split,
            **targets,
            follow_symlinks=self.cfg.follow_symlinks,
        )

    def _unusable(self) -> list[Quarantined]:
        """Rows of labels_csv naming no usable file, files without a label, and (numeric
        labels) files whose label is not a number."""
        where = str(self.cfg.labels_csv or "the file name")
        return (
            self.rejected
            + [
                Quarantined(
                    u,
                    "train",
                    str(self.root / u),
                    "unlabeled_file",
                    "no label from labels_csv or filename_pattern",
                )
                for u in self.unlabeled
            ]
            + [
                Quarantined(
                    row.path,
                    "train",
                    str(self.root / row.path),
                    "non_numeric_label",
                    f"label {row.label!r} in {where} is not a finite number",
                )
                for row in self.not_numbers.itertuples()
            ]
        )

    @classmethod
    def new_data(
        cls, cfg: AudioFolderData, features: SourceFeatures, chunk_rows: int
    ) -> Iterator[Chunk]:
        """Every WAV file under ``cfg.path`` (names and CSV not needed), as training's features."""
        root = require_input(cfg.path)
        files = new_data_files(root, {".wav"}, cfg.follow_symlinks)
        if not files:
            raise DataError(f"{root}: no WAV files to score")
        read, shape = spectrogram_reader(cfg)
        follow = cfg.follow_symlinks
        yield from per_file_chunks(
            files, root, chunk_rows, read, shape, "unreadable_audio", follow_symlinks=follow
        )

    @staticmethod
    def raw_inputs(
        model_input: Any, source: dict[str, Any], features: SourceFeatures
    ) -> np.ndarray:
        """Waveforms, WAV bytes or WAV paths -> log-mel spectrograms (``waves_to_inputs``)."""
        return waves_to_inputs(model_input, source)

    @staticmethod
    def raw_example(manifest: Manifest, test: SplitData, rows: int) -> pd.DataFrame:
        """The first test recordings, read again from their WAV files at the model's rate."""
        source = manifest.source.get("config", {})
        root, rate = Path(source["path"]), int(source["sample_rate"])
        seconds = float(source["duration_seconds"])
        waves = [read_wav(root / i, rate, seconds) for i in test.sample_ids[:rows]]
        return pd.DataFrame({"audio": waves, "sample_rate": [rate] * len(waves)})


def waves_to_inputs(model_input: Any, source: dict[str, Any]) -> np.ndarray:
    """Waveforms (an ``audio`` column of float arrays beside ``sample_rate``), WAV bytes (``wav``)
    or WAV paths (``path``) -> log-mel spectrograms (N, 1, n_mels, frames), with the model's
    stored resampling and log-mel parameters."""
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


def spectrogram_reader(
    cfg: AudioFolderData,
) -> tuple[Callable[[Path | BinaryIO], np.ndarray], tuple[int, ...]]:
    """(WAV file -> its (1, n_mels, frames) log-mel spectrogram, that shape) for ``cfg``."""
    spectrogram, shape = wave_features(cfg)

    def read(path: Path | BinaryIO) -> np.ndarray:
        return spectrogram(read_wav(path, cfg.sample_rate, cfg.duration_seconds))

    return read, shape


def wave_features(
    cfg: Recordings,
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[int, ...]]:
    """(fitted wave at ``cfg.sample_rate`` -> its (1, n_mels, frames) log-mel, that shape)."""
    fbank = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels)
    frames = 1 + round(cfg.duration_seconds * cfg.sample_rate) // cfg.hop_length

    def spectrogram(wave: np.ndarray) -> np.ndarray:
        return log_mel(wave, fbank, cfg.n_fft, cfg.hop_length)[None]

    return spectrogram, (1, cfg.n_mels, frames)


@AUGMENTERS.register("audio")
def augment_spectrograms(
    x: np.ndarray, cfg: AugmentationConfig, gen: torch.Generator
) -> np.ndarray:
    """(N, 1, mels, frames): time shift, Gaussian noise, time and frequency masks (SpecAugment)."""
    t = torch.from_numpy(np.array(x, dtype=np.float32))
    n, _, mels, frames = t.shape
    if cfg.time_shift:
        most = int(cfg.time_shift * frames)
        shifts = torch.randint(-most, most + 1, (n,), generator=gen)
        t = torch.stack([torch.roll(s, int(k), dims=-1) for s, k in zip(t, shifts, strict=True)])
    if cfg.noise_std:
        t = t + cfg.noise_std * torch.randn(t.shape, generator=gen)
    fill = t.mean(dim=(1, 2, 3))  # masked stripes take each spectrogram's mean level
    for count, size, axis in ((cfg.time_masks, frames, 3), (cfg.freq_masks, mels, 2)):
        width_max = max(1, int(cfg.mask_width * size))
        for _ in range(count):
            widths = torch.randint(0, width_max + 1, (n,), generator=gen)
            starts = (torch.rand(n, generator=gen) * (size - widths + 1)).long()
            pos = torch.arange(size)
            mask = (pos[None] >= starts[:, None]) & (pos[None] < (starts + widths)[:, None])
            shape = (n, 1, 1, size) if axis == 3 else (n, 1, size, 1)
            t = torch.where(mask.view(shape), fill.view(n, 1, 1, 1), t)
    return t.numpy()
