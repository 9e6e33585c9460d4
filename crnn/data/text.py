"""Text classification: a tokenizer, the text-table source (CSV / TSV / JSONL / Parquet / one
``CLASS.txt`` per class) and token augmentation.

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

import codecs
import contextlib
import csv
import io
import json
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from sklearn.model_selection import train_test_split

from crnn.config import AugmentationConfig, SplitFractions, TextTableData
from crnn.data.augment import AUGMENTERS
from crnn.data.files import files_digest
from crnn.data.quarantine import Quarantined
from crnn.data.sources import (
    NEW,
    SOURCES,
    SPLITS,
    Chunk,
    SourceInfo,
    TargetSpec,
    split_indices,
)
from crnn.errors import DataError

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
# surrogateescape turns each undecodable byte b into the lone surrogate U+DC00 + b
ESCAPED = re.compile("[\udc80-\udcff]")


# ------------------------------------------------------------------------------------ tokenizer


class Tokenizer:
    """Texts -> (N, max_length) float32 token ids, scikit-learn style (``fit``, ``transform``).

    ``kind="word"``: tokens are ``\\w+`` runs and single punctuation marks; ``kind="char"``: every
    character (spaces included). The vocabulary ``vocab_`` (token -> id) is learned by ``fit``:
    0 is padding (``<pad>``), 1 out-of-vocabulary (``<unk>``), real tokens from 2, most frequent
    first, ties alphabetical. Tokens seen fewer than ``min_count`` times, or beyond the
    ``max_vocab`` most frequent, are out-of-vocabulary. Longer texts are truncated, shorter ones
    padded with 0 at the end.
    """

    def __init__(
        self,
        kind: str = "word",
        lowercase: bool = True,
        max_length: int = 64,
        min_count: int = 1,
        max_vocab: int = 20000,
    ) -> None:
        if kind not in ("word", "char"):
            raise ValueError(f"unknown tokenizer kind {kind!r}; known: char, word")
        if max_length < 1 or min_count < 1 or max_vocab < 0:
            raise ValueError("max_length and min_count must be >= 1, max_vocab >= 0")
        self.kind = kind
        self.lowercase = lowercase
        self.max_length = max_length
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.vocab_: dict[str, int] = {}  # empty until fit: pad and unk are always in a fitted one

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, before truncation."""
        text = text.lower() if self.lowercase else text
        return TOKEN_PATTERN.findall(text) if self.kind == "word" else list(text)

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Learn the vocabulary from ``texts`` (all their tokens, not only the first max_length)."""
        counts = Counter(tok for text in texts for tok in self.tokenize(text))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [tok for tok, n in ranked if n >= self.min_count][: self.max_vocab]
        self.vocab_ = {PAD: PAD_ID, UNK: UNK_ID, **{tok: i + 2 for i, tok in enumerate(kept)}}
        return self

    @property
    def vocab_size(self) -> int:
        """Embedding rows a model needs: real tokens + pad + unk."""
        self._check_fitted()
        return len(self.vocab_)

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """(N, max_length) float32 ids; unknown tokens are 1, padding 0 at the end."""
        self._check_fitted()
        rows = [
            [self.vocab_.get(tok, UNK_ID) for tok in self.tokenize(t)[: self.max_length]]
            for t in texts
        ]
        out = np.zeros((len(rows), self.max_length), dtype=np.float32)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return out

    def fit_transform(self, texts: Iterable[str]) -> np.ndarray:
        texts = list(texts)
        return self.fit(texts).transform(texts)

    def decode(self, ids: Iterable[float]) -> list[str]:
        """Tokens of one row of ids, padding left out (unknown ids read as ``<unk>``)."""
        vocabulary = self.vocabulary
        return [
            vocabulary[i] if 0 <= i < len(vocabulary) else UNK
            for i in (int(x) for x in ids)
            if i != PAD_ID
        ]

    @property
    def vocabulary(self) -> list[str]:
        """Tokens in id order (index = id)."""
        self._check_fitted()
        return sorted(self.vocab_, key=self.vocab_.__getitem__)

    def to_features(self) -> dict[str, Any]:
        """What a scorer needs to tokenize new text the same way (JSON-serializable)."""
        return {
            "kind": self.kind,
            "lowercase": self.lowercase,
            "max_length": self.max_length,
            "vocabulary": self.vocabulary,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_features(cls, features: dict[str, Any]) -> Tokenizer:
        """A fitted tokenizer from :meth:`to_features` (as stored in a manifest or checkpoint)."""
        vocabulary = list(features["vocabulary"])
        if vocabulary[:2] != [PAD, UNK] or len(vocabulary) != int(features["vocab_size"]):
            raise ValueError("features hold no valid vocabulary: expected <pad>, <unk> first")
        tok = cls(
            features["kind"],
            bool(features["lowercase"]),
            int(features["max_length"]),
            max_vocab=len(vocabulary) - 2,
        )
        tok.vocab_ = {t: i for i, t in enumerate(vocabulary)}
        return tok

    def _check_fitted(self) -> None:
        if not self.vocab_:
            raise RuntimeError("Tokenizer is not fitted: call fit first")


# ------------------------------------------------------------------------------ reading records


@dataclass(frozen=True)
class TextRecord:
    """One readable input record: its text, label name and (with a split column) its split."""

    sample_id: str
    origin: str
    text: str
    label: str
    split: str | None = None


def check_record(
    cfg: TextTableData,
    sample_id: str,
    origin: str,
    text: Any,
    label: Any = None,
    split: Any = None,
    *,
    labeled: bool = True,
) -> TextRecord | Quarantined:
    """Raw field values -> a usable record, or a quarantine record with the first reason that
    applies: undecodable_text, empty_text, missing_label, bad_split_value.

    Quarantined records carry the split their split column names, else "train" (the pass that
    reports them), or "new" for new data (``labeled=False``: text only, no label, no split).
    """
    fields = {"text": _as_str(text)}
    if labeled:
        fields["label"] = _as_label(label)
    if cfg.split_column and labeled:
        fields["split"] = _as_str(split).strip().lower()
    named = fields.get("split", "")
    where = named if named in SPLITS else "train" if labeled else NEW

    def bad(reason: str, detail: str) -> Quarantined:
        return Quarantined(sample_id, where, origin, reason, detail[:300])

    for name, value in fields.items():
        if m := ESCAPED.search(value):
            raw = bytes(ord(c) - 0xDC00 for c in ESCAPED.findall(value))
            return bad(
                "undecodable_text",
                f"{getattr(cfg, name + '_column')}: bytes {raw[:16]!r} at character {m.start()} "
                f"are not valid {cfg.encoding}; set data.encoding",
            )
    if not fields["text"].strip():
        return bad("empty_text", f"{cfg.text_column} is empty")
    if labeled and not fields["label"]:
        return bad("missing_label", f"{cfg.label_column} is missing or empty")
    if labeled and cfg.split_column and named not in SPLITS:
        return bad(
            "bad_split_value",
            f"{cfg.split_column} is {_as_str(split)!r}; expected train, val or test",
        )
    return TextRecord(sample_id, origin, fields["text"], fields.get("label", ""), named or None)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_str(value: Any) -> str:
    return "" if _is_missing(value) else value if isinstance(value, str) else str(value)


def _as_label(value: Any) -> str:
    """Labels are names: 3 and 3.0 (a numeric column with gaps) both become "3"; blanks are ""."""
    if isinstance(value, float) and not math.isnan(value) and value.is_integer():
        value = int(value)
    return _as_str(value).strip()


@contextlib.contextmanager
def open_text(path: Path, encoding: str) -> Iterator[io.TextIOWrapper]:
    """The file as a stream of text (never whole in memory); undecodable bytes become lone
    surrogates that :func:`check_record` finds. A leading byte-order mark is dropped: it is not
    part of the first column's name.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"data.encoding {encoding!r} is not a known codec; e.g. utf-8") from None
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    with open(path, "rb") as raw:
        stream = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
        try:
            yield stream
        except UnicodeDecodeError as exc:  # bytes < 0x80 cannot be escaped (UTF-16 and the like)
            msg = f"{path}: not readable as {encoding} ({exc.reason}); set data.encoding"
            raise DataError(msg) from None


