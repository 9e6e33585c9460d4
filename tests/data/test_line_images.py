"""line_images: a user's own labelled line images (NAME.png + NAME.gt.txt, or a labels CSV), read
the one way for training, evaluation and the pyfunc; every bad record set aside and counted."""

from __future__ import annotations

import struct
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crnn.config import LineImagesData, PreprocessingConfig
from crnn.data.catalog import open_source
from crnn.data.lines import LineImagesSource, fit_line
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.errors import DataError
from tests.lines import ALPHABET, PUNCTUATION, render_lines


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape) and
    whose data is a few bytes: decoding it would need gigabytes, reading its header does not."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _cfg(path: Path, **kw: object) -> LineImagesData:
    return LineImagesData(path=str(path), height=24, width=160, **kw)  # type: ignore[arg-type]


def _all(source: LineImagesSource, split: str) -> tuple[list[str], list[str], list[object]]:
    ids, texts, bad = [], [], []
    for chunk in source.chunks(split, 16):
        ids += chunk.sample_ids
        texts += chunk.texts or []
        bad += chunk.quarantined
    return ids, texts, bad


def test_sidecar_lines_split_by_file_with_the_charset_of_the_training_texts(
    tmp_path: Path,
) -> None:
    texts = render_lines(tmp_path, 60, seed=1)
    source = open_source(_cfg(tmp_path))
    info = source.info()
    assert info.input_shape == (1, 24, 160) and info.target.kind == "sequence"
    seen = {s: _all(source, s) for s in ("train", "val", "test")}  # type: ignore[arg-type]
    ids = [i for s in seen.values() for i in s[0]]
    assert sorted(ids) == sorted(f"line-{i:05d}.png" for i in range(60))  # each line once
    assert len(seen["train"][0]) == 48 and len(seen["test"][0]) == 6
    assert info.target.charset == "".join(sorted(set("".join(seen["train"][1]))))
    by_id = dict(zip(seen["test"][0], seen["test"][1], strict=True))
    assert all(by_id[i] == texts[int(i[5:10])] for i in by_id)  # the .gt.txt text, newline off


