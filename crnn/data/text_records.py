"""Text records as files ship them: CSV / TSV / JSONL / Parquet tables and one ``CLASS.txt`` per
class, read as bytes and decoded with ``data.encoding`` (``surrogateescape``: one bad byte
quarantines its record, never the file), checked into usable records or quarantined ones.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from crnn.config import TextTableData
from crnn.data.sources import (
    NEW,
    SPLITS,
)
from crnn.errors import DataError
from crnn.types.kinds import parse_value
from crnn.types.records import Quarantined

SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
# surrogateescape turns each undecodable byte b into the lone surrogate U+DC00 + b
ESCAPED = re.compile("[\udc80-\udcff]")


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
    applies: undecodable_text, empty_text, missing_label, non_numeric_label (a numeric target,
    ``data.target: value``), bad_split_value.

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
    if labeled and cfg.target == "value" and parse_value(fields["label"]) is None:
        return bad(
            "non_numeric_label", f"{cfg.label_column} {fields['label']!r} is not a finite number"
        )
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
