"""Text-line images and their transcriptions, as OCR tools lay them out.

``NAME.png`` beside ``NAME.gt.txt`` (tesstrain, kraken, Calamari), or a ``labels_csv`` with the
columns ``path,text[,split][,group]``. A split the data gives is kept (a CSV ``split`` column, or
``train/ val/ test/`` sub-folders); otherwise the lines are split by seeded fractions, by file or
by ``group`` (a page, a writer). The character set is read from the training transcriptions
(NFC-normalized) unless ``data.charset`` fixes it; a character outside it is counted and set
aside (``unknown_character``), never a crash.

Every line is read the one way :func:`fit_line` says, for training, evaluation, the pyfunc and
scoring alike: dark ink on a light background, resized to ``height`` keeping its aspect ratio,
squeezed to ``width`` when wider, padded on the right with its own background when narrower.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crnn.config import LineImagesData
from crnn.data.files import (
    IMAGE_SUFFIXES,
    files_digest,
    new_data_files,
    require_input,
    require_path,
    set_apart,
)
from crnn.data.line_labels import label_table, nfc, sidecar_text
from crnn.data.sources import NEW, SOURCES, SPLITS, TargetSpec
from crnn.data.splits import group_split, kept_split, split_indices
from crnn.errors import DataError, unreadable
from crnn.types.records import Chunk, Quarantined, SourceFeatures, SourceInfo


class ImageTooLarge(DataError):
    """An image whose header declares more pixels than ``data.max_image_pixels``: not decoded."""


def charset_of(texts: list[str]) -> str:
    """The characters of ``texts``, sorted by code point (a stable order for a given data set)."""
    return "".join(sorted({c for t in texts for c in t}))


def decode_line(source: str | Path | bytes, max_pixels: int, mode: str) -> np.ndarray:
    """An image file (path or bytes) -> float32 (H, W) or (H, W, 3) in 0-255; refused before
    decoding when its header declares more than ``max_pixels`` pixels."""
    from PIL import Image

    try:
        opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, met in the header
        raise ImageTooLarge(str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:  # not an image Pillow knows
        raise unreadable(source, "image", exc) from None
    with opened as img:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageTooLarge(f"{w}x{h} pixels, more than data.max_image_pixels ({max_pixels})")
        try:
            return np.asarray(img.convert("L" if mode == "grayscale" else "RGB"), np.float32)
        except (OSError, SyntaxError, ValueError) as exc:  # truncated, or a broken stream
            raise unreadable(source, "image", exc) from None


def fit_line(image: np.ndarray, cfg: LineImagesData) -> tuple[np.ndarray, int]:
    """One line (H, W), (H, W, C) or (C, H, W), 8-bit or 0-1 -> (C, height, width) in 0-255, dark
    ink on light, and the width its content kept. Idempotent on its own output."""
    import torch
    import torch.nn.functional as F

    channels = 1 if cfg.mode == "grayscale" else 3
    x = _channels_first(np.asarray(image, np.float32), channels)
    if x.size and float(x.max()) <= 1.0:
        x = x * 255.0  # 0-1 floats
    if float(np.median(_border(x))) < 127.5:
        x = 255.0 - x  # light ink on dark: the other way round
    _, h, w = x.shape
    kept = min(cfg.width, max(1, round(w * cfg.height / h)))
    if (h, w) != (cfg.height, kept):
        t = torch.from_numpy(np.ascontiguousarray(x))[None]
        x = F.interpolate(t, size=(cfg.height, kept), mode="bilinear", antialias=True)[0].numpy()
    out = np.full((channels, cfg.height, cfg.width), float(np.median(_border(x))), np.float32)
    out[:, :, :kept] = np.clip(x, 0.0, 255.0)
    return out, kept


def _channels_first(x: np.ndarray, channels: int) -> np.ndarray:
    if x.ndim == 3 and x.shape[-1] in (3, 4) and x.shape[0] not in (1, 3):
        x = np.moveaxis(x[..., :3], -1, 0)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or min(x.shape) < 1:
        raise DataError(f"a line image is (H, W) or (H, W, C); got shape {list(x.shape)}")
    if x.shape[0] == channels:
        return x
    return x[:3].mean(axis=0, keepdims=True) if channels == 1 else np.repeat(x[:1], channels, 0)


def _border(x: np.ndarray) -> np.ndarray:
    """The pixels on the outer frame of a (C, H, W) image."""
    return np.concatenate(
        [x[:, 0].ravel(), x[:, -1].ravel(), x[:, :, 0].ravel(), x[:, :, -1].ravel()]
    )


def frames_needed(text: str) -> int:
    """CTC frames a text needs: one per character, and a blank between each repeated pair."""
    return len(text) + sum(a == b for a, b in itertools.pairwise(text))


@SOURCES.register("line_images")
class LineImagesSource:
    """Line images with ``NAME.gt.txt`` transcriptions or a ``labels_csv``."""

    WHAT = "line images with NAME.gt.txt transcriptions beside them (or a labels_csv)"

    def __init__(self, cfg: LineImagesData) -> None:
        self.cfg = cfg
        self.root = require_path(cfg.path, self.WHAT)
        table, self.rejected = label_table(self.root, cfg)
        if table.empty:
            raise DataError(
                f"{self.root}: no labelled line images ({len(self.rejected)} set aside); "
                "put NAME.gt.txt beside each NAME.png, or set data.labels_csv"
            )
        self.table = table
        self.pools = self._pools(table)
        train_texts = table["text"].iloc[self.pools["train"]].tolist()
        self.charset = charset_of([nfc(cfg.charset)] if cfg.charset else train_texts)
        self.shape = line_shape(cfg)

    def _pools(self, table: pd.DataFrame) -> dict[str, np.ndarray]:
        cfg, none = self.cfg, np.zeros(len(table))  # no labels to stratify lines by
        groups = table["group"].to_numpy() if "group" in table else None
        if "split" in table:
            given = table["split"].map(SPLITS.index).to_numpy(np.int8)
            return kept_split(given, none, groups, cfg.val_fraction, cfg.seed)
        if groups is not None:
            return group_split(groups, cfg.split, cfg.seed)
        return split_indices(none, cfg.split, cfg.seed)

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        files = [self.root / p for p in self.table["path"]]
        texts = hashlib.sha256("\n".join(self.table["text"]).encode()).hexdigest()
        settings = {k: v for k, v in config.items() if k != "path"}
        return SourceInfo(
            name="line_images",
            description=f"line images in {self.root}: {len(files)} lines, "
            f"{len(self.charset)} characters",
            digest=files_digest(files, {**settings, "texts": texts}),
            input_shape=self.shape,
            target=TargetSpec(kind="sequence", charset=self.charset),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        if split == "train" and self.rejected:  # reported once
            empty = np.zeros((0, *self.shape), np.float32)
            yield Chunk(split, [], empty, texts=[], quarantined=self.rejected)
        rows = self.table.iloc[self.pools[split]]
        for start in range(0, len(rows), chunk_rows):
            yield read_lines(self.root, rows.iloc[start : start + chunk_rows], self.cfg, split)

    @classmethod
    def new_data(
        cls, cfg: LineImagesData, features: SourceFeatures, chunk_rows: int
    ) -> Iterator[Chunk]:
        """Every image under ``cfg.path``, read as training read its lines; a ``NAME.gt.txt``
        beside one (not needed) travels as the line's truth."""
        root = require_input(cfg.path)
        files = new_data_files(root, IMAGE_SUFFIXES, cfg.follow_symlinks)
        if not files:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DataError(f"{root}: no line images to score ({kinds})")
        base = root.parent if root.is_file() else root
        files, set_aside = set_apart(files, base, NEW, cfg.follow_symlinks)
        if set_aside:  # counted, never dropped
            yield Chunk(NEW, [], np.zeros((0, *line_shape(cfg)), np.float32), quarantined=set_aside)
        for start in range(0, len(files), chunk_rows):
            part = files[start : start + chunk_rows]
            paths = [p.relative_to(base).as_posix() for p in part]
            rows = pd.DataFrame({"path": paths, "text": [sidecar_text(p) for p in part]})
            yield read_lines(base, rows, cfg, NEW)

    @staticmethod
    def raw_inputs(
        model_input: Any, source: dict[str, Any], features: SourceFeatures
    ) -> np.ndarray:
        """Line images as users have them (paths, bytes, arrays of any size and polarity, a
        DataFrame with an ``image`` or ``path`` column) -> the model's inputs, read as training
        read its lines (:func:`fit_line`)."""
        cfg = LineImagesData.model_validate({**source, "path": None})
        lines = [fit_line(x, cfg)[0] for x in _images(model_input, cfg)]
        return np.stack(lines) if lines else np.zeros((0, *line_shape(cfg)), np.float32)


