"""Shards -> torch tensors and batches, columnar: no per-sample Python on the hot path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from crnn.data.shards import INPUT_COLUMN, MANIFEST_NAME, Manifest
from crnn.errors import DataError


@dataclass
class SplitData:
    """One split in memory. ``targets`` is (N, L_max) zero-padded, with ``target_lengths``."""

    sample_ids: list[str]
    inputs: torch.Tensor  # (N, C, H, W) float32
    targets: torch.Tensor | None = None  # (N, L_max) int64, sequences
    target_lengths: torch.Tensor | None = None  # (N,) int64, sequences
    texts: list[str] | None = None
    labels: torch.Tensor | None = None  # (N,) int64, classes
    aug: torch.Tensor | None = None  # (N,) int8: 0 original, k the k-th augmented copy

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass
class Batch:
    inputs: torch.Tensor
    index: torch.Tensor  # positions in the split
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            inputs=self.inputs.to(device, non_blocking=True),
            index=self.index,
            targets=move(self.targets),
            target_lengths=move(self.target_lengths),
            labels=move(self.labels),
        )


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{path}: no manifest; run preprocessing first (`crnn run`)")
    return Manifest.from_file(path)


def load_split(manifest_path: Path, split: str) -> SplitData:
    """Read every shard of ``split`` listed in the manifest into tensors."""
    manifest = load_manifest(manifest_path)
    root = Path(manifest_path).parent if Path(manifest_path).is_file() else Path(manifest_path)
    paths = manifest.shard_paths(root, split)
    if not paths:
        raise DataError(f"{root}: the manifest lists no {split!r} shards")
    table = pa.concat_tables(pq.read_table(p) for p in paths)
    shape = tuple(manifest.input_shape)
    sequence = manifest.target["kind"] == "sequence"
    data = SplitData(
        sample_ids=table.column("sample_id").to_pylist(),
        inputs=torch.from_numpy(decode_inputs(table.column(INPUT_COLUMN), shape)),
        aug=torch.from_numpy(table.column("aug").to_numpy().copy()),
    )
    if sequence:
        lengths = table.column("length").to_numpy().astype(np.int64)
        data.targets = torch.from_numpy(pad_targets(table.column("target"), lengths))
        data.target_lengths = torch.from_numpy(lengths)
        data.texts = table.column("text").to_pylist()
    else:
        data.labels = torch.from_numpy(table.column("label").to_numpy().astype(np.int64))
    return data


def decode_inputs(column: pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    """Fixed-size binary column -> (N, *shape) float32 with one frombuffer per Arrow chunk."""
    parts = []
    for chunk in column.chunks:
        width = chunk.type.byte_width
        data = chunk.buffers()[1]
        start = chunk.offset * width
        parts.append(
            np.frombuffer(data, dtype=np.float32, count=len(chunk) * width // 4, offset=start)
        )
    flat = parts[0] if len(parts) == 1 else np.concatenate(parts)
    # frombuffer views are read-only; torch wants writable memory
    return np.array(flat.reshape(-1, *shape), copy=True)


def pad_targets(column: pa.ChunkedArray, lengths: np.ndarray) -> np.ndarray:
    """list<int32> column -> (N, L_max) int64 zero-padded, vectorized over the flat values."""
    arr = column.combine_chunks()
    values = arr.flatten().to_numpy().astype(np.int64)
    max_len = int(lengths.max()) if len(lengths) else 0
    out = np.zeros((len(lengths), max(max_len, 1)), dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = values
    return out


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
        yield batch
