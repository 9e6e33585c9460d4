"""An external shuffle for the training split: rows in a seeded random order, memory bounded.

Sources yield records in file order, and real datasets are often sorted by class (one folder or
file per class). Training rows must not reach the shards that way. Each row is keyed by a seeded
64-bit hash of its ``sample_id``; the key picks one of ``buckets`` spill files (Arrow IPC, on disk
beside the shards), and each bucket is then read back and sorted by the key. The result is a
random order over the whole split that depends on the seed and the sample ids alone, not on the
order the source produced them in. Memory holds one chunk while spilling and one bucket while
draining: about a quarter of a shard, since the writer fills shards from consecutive buckets.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

ORDER_COLUMN = "__order"
MAX_BUCKETS = 512  # one open file each: well inside the usual 1024 descriptors of a process


def bucket_count(rows: int, bucket_rows: int) -> int:
    """Buckets for ``rows`` rows of about ``bucket_rows`` each, at most MAX_BUCKETS (beyond
    that buckets grow: 10 M rows in buckets of 2048 become 512 buckets of 20 k rows)."""
    return max(1, min(MAX_BUCKETS, math.ceil(rows / max(1, bucket_rows))))


def order_keys(sample_ids: list[str], seed: int) -> np.ndarray:
    """A stable, seeded uint64 key per sample id (SipHash, as pandas hashes objects)."""
    key = f"crnn-shuffle{seed:04d}"[-16:]  # pandas wants exactly 16 characters
    return pd.util.hash_array(np.asarray(sample_ids, dtype=object), hash_key=key, categorize=False)


class BucketSpill:
    """Rows of one split spread over ``buckets`` spill files by key, drained in key order."""

    def __init__(self, folder: Path, schema: pa.Schema, buckets: int, seed: int) -> None:
        self.folder, self.seed, self.buckets = folder, seed, max(1, buckets)
        self.schema = schema.append(pa.field(ORDER_COLUMN, pa.uint64(), nullable=False))
        folder.mkdir(parents=True, exist_ok=True)
        self._sinks = [pa.OSFile(str(self._path(b)), "wb") for b in range(self.buckets)]
        self._writers = [ipc.new_stream(sink, self.schema) for sink in self._sinks]
        self.rows = 0

    def _path(self, bucket: int) -> Path:
        return self.folder / f"bucket-{bucket:05d}.arrow"

    def add(self, batch: pa.RecordBatch) -> None:
        keys = order_keys(batch.column("sample_id").to_pylist(), self.seed)
        keyed = pa.RecordBatch.from_arrays(
            [*batch.columns, pa.array(keys, pa.uint64())], schema=self.schema
        )
        bucket_of = keys % np.uint64(self.buckets)
        for bucket in np.unique(bucket_of):
            rows = np.flatnonzero(bucket_of == bucket)
            self._writers[int(bucket)].write_batch(keyed.take(pa.array(rows)))
        self.rows += batch.num_rows

    def drain(self) -> Iterator[pa.Table]:
        """Each non-empty bucket in turn, its rows sorted by key, the key column dropped; the
        spill files are removed as they are read, the folder at the end."""
        for writer, sink in zip(self._writers, self._sinks, strict=True):
            writer.close()
            sink.close()
        for bucket in range(self.buckets):
            path = self._path(bucket)
            with pa.OSFile(str(path)) as source:  # read, not mapped: one copy in memory
                table = ipc.open_stream(source).read_all()
            path.unlink()
            pa.default_memory_pool().release_unused()  # freed buckets' pages back to the system
            if table.num_rows:
                order = np.argsort(table.column(ORDER_COLUMN).to_numpy(), kind="stable")
                yield table.take(pa.array(order)).drop_columns([ORDER_COLUMN])
        shutil.rmtree(self.folder, ignore_errors=True)
