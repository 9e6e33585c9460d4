"""Resume after a real SIGKILL continues where the killed process was, and only under the data
and training setup its checkpoint belongs to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from crnn.data.loader import ShardLoader
from crnn.data.preprocess import preprocess
from crnn.engine.callbacks import TrainCallback
from crnn.engine.checkpoint import load_checkpoint
from crnn.engine.train import train_on_shards
from crnn.errors import UserError

KILLED_RUN = """
import sys, time
from pathlib import Path
from crnn.engine.callbacks import TrainCallback
from crnn.config import load_pipeline
from crnn.engine.train import train_on_shards

class Slow(TrainCallback):  # a step a little longer, so the kill lands mid-epoch
    def on_batch_end(self, epoch, step, loss):
        print(f"step {epoch} {step}", flush=True)
        time.sleep(0.05)

_, cfg = load_pipeline(sys.argv[1])
training = cfg.training.model_copy(update={"epochs": 2, "deterministic": True,
                                           "checkpoint_every_steps": 2, "log_every_steps": 1})
train_on_shards(Path(sys.argv[2]), cfg.model, training, Path(sys.argv[3]), [Slow()])
"""


class Steps(TrainCallback):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        self.steps.append((epoch, step))


def _config(tiny_config):
    config_file, cfg = tiny_config
    path = Path(config_file.workspace).parent / "pipelines.yaml"
    shards = preprocess(cfg.data, cfg.preprocessing, Path(config_file.workspace) / "shards")
    training = cfg.training.model_copy(
        update={
            "epochs": 2,
            "deterministic": True,
            "checkpoint_every_steps": 2,
            "log_every_steps": 1,  # every step seen by the callbacks
        }
    )
    return path, cfg, shards, training


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights_running_only_the_rest(
    tiny_config, tmp_path
) -> None:
    path, cfg, shards, training = _config(tiny_config)
    straight = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "straight")

    ckpt = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(path), str(shards.manifest_path), str(ckpt)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # kill it in the second epoch, past a checkpoint
        if line.startswith("step 2 5"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(ckpt / "last.pt").resume
    assert saved is not None
    done = (saved["loop"]["epoch"], saved["loop"]["step"])
    assert done[0] == 2 and 0 < done[1] <= 5  # mid-epoch: the last checkpoint before the kill

    steps = Steps()
    resumed = train_on_shards(shards.manifest_path, cfg.model, training, ckpt, [steps], resume=True)
    total = len(ShardLoader(shards.manifest_path, "train", training.batch_size, shuffle=True))
    # only what the killed process had not done: from the step after its checkpoint
    assert steps.steps == [(2, s) for s in range(done[1] + 1, total + 1)]
    a, b = load_checkpoint(straight.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for key, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[key]), key
    timing = {"train_loader_wait"}
    for ours, theirs in zip(resumed.history, straight.history, strict=True):
        assert {k: v for k, v in ours.items() if k not in timing} == {
            k: v for k, v in theirs.items() if k not in timing
        }


def test_every_sample_once_per_epoch_across_a_resume(tiny_config) -> None:
    """The batches before a checkpoint and those the resume reads cover the epoch's rows once."""
    _, _, shards, training = _config(tiny_config)
    loader = ShardLoader(shards.manifest_path, "train", training.batch_size, shuffle=True)
    for epoch, done in ((0, 3), (1, 1), (1, len(loader) - 1)):
        before = [b.index for b in list(loader.batches(epoch))[:done]]
        after = [b.index for b in loader.batches(epoch, done)]
        seen = torch.cat(before + after).sort().values
        assert torch.equal(seen, torch.arange(loader.total)), (epoch, done)


