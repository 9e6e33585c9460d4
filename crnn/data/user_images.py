"""Images as users have them, made into what an image model was trained on.

A user's line image is any size, 8-bit (0-255) or float, and often dark ink on a light background
(scans, screenshots); the embedded training lines are 12 pixels high, in 0-16, light ink on dark.
So an image is converted to the model's channels, its pixel range mapped to the training data's,
its polarity flipped when its background is on the other side of the range from the training
background (measured on the training split at preprocessing: :class:`ImageProfile`), and resized
to the model's height keeping its aspect ratio (line models, which read any width) or to the
model's size (the others). Line images of one batch are padded on the right with the training
background, and each keeps its real width so CTC decodes only its own frames.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from crnn.data.files import new_data_files, refusal, refused, sample_id_of
from crnn.errors import DataError, unreadable
from crnn.types.records import Quarantined, SourceFeatures

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}
UNIFORM = 0.1  # a background is uniform when its spread is under this share of the range


class ImageProfile:
    """What preprocessing measures on the training images for later inputs: the pixel range and,
    when the training images share a uniform background (lines on a blank page, digits on black),
    its value. Streaming, like the normalizer."""

    def __init__(self) -> None:
        self.low, self.high = np.inf, -np.inf
        self.borders: list[np.ndarray] = []

    def observe(self, x: np.ndarray) -> None:
        if x.ndim < 3 or not len(x):
            return
        self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
        self.borders.append(np.median(_border(x.reshape(len(x), -1, *x.shape[-2:])), axis=1))

    def to_features(self) -> SourceFeatures:
        if not self.borders or not np.isfinite(self.low):
            return {}
        medians = np.concatenate(self.borders)
        spread = float(np.percentile(medians, 90) - np.percentile(medians, 10))
        uniform = spread <= UNIFORM * max(self.high - self.low, 1e-12)
        background = float(np.median(medians)) if uniform else None
        return {"image": {"low": self.low, "high": self.high, "background": background}}


def _border(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, pixels on the outer frame of every channel)."""
    top, bottom = x[..., 0, :], x[..., -1, :]
    left, right = x[..., 1:-1, 0], x[..., 1:-1, -1]
    return np.concatenate([a.reshape(len(x), -1) for a in (top, bottom, left, right)], axis=1)


def read_image_file(source: str | Path | bytes) -> np.ndarray:
    """An image file (path or encoded bytes) as float32 (H, W) or (H, W, 3), in 0-255."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            grey = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            return np.asarray(img.convert("L" if grey else "RGB"), dtype=np.float32)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # not an image, truncated, a broken stream, or a header declaring too many pixels
        raise unreadable(source, "image", exc) from None


def as_image_list(model_input: Any) -> list[np.ndarray]:
    """What users hand an image model -> a list of arrays: one array (a batch (N, ...) or a
    single image), a list of arrays of any sizes, paths, encoded bytes, or a DataFrame with an
    ``image`` column (bytes or paths) or a ``path`` column."""
    if isinstance(model_input, pd.DataFrame):
        column = next((c for c in ("image", "path") if c in model_input), None)
        if column is None:
            raise DataError(
                f"an image model takes a DataFrame with an 'image' column (encoded bytes or "
                f"paths) or a 'path' column; got columns {list(model_input)[:5]}"
            )
        model_input = list(model_input[column])
    if isinstance(model_input, (str, Path, bytes)):
        model_input = [model_input]
    if isinstance(model_input, np.ndarray):
        single = model_input.ndim == 2 or (
            model_input.ndim == 3 and model_input.shape[-1] in (3, 4)
        )
        return [model_input] if single else list(model_input)
    images = []
    for k, item in enumerate(model_input):
        if isinstance(item, (str, Path, bytes)):
            images.append(read_image_file(item))
            continue
        array = np.asarray(item, dtype=np.float32)
        if array.ndim not in (2, 3) or min(array.shape[:2]) < 1:
            raise DataError(
                f"image {k}: an image is a 2-D (H, W) or 3-D (H, W, C) array; got shape "
                f"{list(array.shape)}"
            )
        images.append(array)
    return images


def fit_images(
    images: Sequence[np.ndarray],
    input_shape: tuple[int, ...],
    features: SourceFeatures,
    any_width: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Images -> a batch (N, C, H, W) in the training data's units and polarity, and each
    image's width in it (line models: height fitted, any width, right-padded with the training
    background to the widest and at least the trained width; others: resized to the model's
    size)."""
    c, h, w = input_shape
    profile = features.get("image") or {}
    fitted = [
        _resize(_in_training_units(_channels(x, c), profile), h, None if any_width else w)
        for x in images
    ]
    widths = np.array([x.shape[-1] for x in fitted], dtype=np.int64)
    width = max([w, *widths.tolist()])
    fill = profile.get("background")
    batch = np.full((len(fitted), c, h, width), 0.0 if fill is None else fill, np.float32)
    for i, x in enumerate(fitted):
        batch[i, :, :, : x.shape[-1]] = x
    return batch, widths


