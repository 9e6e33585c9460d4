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


@pytest.mark.integration
def test_two_nodes_meet_at_a_c10d_rendezvous_and_one_logs(tiny_config, tmp_path) -> None:
    """`training.distributed` with 2 nodes x 1 process, both on this machine over gloo: the
    launching node writes where to join, the second joins as `crnn join` does, rank 0's result
    comes back, and the join file is gone after."""
    import socket
    import subprocess
    import sys

    from crnn.config.execution import DistributedConfig

    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{s.getsockname()[1]}"
    nodes = DistributedConfig(nodes=2, procs_per_node=1, rdzv_endpoint=endpoint)
    training = cfg.training.model_copy(update={"epochs": 2, "device": "cpu", "distributed": nodes})
    node_spec = tmp_path / "workspace" / "distributed" / "tiny.json"
    joining = [sys.executable, "-m", "crnn.distributed", str(node_spec), "--join", "--wait", "120"]
    other = subprocess.Popen(joining, stderr=subprocess.PIPE, text=True)
    try:
        ckpt = tmp_path / "run" / "ckpt"
        result = launch(shards.manifest_path, cfg.model, training, ckpt, node_spec=node_spec)
        assert other.wait(timeout=60) == 0, other.stderr.read() if other.stderr else ""
    finally:
        other.kill()
    assert result.setup["world_size"] == "2" and result.setup["ranks_in_sync"] == "true"
    assert [h["train_samples"] for h in result.history] == [384, 384]  # the two nodes' halves
    assert not node_spec.exists()  # a node starting now waits for the next training
    assert (tmp_path / "run" / "ckpt" / "best.pt").is_file()


def test_crnn_join_waits_for_a_training_and_says_when_there_is_none(
    tiny_config, tmp_path, capsys
) -> None:
    from crnn.cli import main

    config = tmp_path / "pipelines.yaml"
    assert main(["--config", str(config), "join", "tiny", "--wait", "0.5"]) == 3
    said = capsys.readouterr().err.strip()
    assert said.endswith("no training to join after 0 s") and "distributed/tiny.json" in said