def test_a_stale_checkpoint_is_refused_in_one_line(tiny_config, tmp_path) -> None:
    """Another training setup or another shard set: refused, naming what changed; what may
    change (the device, the logging, the epochs under a constant schedule) resumes."""
    from crnn.config import DigitStringsData

    _, cfg, shards, training = _config(tiny_config)
    constant = training.model_copy(update={"schedule": "constant", "epochs": 1})
    train_on_shards(shards.manifest_path, cfg.model, constant, tmp_path / "c")
    with pytest.raises(UserError, match=r"another training setup \(training\.lr 0\.003 -> 0\.01\)"):
        changed = constant.model_copy(update={"lr": 0.01})
        train_on_shards(shards.manifest_path, cfg.model, changed, tmp_path / "c", resume=True)
    wider = cfg.model.model_copy(update={"rnn_hidden": cfg.model.rnn_hidden * 2})
    with pytest.raises(UserError, match=r"model\.rnn_hidden"):
        train_on_shards(shards.manifest_path, wider, constant, tmp_path / "c", resume=True)
    other_data = cfg.data.model_copy(update={"seed": cfg.data.seed + 1})
    assert isinstance(other_data, DigitStringsData)
    other = preprocess(other_data, cfg.preprocessing, tmp_path / "other")
    with pytest.raises(UserError, match=r"was trained on shard set .* the data or its prepro"):
        train_on_shards(other.manifest_path, cfg.model, constant, tmp_path / "c", resume=True)
    more = constant.model_copy(update={"epochs": 2, "log_every_steps": 3, "device": "auto"})
    result = train_on_shards(shards.manifest_path, cfg.model, more, tmp_path / "c", resume=True)
    assert result.epochs_run == 2 and len(result.history) == 2
    # under a one-cycle schedule the length shapes every step: epochs may not change
    train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "o")
    longer = training.model_copy(update={"epochs": 3})
    with pytest.raises(UserError, match=r"training\.epochs 2 -> 3"):
        train_on_shards(shards.manifest_path, cfg.model, longer, tmp_path / "o", resume=True)


def test_two_fresh_deterministic_runs_give_equal_metrics(tiny_config, tmp_path) -> None:
    _, cfg, shards, training = _config(tiny_config)
    one = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "one")
    two = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "two")
    timing = {"train_loader_wait"}
    assert [{k: v for k, v in h.items() if k not in timing} for h in one.history] == [
        {k: v for k, v in h.items() if k not in timing} for h in two.history
    ]


TORN_SAVE = """
import sys, torch
from pathlib import Path
from crnn.engine.checkpoint import load_checkpoint, save_checkpoint
from torch import nn
path = Path(sys.argv[1])
meta = load_checkpoint(path)
big = nn.Linear(8192, 8192)  # 256 MiB of weights: a save that takes a while
print("saving", flush=True)
save_checkpoint(path, big, meta)
"""


def test_a_checkpoint_torn_by_a_kill_during_its_save_leaves_the_previous_one(
    tiny_config, tmp_path
) -> None:
    """Killed while writing last.pt: the previous last.pt is intact and is what resumes."""
    _, cfg, shards, training = _config(tiny_config)
    one = training.model_copy(update={"epochs": 1, "schedule": "constant"})
    ckpt = tmp_path / "c"
    train_on_shards(shards.manifest_path, cfg.model, one, ckpt)
    before = (ckpt / "last.pt").read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", TORN_SAVE, str(ckpt / "last.pt")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith("saving")
    while not list(ckpt.glob(".last.pt.*.tmp")) and proc.poll() is None:
        time.sleep(0.002)  # until the temporary file exists: the save is under way
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (ckpt / "last.pt").read_bytes() == before  # never half-written
    two = one.model_copy(update={"epochs": 2})
    resumed = train_on_shards(shards.manifest_path, cfg.model, two, ckpt, resume=True)
    assert resumed.epochs_run == 2 and len(resumed.history) == 2  # it continued from epoch 1


def test_a_refusal_never_lists_what_it_refused_as_allowed() -> None:
    """Under a schedule that spans the run, training.epochs is part of the identity: a refusal
    naming it as changed says it may not change; under a constant schedule it may."""
    from crnn.engine.resume import check_resumable

    saved = {"data.shard_digest": "d", "training.schedule": "onecycle", "training.epochs": "1"}
    current = {**saved, "training.epochs": "40"}
    with pytest.raises(UserError) as refused:
        check_resumable(saved, current, Path("last.pt"))
    said = str(refused.value)
    allowed = said.split("a resume may change only ")[1].split(" and loader")[0]
    assert "training.epochs 1 -> 40" in said and "training.device" in allowed
    assert "training.epochs" not in allowed, said
    assert "(not training.epochs: schedule onecycle spans the whole run)" in said
    constant = {"data.shard_digest": "d", "training.schedule": "constant", "training.lr": "0.1"}
    with pytest.raises(UserError) as refused:
        check_resumable(constant, {**constant, "training.lr": "0.2"}, Path("last.pt"))
    allowed = str(refused.value).split("a resume may change only ")[1].split(" and loader")[0]
    assert "training.epochs" in allowed and "--set flags" in str(refused.value)
