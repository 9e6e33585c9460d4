"""Typed digit lines (`data.typed_fraction`): their share, their units and polarity, and a typed
screenshot, as `crnn predict` fits it, lands in the same units as the typed training lines; the
fonts (bundled by the packages, none of them DejaVu) and the slant, width and spacing drawn."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from crnn.config import DigitStringsData
from crnn.data.embedded import DigitStringsSource
from crnn.data.typed import (
    INK,
    INK_SHARE,
    REPEAT,
    draw_text,
    faces,
    fit_height,
    typed_line,
    with_repeats,
)
from crnn.data.user_images import ImageProfile, fit_images


def _typed(fraction: float, n: int = 400) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    src = DigitStringsSource(DigitStringsData(typed_fraction=fraction))
    return src.compose("train", n, np.random.default_rng(5))


def test_a_share_of_the_lines_is_typed_and_none_when_zero() -> None:
    lines, texts, used = _typed(0.25)
    typed = [i for i, u in enumerate(used) if len(u) == 0]
    assert 60 <= len(typed) <= 140  # 100 expected of 400 (binomial sd ~8.7)
    assert all(3 <= len(texts[i]) <= 8 and texts[i].isdigit() for i in typed)
    assert all(len(u) == len(t) for u, t in zip(used, texts, strict=True) if len(u))
    _, _, none = _typed(0.0)
    assert all(len(u) for u in none)
    again, texts_again, _ = _typed(0.25)
    assert np.array_equal(lines, again) and texts == texts_again  # deterministic for the seed


def test_typed_lines_are_in_the_handwritten_units_light_on_dark() -> None:
    lines, _, used = _typed(0.5, 200)
    typed = lines[[i for i, u in enumerate(used) if len(u) == 0]]
    hand = lines[[i for i, u in enumerate(used) if len(u)]]
    assert typed.min() >= 0.0 and typed.max() <= INK
    assert np.median(typed[:, 0, :]) == 0.0 and np.median(typed[:, -1, :]) == 0.0  # dark border
    ink_rows = [(line.max(axis=1) > 2).sum() for line in typed]
    # as tall as a handwritten digit (8 of the line's 12 rows), give or take the sizes drawn
    assert 6 <= np.median(ink_rows) <= 10
    assert hand.max() <= INK and np.median(hand[:, 0, :]) == 0.0  # the units they share
    assert typed.max(axis=(1, 2)).min() > 0.5 * INK  # every typed line has full strokes


def test_a_typed_screenshot_is_fitted_into_the_units_of_the_typed_lines() -> None:
    from PIL import Image, ImageDraw, ImageFont

    src = DigitStringsSource(DigitStringsData(typed_fraction=0.25))
    profile = ImageProfile()
    profile.observe(src.compose("train", 200, np.random.default_rng(0))[0][:, None])
    face = ImageFont.load_default(size=40)
    left, top, right, bottom = face.getbbox("4071")
    shot = Image.new("L", (right - left + 20, bottom - top + 20), 255)  # dark on white, a margin
    ImageDraw.Draw(shot).text((10 - left, 10 - top), "4071", fill=0, font=face)
    features = profile.to_features()
    [fitted], _ = fit_images([np.asarray(shot)], src.info().input_shape, features, True)
    rows = (fitted[0].max(axis=1) > 2).sum()
    assert np.median(fitted[0, 0]) < 1 and fitted.max() > 0.6 * INK  # flipped to light on dark
    share = rows / fitted.shape[1]
    low, high = INK_SHARE
    assert low - 0.1 <= share <= high + 0.1, share
    trained = typed_line("4071", 12, 89, np.random.default_rng(0))
    assert (trained.max(axis=1) > 2).sum() == pytest.approx(rows, abs=3)


def test_the_fonts_are_bundled_by_the_packages_and_none_is_dejavu() -> None:
    options = faces()
    assert options[0] is None and len(options) >= 5  # Pillow's Aileron, then matplotlib's faces
    paths = [p for p in options if p is not None]
    assert all("mpl-data" in p and "dejavu" not in p.lower() for p in paths)  # the bench's font
    for path in options:  # every face has the digits (not a missing-glyph box for each)
        glyphs = [draw_text(d, 30, 0.0, 0, path) for d in "0123456789"]
        assert all(g.shape[0] >= 15 and g.max() > 0.9 for g in glyphs), path
        shapes = {fit_height(g, 12, 1.0, 8 / 12 * g.shape[0] / g.shape[1]).round(1).tobytes()
                  for g in glyphs}  # fmt: skip
        assert len(shapes) == 10, path


def test_slant_leans_the_top_and_spacing_and_stretch_set_the_width() -> None:
    def lean(shear: float) -> float:
        ink = draw_text("111", 40, 0.1, 0, None, shear)
        cols = np.arange(ink.shape[1])
        top, bottom = ink[: len(ink) // 4], ink[-len(ink) // 4 :]
        return float((top.sum(0) @ cols) / top.sum() - (bottom.sum(0) @ cols) / bottom.sum())

    upright = lean(0.0)  # Aileron's 1 has its flag at the top left
    # the quarters' middles are ~21 rows apart: ~4 columns of lean at a slant of 0.2
    assert lean(0.2) - upright == pytest.approx(4.2, abs=1.5)
    assert upright - lean(-0.2) == pytest.approx(4.2, abs=1.5)
    tight, loose = (draw_text("5555", 30, s, 0, None).shape[1] for s in (-0.06, 0.2))
    assert loose - tight == pytest.approx(3 * 0.26 * 30, abs=3)  # three gaps between four digits
    ink = draw_text("5555", 30, 0.0, 0, None)
    narrow, wide = (fit_height(ink, 12, 0.7, s).shape[1] for s in (0.75, 1.2))
    assert wide / narrow == pytest.approx(1.2 / 0.75, rel=0.1)


def test_typed_lines_vary_in_font_width_and_slant_but_fit_the_line() -> None:
    rng = np.random.default_rng(3)
    lines = [typed_line("90817", 12, 89, rng) for _ in range(60)]
    spans = [np.flatnonzero(line.max(axis=0) > 2) for line in lines]
    widths = [s[-1] - s[0] + 1 for s in spans]
    assert max(widths) > 1.4 * min(widths)  # condensed to expanded faces, tight to loose spacing
    assert all(line.shape == (12, 89) and line.max() <= INK for line in lines)
    assert all(line.max() > 0.5 * INK for line in lines)


def test_typed_texts_double_more_digits_keeping_their_length() -> None:
    rng = np.random.default_rng(0)
    assert with_repeats("0123456789", rng, 0.0) == "0123456789"
    assert with_repeats("4071", rng, 1.0) == "4444"
    texts = ["".join(map(str, rng.integers(0, 10, 8))) for _ in range(2000)]
    doubled = [with_repeats(t, rng) for t in texts]
    assert all(len(d) == len(t) and d[0] == t[0] for d, t in zip(doubled, texts, strict=True))

    def share(ts: list[str]) -> float:
        return float(np.mean([a == b for t in ts for a, b in pairwise(t)]))

    assert share(texts) == pytest.approx(0.1, abs=0.02)
    assert share(doubled) == pytest.approx(0.1 + 0.9 * REPEAT, abs=0.02)