def test_one_read_for_any_size_polarity_and_range(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    rng = np.random.default_rng(0)
    ink = np.full((20, 90), 240.0, np.float32)
    ink[6:14, 10:80] = rng.uniform(0, 40, (8, 70))
    line, kept = fit_line(ink, cfg)
    assert line.shape == (1, 24, 160) and kept == 108  # 90 * 24 / 20
    assert np.allclose(fit_line(255 - ink, cfg)[0], line, atol=1e-3)  # polarity flipped back
    assert np.allclose(fit_line(ink / 255, cfg)[0], line, atol=1e-2)  # 0-1 floats
    again, kept_again = fit_line(line[0], cfg)  # idempotent: the pyfunc's input example
    assert kept_again == 160 and np.allclose(again, line)
    wide, kept_wide = fit_line(np.tile(ink, (1, 5)), cfg)
    assert kept_wide == 160 and wide.shape == (1, 24, 160)  # squeezed, not cut


def test_nfc_transcriptions_and_a_fixed_charset(tmp_path: Path) -> None:
    render_lines(tmp_path, 12, seed=2)
    decomposed = unicodedata.normalize("NFD", "café née")
    for i in range(12):
        (tmp_path / f"line-{i:05d}.gt.txt").write_text(decomposed + "\r\n", encoding="utf-8")
    source = open_source(_cfg(tmp_path))
    assert set(source.info().target.charset) == set("café née")  # é is one character
    assert "\u0301" not in source.info().target.charset
    fixed = open_source(_cfg(tmp_path, charset="abcdefgh"))
    assert fixed.info().target.charset == "abcdefgh"


def test_bad_lines_are_set_aside_with_a_reason_and_counts_reconcile(tmp_path: Path) -> None:
    data = tmp_path / "lines"
    render_lines(data, 40, seed=3)
    (data / "line-00000.gt.txt").unlink()  # an image without its transcription
    (data / "line-00001.gt.txt").write_text("\n", encoding="utf-8")  # an empty one
    (data / "line-00002.png").write_text("this is not an image\n")  # a PNG that is text
    _png_header_only(data / "line-00003.png", 20000, 20000)  # a decompression bomb
    (data / "line-00004.gt.txt").write_text("w" * 200, encoding="utf-8")  # longer than its width
    (data / "orphan.gt.txt").write_text("no image\n", encoding="utf-8")
    every = ALPHABET + PUNCTUATION + " "  # no line set aside for a character train lacks
    loose = PreprocessingConfig(max_quarantine_fraction=0.5)
    shard = preprocess(_cfg(data, charset=every), loose, tmp_path / "shards")
    manifest = load_manifest(shard.manifest_path)
    q = manifest.quarantine
    reasons = q.by_reason
    assert reasons["missing_label"] == 1 and reasons["empty_text"] == 1
    assert reasons["unreadable_image"] == 1 and reasons["image_too_large"] == 1
    assert reasons["text_too_long"] == 1 and reasons["missing_image"] == 1
    written = sum(manifest.splits[s]["original"] for s in ("train", "val", "test"))
    assert q.input_records == written + q.total == 41  # 40 images + the orphan transcription
    table = pd.read_parquet(shard.root / "quarantine.parquet")
    assert set(table["reason"]) >= {"image_too_large", "unreadable_image", "missing_label"}


def test_a_character_outside_the_training_set_is_counted_not_a_crash(tmp_path: Path) -> None:
    data = tmp_path / "lines"
    render_lines(data / "train", 30, seed=4)
    render_lines(data / "test", 6, seed=4)  # the first six training texts: known characters
    (data / "test" / "line-00000.gt.txt").write_text("ünïcödé ✓\n", encoding="utf-8")
    loose = PreprocessingConfig(max_quarantine_fraction=0.5)
    manifest_path = preprocess(_cfg(data), loose, tmp_path / "shards").manifest_path
    manifest = load_manifest(manifest_path)
    assert set(manifest.quarantine.by_reason) == {"unknown_character"}  # never a crash
    table = pd.read_parquet(manifest_path.parent / "quarantine.parquet")
    assert table[table["split"] == "test"]["sample_id"].tolist() == ["test/line-00000.png"]
    assert manifest.splits["test"]["original"] == 5


def test_a_labels_csv_with_a_given_split_and_a_path_outside_the_data(tmp_path: Path) -> None:
    data = tmp_path / "lines"
    texts = render_lines(data / "img", 30, seed=6)
    (tmp_path / "secret.png").write_bytes((data / "img" / "line-00000.png").read_bytes())
    rows = [
        {"path": f"img/line-{i:05d}.png", "text": t, "split": ["train", "val", "test"][i % 3]}
        for i, t in enumerate(texts)
    ]
    rows.append({"path": "../secret.png", "text": "leak", "split": "train"})
    pd.DataFrame(rows).to_csv(data / "labels.csv", index=False)
    source = open_source(_cfg(data, labels_csv="labels.csv"))
    ids, _, bad = _all(source, "train")  # type: ignore[arg-type]
    assert len(ids) == 10 and all(int(i[9:14]) % 3 == 0 for i in ids)  # the given split
    assert [b.reason for b in bad] == ["path_outside_data"]  # type: ignore[attr-defined]
    assert len(_all(source, "test")[0]) == 10  # type: ignore[arg-type]


def test_no_labelled_line_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"NAME\.gt\.txt beside each NAME\.png"):
        open_source(_cfg(tmp_path))


def test_a_file_that_is_not_an_image_is_one_line_naming_it(tmp_path: Path) -> None:
    """What `crnn predict` and the pyfunc meet: a text file named .png, a truncated PNG."""
    render_lines(tmp_path, 1, seed=0)
    good = tmp_path / "line-00000.png"
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    source = {"source": "line_images", "height": 32, "width": 128}
    assert LineImagesSource.raw_inputs([str(good)], source, None).shape == (1, 1, 32, 128)
    for name in ("notes.png", "cut.png"):
        with pytest.raises(DataError) as info:
            LineImagesSource.raw_inputs([str(good), str(tmp_path / name)], source, None)
        said = str(info.value)
        assert said.startswith(f"{tmp_path / name}: not a readable image") and "\n" not in said
