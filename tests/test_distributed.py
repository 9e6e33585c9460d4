"""DistributedDataParallel under torchrun: 2 CPU processes with the gloo backend."""

import pytest

from crnn.data.preprocess import preprocess
from crnn.distributed import launch
from crnn.engine.checkpoint import load_checkpoint
from crnn.engine.train import train_on_shards


@pytest.mark.integration
def test_two_gloo_processes_train_in_sync_and_only_rank0_writes(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config  # 384 training rows
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    training = cfg.training.model_copy(update={"devices": 2, "epochs": 2})
    result = launch(shards.manifest_path, cfg.model, training, tmp_path / "ddp")
    assert result.setup["world_size"] == "2"
    assert result.setup["ranks_in_sync"] == "true"  # DDP kept both replicas identical
    assert len(result.history) == 2
    # each rank saw its half; the epoch's metrics are reduced over both
    assert [h["train_samples"] for h in result.history] == [384, 384]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "best.pt",
        "history.json",
        "last.pt",
    ]
    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt.epoch == 2 and ckpt.resume["loop"]["epoch"] == 3
    assert not any(k.startswith("module.") for k in ckpt.state_dict)  # unwrapped weights
    # one process over the same split sees every row too: the 2 ranks together covered it once
    single = train_on_shards(
        shards.manifest_path,
        cfg.model,
        training.model_copy(update={"devices": 1}),
        tmp_path / "one",
    )
    assert single.history[-1]["train_samples"] == 384
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_launch_failure_is_reported_with_the_ranks_error(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    training = cfg.training.model_copy(update={"devices": 2})
    with pytest.raises(RuntimeError, match="distributed training failed"):
        launch(tmp_path / "missing", cfg.model, training, tmp_path / "ddp")
