"""Sources: one reader per data format, registered by name (the ``data.source`` key).

A source yields :class:`Chunk` objects of raw samples (before normalization) split by split, and
describes itself with :class:`SourceInfo` (a digest of the raw data plus how it was read).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from crnn.config import DigitsData, DigitStringsData, SourceConfig, SplitFractions
from crnn.data.files import sample_id_of
from crnn.data.quarantine import Quarantined
from crnn.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TargetSpec:
    """What a sample's target is: a character sequence over ``charset`` or one of ``classes``."""

    kind: str  # "sequence" | "class"
    charset: str = ""
    classes: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        """Network outputs: classes, or characters + the CTC blank (index 0)."""
        return len(self.charset) + 1 if self.kind == "sequence" else len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "charset": self.charset, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetSpec:
        return cls(
            kind=d["kind"], charset=d.get("charset", ""), classes=tuple(d.get("classes", ()))
        )

    def encode(self, text: str) -> list[int]:
        """Characters -> CTC class indices (1..len(charset)); 0 is the blank."""
        index = {c: i + 1 for i, c in enumerate(self.charset)}
        return [index[c] for c in text]


@dataclass(frozen=True)
class SourceInfo:
    name: str
    description: str
    digest: str  # sha256 of the raw data and the settings that read it
    input_shape: tuple[int, ...]  # (channels, height, width) of one sample
    target: TargetSpec
    config: dict[str, Any] = field(default_factory=dict)
    modality: str = "image"  # picks the augmenter: image | video | audio | text
    # what a scorer needs to turn raw inputs into model inputs (vocabulary, audio parameters...)
    features: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """Raw samples of one split: ``inputs`` is (N, H, W) or (N, C, H, W) float32, source units.

    Unless ``normalization`` is set: then ``inputs`` are already normalized with those statistics
    (chunks read back from a shard set), and a consumer with other statistics undoes them first.

    ``quarantined`` holds the records of this stretch of input that a reader could not turn into
    samples (unreadable or truncated files...): they are counted, never dropped silently.
    """

    split: str
    sample_ids: list[str]
    inputs: np.ndarray
    texts: list[str] | None = None
    labels: np.ndarray | None = None
    quarantined: list[Quarantined] = field(default_factory=list)
    normalization: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.sample_ids)


class Source(Protocol):
    def info(self) -> SourceInfo: ...

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]: ...


NEW = "new"  # the split name of new (unlabeled) data read for scoring


def new_data_chunks(
    cfg: SourceConfig, features: dict[str, Any], chunk_rows: int
) -> Iterator[Chunk]:
    """New data for scoring at ``cfg.path``, read with the settings a model was trained with
    (``cfg``, ``features``: its bundled source config and fitted features), labels not needed.

    Readers with a ``new_data(cfg, features, chunk_rows)`` classmethod read any layout (loose
    files, class folders, a table without a label column); the others read their labelled layout,
    every split.
    """
    reader = SOURCES.get(cfg.source)
    if hasattr(reader, "new_data"):
        yield from reader.new_data(cfg, features, chunk_rows)
        return
    source = open_source(cfg)
    for split in SPLITS:
        yield from source.chunks(split, chunk_rows)


def per_file_chunks(
    files: list[Path],
    root: Path,
    chunk_rows: int,
    read: Callable[[Path], np.ndarray],
    shape: tuple[int, ...],
    reason: str,
    split: str = NEW,
    labels: np.ndarray | None = None,
) -> Iterator[Chunk]:
    """Samples that are one file each (images, WAVs, clips): ``read(file)`` -> one input of
    ``shape``, ``labels[k]`` the class of ``files[k]`` (None: new data). A file that ``read``
    cannot parse is quarantined under ``reason`` with the error, never dropped."""
    for start in range(0, len(files), chunk_rows):
        ids, inputs, kept, bad = [], [], [], []
        for k in range(start, min(start + chunk_rows, len(files))):
            path = files[k]
            sample_id = sample_id_of(path, root)
            try:
                inputs.append(read(path))
            except Exception as exc:  # any parse failure of a user's file is a bad record
                detail = f"{type(exc).__name__}: {exc}"[:300]
                bad.append(Quarantined(sample_id, split, str(path), reason, detail))
                continue
            ids.append(sample_id)
            kept.append(k)
        stacked = np.stack(inputs) if inputs else np.zeros((0, *shape), np.float32)
        chunk_labels = None if labels is None else np.asarray(labels, np.int64)[kept]
        yield Chunk(split, ids, stacked, labels=chunk_labels, quarantined=bad)


SOURCES: Registry[Any] = Registry("source")


