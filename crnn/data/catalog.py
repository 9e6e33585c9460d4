"""The catalog of sources: every reader module, imported by name (each registers its readers in
:data:`crnn.data.sources.SOURCES` and its augmenter), and the ways in: :func:`open_source` for a
pipeline's data, :func:`new_data_chunks` for new data to score."""

from __future__ import annotations

from collections.abc import Iterator

from crnn.config import SourceConfig
from crnn.data import audio, embedded, images, lines, speech, text, video
from crnn.data.sources import SOURCES, Source
from crnn.data.splits import SPLITS
from crnn.types.records import Chunk, SourceFeatures

# the modules SOURCES is filled from
READERS = (embedded, images, lines, video, audio, speech, text)


def new_data_chunks(
    cfg: SourceConfig, features: SourceFeatures, chunk_rows: int
) -> Iterator[Chunk]:
    """New data for scoring at ``cfg.path``, read with the settings a model was trained with
    (``cfg``, ``features``: its bundled source config and fitted features), labels not needed.

    Readers with a ``new_data(cfg, features, chunk_rows)`` classmethod read any layout (loose
    files, class folders, a table without a label column); the others read their labelled layout,
    every split.
    """
    reader = SOURCES.get(cfg.source)
    if hasattr(reader, "new_data"):
        yield from reader.new_data(cfg, features, chunk_rows)
        return
    source = open_source(cfg)
    for split in SPLITS:
        yield from source.chunks(split, chunk_rows)


def open_source(cfg: SourceConfig) -> Source:
    """The registered reader for ``cfg.source``."""
    reader: Source = SOURCES.get(cfg.source)(cfg)
    return reader


def check_source(cfg: SourceConfig) -> None:
    """Fail fast, in one line, when a file-based source has no usable ``data.path``."""
    open_source(cfg)