def _line_records(stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) without line endings, read lazily."""
    for number, line in enumerate(stream, 1):
        yield number, line.rstrip("\r\n")


def read_delimited(
    path: Path, cfg: TextTableData, sep: str, labeled: bool = True
) -> Iterator[TextRecord | Quarantined]:
    """CSV / TSV with a header row. Blank lines are not records; a row whose field count differs
    from the header's is quarantined (``malformed_row``).
    """
    with open_text(path, cfg.encoding) as stream:
        reader = csv.reader(stream, delimiter=sep)
        rows = (r for r in reader if r)
        try:
            header = next(rows, None)
            if header is None:
                return
            wanted = wanted_columns(cfg, labeled)
            index = {name: column_index(header, name, path) for name in wanted}
            for row, fields in enumerate(rows):
                sample_id, origin = f"{path.stem}-{row:07d}", f"{path.name}[{row}]"
                if len(fields) != len(header):
                    detail = f"{len(fields)} fields, the header has {len(header)}"
                    where = "train" if labeled else NEW
                    yield Quarantined(sample_id, where, origin, "malformed_row", detail)
                    continue
                values = (fields[i] for i in index.values())
                yield check_record(cfg, sample_id, origin, *values, labeled=labeled)
        except csv.Error as exc:  # e.g. a field over csv's size limit: name the line
            raise DataError(f"{path}, line {reader.line_num}: {exc}") from None


def read_jsonl(
    path: Path, cfg: TextTableData, labeled: bool = True
) -> Iterator[TextRecord | Quarantined]:
    """One JSON object per line; blank lines are not records, unparsable lines are quarantined."""
    with open_text(path, cfg.encoding) as stream:
        yield from _jsonl_records(path, cfg, stream, labeled)


def _jsonl_records(
    path: Path, cfg: TextTableData, stream: Iterable[str], labeled: bool = True
) -> Iterator[TextRecord | Quarantined]:
    row = 0
    for number, line in _line_records(stream):
        if not line.strip():
            continue
        sample_id, origin = f"{path.stem}-{row:07d}", f"{path.name}[{row}]"
        row += 1
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        except ValueError as exc:
            reason = "undecodable_text" if ESCAPED.search(line) else "malformed_row"
            detail = f"line {number}: {exc}" + (
                f"; not valid {cfg.encoding}" if reason == "undecodable_text" else ""
            )
            yield Quarantined(sample_id, "train" if labeled else NEW, origin, reason, detail[:300])
            continue
        values = (obj.get(name) for name in wanted_columns(cfg, labeled))
        yield check_record(cfg, sample_id, origin, *values, labeled=labeled)


def read_parquet(
    path: Path, cfg: TextTableData, labeled: bool = True, batch_rows: int = 65536
) -> Iterator[TextRecord | Quarantined]:
    """Parquet strings are already decoded; nulls are missing values."""
    names = pq.read_schema(path).names
    columns = wanted_columns(cfg, labeled)
    for name in columns:
        column_index(names, name, path)
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        values = [batch.column(name).to_pylist() for name in columns]
        for fields in zip(*values, strict=True):
            sample_id, origin = f"{path.stem}-{row:07d}", f"{path.name}[{row}]"
            yield check_record(cfg, sample_id, origin, *fields, labeled=labeled)
            row += 1


def read_lines(
    path: Path, cfg: TextTableData, labeled: bool = True
) -> Iterator[TextRecord | Quarantined]:
    """``CLASS.txt``: every line is a text of class CLASS (blank lines are quarantined); for new
    data (``labeled=False``) every line of any ``.txt`` file is a text to score."""
    with open_text(path, cfg.encoding) as stream:
        for number, line in _line_records(stream):
            sample_id, origin = f"{path.stem}-{number:07d}", f"{path.name}:{number}"
            label = path.stem if labeled else None
            yield check_record(cfg, sample_id, origin, line, label, labeled=labeled)


def wanted_columns(cfg: TextTableData, labeled: bool = True) -> list[str]:
    """Text, label and (when set) split column names, in :func:`check_record`'s argument order;
    new data (``labeled=False``) needs the text column only."""
    if not labeled:
        return [cfg.text_column]
    return [cfg.text_column, cfg.label_column, *([cfg.split_column] if cfg.split_column else [])]


def column_index(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise DataError(
            f"{path}: no column {name!r} (columns: {', '.join(map(str, header))[:200]}); "
            f"set data.text_column / data.label_column / data.split_column"
        )
    return header.index(name)


def find_files(cfg: TextTableData) -> tuple[str, list[Path]]:
    """(format, files) for ``data.path``: a table file, or a folder of table or ``.txt`` files."""
    what = "a CSV / TSV / JSONL / Parquet table or a folder of CLASS.txt files"
    if not cfg.path:
        raise DataError(f"data.path is not set: set it to {what}")
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(f"data.path {path} does not exist: set it to {what}")
    if path.is_file():
        suffix = path.suffix.lower()
        fmt = cfg.format if cfg.format != "auto" else SUFFIX_FORMATS.get(suffix)
        fmt = "lines" if fmt is None and suffix == ".txt" else fmt
        if fmt is None:
            raise DataError(f"{path}: unknown table extension; set data.format")
        return fmt, [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    by_format: dict[str, list[Path]] = {}
    for p in files:
        fmt = "lines" if p.suffix.lower() == ".txt" else SUFFIX_FORMATS.get(p.suffix.lower())
        if fmt:
            by_format.setdefault(fmt, []).append(p)
    tables = sorted(set(by_format) - {"lines"})  # a README.txt beside a table is not data
    if cfg.format != "auto":
        fmt = cfg.format
    elif len(tables) > 1:
        raise DataError(f"{path}: files of several formats ({', '.join(tables)}); set data.format")
    else:
        fmt = tables[0] if tables else "lines"
    if not by_format.get(fmt):
        raise DataError(f"{path}: no {fmt} files; expected {what}")
    return fmt, by_format[fmt]


def read_records(
    fmt: str, files: list[Path], cfg: TextTableData, labeled: bool = True
) -> Iterator[TextRecord | Quarantined]:
    for path in files:
        if fmt in ("csv", "tsv"):
            yield from read_delimited(path, cfg, "," if fmt == "csv" else "\t", labeled)
        elif fmt == "jsonl":
            yield from read_jsonl(path, cfg, labeled)
        elif fmt == "parquet":
            yield from read_parquet(path, cfg, labeled)
        else:
            yield from read_lines(path, cfg, labeled)


# --------------------------------------------------------------------------------------- source


def split_records(
    labels: np.ndarray, fractions: SplitFractions, seed: int
) -> dict[str, np.ndarray]:
    """Stratified ``split_indices`` when every class is common enough, else the same fractions
    unstratified (a class with one record cannot be stratified).
    """
    if len(labels) < len(SPLITS):
        raise DataError(
            f"{len(labels)} usable records cannot fill train, val and test; "
            f"add data or set data.split_column"
        )
    try:
        return split_indices(labels, fractions, seed)
    except ValueError:
        pass
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=fractions.test, random_state=seed)
    val_share = fractions.val / (fractions.train + fractions.val)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed + 1)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


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
        self.classes = tuple(sorted(first_seen))
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        if len(self.classes) == 1:
            raise DataError(
                f"{cfg.path}: every usable record has label {self.classes[0]!r}; a classifier "
                f"needs two or more classes (check data.label_column)"
            )
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
            pools = split_records(labels, self.cfg.split, self.cfg.seed)
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
            f"{len(self.classes)} classes, {self.cfg.tokenizer} tokens",
            digest=files_digest(self.files, {k: v for k, v in config.items() if k != "path"}),
            input_shape=(self.cfg.max_length,),
            target=TargetSpec(kind="class", classes=self.classes),
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
        cls, cfg: TextTableData, features: dict[str, Any], chunk_rows: int
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

    def _chunk(self, split: str, records: list[TextRecord], bad: list[Quarantined]) -> Chunk:
        texts = [r.text for r in records]
        return Chunk(
            split=split,
            sample_ids=[r.sample_id for r in records],
            inputs=self.tokenizer.transform(texts),
            texts=texts,
            labels=np.array([self.class_index[r.label] for r in records], dtype=np.int64),
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
