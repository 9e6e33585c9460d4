"""The embedded sources, generated from scikit-learn's bundled real handwritten digits (no
download): text lines of digits (sequence recognition) and single digits (classification, or the
regression of each digit's value)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from crnn.config import DigitsData, DigitStringsData
from crnn.data.sources import SOURCES
from crnn.data.splits import SPLITS, split_indices
from crnn.data.typed import typed_line, with_repeats
from crnn.types.kinds import TargetSpec
from crnn.types.records import Chunk, SourceInfo


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
    image ever appears in a training line; ``cfg.typed_fraction`` of them are typed in a font
    instead (:mod:`crnn.data.typed`). Deterministic for ``cfg.seed``.
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
            if cfg.typed_fraction and rng.random() < cfg.typed_fraction:
                text = with_repeats("".join(str(int(self.labels[d])) for d in chosen), rng)
                lines[i] = typed_line(text, self.height, self.width, rng)
                texts.append(text)
                used.append(chosen[:0])  # no handwritten image in it
                continue
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
    """scikit-learn's 1,797 real 8x8 handwritten digits, one label per image; with
    ``target: value`` the digit's value as a number (regression)."""

    def __init__(self, cfg: DigitsData) -> None:
        self.cfg = cfg
        self.images, self.labels = _sklearn_digits()
        self.pools = split_indices(self.labels, cfg.split, cfg.seed)

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        value = self.cfg.target == "value"
        return SourceInfo(
            name="digits",
            description="sklearn load_digits: 1797 real 8x8 handwritten digits, "
            + ("their values 0-9 as numbers" if value else "10 classes"),
            digest=_digest(
                self.images.tobytes(), self.labels.tobytes(), json.dumps(config, sort_keys=True)
            ),
            input_shape=(1, 8, 8),
            target=TargetSpec(kind="value")
            if value
            else TargetSpec(kind="class", classes=tuple(str(d) for d in range(10))),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        pool = self.pools[split]
        for start in range(0, len(pool), chunk_rows):
            idx = pool[start : start + chunk_rows]
            value = self.cfg.target == "value"
            yield Chunk(
                split=split,
                sample_ids=[f"digit-{i:04d}" for i in idx],
                inputs=self.images[idx],
                labels=None if value else self.labels[idx],
                values=self.labels[idx].astype(np.float64) if value else None,
            )


def _upscale(images: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return images
    t = torch.from_numpy(images)[:, None]  # (N, 1, 8, 8)
    up = F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)
    return up[:, 0].numpy().astype(np.float32)
