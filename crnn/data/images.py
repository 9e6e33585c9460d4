"""Readers of published image formats: MNIST-family IDX, CIFAR-10 python batches, image folders.

Each streams its files in chunks (memory does not grow with the dataset), describes the data by
a digest of the files' contents, and quarantines what it cannot read instead of failing or
silently skipping it.
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, cast

import numpy as np

from crnn.config import Cifar10Data, ImageFolderData, MnistIdxData, SplitFractions
from crnn.data.files import (
    IMAGE_SUFFIXES,
    class_folders,
    files_digest,
    new_data_files,
    refusal,
    refused,
    require_input,
    require_path,
)
from crnn.data.sources import SOURCES, SPLITS, TargetSpec, per_file_chunks
from crnn.data.splits import split_indices, split_train_val
from crnn.errors import DataError
from crnn.types.records import Chunk, Quarantined, SourceFeatures, SourceInfo

IDX_TYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


# -------------------------------------------------------------------------------------- IDX


def open_binary(path: Path) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if path.suffix == ".gz" else open(path, "rb")


def read_idx_header(fh: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = fh.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); expected MNIST-style IDX")
    ndim = magic[3]
    dims = np.frombuffer(fh.read(4 * ndim), dtype=">i4")
    if len(dims) < ndim:
        raise DataError(f"{path}: truncated IDX header")
    return np.dtype(IDX_TYPES[magic[2]]), tuple(int(d) for d in dims)


def iter_idx(path: Path, chunk_rows: int) -> Iterator[tuple[int, np.ndarray, int]]:
    """(first index, records, declared count) per chunk; stops early where the file ends."""
    with open_binary(path) as fh:
        dtype, dims = read_idx_header(fh, path)
        record = int(np.prod(dims[1:])) * dtype.itemsize
        for start in range(0, dims[0], chunk_rows):
            want = min(chunk_rows, dims[0] - start)
            data = fh.read(want * record)
            got = len(data) // record
            if got:
                yield (
                    start,
                    np.frombuffer(data[: got * record], dtype).reshape(got, *dims[1:]),
                    dims[0],
                )
            if got < want:
                return


def find_one(folder: Path, patterns: list[str], what: str) -> Path:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    raise DataError(f"{folder}: no {what} file ({' or '.join(patterns)}); check data.path")


@SOURCES.register("mnist_idx")
class MnistIdxSource:
    """``train-*`` IDX files -> train and val (stratified); ``t10k-*`` -> test."""

    WHAT = "MNIST IDX files (train-images-idx3-ubyte[.gz] and friends)"

    def __init__(self, cfg: MnistIdxData) -> None:
        self.cfg = cfg
        folder = require_path(cfg.path, self.WHAT)
        self.files = {
            prefix: (
                find_one(folder, [f"{prefix}-images*idx3-ubyte*"], f"{prefix} images"),
                find_one(folder, [f"{prefix}-labels*idx1-ubyte*"], f"{prefix} labels"),
            )
            for prefix in ("train", "t10k")
        }
        with open_binary(self.files["train"][0]) as fh:
            _, dims = read_idx_header(fh, self.files["train"][0])
        self.shape = (1, *dims[1:])
        self.labels = {p: self._labels(p) for p in self.files}
        self.assign = split_train_val(self.labels["train"], cfg.val_fraction, cfg.seed)

    def _labels(self, prefix: str) -> np.ndarray:
        parts = [chunk for _, chunk, _ in iter_idx(self.files[prefix][1], 1 << 20)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        paths = [p for pair in self.files.values() for p in pair]
        return SourceInfo(
            name="mnist_idx",
            description=f"IDX files in {self.cfg.path}",
            digest=files_digest(paths, {k: v for k, v in config.items() if k != "path"}),
            input_shape=self.shape,
            target=TargetSpec(kind="class", classes=tuple(self.cfg.classes)),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        prefix = "t10k" if split == "test" else "train"
        images, _ = self.files[prefix]
        labels = self.labels[prefix]
        wanted = (
            np.ones(len(labels), bool) if split == "test" else self.assign == SPLITS.index(split)
        )
        declared, seen = None, 0
        for start, block, count in iter_idx(images, chunk_rows):
            declared = count
            idx = np.arange(start, start + len(block))
            seen = start + len(block)
            has_label = idx < len(labels)
            mask = np.zeros(len(block), bool)
            mask[has_label] = wanted[idx[has_label]]
            bad = [
                Quarantined(
                    f"{prefix}-{i:06d}",
                    split,
                    f"{images.name}[{i}]",
                    "missing_label",
                    f"{self.files[prefix][1].name} has {len(labels)} labels",
                )
                for i in idx[~has_label]
                if split == "train"
            ]
            yield Chunk(
                split=split,
                sample_ids=[f"{prefix}-{i:06d}" for i in idx[mask]],
                inputs=block[mask].astype(np.float32),
                labels=labels[idx[mask]],
                quarantined=bad,
            )
        if declared is None:  # only a header, or nothing readable
            with open_binary(images) as fh:
                declared = read_idx_header(fh, images)[1][0]
        missing = [i for i in range(seen, declared) if i >= len(labels) or wanted[i]]
        if missing:
            yield Chunk(
                split=split,
                sample_ids=[],
                inputs=np.zeros((0, *self.shape[1:]), np.float32),
                labels=np.zeros(0, np.int64),
                quarantined=[
                    Quarantined(
                        f"{prefix}-{i:06d}",
                        split,
                        f"{images.name}[{i}]",
                        "truncated_file",
                        f"{images.name} declares {declared} images, holds {seen}",
                    )
                    for i in missing
                ],
            )


# ------------------------------------------------------------------------------------ CIFAR


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles: allow plain data and numpy arrays, nothing that runs code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_cifar_batch(path: Path) -> dict[str, Any]:
    """A CIFAR "python version" file as a dict with str keys (safely: no code is run)."""
    with open(path, "rb") as fh:
        raw = _ArraysOnlyUnpickler(io.BufferedReader(fh), encoding="bytes").load()
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


@SOURCES.register("cifar10")
class Cifar10Source:
    """``data_batch_*`` -> train and val (stratified); ``test_batch`` -> test."""

    WHAT = "CIFAR-10 python batches (data_batch_1..5, test_batch, batches.meta)"

    def __init__(self, cfg: Cifar10Data) -> None:
        self.cfg = cfg
        folder = require_path(cfg.path, self.WHAT)
        self.train_files = sorted(folder.glob("data_batch_*"))
        self.test_files = sorted(folder.glob("test_batch*"))
        if not self.train_files or not self.test_files:
            raise DataError(f"{folder}: no data_batch_* / test_batch files; check data.path")
        meta = folder / "batches.meta"
        names = load_cifar_batch(meta).get("label_names") if meta.is_file() else None
        self.classes = tuple(
            n.decode() if isinstance(n, bytes) else str(n) for n in names or range(10)
        )
        self.channels = 1 if cfg.grayscale else 3
        self._assign: dict[str, np.ndarray] = {}

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        return SourceInfo(
            name="cifar10",
            description=f"CIFAR-10 python batches in {self.cfg.path}",
            digest=files_digest(
                self.train_files + self.test_files, {k: v for k, v in config.items() if k != "path"}
            ),
            input_shape=(self.channels, 32, 32),
            target=TargetSpec(kind="class", classes=self.classes),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        files = self.test_files if split == "test" else self.train_files
        for path in files:
            try:
                batch = load_cifar_batch(path)
                data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                labels = np.asarray(batch["labels"], dtype=np.int64)
                if len(labels) != len(data):
                    raise ValueError(f"{len(data)} images but {len(labels)} labels")
            except Exception as exc:  # any unreadable batch is quarantined whole, with its cause
                if split == "val":
                    continue  # train and val read the same files: report it once, under train
                yield Chunk(
                    split,
                    [],
                    np.zeros((0, self.channels, 32, 32), np.float32),
                    labels=np.zeros(0, np.int64),
                    quarantined=[
                        Quarantined(
                            path.name,
                            split,
                            str(path),
                            "unreadable_file",
                            f"{type(exc).__name__}: {exc}"[:300],
                        )
                    ],
                )
                continue
            keep = np.ones(len(labels), bool)
            if split != "test":
                assign = self._assign.setdefault(
                    path.name, split_train_val(labels, self.cfg.val_fraction, self.cfg.seed)
                )
                keep = assign == SPLITS.index(split)
            idx = np.flatnonzero(keep)
            for start in range(0, len(idx), chunk_rows):
                sel = idx[start : start + chunk_rows]
                images = data[sel].astype(np.float32)
                if self.cfg.grayscale:
                    weights = np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]
                    images = (images * weights).sum(axis=1, keepdims=True)
                yield Chunk(
                    split, [f"{path.name}-{i:05d}" for i in sel], images, labels=labels[sel]
                )


# ----------------------------------------------------------------------------- image folder


@SOURCES.register("image_folder")
class ImageFolderSource:
    """``CLASS/*.png`` (split by fractions) or ``train|val|test/CLASS/*.png`` (given split)."""

    WHAT = "one folder per class of PNG / JPEG images"

    def __init__(self, cfg: ImageFolderData) -> None:
        self.cfg = cfg
        self.root = require_path(cfg.path, self.WHAT)
        given = (self.root / "train").is_dir()
        class_parent = self.root / "train" if given else self.root
        # the images of folders that cannot be classes are set aside by _files
        self.classes, _ = class_folders(class_parent, self.root, cfg.follow_symlinks)
        if not self.classes:
            raise DataError(f"{class_parent}: no class folders; expected {self.WHAT}")
        # per split: images that cannot be records (:func:`refusal`), and given val / test
        # images of a class train/ has no folder for; counted, never dropped
        self.set_aside: dict[str, list[Quarantined]] = {}
        self.splits = self._given_split() if given else self._fraction_split(cfg.split)

    def _files(self, folder: Path, split: str) -> list[tuple[Path, int]]:
        """(image, class) of the images in ``folder``'s class folders; the others set aside."""
        files = []
        for p in sorted(folder.glob("*/*")):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            why = refusal(p, self.root, self.cfg.follow_symlinks)
            if why is None and p.parent.name not in self.classes:
                why = (
                    "unseen_label",
                    f"class {p.parent.name!r} has no record in the training split",
                )
            if why is None:
                files.append((p, self.classes.index(p.parent.name)))
            else:
                self.set_aside.setdefault(split, []).append(refused(p, self.root, split, why))
        return files

    def _given_split(self) -> dict[str, list[tuple[Path, int]]]:
        splits = {s: self._files(self.root / s, s) for s in SPLITS if (self.root / s).is_dir()}
        if "val" not in splits:
            train = splits["train"]
            assign = split_train_val(np.array([c for _, c in train]), 0.1, self.cfg.seed)
            splits["val"] = [f for f, a in zip(train, assign, strict=True) if a == 1]
            splits["train"] = [f for f, a in zip(train, assign, strict=True) if a == 0]
        return {s: splits.get(s, []) for s in SPLITS}

    def _fraction_split(self, fractions: SplitFractions) -> dict[str, list[tuple[Path, int]]]:
        files = self._files(self.root, "train")  # what is set aside: reported once
        labels = np.array([c for _, c in files])
        pools = split_indices(labels, fractions, self.cfg.seed)
        return {s: [files[i] for i in pools[s]] for s in SPLITS}

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        paths = [p for s in SPLITS for p, _ in self.splits[s]]
        channels = 1 if self.cfg.mode == "grayscale" else 3
        return SourceInfo(
            name="image_folder",
            description=f"image folder {self.root}: {len(paths)} files, "
            f"{len(self.classes)} classes",
            digest=files_digest(paths, {k: v for k, v in config.items() if k != "path"}),
            input_shape=(channels, *self.cfg.image_size),
            target=TargetSpec(kind="class", classes=self.classes),
            config=config,
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        files = [path for path, _ in self.splits[split]]
        labels = np.array([label for _, label in self.splits[split]], np.int64)
        read = functools.partial(read_image, cfg=self.cfg)
        shape = image_shape(self.cfg)
        set_aside = self.set_aside.get(split)
        if set_aside:  # counted, never dropped
            yield Chunk(split, [], np.zeros((0, *shape), np.float32), quarantined=set_aside)
        reason, follow = "unreadable_image", self.cfg.follow_symlinks
        yield from per_file_chunks(
            files, self.root, chunk_rows, read, shape, reason, split, labels, follow_symlinks=follow
        )

    @classmethod
    def new_data(
        cls, cfg: ImageFolderData, features: SourceFeatures, chunk_rows: int
    ) -> Iterator[Chunk]:
        """Every image under ``cfg.path`` (loose or in any folders), resized like training."""
        root = require_input(cfg.path)
        files = new_data_files(root, IMAGE_SUFFIXES, cfg.follow_symlinks)
        if not files:
            raise DataError(f"{root}: no PNG / JPEG images to score")
        shape = image_shape(cfg)
        reader = functools.partial(read_image, cfg=cfg)
        follow = cfg.follow_symlinks
        yield from per_file_chunks(
            files, root, chunk_rows, reader, shape, "unreadable_image", follow_symlinks=follow
        )


def image_shape(cfg: ImageFolderData) -> tuple[int, ...]:
    """One image as a chunk holds it: (H, W) grey, (3, H, W) colour."""
    return tuple(cfg.image_size) if cfg.mode == "grayscale" else (3, *cfg.image_size)


def read_image(path: Path, cfg: ImageFolderData) -> np.ndarray:
    """An image file in ``cfg.mode``, resized to ``cfg.image_size`` (bilinear), source units."""
    from PIL import Image

    h, w = cfg.image_size
    mode = "L" if cfg.mode == "grayscale" else "RGB"
    with Image.open(path) as img:
        array = np.asarray(img.convert(mode).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    return array if mode == "L" else array.transpose(2, 0, 1)
