"""Text classification: the text-table source (CSV / TSV / JSONL / Parquet / one ``CLASS.txt`` per
class) and token augmentation; the tokenizer is :mod:`crnn.data.tokenizer`, the reading of
records :mod:`crnn.data.text_records`.

Samples are rows of ``max_length`` token ids (float32, like every other input; 0 is padding), so
preprocessing needs ``normalization: none``. The tokenizer is fit on the training split only and
travels with the shards (``SourceInfo.features``) and the checkpoint.

Decoding: files are read as bytes and decoded with ``data.encoding`` using the
``surrogateescape`` error handler, so one bad byte never fails a whole file: a record whose text,
label or split value holds an undecodable byte is quarantined (``undecodable_text``) and every
other record is kept. Decoding the whole file at once (instead of splitting the bytes into lines
first) keeps CSV records with quoted line breaks whole and works for any codec whose line breaks
are not a single ``\\n`` byte (UTF-16).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from crnn.config import AugmentationConfig, TextTableData
from crnn.data.augment import AUGMENTERS
from crnn.data.files import files_digest
from crnn.data.sources import NEW, SOURCES, SPLITS, TargetSpec
from crnn.data.splits import split_indices
from crnn.data.text_records import TextRecord, find_files, read_records
from crnn.data.tokenizer import PAD_ID, Tokenizer
from crnn.errors import DataError
from crnn.types.records import Chunk, Quarantined, SourceFeatures, SourceInfo

if TYPE_CHECKING:
    from crnn.data.shards import Manifest
    from crnn.types.batches import SplitData

# --------------------------------------------------------------------------------------- source


@SOURCES.register("text_table")
class TextTableSource:
    """Text classification from tables or ``CLASS.txt`` files (see :class:`TextTableData`).

    Streams: one pass over the files keeps only each usable record's class and split as small
    integers (a stratified split needs every label); texts are read again to fit the tokenizer
    on the train split only (val / test words unseen in training are out-of-vocabulary, as they
    would be for new data) and again to emit each split's chunks. Classes are the sorted label
    names of all usable records; the split comes from ``split_column`` or is stratified by
    ``split`` fractions. Records that cannot be used are reported once, in the train pass.
    """

    INPUT_SUFFIXES = frozenset({".txt"})  # what a folder given to `crnn predict` stands for
    READS_TEXT = True  # `crnn predict --text` / stdin

    def __init__(self, cfg: TextTableData) -> None:
        self.cfg = cfg
        self.format, self.files = find_files(cfg)
        if cfg.split_column and self.format == "lines":
            raise DataError("data.split_column needs a table format; CLASS.txt files have none")
        first_seen: dict[str, int] = {}
        label_codes, split_codes = array("q"), array("b")
        self.quarantined: list[Quarantined] = []
        for item in self._records():
            if isinstance(item, TextRecord):
                label_codes.append(first_seen.setdefault(item.label, len(first_seen)))
                split_codes.append(SPLITS.index(item.split) if item.split else -1)
            else:
                self.quarantined.append(item)
        self.numeric = cfg.target == "value"  # label_column holds numbers (regression)
        self.classes = () if self.numeric else tuple(sorted(first_seen))
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        if len(self.classes) == 1:
            raise DataError(
                f"{cfg.path}: every usable record has label {self.classes[0]!r}; a classifier "
                f"needs two or more classes (check data.label_column)"
            )
        # the split is stratified by class (a numeric target: by value, where values repeat)
        remap = np.arange(len(first_seen), dtype=np.int64)
        if not self.numeric:
            remap = np.array([self.class_index[name] for name in first_seen], dtype=np.int64)
        labels = remap[np.frombuffer(label_codes, dtype=np.int64)] if label_codes else remap
        self.assignment = self._assign(labels, np.frombuffer(split_codes, dtype=np.int8))
        if len(labels) and not (self.assignment == 0).any():
            raise DataError(f"{cfg.path}: no usable record is in the train split")
        self.tokenizer = Tokenizer(
            cfg.tokenizer, cfg.lowercase, cfg.max_length, cfg.min_count, cfg.max_vocab
        ).fit(r.text for r in self._usable("train"))

    def _records(self) -> Iterator[TextRecord | Quarantined]:
        return read_records(self.format, self.files, self.cfg)

    def _assign(self, labels: np.ndarray, named: np.ndarray) -> np.ndarray:
        """Split index (0 train, 1 val, 2 test) of every usable record, in reading order."""
        if self.cfg.split_column:
            return named.copy()
        assign = np.zeros(len(labels), dtype=np.int8)
        if len(labels):
            pools = split_indices(labels, self.cfg.split, self.cfg.seed)
            for k, split in enumerate(SPLITS):
                assign[pools[split]] = k
        return assign

    def _usable(self, split: str) -> Iterator[TextRecord]:
        """The usable records of ``split``, re-read from the files in their order."""
        want, ordinal = SPLITS.index(split), 0
        for item in self._records():
            if isinstance(item, TextRecord):
                if self.assignment[ordinal] == want:
                    yield item
                ordinal += 1

    def info(self) -> SourceInfo:
        # imported here: readers imports sources, whose last line imports the file readers, so
        # a module-level import would fail when this module is the first one loaded

        config = self.cfg.model_dump(mode="json")
        n = len(self.assignment)
        return SourceInfo(
            name="text_table",
            description=f"text table {self.cfg.path} ({self.format}): {n} texts, "
            + ("numeric targets" if self.numeric else f"{len(self.classes)} classes")
            + f", {self.cfg.tokenizer} tokens",
            digest=files_digest(self.files, {k: v for k, v in config.items() if k != "path"}),
            input_shape=(self.cfg.max_length,),
            target=TargetSpec(kind="value")
            if self.numeric
            else TargetSpec(kind="class", classes=self.classes),
            config=config,
            modality="text",
            features=self.tokenizer.to_features(),
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        pending = self.quarantined if split == "train" else []
        batch: list[TextRecord] = []
        for record in self._usable(split):
            batch.append(record)
            if len(batch) == chunk_rows:
                yield self._chunk(split, batch, pending)
                batch, pending = [], []
        if batch or pending:
            yield self._chunk(split, batch, pending)

    @classmethod
    def new_data(
        cls, cfg: TextTableData, features: SourceFeatures, chunk_rows: int
    ) -> Iterator[Chunk]:
        """Texts to score at ``cfg.path``: a table (the text column; labels and splits not
        needed), a ``.txt`` file or folder of them (a text per line), tokenized with the model's
        own vocabulary (``features``). Words it never saw are out-of-vocabulary, as in training.
        """
        cfg = cfg.model_copy(update={"split_column": None})
        fmt, files = find_files(cfg)
        tokenizer = Tokenizer.from_features(features)
        batch: list[TextRecord] = []
        bad: list[Quarantined] = []
        for item in read_records(fmt, files, cfg, labeled=False):
            if isinstance(item, TextRecord):
                batch.append(item)
            else:
                bad.append(item)
            if len(batch) + len(bad) == chunk_rows:
                yield cls._new_chunk(batch, bad, tokenizer)
                batch, bad = [], []
        if batch or bad:
            yield cls._new_chunk(batch, bad, tokenizer)

    @staticmethod
    def _new_chunk(
        records: list[TextRecord], bad: list[Quarantined], tokenizer: Tokenizer
    ) -> Chunk:
        texts = [r.text for r in records]
        ids = [r.sample_id for r in records]
        return Chunk(NEW, ids, tokenizer.transform(texts), texts=texts, quarantined=list(bad))

    @staticmethod
    def raw_inputs(
        model_input: Any, source: dict[str, Any], features: SourceFeatures
    ) -> np.ndarray:
        """Strings (a list, an array, or a DataFrame ``text`` column) -> token ids
        (N, max_length), with the model's own vocabulary."""
        if isinstance(model_input, pd.DataFrame):
            if "text" not in model_input and len(model_input.columns) != 1:
                raise DataError(f"a text model takes a 'text' column; got {list(model_input)[:5]}")
            model_input = model_input["text" if "text" in model_input else model_input.columns[0]]
        texts = [model_input] if isinstance(model_input, str) else list(model_input)
        if not all(isinstance(t, str) for t in texts):
            raise DataError("a text model takes strings (a list or a DataFrame 'text' column)")
        return Tokenizer.from_features(features).transform(texts)

    @staticmethod
    def raw_example(manifest: Manifest, test: SplitData, rows: int) -> pd.DataFrame:
        """The first test texts, decoded from their tokens (no padding, no unknown marks)."""
        vocabulary = manifest.features["vocabulary"]
        ids = test.inputs[:rows].numpy().astype(int)
        return pd.DataFrame(
            {"text": [" ".join(vocabulary[i] for i in row if i > 1) for row in ids]}
        )

    @staticmethod
    def files_input(files: list[Path]) -> tuple[list[str], list[str]]:
        """A text per non-empty line of each file, named ``FILE:LINE``."""
        pairs = [
            (f"{f}:{k}", line)
            for f in files
            for k, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
            if line.strip()
        ]
        return [n for n, _ in pairs], [t for _, t in pairs]

    def _chunk(self, split: str, records: list[TextRecord], bad: list[Quarantined]) -> Chunk:
        texts = [r.text for r in records]
        return Chunk(
            split=split,
            sample_ids=[r.sample_id for r in records],
            inputs=self.tokenizer.transform(texts),
            texts=texts,
            labels=None
            if self.numeric
            else np.array([self.class_index[r.label] for r in records], dtype=np.int64),
            values=np.array([float(r.label) for r in records]) if self.numeric else None,
            quarantined=list(bad),
        )


