import numpy as np
import pytest

from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.normalization import Normalizer


@pytest.mark.parametrize(("method", "lo", "hi"), [("minmax", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
def test_ranges(method: str, lo: float, hi: float) -> None:
    x = np.random.default_rng(0).uniform(3, 19, size=(50, 4, 4)).astype(np.float32)
    y = Normalizer(method).fit(x).transform(x)
    assert y.min() == pytest.approx(lo, abs=1e-6) and y.max() == pytest.approx(hi, abs=1e-6)


def test_standardize_and_streaming_fit_equals_full_fit() -> None:
    x = np.random.default_rng(0).normal(5, 3, size=(100, 8)).astype(np.float32)
    full = Normalizer("standardize").fit(x)
    streamed = Normalizer("standardize")
    for part in np.array_split(x, 7):
        streamed.partial_fit(part)
    assert streamed.stats_["mean"] == pytest.approx(full.stats_["mean"])
    assert streamed.stats_["std"] == pytest.approx(full.stats_["std"])
    y = full.transform(x)
    assert y.mean() == pytest.approx(0, abs=1e-5) and y.std() == pytest.approx(1, abs=1e-4)


def test_stats_round_trip_and_inverse() -> None:
    x = np.random.default_rng(1).uniform(0, 16, size=(20, 3, 3)).astype(np.float32)
    norm = Normalizer("symmetric").fit(x)
    again = Normalizer.from_stats(norm.stats_)
    np.testing.assert_allclose(again.transform(x), norm.transform(x), rtol=1e-6)
    np.testing.assert_allclose(norm.inverse_transform(norm.transform(x)), x, atol=1e-4)


def test_unfitted_and_unknown_method() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _ = Normalizer().stats_
    with pytest.raises(ValueError, match="known: minmax, symmetric, standardize"):
        Normalizer("zscore")


def test_preprocessing_fits_statistics_on_the_training_split_only(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    cfg = cfg.model_copy(
        update={
            "preprocessing": cfg.preprocessing.model_copy(update={"normalization": "standardize"})
        }
    )
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    stats = load_manifest(shards.manifest_path).normalization
    source = open_source(cfg.data)
    chunks = list(source.chunks("train", 1000))
    train = np.concatenate([c.inputs for c in chunks])
    every = np.concatenate(
        [c.inputs for s in ("train", "val", "test") for c in source.chunks(s, 1000)]
    )
    assert stats["mean"] == pytest.approx(float(train.mean()), rel=1e-6)
    assert stats["count"] == train.size
    assert stats["mean"] != pytest.approx(float(every.mean()), rel=1e-6)
    # the originals in the shards (shuffled: found by id) are the train-fitted transform
    data = load_split(shards.manifest_path, "train")
    row = {sample_id: i for i, sample_id in enumerate(data.sample_ids)}
    ids = [sample_id for c in chunks for sample_id in c.sample_ids]
    originals = data.inputs[[row[i] for i in ids], 0].numpy()
    np.testing.assert_array_equal(originals, Normalizer.from_stats(stats).transform(train))


def test_standardize_statistics_are_stable_on_large_offsets() -> None:
    """Running sums of squares cancel catastrophically at 1e8 + N(0, 1); a Chan/Welford update
    keeps the variance exact to float64 rounding, chunk by chunk and through from_stats."""
    rng = np.random.default_rng(0)
    data = 1e8 + rng.standard_normal(200_000)
    norm = Normalizer("standardize")
    for chunk in np.array_split(data, 37):
        norm.partial_fit(chunk)
    stats = norm.stats_
    assert abs(stats["mean"] - data.mean()) < 1e-6
    assert abs(stats["std"] - data.std()) < 1e-9 * max(1.0, data.std())
    again = Normalizer.from_stats(stats).partial_fit(data[:1000])
    whole = np.concatenate([data, data[:1000]])
    assert abs(again.stats_["std"] - whole.std()) < 1e-9
