"""New data for scoring: files without labels or class folders, read exactly as training read the
same files, with unreadable records quarantined and counted."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from crnn.config import AudioFolderData, ImageFolderData, TextTableData, VideoClipsData
from crnn.data.catalog import new_data_chunks, open_source
from crnn.data.sources import NEW
from crnn.types.records import Chunk
from tests.data.test_audio import spoken_folder


def by_id(chunks: list[Chunk]) -> dict[str, np.ndarray]:
    return {i: x for c in chunks for i, x in zip(c.sample_ids, c.inputs, strict=True)}


def labelled(cfg) -> dict[str, np.ndarray]:
    source = open_source(cfg)
    return by_id([c for split in ("train", "val", "test") for c in source.chunks(split, 7)])


def quarantined(chunks: list[Chunk]) -> dict[str, str]:
    return {q.sample_id: q.reason for c in chunks for q in c.quarantined}


def test_images_loose_or_in_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "train"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            size = (int(rng.integers(10, 40)), int(rng.integers(10, 40)))
            img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            img.convert(("L", "RGB", "P")[i % 3]).save(root / cls / f"{i}.png")
    cfg = ImageFolderData(path=str(root), image_size=(12, 16), mode="rgb")
    trained_on = labelled(cfg)
    # new data: loose files in nested folders that are not classes, one broken, a non-image
    new = tmp_path / "incoming"
    (new / "2026-11-25").mkdir(parents=True)
    for cls in ("cat", "dog"):
        shutil.copy(root / cls / "1.png", new / "2026-11-25" / f"{cls}-1.png")
    shutil.copy(root / "cat" / "2.png", new / "top.png")
    (new / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (new / "notes.txt").write_text("not an image")
    chunks = list(new_data_chunks(cfg.model_copy(update={"path": str(new)}), {}, chunk_rows=2))
    got = by_id(chunks)
    assert sorted(got) == ["2026-11-25/cat-1.png", "2026-11-25/dog-1.png", "top.png"]
    np.testing.assert_array_equal(got["2026-11-25/dog-1.png"], trained_on["dog/1.png"])
    np.testing.assert_array_equal(got["top.png"], trained_on["cat/2.png"])
    assert quarantined(chunks) == {"broken.png": "unreadable_image"}
    assert {c.split for c in chunks} == {NEW} and all(c.labels is None for c in chunks)
    # the training folder itself scores too: class folders are just folders
    assert len(by_id(list(new_data_chunks(cfg, {}, 100)))) == 12


def test_wav_files_with_any_names(tmp_path: Path) -> None:
    root = spoken_folder(tmp_path / "spoken", per_speaker=2)
    cfg = AudioFolderData(path=str(root))
    trained_on = labelled(cfg)
    new = tmp_path / "calls"
    new.mkdir()
    originals = sorted(root.glob("*.wav"))[:3]
    for k, wav in enumerate(originals):  # names that match no label pattern
        shutil.copy(wav, new / f"call-{k}.wav")
    (new / "cut.wav").write_bytes(b"RIFF\x00\x00")
    chunks = list(new_data_chunks(cfg.model_copy(update={"path": str(new)}), {}, chunk_rows=8))
    got = by_id(chunks)
    assert len(got) == 3 and quarantined(chunks) == {"cut.wav": "unreadable_audio"}
    for k, wav in enumerate(originals):
        np.testing.assert_allclose(got[f"call-{k}.wav"], trained_on[wav.name], rtol=1e-6)


def test_clips_as_files_and_frame_folders(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    frames = np.zeros((8, 20, 20), np.uint8)
    for t in range(8):
        frames[t, :, 2 * t : 2 * t + 4] = 255
    for cls in ("left", "right"):
        (root / cls / "f0").mkdir(parents=True)
        clip = frames if cls == "right" else frames[::-1]
        for k in range(3):
            np.save(root / cls / f"a{k}.npy", np.roll(clip, k, axis=2))
        for t, f in enumerate(clip):
            Image.fromarray(f).save(root / cls / "f0" / f"{t:03d}.png")
    cfg = VideoClipsData(
        path=str(root),
        frames=4,
        frame_size=(10, 10),
        split={"train": 0.5, "val": 0.25, "test": 0.25},
    )
    trained_on = labelled(cfg)
    new = tmp_path / "new"
    shutil.copytree(root / "right" / "f0", new / "cam1" / "morning")
    shutil.copy(root / "left" / "a1.npy", new / "x.npy")
    np.save(new / "flat.npy", np.zeros(5))  # not a clip
    chunks = list(new_data_chunks(cfg.model_copy(update={"path": str(new)}), {}, chunk_rows=8))
    got = by_id(chunks)
    assert sorted(got) == ["cam1/morning", "x.npy"]
    np.testing.assert_allclose(got["cam1/morning"], trained_on["right/f0"])
    np.testing.assert_allclose(got["x.npy"], trained_on["left/a1.npy"])
    assert quarantined(chunks) == {"flat.npy": "unreadable_video"}


def test_texts_without_labels_use_the_trained_vocabulary(tmp_path: Path) -> None:
    texts = ["good film", "bad plot", "great acting", "awful sound", "fine", "poor script"] * 4
    labels = ["pos", "neg"] * 12
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "train.csv", index=False)
    cfg = TextTableData(path=str(tmp_path / "train.csv"))
    source = open_source(cfg)
    features = source.info().features
    # a table with the text column only (and a blank text), and a plain .txt file
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": [1, 2, 3], "text": ["good plot", "", "unheard words"]}).to_csv(
        new, index=False
    )
    chunks = list(new_data_chunks(cfg.model_copy(update={"path": str(new)}), features, 10))
    got = by_id(chunks)
    assert list(got) == ["new-0000000", "new-0000002"]
    np.testing.assert_array_equal(got["new-0000000"], source.tokenizer.transform(["good plot"])[0])
    unk = source.tokenizer.transform(["zzz"])[0][0]
    assert (got["new-0000002"][:2] == unk).all()  # words training never saw: out of vocabulary
    assert quarantined(chunks) == {"new-0000001": "empty_text"}
    lines = tmp_path / "today.txt"
    lines.write_text("great film\nbad acting\n", encoding="utf-8")
    from_lines = list(new_data_chunks(cfg.model_copy(update={"path": str(lines)}), features, 10))
    assert from_lines[0].texts == ["great film", "bad acting"]
    np.testing.assert_array_equal(
        from_lines[0].inputs, source.tokenizer.transform(["great film", "bad acting"])
    )
