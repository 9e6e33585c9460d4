"""A scoring job pins how it cuts its input into parts; its input rows are counted from the input,
so a job never reports rows it lost as scored."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from crnn.errors import UserError
from crnn.inference.scoring import job_plan, read_scores, score, source_chunks
from tests.inference.test_scoring import REF

ROWS = 192 + 48 + 48  # TINY_LINES: every split is scored


class Crash(Exception):
    pass


def _crash_after(parts: int):
    done: list[str] = []

    def on_chunk(chunk_id: str, rows: int) -> None:
        done.append(chunk_id)
        if len(done) == parts:
            raise Crash

    return on_chunk


def test_a_rerun_cut_otherwise_is_refused_and_the_same_one_loses_nothing(
    model_and_shards,
    tmp_path,
) -> None:
    predictor, _, data = model_and_shards
    out = tmp_path / "out"
    with pytest.raises(Crash):  # the first attempt dies after 3 parts
        score(
            predictor, REF, source_chunks(data, 40), out, "raw", 64, _crash_after(3),
            job_plan(None, 40),
        )  # fmt: skip
    with pytest.raises(UserError, match=r"cut into parts otherwise \(--chunk-rows 40\)"):
        score(predictor, REF, source_chunks(data, 64), out, "raw", plan=job_plan(None, 64))
    done = score(predictor, REF, source_chunks(data, 40), out, "raw", plan=job_plan(None, 40))
    assert done.chunks_skipped == 3 and done.rows_in == ROWS
    assert (done.rows_scored, done.rows_quarantined) == (ROWS, 0)
    ids = read_scores(out).column("sample_id").to_pylist()
    assert len(ids) == len(set(ids)) == ROWS  # every input row exactly once


def test_rows_in_are_counted_from_the_input_not_the_output(
    model_and_shards,
    tmp_path,
) -> None:
    """A part that is not this input's (copied in, or left by another cut) is not counted as
    input: the job says rows are unaccounted for instead of reporting them scored."""
    predictor, _, data = model_and_shards
    out = tmp_path / "out"
    first = score(predictor, REF, source_chunks(data, 50), out, "raw", plan=job_plan(None, 50))
    assert first.rows_in == first.rows_scored == ROWS
    stray = sorted(out.glob("part-*.parquet"))[0]
    (out / "part-zz-00000.parquet").write_bytes(stray.read_bytes())
    n = pq.read_metadata(stray).num_rows
    with pytest.raises(UserError, match=rf"{ROWS} rows in, {ROWS + n} scored .* -{n} rows"):
        score(predictor, REF, source_chunks(data, 50), out, "raw", plan=job_plan(None, 50))


def test_ten_times_the_rows_gives_as_many_output_rows(model_and_shards, tmp_path) -> None:
    """At volume (10x the tiny set, in parts of 256), output rows = input rows, each once (its
    flat memory is measured in bench/score_bench.py)."""
    from crnn.config import DigitStringsData
    from tests.conftest import TINY_LINES

    predictor, _, _ = model_and_shards
    lines = {split: 10 * n for split, n in TINY_LINES["lines"].items()}
    data = DigitStringsData(**{**TINY_LINES, "lines": lines})
    out = tmp_path / "out"
    done = score(predictor, REF, source_chunks(data, 256), out, "raw", plan=job_plan(None, 256))
    assert done.rows_in == done.rows_scored == 10 * ROWS
    ids = read_scores(out).column("sample_id").to_pylist()
    assert len(set(ids)) == len(ids) == 10 * ROWS


def test_a_scheduled_jobs_relative_out_is_under_the_workspace_not_the_checkout(tmp_path) -> None:
    """A scheduled job's relative ``out`` reaches the run relative, and the run puts it under the
    workspace it resolves (a team's shared one): it once became a path in the folder of the
    config, which on a worker is its own checkout, where no one else looks."""
    from crnn.config import load_config
    from flows.runtime.deployment_plan import plan
    from flows.score import job_folder
    from tests.conftest import tiny_pipelines, write_config

    jobs = {"nightly": {"cron": "0 4 * * *", "out": "scores/{pipeline}/{flow_run_id}"}}
    mapping = tiny_pipelines(tmp_path / "ws", scoring=jobs)
    (tmp_path / "checkout").mkdir()
    path = write_config(tmp_path / "checkout" / "p.yaml", mapping)
    [job] = [p for p in plan(load_config(path), path, tmp_path / "checkout") if p.flow == "score"]
    assert job.parameters["out"] == "scores/tiny/{flow_run_id}"
    [served] = [p for p in plan(load_config(path), path) if p.flow == "score"]  # crnn serve
    assert served.parameters["out"] == "scores/tiny/{flow_run_id}", served.parameters["out"]
    shared = tmp_path / "shared-workspace"
    assert job_folder("scores/tiny/r1", str(shared)) == str(shared / "scores/tiny/r1")
    assert job_folder(str(tmp_path / "abs"), str(shared)) == str(tmp_path / "abs")
