import numpy as np
import pytest

from crnn.config import DigitsData, DigitStringsData
from crnn.data.catalog import open_source
from crnn.data.embedded import DigitStringsSource
from crnn.data.sources import SOURCES


def _lines_cfg(**kw: object) -> DigitStringsData:
    base = {"lines": {"train": 50, "val": 20, "test": 20}, "digit_scale": 1, "max_gap": 3}
    base.update(kw)
    return DigitStringsData.model_validate(base)


def test_splits_are_disjoint_and_cover_every_source_image() -> None:
    src = DigitStringsSource(_lines_cfg())
    pools = [set(src.pools[s].tolist()) for s in ("train", "val", "test")]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])
    assert len(pools[0] | pools[1] | pools[2]) == 1797
    assert abs(len(pools[2]) / 1797 - 0.2) < 0.01


def test_lines_use_only_their_own_split_images() -> None:
    src = DigitStringsSource(_lines_cfg())
    for split in ("train", "val", "test"):
        _, texts, used = src.compose(split, 200, np.random.default_rng(1))
        allowed = set(src.pools[split].tolist())
        for text, idx in zip(texts, used, strict=True):
            assert set(idx.tolist()) <= allowed
            assert text == "".join(str(src.labels[i]) for i in idx)


def test_lines_shape_length_and_content() -> None:
    cfg = _lines_cfg(min_digits=3, max_digits=8)
    src = DigitStringsSource(cfg)
    chunk = next(src.chunks("train", 1000))
    assert chunk.inputs.shape == (50, 12, 2 * 2 + 8 * 8 + 7 * 3)
    assert src.info().input_shape == (1, 12, 89)
    assert all(3 <= len(t) <= 8 and t.isdigit() for t in chunk.texts)
    assert chunk.inputs.max() <= 16 and chunk.inputs.min() >= 0
    # every line has ink: the digits were really drawn
    assert (chunk.inputs.reshape(50, -1).max(axis=1) > 4).all()


def test_deterministic_for_seed_and_different_across_seeds() -> None:
    def first(seed: int) -> tuple[np.ndarray, list[str]]:
        chunk = next(DigitStringsSource(_lines_cfg(seed=seed)).chunks("test", 100))
        return chunk.inputs, chunk.texts

    a, b, c = first(0), first(0), first(1)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert a[1] != c[1]
    assert DigitStringsSource(_lines_cfg(seed=0)).info().digest != (
        DigitStringsSource(_lines_cfg(seed=1)).info().digest
    )


def test_chunks_are_bounded_and_ids_stable() -> None:
    chunks = list(DigitStringsSource(_lines_cfg()).chunks("train", 16))
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    ids = [i for c in chunks for i in c.sample_ids]
    assert ids == [f"train-{i:07d}" for i in range(50)]


def test_digits_source_classification() -> None:
    src = open_source(DigitsData())
    info = src.info()
    assert info.target.kind == "class" and info.target.num_outputs == 10
    sizes = {s: sum(len(c) for c in src.chunks(s, 256)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797


def test_unknown_source_lists_known() -> None:
    known = ", ".join(SOURCES.names())
    assert "digit_strings, digits" in known
    with pytest.raises(KeyError, match=f"known: {known}"):
        SOURCES.get("mnist-ish")
