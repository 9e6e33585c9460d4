"""Shards -> torch tensors and batches, columnar: no per-sample Python on the hot path.

Two ways in:

* :class:`ShardLoader` streams one split for training: shard-aware shuffling with a seed, worker
  processes, pinned memory, and an exact position (epoch, step) to resume from. Each epoch the
  order of the shards' row groups is permuted; the resulting row stream is cut into *windows* of
  ``window_rows`` rows (groups of several shards), rows are permuted inside a window, and a window
  is sliced into batches. A worker builds a whole window (read, decode, shuffle: one gather into
  shared memory) and the main process slices batches out of it as views, so the batch order does
  not depend on the number of workers.
* :func:`load_split` reads a whole split into memory (evaluation, baselines, small splits).
"""

from __future__ import annotations

import functools
import math
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from crnn.data.shards import INPUT_COLUMN, MANIFEST_NAME, Manifest, ShardRecord
from crnn.data.windows import window_tensor, worker_context
from crnn.errors import DataError
from crnn.lifetime import exit_with
from crnn.tasks import task_for
from crnn.types.batches import Batch, SplitData


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{path}: no manifest; run preprocessing first (`crnn run`)")
    return Manifest.from_file(path)


def as_manifest(shards: Path | Manifest) -> Manifest:
    """A manifest already read passes as it is (it is parsed once per command); a path (the
    manifest or its folder) is read."""
    return shards if isinstance(shards, Manifest) else load_manifest(shards)


def load_split(shards: Path | Manifest, split: str) -> SplitData:
    """Read every shard of ``split`` listed in the manifest into tensors."""
    manifest = as_manifest(shards)
    root = manifest.root
    assert root is not None, "a manifest read from its file knows its folder"
    paths = manifest.shard_paths(root, split)
    if not paths:
        raise DataError(f"{root}: the manifest lists no {split!r} shards")
    table = pa.concat_tables(pq.read_table(p) for p in paths)
    shape = tuple(manifest.input_shape)
    return SplitData(
        sample_ids=table.column("sample_id").to_pylist(),
        inputs=torch.from_numpy(decode_inputs(table.column(INPUT_COLUMN), shape)),
        aug=torch.from_numpy(table.column("aug").to_numpy().copy()),
        **task_for(manifest.target).split_fields(table),
    )


def load_targets(shards: Path | Manifest, split: str) -> SplitData:
    """The targets of ``split``'s original rows (no augmented copies), without the inputs: what
    statistics of the targets need (e.g. the trivial predictor a first champion must beat)."""
    manifest = as_manifest(shards)
    assert manifest.root is not None
    task = task_for(manifest.target)
    columns = ["sample_id", "aug", *(f.name for f in task.fields())]
    paths = manifest.shard_paths(manifest.root, split)
    table = pa.concat_tables(pq.read_table(p, columns=columns) for p in paths)
    table = table.filter(pc.equal(table.column("aug"), 0))
    return SplitData(
        sample_ids=table.column("sample_id").to_pylist(),
        inputs=torch.zeros((table.num_rows, 0)),
        **task.split_fields(table),
    )