def _channels(x: np.ndarray, c: int) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) -> (c, H, W)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[-1] in (3, 4) and x.shape[0] not in (1, 3):
        x = np.moveaxis(x[..., :3], -1, 0)  # channels last, alpha dropped
    if x.ndim == 2:
        x = x[None]
    if x.shape[0] == c:
        return x
    if c == 1:
        return x[:3].mean(axis=0, keepdims=True)
    return np.repeat(x[:1], c, axis=0)


def _in_training_units(x: np.ndarray, profile: dict[str, Any]) -> np.ndarray:
    """Map 8-bit or 0-1 pixels onto the training range; flip the polarity to the training
    background's (when the training images had a uniform one)."""
    if not profile:
        return x
    low, high = float(profile["low"]), float(profile["high"])
    top = float(x.max()) if x.size else 0.0
    if top > high * 1.5 + 1e-6:  # 8-bit pixels, a model trained on another range (e.g. 0-16)
        x = x / 255.0 * (high - low) + low
    elif top <= 1.0 < high * 0.5:  # floats in 0-1, a model trained on a larger range
        x = x * (high - low) + low
    background = profile.get("background")
    if background is not None:
        mid = (low + high) / 2
        own = float(np.median(_border(x[None])))
        if (own > mid) != (background > mid):
            x = low + high - x
    return x


def _resize(x: np.ndarray, height: int, width: int | None) -> np.ndarray:
    """Bilinear (antialiased when shrinking) to ``height`` and ``width`` (None: the aspect
    ratio's width)."""
    _, h, w = x.shape
    if width is None:
        width = max(1, round(w * height / h))
    if (h, w) == (height, width):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    out = F.interpolate(t, size=(height, width), mode="bilinear", antialias=True)
    return out[0].numpy()


def image_file_chunks(
    root: Path,
    chunk_rows: int,
    input_shape: tuple[int, ...],
    features: SourceFeatures,
    any_width: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str], list[Quarantined]]]:
    """Every image file under ``root`` (or ``root`` itself), fitted for the model, in chunks:
    (batch, widths, sample ids, files that could not be read)."""
    files = [root] if root.is_file() else new_data_files(root, IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no image files to score ({', '.join(sorted(IMAGE_SUFFIXES))})")
    base = root.parent if root.is_file() else root
    for start in range(0, len(files), chunk_rows):
        images, ids, bad = [], [], []
        for path in files[start : start + chunk_rows]:
            why = refusal(path, base)
            if why is not None:
                bad.append(refused(path, base, "new", why))
                continue
            sample_id = sample_id_of(path, base)
            try:
                images.append(read_image_file(path))
            except Exception as exc:  # any decode failure of a user's file is a bad record
                detail = f"{type(exc).__name__}: {exc}"[:300]
                bad.append(Quarantined(sample_id, "new", str(path), "unreadable_image", detail))
                continue
            ids.append(sample_id)
        batch, widths = (
            fit_images(images, input_shape, features, any_width)
            if images
            else (np.zeros((0, *input_shape), np.float32), np.zeros(0, np.int64))
        )
        yield batch, widths, ids, bad
