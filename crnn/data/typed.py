"""Digit lines typed in a TrueType font, in the units of the embedded handwritten lines.

The embedded line model learns from scikit-learn's handwritten 8x8 digits; a user's typed digits
(a screenshot, a printed form) have the even strokes, the proportions and the tight spacing of a
font, which that model had never seen. ``digit_strings`` lines can be typed instead
(``data.typed_fraction``): the string drawn with Pillow's own scalable font (Aileron, bundled with
Pillow, so no system font is needed) at a random size, weight, letter spacing and margin, then
brought to the line's height as :mod:`crnn.data.user_images` brings a user's image: the aspect
ratio kept, antialiased, in the training range (0-16) and polarity (light ink on dark).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

INK = 16.0  # the handwritten digits' full stroke (scikit-learn's 0-16)
SIZES = (18, 40)  # font sizes drawn from (pixels): the shapes before the line is shrunk
INK_SHARE = (0.55, 0.8)  # the digits' height as a share of the line's, like the handwritten ones


@lru_cache(maxsize=64)
def font(size: int, path: str | None = None) -> Any:
    """A TrueType font of ``size`` pixels: the file at ``path``, else Pillow's bundled one."""
    from PIL import ImageFont

    if path is None:
        return ImageFont.load_default(size=size)  # Aileron Regular (Pillow >= 10.1, FreeType)
    return ImageFont.truetype(str(Path(path)), size=size)


def draw_text(text: str, size: int, spacing: float, stroke: int, path: str | None) -> np.ndarray:
    """``text`` drawn light on dark, one character after another ``spacing`` (a share of the
    size) apart; cropped to its ink. 2-D float array in 0-1."""
    from PIL import Image, ImageDraw

    face = font(size, path)
    pad = size
    widths = [face.getlength(ch) for ch in text]
    canvas = Image.new("L", (int(sum(widths) + spacing * size * len(text)) + 2 * pad, 3 * size))
    pen, x = ImageDraw.Draw(canvas), float(pad)
    for ch, w in zip(text, widths, strict=True):
        pen.text((x, size), ch, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
        x += w + spacing * size
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.1)
    if not len(rows):
        return ink[:1, :1] * 0
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def fit_height(ink: np.ndarray, height: int, share: float) -> np.ndarray:
    """The ink shrunk so that it is ``share`` of ``height`` tall (aspect kept, antialiased)."""
    h, w = ink.shape
    target_h = max(1, round(height * share))
    target_w = max(1, round(w * target_h / h))
    t = torch.from_numpy(np.ascontiguousarray(ink))[None, None]
    out = F.interpolate(t, size=(target_h, target_w), mode="bilinear", antialias=True)
    return out[0, 0].numpy()


def typed_line(
    text: str, height: int, width: int, rng: np.random.Generator, path: str | None = None
) -> np.ndarray:
    """One typed line of ``height`` x ``width`` in the handwritten lines' units: a random size,
    weight (stroke 0-1), letter spacing and vertical place; squeezed to ``width`` if longer."""
    size = int(rng.integers(*SIZES))
    stroke = int(rng.random() < 0.3)
    spacing = float(rng.uniform(0.0, 0.25))
    ink = fit_height(draw_text(text, size, spacing, stroke, path), height, rng.uniform(*INK_SHARE))
    h, w = ink.shape
    if w > width:
        ink = F.interpolate(
            torch.from_numpy(ink)[None, None], size=(h, width), mode="bilinear", antialias=True
        )[0, 0].numpy()
        w = width
    line = np.zeros((height, width), dtype=np.float32)
    y = int(rng.integers(0, height - h + 1))
    x = int(rng.integers(0, width - w + 1))
    line[y : y + h, x : x + w] = ink * INK * float(rng.uniform(0.8, 1.0))
    return np.clip(line, 0.0, INK)