def line_shape(cfg: LineImagesData) -> tuple[int, int, int]:
    """(channels, height, width) of one line as the model reads it."""
    return (1 if cfg.mode == "grayscale" else 3, cfg.height, cfg.width)


def read_lines(root: Path, rows: pd.DataFrame, cfg: LineImagesData, split: str) -> Chunk:
    """The lines ``rows`` (path under ``root``, text or None for new data) as a chunk; an image
    that cannot be read, or a text its width cannot hold for CTC, goes to quarantine."""
    ids, inputs, texts, bad = [], [], [], []
    for rel, given in zip(rows["path"], rows["text"], strict=True):
        text = given if isinstance(given, str) else None  # pandas reads a missing text as NaN
        path = root / rel
        try:
            line, kept = fit_line(decode_line(path, cfg.max_image_pixels, cfg.mode), cfg)
        except ImageTooLarge as exc:
            bad.append(Quarantined(rel, split, str(path), "image_too_large", str(exc)))
            continue
        except Exception as exc:  # any decode failure of a user's file is a bad record
            detail = f"{type(exc).__name__}: {exc}"[:300]
            bad.append(Quarantined(rel, split, str(path), "unreadable_image", detail))
            continue
        if split != NEW and frames_needed(text or "") * cfg.frame_pixels > kept:
            detail = (
                f"{len(text or '')} characters in {kept} pixels of width at height {cfg.height}: "
                f"CTC needs {cfg.frame_pixels} per character (data.frame_pixels)"
            )
            bad.append(Quarantined(rel, split, str(path), "text_too_long", detail))
            continue
        ids.append(rel)
        inputs.append(line)
        texts.append(text)
    stacked = np.stack(inputs) if inputs else np.zeros((0, *line_shape(cfg)), np.float32)
    # no widths: a line is read whole, padding included, as training read it; a new line carries
    # its transcription where one was beside it, never set aside for it
    if split == NEW:
        return Chunk(split, ids, stacked, quarantined=bad, truth=texts)
    return Chunk(split, ids, stacked, texts=[t or "" for t in texts], quarantined=bad)


def _images(model_input: Any, cfg: LineImagesData) -> list[np.ndarray]:
    """What users hand a line model -> decoded images (arrays pass as they are)."""
    from crnn.data.user_images import as_image_list

    if isinstance(model_input, (str, Path, bytes)):
        model_input = [model_input]
    if isinstance(model_input, pd.DataFrame):
        column = next((c for c in ("image", "path") if c in model_input), None)
        if column is None:
            raise DataError(
                "a line model takes a DataFrame with an 'image' column (encoded bytes or "
                f"paths) or a 'path' column; got columns {list(model_input)[:5]}"
            )
        model_input = list(model_input[column])
    if isinstance(model_input, list):
        return [
            decode_line(x, cfg.max_image_pixels, cfg.mode)
            if isinstance(x, (str, Path, bytes))
            else np.asarray(x, np.float32)
            for x in model_input
        ]
    return as_image_list(model_input)
