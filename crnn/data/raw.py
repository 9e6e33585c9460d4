"""What users hand a registered model, turned into its inputs with the features it was trained with.

Each source owns what it does with raw input, as optional static methods of its class (looked up
by the source name the checkpoint or manifest records; the way ``new_data`` is):

* ``raw_inputs(model_input, source, features)``: what a user has -> the model's inputs in source
  units (a text table: strings through its stored tokenizer; audio: waveforms, WAV bytes or paths
  through its stored resampling and log-mel parameters);
* ``raw_example(manifest, test, rows)``: the first test samples as a user would hand them (the
  pyfunc's input example);
* ``files_input(files)``: what ``crnn predict FILE...`` hands the model;
* ``INPUT_SUFFIXES``: the files a folder given to ``crnn predict`` stands for; ``READS_TEXT``:
  its models take texts (``crnn predict --text``, ``-`` for stdin).

A source without them (images, clips) takes arrays as they are, its example is its samples in
source units, and files are handed over as paths; a folder stands for its image files (an image
model) or is handed over as it is (a clip of frames).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crnn.types.records import SourceFeatures


def _source_class(name: object) -> Any | None:
    """The registered reader class of source ``name``; None for a name no reader has."""
    from crnn.data import catalog  # noqa: F401  (every reader module registers its sources)
    from crnn.data.sources import SOURCES

    return SOURCES.get(str(name)) if str(name) in SOURCES else None


def _own(name: object, method: str) -> Any | None:
    return getattr(_source_class(name), method, None)


def reads_own_input(name: object) -> bool:
    """Whether source ``name`` turns what users have into inputs itself (``raw_inputs``): a
    line-image source reads a user's file as it read its training lines."""
    return _own(name, "raw_inputs") is not None


def reads_text(name: object) -> bool:
    """Whether source ``name``'s models read texts (``READS_TEXT``): `crnn predict --text`."""
    return bool(_own(name, "READS_TEXT"))


def channel_axis(input_shape: tuple[int, ...]) -> int | None:
    """Index of the channel axis in a sample's shape: (C, H, W) -> 0, (T, C, H, W) -> 1."""
    return len(input_shape) - 3 if len(input_shape) >= 3 else None


def squeeze_channel(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Drop a single channel axis from a batch: how users hold grey images and clips."""
    axis = channel_axis(input_shape)
    return x if axis is None or input_shape[axis] != 1 else np.squeeze(x, axis=1 + axis)


def raw_to_inputs(model_input: Any, source: dict[str, Any], features: SourceFeatures) -> np.ndarray:
    """The model's inputs (source units) from what a user has; arrays pass as they are."""
    own = _own(source.get("source"), "raw_inputs")
    if own is None:
        return np.asarray(model_input, dtype=np.float32)
    result: np.ndarray = own(model_input, source, features)
    return result


def raw_example(manifest_path: Path, rows: int = 3) -> np.ndarray | pd.DataFrame:
    """The first test samples of a shard set as a user would hand them to the model: the
    source's own example, or arrays in source units (channel axis dropped for single-channel
    data)."""
    from crnn.data.loader import load_manifest, load_split
    from crnn.normalization import Normalizer

    manifest = load_manifest(manifest_path)
    test = load_split(manifest_path, "test")
    own = _own(manifest.source.get("name"), "raw_example")
    if own is not None:
        example: np.ndarray | pd.DataFrame = own(manifest, test, rows)
        return example
    raw = Normalizer.from_stats(manifest.normalization).inverse_transform(
        test.inputs[:rows].numpy()
    )
    return squeeze_channel(raw, tuple(manifest.input_shape))


def files_input(source: str, files: list[Path], image_model: bool) -> tuple[list[str], Any]:
    """(a name per input, what the model takes) for ``crnn predict FILE...``: the source's own
    reading, or the files' paths (a list for an image model, a ``path`` column else)."""
    own = _own(source, "files_input")
    if own is not None:
        named: tuple[list[str], Any] = own(files)
        return named
    paths = [str(f) for f in files]
    return paths, (paths if image_model else pd.DataFrame({"path": paths}))


def expand_folders(source: str, paths: list[Path], image_model: bool) -> list[Path]:
    """``paths`` with each folder replaced by the files under it the model reads (any depth,
    sorted, hidden ones aside): the source's ``INPUT_SUFFIXES``, image files for an image model;
    a folder stays itself where the source reads folders (a clip's frames)."""
    from crnn.data.files import new_data_files
    from crnn.data.user_images import IMAGE_SUFFIXES

    own: set[str] | None = _own(source, "INPUT_SUFFIXES")
    suffixes = own if own is not None else (IMAGE_SUFFIXES if image_model else None)
    out: list[Path] = []
    for path in paths:
        if path.is_dir() and suffixes is not None:
            out += [p for p in new_data_files(path, suffixes) if not p.name.endswith(".gt.txt")]
        else:
            out.append(path)
    return out
