"""Typed digit lines (`data.typed_fraction`): their share, their units and polarity, and a typed
screenshot, as `crnn predict` fits it, lands in the same units as the typed training lines."""

from __future__ import annotations

import numpy as np
import pytest

from crnn.config import DigitStringsData
from crnn.data.embedded import DigitStringsSource
from crnn.data.typed import INK, INK_SHARE, typed_line
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
