"""Parquet shards and their manifest.

A shard holds one row per sample: ``sample_id``, ``split``, ``aug`` (0 = original, k = k-th aug.
copy), ``input`` (float32 tensor bytes in a fixed-size binary column, shape in schema metadata: a
batch decodes with one ``np.frombuffer``) and the target columns of the task kind
(:meth:`crnn.tasks.base.Task.fields`): ``target`` (list<int32>), ``text`` and ``length`` for
sequences, ``label`` (int32) for classes, ``value`` (float64) for numbers. Shards are written
atomically; the manifest is written last, and readers trust only the shards it lists, with their
sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crnn.atomic import atomic_path, atomic_write_text
from crnn.data.shuffle import BucketSpill, bucket_count
from crnn.errors import DataError, format_version
from crnn.types.kinds import TargetSpec
from crnn.types.records import QuarantineCounts, SourceFeatures, SourceRecord

if TYPE_CHECKING:
    from crnn.normalization import NormalizationStats
    from crnn.tasks.base import Task

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 3  # 2: a typed target (TargetSpec, with statistics); 3: manifest_sha256
CONTENT_KEY = "manifest_sha256"  # the manifest's own content (apart from the shard-set digest)
VERIFY = True  # check shards on read (bench/integrity_bench.py turns it off for its baseline)
_verified: set[tuple[str, int, int, str]] = set()  # (path, size, mtime, sha256) checked here
INPUT_COLUMN = "input"
GROUPS_PER_SHARD = 8  # the loader mixes row groups: several shards' groups in every window


def shard_schema(input_shape: tuple[int, ...], task: Task) -> pa.Schema:
    nbytes = int(np.prod(input_shape)) * 4
    fields = [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("aug", pa.int8(), nullable=False),
        pa.field(INPUT_COLUMN, pa.binary(nbytes), nullable=False),
        *task.fields(),  # the target columns of the task kind
    ]
    meta = {"crnn.input_shape": json.dumps(list(input_shape)), "crnn.input_dtype": "float32"}
    return pa.schema(fields, metadata=meta)


@dataclass(frozen=True)
class ShardRecord:
    path: str  # relative to the manifest's folder
    split: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Describes a shard set completely: enough to load it, and to rebuild its preprocessing.

    Written by :meth:`to_json` and read by :meth:`from_file` (the one place that parses it, and
    upgrades a manifest of an earlier format); ``root`` is the folder it was read from.
    """

    digest: str
    source: SourceRecord
    preprocessing: dict[str, Any]
    code_version: str
    input_shape: list[int]
    target: TargetSpec
    normalization: NormalizationStats
    splits: dict[str, dict[str, int]]
    shards: list[ShardRecord]
    quarantine: QuarantineCounts = field(default_factory=QuarantineCounts)
    features: SourceFeatures = field(default_factory=lambda: SourceFeatures())
    order: dict[str, str] = field(default_factory=dict)  # how each split's rows are ordered
    format_version: int = FORMAT_VERSION
    input_dtype: str = "float32"
    root: Path | None = field(default=None, compare=False, repr=False)  # not written

    def to_json(self) -> str:
        data = asdict(self)
        del data["root"]
        return json.dumps({**data, CONTENT_KEY: content_sha256(data)}, indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            version = format_version(raw, "manifest", str(path), FORMAT_VERSION, DataError)
            check_content(raw, version, path)
            raw = upgrade_manifest(raw, version)
            raw["shards"] = [ShardRecord(**s) for s in raw["shards"]]
            raw["target"] = TargetSpec.from_dict(raw["target"])
            raw["quarantine"] = QuarantineCounts(**raw.get("quarantine", {}))
            return cls(**raw, root=path.parent)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DataError(
                f"{path}: unreadable manifest ({exc}); delete the folder to rebuild"
            ) from None

    def shard_paths(self, root: Path, split: str) -> list[Path]:
        """The shards of ``split``, each checked against its record (:func:`verified_path`)."""
        return [verified_path(root, s) for s in self.shards if s.split == split]


def content_sha256(data: dict[str, Any]) -> str:
    """The digest of a manifest's content, itself left out."""
    body = {k: v for k, v in data.items() if k != CONTENT_KEY}
    return hashlib.sha256(json.dumps(body, indent=2, sort_keys=True).encode()).hexdigest()


def check_content(raw: dict[str, Any], version: int, path: Path) -> None:
    """A manifest changed after it was written (a shard dropped, statistics or digest edited)
    fails in one line; one of a format before the check (2) has nothing to check."""
    if version < 3:
        return
    if raw.get(CONTENT_KEY) != content_sha256(raw):
        raise DataError(
            f"{path}: the manifest was changed after it was written (its {CONTENT_KEY} does "
            f"not match its content); delete {path.parent} to rebuild the shard set"
        )


def verified_path(root: Path, rec: ShardRecord) -> Path:
    """``root / rec.path`` once its size, sha256 (read in 1 MiB blocks) and row count match the
    manifest's record; checked once per process and file version (size and mtime), so every
    reader of a shard (training, evaluation, scoring) trusts nothing it has not checked."""
    path = root / rec.path
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(
            f"{path}: shard listed in the manifest is missing; delete {root} to rebuild"
        ) from None
    key = (str(path), st.st_size, st.st_mtime_ns, rec.sha256)
    if not VERIFY or key in _verified:
        return path
    if st.st_size != rec.bytes or file_sha256(path) != rec.sha256:
        raise DataError(
            f"{path}: shard does not match its sha256 in the manifest (damaged or changed); "
            f"delete {root} to rebuild"
        )
    rows = pq.read_metadata(path).num_rows
    if rows != rec.rows:
        raise DataError(f"{path}: {rows} rows, the manifest lists {rec.rows}; delete {root}")
    _verified.add(key)
    return path


def forget_verified() -> None:
    """Check every shard again on its next read (a new process would)."""
    _verified.clear()


def upgrade_manifest(raw: dict[str, Any], version: int) -> dict[str, Any]:
    """A manifest of format ``version`` as the current format: format 1 held the target as a
    plain dict of kind / charset / classes (what TargetSpec reads, the statistics defaulted);
    format 2 had no digest of its own content."""
    raw = {k: v for k, v in raw.items() if k != CONTENT_KEY}
    return {**raw, "format_version": FORMAT_VERSION} if version < FORMAT_VERSION else raw


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """Buffers rows per split and writes bounded Parquet shards atomically.

    ``shuffled``: splits whose rows are expected in number (``{"train": rows}``) and written in a
    seeded random order (:mod:`crnn.data.shuffle`) rather than in the order they come.
    """

    def __init__(
        self,
        root: Path,
        input_shape: tuple[int, ...],
        task: Task,
        shard_rows: int,
        shuffled: dict[str, int] | None = None,
        seed: int = 0,
    ):
        self.root = root
        self.schema = shard_schema(input_shape, task)
        self.shard_rows = shard_rows
        self.records: list[ShardRecord] = []
        self._pending: dict[str, list[pa.RecordBatch]] = {}
        self._pending_rows: dict[str, int] = {}
        self._spills = {
            split: BucketSpill(
                root / f".spill-{split}", self.schema, bucket_count(rows, shard_rows // 4), seed
            )
            for split, rows in (shuffled or {}).items()
        }

    def write(
        self,
        split: str,
        sample_ids: list[str],
        aug: int,
        inputs: np.ndarray,
        targets: list[pa.Array],
    ) -> None:
        """Queue rows (``targets``: the task's target columns); full shards are flushed to disk
        as they fill."""
        n = len(sample_ids)
        flat = np.ascontiguousarray(inputs, dtype=np.float32).reshape(n, -1)
        columns: dict[str, pa.Array] = {
            "sample_id": pa.array(sample_ids, pa.string()),
            "split": pa.array([split] * n, pa.string()),
            "aug": pa.array(np.full(n, aug, dtype=np.int8)),
            INPUT_COLUMN: pa.FixedSizeBinaryArray.from_buffers(
                self.schema.field(INPUT_COLUMN).type, n, [None, pa.py_buffer(flat.tobytes())]
            ),
        }
        batch = pa.RecordBatch.from_arrays([*columns.values(), *targets], schema=self.schema)
        if split in self._spills:
            self._spills[split].add(batch)
        else:
            self._queue(split, [batch], n)

    def _queue(self, split: str, batches: list[pa.RecordBatch], rows: int) -> None:
        self._pending.setdefault(split, []).extend(batches)
        self._pending_rows[split] = self._pending_rows.get(split, 0) + rows
        while self._pending_rows[split] >= self.shard_rows:
            self._flush(split, self.shard_rows)

    def close(self) -> list[ShardRecord]:
        """Flush what is left, then the shuffled splits bucket by bucket (nothing else is held
        while they drain); returns every shard written."""
        for split, spill in [*((s, None) for s in self._pending), *self._spills.items()]:
            for bucket in spill.drain() if spill is not None else ():  # in random order
                self._queue(split, bucket.to_batches(), bucket.num_rows)
            if self._pending_rows.get(split):
                self._flush(split, self._pending_rows[split])
        return self.records

    def order(self) -> dict[str, str]:
        """How each split's rows are ordered in its shards (for the manifest)."""
        return {
            split: (
                f"shuffled: seeded hash of sample_id (seed {self._spills[split].seed}), "
                f"{self._spills[split].buckets} buckets"
                if split in self._spills
                else "source order"
            )
            for split in self._pending
        }

    def _flush(self, split: str, rows: int) -> None:
        table = pa.Table.from_batches(self._pending[split], schema=self.schema)
        head, rest = table.slice(0, rows), table.slice(rows)
        self._pending[split] = rest.to_batches()
        self._pending_rows[split] = rest.num_rows
        self._write_shard(split, head)

    def _write_shard(self, split: str, table: pa.Table) -> None:
        index = sum(1 for r in self.records if r.split == split)
        name = f"{split}-{index:05d}.parquet"
        path = self.root / name
        with atomic_path(path) as tmp:
            pq.write_table(
                table,
                tmp,
                compression={
                    c: ("none" if c == INPUT_COLUMN else "zstd") for c in table.column_names
                },
                use_dictionary=["split"],  # dictionary encoding hurts float tensors
                row_group_size=min(1024, max(16, self.shard_rows // GROUPS_PER_SHARD)),
            )
        rows, size = table.num_rows, path.stat().st_size
        self.records.append(ShardRecord(name, split, rows, size, file_sha256(path)))


def write_manifest(root: Path, manifest: Manifest) -> Path:
    """Write the manifest last, atomically: from then on the shard set exists."""
    path = root / MANIFEST_NAME
    atomic_write_text(path, manifest.to_json())
    return path


def verify_shards(root: Path, manifest: Manifest) -> None:
    """Raise DataError naming the first listed shard that is missing or altered."""
    for rec in manifest.shards:
        verified_path(root, rec)
