"""Text lines rendered with Pillow, laid out as OCR tools lay out their training data: an image and
its ``NAME.gt.txt`` transcription side by side. Two fonts at two sizes (Pillow's bundled bitmap font
and its FreeType font), lower-case letters, digits and punctuation; seeded."""

from __future__ import annotations

import random
import string
from pathlib import Path

ALPHABET = string.ascii_lowercase + string.digits
PUNCTUATION = ".,;:!?-'()"


def random_word(rng: random.Random, alphabet: str = ALPHABET) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7)))


def random_text(
    rng: random.Random,
    alphabet: str = ALPHABET,
    words: tuple[int, int] = (2, 4),
    vocabulary: list[str] | None = None,
) -> str:
    """Two to four words of letters and digits, punctuation after some; or words of
    ``vocabulary`` as they are (a set a word list fits)."""
    out = []
    for _ in range(rng.randint(*words)):
        if vocabulary:
            out.append(rng.choice(vocabulary))
            continue
        word = random_word(rng, alphabet)
        if alphabet == ALPHABET and rng.random() < 0.3:
            word += rng.choice(PUNCTUATION)
        out.append(word)
    return " ".join(out)


def fonts() -> list[object]:
    from PIL import ImageFont

    return [ImageFont.load_default(size=18), ImageFont.load_default(size=24)]


def render(text: str, font: object, rng: random.Random) -> object:
    """A grey line image of ``text``: dark ink on a light page, a few pixels of margin."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)  # type: ignore[arg-type]
    pad_x, pad_y = rng.randint(3, 10), rng.randint(2, 6)
    size = (right - left + 2 * pad_x, bottom - top + 2 * pad_y)
    page = rng.randint(215, 255)
    image = Image.new("L", size, page)
    ink = rng.randint(0, 60)
    ImageDraw.Draw(image).text((pad_x - left, pad_y - top), text, fill=ink, font=font)  # type: ignore[arg-type]
    return image


def render_lines(
    folder: Path,
    count: int,
    seed: int = 0,
    suffix: str = ".png",
    alphabet: str = ALPHABET,
    words: tuple[int, int] = (2, 4),
    vocabulary: list[str] | None = None,
) -> list[str]:
    """``count`` lines as ``line-NNNNN.png`` + ``line-NNNNN.gt.txt`` in ``folder``; the texts
    (words of ``alphabet``, punctuation too with the default one; or of ``vocabulary``)."""
    rng = random.Random(seed)
    faces = fonts()
    folder.mkdir(parents=True, exist_ok=True)
    texts = []
    for i in range(count):
        text = random_text(rng, alphabet, words, vocabulary)
        render(text, faces[i % len(faces)], rng).save(folder / f"line-{i:05d}{suffix}")  # type: ignore[attr-defined]
        (folder / f"line-{i:05d}.gt.txt").write_text(text + "\n", encoding="utf-8")
        texts.append(text)
    return texts