def input_views(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Fixed-size binary column -> read-only (n, *shape) float32 views, one per Arrow chunk."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    views = []
    for chunk in chunks:
        width = chunk.type.byte_width
        flat = np.frombuffer(
            chunk.buffers()[1],
            dtype=np.float32,
            count=len(chunk) * width // 4,
            offset=chunk.offset * width,
        )
        views.append(flat.reshape(-1, *shape))
    return views


def decode_inputs(column: pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    """Fixed-size binary column -> (N, *shape) float32, one copy (torch wants writable memory)."""
    views = input_views(column, shape)
    if not views:
        return np.zeros((0, *shape), dtype=np.float32)
    return np.concatenate(views) if len(views) > 1 else views[0].copy()


def iterate_batches(
    data: SplitData, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[Batch]:
    """Batches by tensor indexing; shuffled with ``generator`` when ``shuffle``."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        batch = Batch(inputs=data.inputs[idx], index=idx)
        if data.targets is not None and data.target_lengths is not None:
            lengths = data.target_lengths[idx]
            batch.targets = data.targets[idx, : int(lengths.max())]
            batch.target_lengths = lengths
        if data.labels is not None:
            batch.labels = data.labels[idx]
        if data.values is not None:
            batch.values = data.values[idx]
        yield batch


@dataclass(frozen=True)
class Piece:
    """Rows ``start:stop`` of the split's shard number ``shard``, inside its row group ``group``
    (which starts at row ``group_start`` of the shard)."""

    shard: int
    start: int
    stop: int
    group: int = 0
    group_start: int = 0


class ShardLoader:
    """Batches of one split, streamed from its shards (see the module docstring).

    Args:
        shuffle: permute the shard order and, inside each window, the rows; seeded by
            ``(seed, epoch)``, so an epoch's batches are the same on every run and any worker count.
        window_rows: rows shuffled together (rounded up to whole batches); bounds memory to about
            ``(workers * prefetch + 1)`` windows.
        workers: processes that read and shuffle windows (0: in this process).
        pin_memory: page-locked batches, for asynchronous host -> GPU copies.
        rank, world_size: this process's share under DistributedDataParallel: every rank gets
            ``rows // world_size`` rows of the epoch's stream, hence the same number of batches.
    """

    def __init__(
        self,
        shards: Path | Manifest,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        window_rows: int = 8192,
        workers: int = 0,
        pin_memory: bool = False,
        prefetch: int = 2,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        manifest = as_manifest(shards)
        root = manifest.root
        assert root is not None, "a manifest read from its file knows its folder"
        records: list[ShardRecord] = [r for r in manifest.shards if r.split == split]
        if not records:
            raise DataError(f"{root}: the manifest lists no {split!r} shards")
        self.paths = [str(p) for p in manifest.shard_paths(root, split)]  # each one checked
        self.shard_rows = [r.rows for r in records]
        # (shard, group, first row, rows): the units an epoch's order permutes, several a window
        self.groups = [
            (shard, g, start, rows)
            for shard, path in enumerate(self.paths)
            for g, (start, rows) in enumerate(_row_groups(pq.ParquetFile(path).metadata))
        ]
        self.group_rows = [[r for s, _, _, r in self.groups if s == k] for k in range(len(records))]
        self.offsets = np.cumsum([0, *self.shard_rows])
        self.total = int(self.offsets[-1])
        self.per_rank = self.total // world_size
        if self.per_rank == 0:
            raise DataError(
                f"{root}: the {split!r} split has {self.total} rows, fewer than the "
                f"{world_size} training processes; use fewer devices or more data"
            )
        self.input_shape = tuple(manifest.input_shape)
        self.task = task_for(manifest.target)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.window = max(1, math.ceil(window_rows / batch_size)) * batch_size
        self.workers, self.pin_memory, self.prefetch = workers, pin_memory, prefetch
        self.rank, self.world_size = rank, world_size
        # (epoch, first window) of the iteration in progress, shared with persistent workers
        self.state = torch.zeros(2, dtype=torch.int64).share_memory_()
        self._loader: DataLoader | None = None
        self._maps: dict[int, pq.ParquetFile] = {}

    def __len__(self) -> int:
        """Batches per epoch (for this rank)."""
        return math.ceil(self.per_rank / self.batch_size)

    @property
    def columns(self) -> list[str]:
        return [INPUT_COLUMN, *self.task.column_names]

    def plan(self, epoch: int) -> list[list[Piece]]:
        """The epoch's windows for this rank: consecutive pieces of the stream of row groups,
        whose order is permuted each epoch (so a window mixes groups of several shards)."""
        n_groups = len(self.groups)
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(n_groups)
            if self.shuffle
            else np.arange(n_groups)
        )
        lo, hi = self.rank * self.per_rank, (self.rank + 1) * self.per_rank
        windows: list[list[Piece]] = []
        current: list[Piece] = []
        filled = pos = 0
        for unit in order:
            shard, group, first, size = self.groups[unit]
            group_pos, pos = pos, pos + size
            a, b = max(lo, group_pos), min(hi, pos)
            while a < b:
                take = min(b - a, self.window - filled)
                start = first + a - group_pos
                current.append(Piece(shard, start, start + take, group, first))
                filled, a = filled + take, a + take
                if filled == self.window:
                    windows.append(current)
                    current, filled = [], 0
        if current:
            windows.append(current)
        return windows

    def build_window(self, epoch: int, index: int, pieces: Sequence[Piece], shared: bool) -> Batch:
        """Read, decode and shuffle one window into one contiguous block (``shared``: in shared
        memory, so handing it from a worker to the main process copies nothing)."""
        parts = self._read(pieces)
        n = sum(len(t) for t in parts)
        perm = (
            np.random.default_rng([self.seed, epoch, self.rank, index]).permutation(n)
            if self.shuffle
            else None
        )
        inputs = window_tensor((n, *self.input_shape), torch.float32, shared, self.pin_memory)
        out = inputs.numpy()
        # one pass from the (memory-mapped) column buffers into the window: row j of the sources
        # goes to out[dest[j]]; no concatenated copy in between
        dest = None if perm is None else np.argsort(perm)
        offset = 0
        for t in parts:
            for view in input_views(t.column(INPUT_COLUMN), self.input_shape):
                stop = offset + len(view)
                if dest is None:
                    out[offset:stop] = view
                else:
                    out[dest[offset:stop]] = view
                offset = stop
        index_np = np.concatenate(
            [np.arange(p.start, p.stop) + self.offsets[p.shard] for p in pieces]
        )
        targets = self.task.tensors(pa.concat_tables(t.drop_columns([INPUT_COLUMN]) for t in parts))
        return Batch(
            inputs=inputs,
            index=torch.from_numpy(_permuted(index_np, perm)),
            **{k: torch.from_numpy(_permuted(v, perm)) for k, v in targets.items()},
        )

    def _read(self, pieces: Sequence[Piece]) -> list[pa.Table]:
        """The pieces' rows: one read per shard of all its row groups the window needs."""
        groups: dict[int, dict[int, int]] = {}  # shard -> {group: its first row in the read}
        for p in pieces:
            groups.setdefault(p.shard, {}).setdefault(p.group, p.group_start)
        tables: dict[int, pa.Table] = {}
        at: dict[tuple[int, int], int] = {}  # (shard, group) -> its first row in the shard's read
        for shard, starts in groups.items():
            order = sorted(starts)
            tables[shard] = self._file(shard).read_row_groups(order, columns=self.columns)
            sizes = [self.group_rows[shard][g] for g in order]
            at.update(zip(((shard, g) for g in order), np.cumsum([0, *sizes[:-1]]), strict=True))
        return [
            tables[p.shard].slice(
                int(at[p.shard, p.group]) + p.start - p.group_start, p.stop - p.start
            )
            for p in pieces
        ]

    def _file(self, shard: int) -> pq.ParquetFile:
        """Shards stay memory-mapped for the loader's life (per process): after the first epoch
        their pages are mapped, and a read costs one decode pass, no faults."""
        opened = self._maps.get(shard)
        if opened is None:
            opened = self._maps[shard] = pq.ParquetFile(pa.memory_map(self.paths[shard]))
        return opened

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch``, from batch number ``start`` (0-based) on."""
        per_window = self.window // self.batch_size
        first, skip = divmod(start, per_window)
        self.state[0], self.state[1] = epoch, first
        for w, block in enumerate(self._windows(), first):
            for s in range(
                skip * self.batch_size if w == first else 0, len(block), self.batch_size
            ):
                yield block.rows(s, s + self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self.batches(0)

    def _windows(self) -> Iterator[Batch]:
        if self.workers == 0:
            return iter(_Windows(self))
        if self._loader is None:
            self._loader = DataLoader(
                _Windows(self),
                batch_size=None,
                num_workers=self.workers,
                pin_memory=self.pin_memory,
                prefetch_factor=self.prefetch,
                persistent_workers=True,
                multiprocessing_context=worker_context(),
                # its own generator: drawing worker seeds from the global RNG would shift the
                # model's dropout masks and break exact resume
                generator=torch.Generator().manual_seed(self.seed),
                worker_init_fn=functools.partial(_worker_init, os.getpid()),
            )
        return iter(self._loader)

    def close(self) -> None:
        """Stop the worker processes now: the DataLoader (and with it its persistent workers'
        iterator) goes with its last reference, which is this one once an epoch has ended."""
        for opened in self._maps.values():
            opened.close()
        self._maps = {}
        self._loader = None

    def __getstate__(self) -> dict:
        # what a worker process receives: the plan and the shared state, not the DataLoader
        return {**self.__dict__, "_loader": None, "_maps": {}}


class _Windows(IterableDataset):
    """The epoch's windows, from the loader's shared (epoch, first window) state; worker ``i`` of
    ``n`` builds windows ``first + i``, ``first + i + n``, ... and the DataLoader's round-robin
    hands them back in window order."""

    def __init__(self, loader: ShardLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, n = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, first = (int(v) for v in self.loader.state)
        windows = self.loader.plan(epoch)
        for w in range(first + worker, len(windows), n):
            yield self.loader.build_window(epoch, w, windows[w], shared=info is not None)


def _worker_init(trainer: int, worker_id: int) -> None:
    """A Ctrl-C reaches the terminal's whole process group; it stops the trainer at a safe
    point, and the trainer stops its workers (SIGTERM, which they keep): a worker that died of
    the Ctrl-C first would break that step. A worker whose trainer is gone (killed with
    SIGKILL) exits within a second (DataLoader's own watchdog looks only when a worker idles,
    and the fork server that started the worker outlives the trainer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with(trainer)


def _row_groups(meta: pq.FileMetaData) -> list[tuple[int, int]]:
    """(first row, rows) of each row group of a Parquet file."""
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    return [(int(start), n) for start, n in zip(np.cumsum([0, *sizes[:-1]]), sizes, strict=True)]


def _permuted(a: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    return a if perm is None else a[perm]
