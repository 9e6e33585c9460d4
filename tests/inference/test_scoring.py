"""The scoring core without MLflow: shard and raw input agree, inputs are prepared with the model's
own statistics whatever they were normalized with, bad rows are quarantined, prefetching keeps
order and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crnn.inference.scoring import prefetched, read_scores, score, shard_chunks, source_chunks
from crnn.normalization import Normalizer
from crnn.types.records import Chunk, ModelVersionRef

REF = ModelVersionRef("tiny", "1", "run")


def test_shards_and_raw_source_score_alike(model_and_shards, tmp_path) -> None:
    predictor, manifest_path, data = model_and_shards
    from_shards = score(predictor, REF, shard_chunks(manifest_path), tmp_path / "a", "shards")
    from_raw = score(predictor, REF, source_chunks(data, 50), tmp_path / "b", "raw")
    assert from_shards.rows_scored == from_raw.rows_scored == 192 + 48 + 48
    a = read_scores(tmp_path / "a").to_pandas().set_index("sample_id").sort_index()
    b = read_scores(tmp_path / "b").to_pandas().set_index("sample_id").sort_index()
    assert (a.index == b.index).all()
    assert (a["prediction"] == b["prediction"]).all()
    np.testing.assert_allclose(a["confidence"], b["confidence"], rtol=1e-4)
    assert (
        a["confidence"].nunique() > 100
    )  # the inputs move the output: the comparison means something


def test_inputs_normalized_with_other_statistics_are_taken_back_first(model_and_shards) -> None:
    predictor, _, data = model_and_shards
    raw = next(source_chunks(data, 16))[1].inputs
    expected = predictor.prepare(raw)
    other = Normalizer("standardize").fit(raw * 3.0 + 7.0)  # not the model's statistics
    assert other.stats_ != predictor.normalizer.stats_
    got = predictor.prepare(other.transform(raw), other.stats_)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # the model's own statistics: passed through untouched
    own = predictor.prepare(raw, None).numpy()
    assert np.shares_memory(predictor.prepare(own, predictor.normalizer.stats_).numpy(), own)


def test_non_finite_rows_are_quarantined_and_counted(model_and_shards, tmp_path) -> None:
    predictor, _, data = model_and_shards
    _, chunk = next(source_chunks(data, 16))
    inputs = chunk.inputs.copy()
    inputs[[2, 5]] = np.nan
    bad = Chunk("test", chunk.sample_ids, inputs)
    summary = score(predictor, REF, iter([("c0", bad)]), tmp_path / "q", "q")
    assert (summary.rows_scored, summary.rows_quarantined, summary.rows_in) == (14, 2, 16)
    assert summary.quarantined_by_reason == {"non_finite": 2}
    assert set(read_scores(tmp_path / "q").column("sample_id").to_pylist()).isdisjoint(
        {chunk.sample_ids[2], chunk.sample_ids[5]}
    )


def test_the_output_reads_as_one_parquet_dataset_with_the_umasks_modes(
    model_and_shards, tmp_path
) -> None:
    """Job file, summary and quarantine records sit under names Parquet dataset readers skip, so
    `pd.read_parquet(DIR)` is the scores; files get the modes open() would give (not 0600)."""
    import os
    import stat

    import pandas as pd
    import pyarrow.dataset as ds

    predictor, _, data = model_and_shards
    (_, first), (_, second) = list(source_chunks(data, 16))[:2]
    inputs = first.inputs.copy()
    inputs[3] = np.nan
    chunks = iter([("c0", Chunk("test", first.sample_ids, inputs)), ("c1", second)])
    old = os.umask(0o022)
    try:
        summary = score(predictor, REF, chunks, tmp_path / "out", "q")
    finally:
        os.umask(old)
    assert summary.rows_quarantined == 1
    out = tmp_path / "out"
    frame = pd.read_parquet(out)
    assert len(frame) == 31 and set(frame["sample_id"]) == set(
        read_scores(out).column("sample_id").to_pylist()
    )
    assert ds.dataset(out, format="parquet").count_rows() == 31
    assert (out / "_job.json").is_file() and (out / "_summary.json").is_file()
    assert pd.read_parquet(out / "_quarantine")["sample_id"].tolist() == [first.sample_ids[3]]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o644}, modes


def test_prefetched_keeps_order_and_raises_where_the_source_failed() -> None:
    def numbers():
        yield from range(5)
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetched(numbers()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert list(prefetched(iter([]))) == []
