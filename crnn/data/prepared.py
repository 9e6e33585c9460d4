"""The per-chunk work of preprocessing, as one picklable object: validate a source chunk, normalize
it with the training statistics, and augment a training chunk. It runs here or on a cluster
worker (:mod:`crnn.cluster`); either way its result depends only on the chunk, its place and the
fitted statistics (an augmentation's random generator is seeded by the chunk's place), so the
shard set is byte for byte the same with any number of workers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from crnn.config import AugmentationConfig
from crnn.data.augment import AUGMENTERS, generator_for
from crnn.data.quarantine import validate_chunk
from crnn.normalization import Normalizer
from crnn.tasks.base import Task
from crnn.types.records import Chunk, Quarantined

# runs a function over items and yields the results in the items' order: map here, or a mapper
# over a cluster's workers
Mapper = Callable[[Callable[["Placed"], "Prepared"], Iterable["Placed"]], Iterator["Prepared"]]


@dataclass(frozen=True)
class Placed:
    """A chunk as a source gave it, with its place in its split."""

    index: int
    chunk: Chunk


@dataclass
class Prepared:
    """A chunk's valid rows, normalized, with its augmented copies; and what was set aside."""

    chunk: Chunk  # the valid rows (inputs as read)
    quarantined: list[Quarantined]  # the reader's and validation's
    normalized: np.ndarray | None  # None: no valid row
    copies: list[np.ndarray] = field(default_factory=list)  # augmented, training chunks only


@dataclass(frozen=True)
class ChunkPrep:
    """What is done to every chunk; picklable, shipped once per task to a worker."""

    normalizer: Normalizer
    task: Task
    augmentation: AugmentationConfig
    modality: str

    def __call__(self, placed: Placed) -> Prepared:
        raw = placed.chunk
        chunk, bad = validate_chunk(raw, self.task)
        if not len(chunk):
            return Prepared(chunk, raw.quarantined + bad, None)
        normalized = self.normalizer.transform(chunk.inputs)
        copies = self.augmentation.copies if chunk.split == "train" else 0
        augment = AUGMENTERS.get(self.modality)
        augmented = [
            augment(
                normalized,
                self.augmentation,
                generator_for(self.augmentation.seed, placed.index, copy),
            )
            for copy in range(1, copies + 1)
        ]
        return Prepared(chunk, raw.quarantined + bad, normalized, augmented)