# --------------------------------------------------------------------------------- augmentation


@AUGMENTERS.register("text")
def augment_tokens(x: np.ndarray, cfg: AugmentationConfig, gen: torch.Generator) -> np.ndarray:
    """Token dropout then adjacent swaps on (N, L) ids (0 = padding); a new array, same shape.

    ``token_dropout``: each non-pad token is dropped with that probability (a row keeps at least
    one token); the rest move left, padding refills the end. ``token_swaps``: that many swaps of
    two neighbouring non-pad tokens per row, at random positions. Deterministic for ``gen``.
    """
    out = np.array(x, dtype=np.float32, copy=True)
    if cfg.token_dropout > 0:
        out = _drop_tokens(out, cfg.token_dropout, gen)
    for _ in range(cfg.token_swaps):
        _swap_neighbours(out, gen)
    return out.astype(x.dtype, copy=False)


def _drop_tokens(x: np.ndarray, p: float, gen: torch.Generator) -> np.ndarray:
    token = x != PAD_ID
    score = torch.rand(x.shape, generator=gen).numpy()
    keep = token & (score >= p)
    # a row that lost every token keeps the one whose draw came closest to keeping it
    emptied = token.any(axis=1) & ~keep.any(axis=1)
    rescue = np.where(token, score, -1.0).argmax(axis=1)
    keep[emptied, rescue[emptied]] = True
    order = np.argsort(~keep, axis=1, kind="stable")  # kept tokens first, in their order
    out = np.take_along_axis(x, order, axis=1)
    out[np.arange(x.shape[1])[None, :] >= keep.sum(axis=1, keepdims=True)] = PAD_ID
    return out


def _swap_neighbours(x: np.ndarray, gen: torch.Generator) -> None:
    """One swap per row of the k-th and (k+1)-th non-pad tokens, in place."""
    token = x != PAD_ID
    count = token.sum(axis=1)
    positions = np.argsort(~token, axis=1, kind="stable")  # non-pad positions first
    k = (torch.rand(len(x), generator=gen).numpy() * np.maximum(count - 1, 1)).astype(np.int64)
    rows = np.flatnonzero(count >= 2)
    k = np.minimum(k[rows], count[rows] - 2)
    a, b = positions[rows, k], positions[rows, k + 1]
    x[rows, a], x[rows, b] = x[rows, b], x[rows, a]
