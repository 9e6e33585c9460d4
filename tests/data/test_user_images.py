"""Line images as users have them: files of any width and height, 8-bit PNG or JPEG, light ink on
dark or dark ink on light (scans), read by a line model trained on the embedded 12-pixel lines
in 0-16, with the predictions its evaluation makes on the same lines."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from crnn.data.loader import load_split
from crnn.data.preprocess import preprocess
from crnn.data.user_images import ImageProfile, as_image_list, fit_images
from crnn.engine.train import train_on_shards
from crnn.errors import DataError
from crnn.inference.predictor import Predictor

VARIANTS = ("png-cropped", "png-inverted", "png-inverted-3x", "jpeg-inverted-cropped")


def render_lines(raw: np.ndarray, ids: list[str], folder: Path) -> list[Path]:
    """Each line (H, W) in 0-16 as an image file the way a user would have it, the variants in
    turn: cropped to its ink (a narrower width), inverted (dark ink on white), scaled 3x, JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (line, sample_id) in enumerate(zip(raw, ids, strict=True)):
        variant = VARIANTS[k % len(VARIANTS)]
        pixels = np.clip(np.rint(line / 16 * 255), 0, 255).astype(np.uint8)
        if "cropped" in variant:  # the ink plus a 2-pixel margin: every line its own width
            ink = np.flatnonzero(line.max(axis=0) > 0.5)
            pixels = pixels[:, max(ink[0] - 2, 0) : ink[-1] + 3]
        if "inverted" in variant:
            pixels = 255 - pixels
        image = Image.fromarray(pixels, mode="L")
        if "3x" in variant:
            image = image.resize((image.width * 3, image.height * 3), Image.Resampling.BICUBIC)
        suffix = ".jpg" if variant.startswith("jpeg") else ".png"
        path = folder / f"{sample_id}{suffix}"
        image.save(path, quality=95) if suffix == ".jpg" else image.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small line model that reads (1,000 tiny lines, 6 epochs: about 0.8 of the val lines
    exactly right): its evaluation predictions and the raw test lines."""
    from crnn.config import load_pipeline
    from tests.conftest import TINY_LINES, tiny_pipelines, write_config

    root = tmp_path_factory.mktemp("lines")
    data = {**TINY_LINES, "lines": {"train": 1000, "val": 48, "test": 48}}
    _, cfg = load_pipeline(write_config(root / "p.yaml", tiny_pipelines(root / "ws", data=data)))
    shards = preprocess(cfg.data, cfg.preprocessing, root / "shards")
    loader = cfg.training.loader.model_copy(update={"workers": 0})
    training = cfg.training.model_copy(update={"epochs": 6, "lr": 0.005, "loader": loader})
    result = train_on_shards(shards.manifest_path, cfg.model, training, root / "ckpt")
    predictor = Predictor.from_checkpoint(result.best_checkpoint, device="cpu")
    test = load_split(shards.manifest_path, "test")
    evaluated = predictor.predict_normalized(test.inputs).outputs
    raw = predictor.normalizer.inverse_transform(test.inputs.numpy())[:, 0]
    return root, predictor, test, evaluated, raw


def test_training_lines_have_a_dark_uniform_background(trained) -> None:
    _, predictor, _, _, _ = trained
    profile = predictor.features["image"]
    assert profile["low"] == 0 and profile["high"] == 16 and profile["background"] == 0
    noisy = ImageProfile()
    noisy.observe(np.random.default_rng(0).uniform(0, 255, size=(20, 1, 8, 8)))  # photos
    assert noisy.to_features()["image"]["background"] is None  # no polarity to follow


def test_line_image_files_read_like_the_evaluation(trained) -> None:
    root, predictor, test, evaluated, raw = trained
    paths = render_lines(raw, test.sample_ids, root / "files")
    widths = {Image.open(p).size for p in paths}
    assert len({w for w, _ in widths}) > 10 and {h for _, h in widths} == {12, 36}
    assert len(set(evaluated)) > 10  # the model reads something: agreement means something
    served = predictor.predict_input([str(p) for p in paths]).outputs
    truths = list(test.texts)
    right = np.array([s == t for s, t in zip(served, truths, strict=True)])
    expected = np.array([e == t for e, t in zip(evaluated, truths, strict=True)])
    for v, variant in enumerate(VARIANTS):
        mine = slice(v, None, len(VARIANTS))
        if variant == "png-inverted":  # same geometry, 8-bit, other polarity: read identically
            assert served[mine] == evaluated[mine]
        # 12 lines a variant: at most three fewer read right than the evaluation's (a weak model
        # trained with other thread counts under xdist once lost three cropped lines; broken
        # geometry or polarity loses most of them)
        assert right[mine].mean() >= expected[mine].mean() - 0.26, (variant, right[mine].mean())
    assert right.mean() >= expected.mean() - 0.1, (right.mean(), expected.mean())


def test_images_of_different_sizes_as_arrays_bytes_and_a_dataframe(trained) -> None:
    root, predictor, _, evaluated, raw = trained
    png = io.BytesIO()
    Image.fromarray((255 - raw[0] / 16 * 255).astype(np.uint8)).save(png, format="PNG")
    arrays = [raw[0], raw[1][:, :40], raw[2] / 16]  # source units, a narrow crop, floats in 0-1
    assert predictor.predict_input(arrays).outputs[0] == evaluated[0]
    cropped = str(render_lines(raw[:1], ["a"], root / "b")[0])  # a narrower file
    frame = pd.DataFrame({"image": [png.getvalue(), cropped]})
    by_frame = predictor.predict_input(frame).outputs
    assert by_frame == [evaluated[0], predictor.predict_input([cropped]).outputs[0]]
    batch, widths = fit_images(
        as_image_list(arrays), (1, 12, raw.shape[-1]), predictor.features, True
    )
    assert batch.shape == (3, 1, 12, raw.shape[-1]) and widths.tolist() == [
        raw.shape[-1],
        40,
        raw.shape[-1],
    ]
    for bad in ([np.zeros(5)], pd.DataFrame({"pixels": [1]})):
        with pytest.raises(DataError) as info:
            predictor.predict_input(bad)
        assert "\n" not in str(info.value) and len(str(info.value)) < 200  # no array dump
