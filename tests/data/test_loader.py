"""The streaming shard loader: coverage, seeded shard-aware shuffling, workers, resume, ranks."""

import numpy as np
import pytest
import torch

from crnn.data.loader import ShardLoader, load_split
from crnn.data.preprocess import preprocess
from tests.conftest import REPO


@pytest.fixture
def shard_set(tiny_config, tmp_path):
    _, cfg = tiny_config  # 384 train rows in shards of 128
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    return shards.manifest_path, load_split(shards.manifest_path, "train")


def _indices(batches) -> list[list[int]]:
    return [b.index.tolist() for b in batches]


def test_every_row_once_per_epoch_with_its_own_target(shard_set) -> None:
    manifest, full = shard_set
    loader = ShardLoader(manifest, "train", 32, shuffle=True, seed=3, window_rows=64)
    batches = list(loader.batches(epoch=0))
    assert len(batches) == len(loader) == 12
    seen = np.concatenate([b.index.numpy() for b in batches])
    assert sorted(seen.tolist()) == list(range(len(full)))  # a permutation: nothing lost or twice
    assert seen.tolist() != list(range(len(full)))  # and shuffled
    for b in batches:  # inputs, targets and lengths travel together through the shuffle
        torch.testing.assert_close(b.inputs, full.inputs[b.index])
        assert torch.equal(b.target_lengths, full.target_lengths[b.index])
        width = b.targets.shape[1]
        assert torch.equal(
            b.targets,
            torch.nn.functional.pad(
                full.targets[b.index], (0, max(0, width - full.targets.shape[1]))
            )[:, :width],
        )


def test_shuffle_is_seeded_per_epoch_and_shard_aware(shard_set) -> None:
    manifest, _ = shard_set
    make = lambda seed: ShardLoader(manifest, "train", 32, shuffle=True, seed=seed, window_rows=64)  # noqa: E731
    a, b = make(3), make(3)
    assert _indices(a.batches(0)) == _indices(b.batches(0))
    assert _indices(a.batches(0)) != _indices(a.batches(1))
    assert _indices(a.batches(0)) != _indices(make(4).batches(0))
    # a window of 64 rows reads at most 5 row groups of 16 (64 rows, cut at most once more)
    groups = np.array([a.offsets[shard] + start for shard, _, start, _ in a.groups])
    for batch in a.batches(0):  # 2 batches per window
        touched = set(np.searchsorted(groups, batch.index.numpy(), side="right").tolist())
        assert len(touched) <= 5


def test_every_window_mixes_row_groups_of_several_shards(shard_set) -> None:
    manifest, _ = shard_set  # 3 shards of about 128 training rows, row groups of 16
    loader = ShardLoader(manifest, "train", 32, shuffle=True, seed=0, window_rows=64)
    for epoch in range(3):
        windows = loader.plan(epoch)
        assert len(windows) == 6
        # 4 groups of 16 drawn from 24: a window from one shard alone would be rare; every one
        # here holds groups of at least 2 shards, in most windows of 3
        assert all(len({p.shard for p in w}) >= 2 for w in windows[:-1])
        assert sum(len({p.shard for p in w}) == 3 for w in windows) >= 2


def test_order_does_not_depend_on_worker_processes(shard_set) -> None:
    manifest, _ = shard_set
    kw = {"shuffle": True, "seed": 1, "window_rows": 64}
    local = ShardLoader(manifest, "train", 32, workers=0, **kw)
    pooled = ShardLoader(manifest, "train", 32, workers=2, **kw)
    for epoch in (0, 1):  # persistent workers pick up the next epoch
        mine, theirs = list(local.batches(epoch)), list(pooled.batches(epoch))
        assert _indices(mine) == _indices(theirs)
        for x, y in zip(mine, theirs, strict=True):
            assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
    pooled.close()


def test_resume_position_skips_exactly_the_batches_done(shard_set) -> None:
    manifest, _ = shard_set
    loader = ShardLoader(manifest, "train", 32, shuffle=True, seed=2, window_rows=64)
    whole = _indices(loader.batches(5))
    for start in (0, 1, 2, 5, 11):  # inside a window and on its edges
        assert _indices(loader.batches(5, start=start)) == whole[start:]


def test_ranks_get_disjoint_equal_shares(shard_set) -> None:
    manifest, full = shard_set
    shares = [
        ShardLoader(manifest, "train", 20, shuffle=True, seed=0, rank=r, world_size=3)
        for r in range(3)
    ]
    rows = [np.concatenate([b.index.numpy() for b in s.batches(1)]) for s in shares]
    assert {len(s) for s in shares} == {7}  # 128 rows each -> 7 batches of 20: no rank waits
    assert all(len(r) == 128 for r in rows)
    union = np.concatenate(rows)
    assert len(np.unique(union)) == len(union) == len(full)


def test_unshuffled_loader_reads_in_split_order(shard_set) -> None:
    manifest, full = shard_set
    loader = ShardLoader(manifest, "train", 50, window_rows=100)
    batches = list(loader)
    assert np.concatenate([b.index.numpy() for b in batches]).tolist() == list(range(len(full)))
    assert [len(b) for b in batches][-1] == len(full) % 50 or len(full) % 50 == 0


def test_close_stops_the_worker_processes(shard_set) -> None:
    """Through the DataLoader's public lifetime, not its private shutdown method."""
    import time

    manifest, _ = shard_set
    pooled = ShardLoader(manifest, "train", 32, shuffle=True, seed=1, workers=2, window_rows=64)
    assert len(list(pooled.batches(0))) > 0
    iterator = pooled._loader._iterator  # the test peeks at the worker processes it watches
    pids = [w.pid for w in iterator._workers]
    del iterator
    assert len(pids) == 2
    pooled.close()
    deadline = time.monotonic() + 20
    while alive := [p for p in pids if _alive(p)]:
        assert time.monotonic() < deadline, f"workers {alive} still running after close()"
        time.sleep(0.1)
    source = (REPO / "crnn" / "data" / "loader.py").read_text()
    assert "_shutdown_workers" not in source and "._iterator" not in source  # no torch privates


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for the forkserver to reap it has stopped too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False
