"""Digit lines typed in TrueType fonts, in the units of the embedded handwritten lines.

The embedded line model learns from scikit-learn's handwritten 8x8 digits; a user's typed digits
(a screenshot, a printed form) have the even strokes, the proportions and the tight spacing of a
font, which that model had never seen. ``digit_strings`` lines can be typed instead
(``data.typed_fraction``): the string drawn in one of the fonts the installed packages bundle (no
system font is needed: Pillow's Aileron, and matplotlib's STIX and Computer Modern faces, serif,
sans, typewriter, bold and italic; matplotlib's DejaVu faces are left out so that DejaVu Sans
stays a font no model saw, for bench/typed_digits.py) at a random size, weight, slant, width
(condensed to expanded), letter spacing (tight to loose) and margin, then brought to the line's
height as :mod:`crnn.data.user_images` brings a user's image: the aspect ratio kept, antialiased,
in the training range (0-16) and polarity (light ink on dark).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

INK = 16.0  # the handwritten digits' full stroke (scikit-learn's 0-16)
SIZES = (18, 40)  # font sizes drawn from (pixels): the shapes before the line is shrunk
INK_SHARE = (0.55, 0.8)  # the digits' height as a share of the line's, like the handwritten ones
SPACING = (-0.06, 0.2)  # extra letter spacing, a share of the size: overlapping to loose
WIDTH_SCALE = (0.75, 1.2)  # horizontal scale of the drawn text: condensed to expanded faces
REPEAT = 0.15  # chance that a typed digit repeats the one before (doubled digits: 100, 2008)
SHEAR = 0.2  # largest slant (x shift per row of height), either way: oblique and back-slanted
# matplotlib's bundled faces other than DejaVu (its mpl-data/fonts/ttf folder)
MATPLOTLIB_FACES = (
    "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "cmr10", "cmb10", "cmss10", "cmtt10"
)  # fmt: skip


@lru_cache(maxsize=1)
def faces() -> tuple[str | None, ...]:
    """The fonts typed lines are drawn in: None (Pillow's bundled Aileron) and the paths of
    matplotlib's bundled faces that are there (located without importing matplotlib)."""
    spec = importlib.util.find_spec("matplotlib")
    found: list[str | None] = [None]
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"
        found += [str(p) for n in MATPLOTLIB_FACES if (p := folder / f"{n}.ttf").is_file()]
    return tuple(found)


def with_repeats(text: str, rng: np.random.Generator, chance: float = REPEAT) -> str:
    """``text`` with each digit after the first replaced by the one before it at ``chance``:
    more doubled digits, which a CTC model reads only when it learns to put a blank between two
    tightly typed equal digits."""
    out = list(text)
    for k, repeat in enumerate(rng.random(len(text)) < chance):
        if k and repeat:
            out[k] = out[k - 1]
    return "".join(out)


@lru_cache(maxsize=256)
def font(size: int, path: str | None = None) -> Any:
    """A TrueType font of ``size`` pixels: the file at ``path``, else Pillow's bundled one."""
    from PIL import ImageFont

    if path is None:
        return ImageFont.load_default(size=size)  # Aileron Regular (Pillow >= 10.1, FreeType)
    return ImageFont.truetype(str(Path(path)), size=size)


def draw_text(
    text: str, size: int, spacing: float, stroke: int, path: str | None, shear: float = 0.0
) -> np.ndarray:
    """``text`` drawn light on dark, one character after another ``spacing`` (a share of the
    size) apart, slanted by ``shear`` (x shift per row, positive leans right); cropped to its
    ink. 2-D float array in 0-1."""
    from PIL import Image, ImageDraw

    face = font(size, path)
    pad = size
    widths = [face.getlength(ch) for ch in text]
    span = sum(widths) + max(spacing, 0.0) * size * len(text)
    canvas = Image.new("L", (int(span) + 2 * pad, 3 * size))
    pen, x = ImageDraw.Draw(canvas), float(pad)
    for ch, w in zip(text, widths, strict=True):
        pen.text((x, size), ch, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
        x += w + spacing * size
    if shear:  # output (x, y) samples input (x + shear * (y - middle), y): the top leans right
        middle = 1.5 * size
        canvas = canvas.transform(
            canvas.size, Image.Transform.AFFINE, (1, shear, -shear * middle, 0, 1, 0),
            resample=Image.Resampling.BILINEAR,
        )  # fmt: skip
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.1)
    if not len(rows):
        return ink[:1, :1] * 0
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def fit_height(ink: np.ndarray, height: int, share: float, stretch: float = 1.0) -> np.ndarray:
    """The ink shrunk so that it is ``share`` of ``height`` tall, its width ``stretch`` times
    the aspect ratio's (antialiased)."""
    h, w = ink.shape
    target_h = max(1, round(height * share))
    target_w = max(1, round(w * target_h / h * stretch))
    t = torch.from_numpy(np.ascontiguousarray(ink))[None, None]
    out = F.interpolate(t, size=(target_h, target_w), mode="bilinear", antialias=True)
    return out[0, 0].numpy()


def typed_line(
    text: str, height: int, width: int, rng: np.random.Generator, path: str | None = None
) -> np.ndarray:
    """One typed line of ``height`` x ``width`` in the handwritten lines' units: a random font
    (``path`` to force one), size, weight (stroke 0-1), slant, width, letter spacing and place;
    squeezed to ``width`` if longer."""
    options = faces()
    face = options[int(rng.integers(len(options)))] if path is None else path
    size = int(rng.integers(*SIZES))
    stroke = int(rng.random() < 0.3)
    spacing = float(rng.uniform(*SPACING))
    shear = float(rng.uniform(-SHEAR, SHEAR))
    drawn = draw_text(text, size, spacing, stroke, face, shear)
    ink = fit_height(drawn, height, rng.uniform(*INK_SHARE), float(rng.uniform(*WIDTH_SCALE)))
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
