"""Sources: one reader per data format, registered by name (the ``data.source`` key) in
:data:`SOURCES`; :mod:`crnn.data.catalog` imports every module that registers one.

A source yields :class:`Chunk` objects of raw samples (before normalization) split by split, and
describes itself with :class:`SourceInfo` (a digest of the raw data plus how it was read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crnn.data.files import refusal, refused, sample_id_of
from crnn.data.splits import SPLITS
from crnn.registry import Registry
from crnn.types.kinds import TargetSpec
from crnn.types.records import Chunk, Quarantined, SourceInfo


class Source(Protocol):
    def info(self) -> SourceInfo: ...

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]: ...


__all__ = [
    "NEW",
    "SOURCES",
    "SPLITS",
    "Chunk",
    "Source",
    "SourceInfo",
    "TargetSpec",
    "per_file_chunks",
]

NEW = "new"  # the split name of new (unlabeled) data read for scoring


def per_file_chunks(
    files: list[Path],
    root: Path,
    chunk_rows: int,
    read: Callable[[Path], np.ndarray],
    shape: tuple[int, ...],
    reason: str,
    split: str = NEW,
    labels: np.ndarray | None = None,
    values: np.ndarray | None = None,
    follow_symlinks: bool = False,
) -> Iterator[Chunk]:
    """Samples that are one file each (images, WAVs, clips): ``read(file)`` -> one input of
    ``shape``, ``labels[k]`` the class of ``files[k]`` or ``values[k]`` its number (neither: new
    data). A file that ``read`` cannot parse is quarantined under ``reason`` with the error,
    one that cannot be a record (:func:`~crnn.data.files.refusal`: a symlink that leaves
    ``root`` unless ``follow_symlinks``...) unread; never dropped."""
    for start in range(0, len(files), chunk_rows):
        ids, inputs, kept, bad = [], [], [], []
        for k in range(start, min(start + chunk_rows, len(files))):
            path = files[k]
            why = refusal(path, root, follow_symlinks)
            if why is not None:
                bad.append(refused(path, root, split, why))
                continue
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
        chunk_values = None if values is None else np.asarray(values, np.float64)[kept]
        yield Chunk(split, ids, stacked, labels=chunk_labels, values=chunk_values, quarantined=bad)


SOURCES: Registry[Any] = Registry("source")