def split_indices(
    labels: np.ndarray, fractions: SplitFractions, seed: int
) -> dict[str, np.ndarray]:
    """Stratified split of sample indices into train/val/test (sorted, disjoint, complete)."""
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=fractions.test, stratify=labels, random_state=seed)
    val_share = fractions.val / (fractions.train + fractions.val)
    train, val = train_test_split(
        rest, test_size=val_share, stratify=labels[rest], random_state=seed + 1
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def split_train_val(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Split id (0 train, 1 val) per record; stratified by label when there are enough records."""
    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    n_val = int(np.ceil(val_fraction * len(labels)))
    enough = len(counts) and counts.min() >= 2 and min(n_val, len(labels) - n_val) >= len(counts)
    stratify = labels if enough else None
    _, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    assign = np.zeros(len(labels), dtype=np.int8)
    assign[val] = 1
    return assign


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    return h.hexdigest()


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)  # (1797, 8, 8), 0..16


@SOURCES.register("digit_strings")
class DigitStringsSource:
    """Text lines composed from scikit-learn's real handwritten digits (no download).

    Each split composes its lines only from the digit images of its own split, so no test digit
    image ever appears in a training line. Deterministic for ``cfg.seed``.
    """

    def __init__(self, cfg: DigitStringsData) -> None:
        self.cfg = cfg
        images, labels = _sklearn_digits()
        self.labels = labels
        self.digits = _upscale(images, cfg.digit_scale)  # (N, 8s, 8s)
        self.pools = split_indices(labels, cfg.split, cfg.seed)
        size = self.digits.shape[1]
        self.height = size + 2 * cfg.margin
        self.width = 2 * cfg.margin + cfg.max_digits * size + (cfg.max_digits - 1) * cfg.max_gap
        self._raw_digest = _digest(images.tobytes(), labels.tobytes())

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        return SourceInfo(
            name="digit_strings",
            description=f"sklearn load_digits (1797 real 8x8 handwritten digits) composed into "
            f"{self.cfg.min_digits}-{self.cfg.max_digits} digit lines of "
            f"{self.height}x{self.width} pixels",
            digest=_digest(self._raw_digest, json.dumps(config, sort_keys=True)),
            input_shape=(1, self.height, self.width),
            target=TargetSpec(kind="sequence", charset="0123456789"),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        n_lines = getattr(self.cfg.lines, split)
        rng = np.random.default_rng([self.cfg.seed, SPLITS.index(split)])
        for start in range(0, n_lines, chunk_rows):
            n = min(chunk_rows, n_lines - start)
            lines, texts, _ = self.compose(split, n, rng)
            ids = [f"{split}-{i:07d}" for i in range(start, start + n)]
            yield Chunk(split=split, sample_ids=ids, inputs=lines, texts=texts)

    def compose(
        self, split: str, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
        """Compose ``n`` lines from ``split``'s digit pool; also returns the digit indices used."""
        cfg, size, pool = self.cfg, self.digits.shape[1], self.pools[split]
        lines = np.zeros((n, self.height, self.width), dtype=np.float32)
        texts, used = [], []
        for i in range(n):
            count = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
            chosen = rng.choice(pool, size=count)
            gaps = rng.integers(0, cfg.max_gap + 1, size=count - 1)
            span = count * size + int(gaps.sum())
            x = cfg.margin + int(rng.integers(0, self.width - 2 * cfg.margin - span + 1))
            dys = rng.integers(-cfg.margin, cfg.margin + 1, size=count)
            for k, d in enumerate(chosen):
                y = cfg.margin + int(dys[k])
                lines[i, y : y + size, x : x + size] = np.maximum(
                    lines[i, y : y + size, x : x + size], self.digits[d]
                )
                x += size + (int(gaps[k]) if k < count - 1 else 0)
            texts.append("".join(str(int(self.labels[d])) for d in chosen))
            used.append(chosen)
        return lines, texts, used


@SOURCES.register("digits")
class DigitsSource:
    """scikit-learn's 1,797 real 8x8 handwritten digits, one label per image."""

    def __init__(self, cfg: DigitsData) -> None:
        self.cfg = cfg
        self.images, self.labels = _sklearn_digits()
        self.pools = split_indices(self.labels, cfg.split, cfg.seed)

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        return SourceInfo(
            name="digits",
            description="sklearn load_digits: 1797 real 8x8 handwritten digits, 10 classes",
            digest=_digest(
                self.images.tobytes(), self.labels.tobytes(), json.dumps(config, sort_keys=True)
            ),
            input_shape=(1, 8, 8),
            target=TargetSpec(kind="class", classes=tuple(str(d) for d in range(10))),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        pool = self.pools[split]
        for start in range(0, len(pool), chunk_rows):
            idx = pool[start : start + chunk_rows]
            yield Chunk(
                split=split,
                sample_ids=[f"digit-{i:04d}" for i in idx],
                inputs=self.images[idx],
                labels=self.labels[idx],
            )


def _upscale(images: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return images
    t = torch.from_numpy(images)[:, None]  # (N, 1, 8, 8)
    up = F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)
    return up[:, 0].numpy().astype(np.float32)


def open_source(cfg: SourceConfig) -> Source:
    """The registered reader for ``cfg.source``."""
    reader: Source = SOURCES.get(cfg.source)(cfg)
    return reader


def check_source(cfg: SourceConfig) -> None:
    """Fail fast, in one line, when a file-based source has no usable ``data.path``."""
    open_source(cfg)


# the readers of published formats register themselves in SOURCES (and their augmenters)
for _module in ("readers", "video", "audio", "speech", "text"):
    importlib.import_module(f"crnn.data.{_module}")
