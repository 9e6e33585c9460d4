import json

import pytest
import torch

from crnn.data.loader import ShardLoader, load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.engine.callbacks import TrainCallback
from crnn.engine.checkpoint import checkpoint_meta, load_checkpoint
from crnn.engine.train import improves, train
from crnn.inference.predictor import Predictor
from crnn.models import create_model, model_kwargs
from crnn.tasks import task_for
from crnn.tasks.sequence import infeasible_ctc_samples


class Recorder(TrainCallback):
    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.steps: list[tuple[int, int]] = []

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        self.steps.append((epoch, step))

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(metrics)


def _setup(cfg, tmp_path):
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    kw = model_kwargs(cfg.model)
    meta = checkpoint_meta(manifest, cfg.model.architecture, kw)
    model = create_model(
        cfg.model.architecture, tuple(manifest.input_shape), meta.model.num_outputs, **kw
    )
    return shards, manifest, meta, model


def _train(cfg, train_cfg, shards, meta, model, tmp_path, **kwargs):
    return train(
        model,
        ShardLoader(shards.manifest_path, "train", train_cfg.batch_size, shuffle=True),
        load_split(shards.manifest_path, "val"),
        train_cfg,
        tmp_path / "ckpt",
        meta,
        task=task_for(load_manifest(shards.manifest_path).target),
        **kwargs,
    )


def test_training_learns_and_writes_self_describing_checkpoints(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    cfg_train = cfg.training.model_copy(update={"epochs": 3, "log_every_steps": 5})
    shards, manifest, meta, model = _setup(cfg, tmp_path)
    rec = Recorder()
    result = _train(cfg, cfg_train, shards, meta, model, tmp_path, callbacks=[rec])
    assert result.epochs_run == 3 and len(rec.epochs) == 3
    # the loss is read back every 5 steps and at the epoch's end (12 steps), not every step
    assert rec.steps == [(e, s) for e in (1, 2, 3) for s in (5, 10, 12)]
    assert result.setup["device"] == "cpu" and result.setup["autocast"] == "off"
    assert rec.epochs[-1]["train_loss"] < rec.epochs[0]["train_loss"]
    assert {"val_loss", "val_cer", "val_sequence_accuracy"} <= set(rec.epochs[0])
    # the monitored metric leads: in a run, the metric MLflow's compare page plots first
    assert [next(iter(m)) for m in rec.epochs] == [cfg_train.early_stopping.monitor] * 3
    ckpt = load_checkpoint(result.best_checkpoint)  # weights_only=True
    assert ckpt.epoch == result.best_epoch
    assert ckpt.preprocessing.shard_digest == manifest.digest
    assert ckpt.preprocessing.normalization == manifest.normalization
    assert json.loads((tmp_path / "ckpt" / "history.json").read_text())[-1]["epoch"] == 3
    assert not list((tmp_path / "ckpt").glob(".*tmp"))  # atomic writes leave no temp files
    # the checkpoint alone rebuilds the model: same outputs as the trained module
    predictor = Predictor.from_checkpoint(result.last_checkpoint, device="cpu")
    x = load_split(shards.manifest_path, "val").inputs[:8]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(predictor.model(x), model.cpu()(x))


def test_early_stopping_stops_when_metric_stalls(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    # on val_loss: a tie on val_cer (1.0 for an untrained CTC model) would go on to the loss
    es = cfg.training.early_stopping.model_copy(
        update={"patience": 1, "min_delta": 10.0, "monitor": "val_loss", "mode": "min"}
    )
    cfg_train = cfg.training.model_copy(update={"epochs": 10, "early_stopping": es})
    shards, _, meta, model = _setup(cfg, tmp_path)
    result = _train(cfg, cfg_train, shards, meta, model, tmp_path)
    assert result.stopped_early and result.epochs_run == 2 and result.best_epoch == 1


def test_classification_training(tmp_path) -> None:
    from crnn.config import PipelineConfig

    cfg = PipelineConfig.model_validate(
        {
            "name": "d",
            "data": {"source": "digits"},
            "model": {
                "head": "classification",
                "architecture": "crnn_small",
                "pool": [[2, 1], [2, 1], [1, 1]],
            },
            "training": {"epochs": 3, "device": "cpu"},
            "preprocessing": {"augmentation": {"copies": 0}},
        }
    )
    shards, _, meta, model = _setup(cfg, tmp_path)
    result = _train(cfg, cfg.training, shards, meta, model, tmp_path)
    assert result.history[-1]["val_accuracy"] > 0.8


def test_infeasible_ctc_targets_are_counted() -> None:
    targets = torch.tensor([[1, 2, 3, 0], [1, 1, 1, 1], [2, 2, 0, 0]])
    lengths = torch.tensor([3, 4, 2])
    # needs 3, 4 + 3 repeats = 7, and 2 + 1 = 3 frames
    assert infeasible_ctc_samples(targets, lengths, frames=6) == 1
    assert infeasible_ctc_samples(targets, lengths, frames=2) == 3
    assert infeasible_ctc_samples(targets, lengths, frames=7) == 0


def test_svc_baseline_scores_the_same_test_split(tmp_path) -> None:
    from crnn.config import PipelineConfig
    from crnn.inference.baselines import svc_baseline

    cfg = PipelineConfig.model_validate(
        {
            "name": "d",
            "data": {"source": "digits"},
            "model": {"head": "classification"},
            "preprocessing": {"augmentation": {"copies": 1, "rotation_degrees": 10}},
            "evaluation": {"baseline": "svc"},
        }
    )
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    metrics = svc_baseline(shards.manifest_path)
    assert metrics["baseline_svc_test_accuracy"] > 0.95  # an RBF SVC on sklearn digits: ~0.99
    train = load_split(shards.manifest_path, "train")
    originals = int((train.aug == 0).sum())
    assert originals * 2 == len(train)  # the shards hold one augmented copy of each original
    assert metrics["baseline_svc_train_rows"] == originals  # the baseline fit on originals only


class Interrupted(Exception):
    pass


class KillAt(TrainCallback):
    """Stands in for a killed process: stops training at (epoch, step)."""

    def __init__(self, epoch: int, step: int) -> None:
        self.at = (epoch, step)

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == self.at:
            raise Interrupted


def test_interrupted_and_resumed_training_equals_uninterrupted(tiny_config, tmp_path) -> None:
    """Kill mid-epoch, resume from last.pt: same final weights and metrics, bit for bit (CPU)."""
    from crnn.engine.train import train_on_shards

    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    training = cfg.training.model_copy(
        update={
            "epochs": 3,
            "checkpoint_every_steps": 4,
            "deterministic": True,
            "log_every_steps": 1,  # so KillAt sees every step
        }
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: reductions in a fixed order
    try:
        straight = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "a")
        with pytest.raises(Interrupted):  # 12 steps an epoch: dies at epoch 2, step 7
            train_on_shards(
                shards.manifest_path, cfg.model, training, tmp_path / "b", [KillAt(2, 7)]
            )
        partial = load_checkpoint(tmp_path / "b" / "last.pt")
        assert (partial.resume["loop"]["epoch"], partial.resume["loop"]["step"]) == (2, 4)
        resumed = train_on_shards(
            shards.manifest_path, cfg.model, training, tmp_path / "b", resume=True
        )
    finally:
        torch.set_num_threads(before)
    a, b = load_checkpoint(straight.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    timing = {"train_loader_wait"}  # wall-clock shares differ between any two runs
    same = [
        [{k: v for k, v in h.items() if k not in timing} for h in r.history]
        for r in (resumed, straight)
    ]
    assert same[0] == same[1] and resumed.best_epoch == straight.best_epoch
    assert len(resumed.history) == 3 and b.epoch == 3


def test_resume_without_a_checkpoint_starts_fresh(tiny_config, tmp_path) -> None:
    from crnn.engine.train import train_on_shards

    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    result = train_on_shards(
        shards.manifest_path, cfg.model, cfg.training, tmp_path / "c", resume=True
    )
    assert len(result.history) == cfg.training.epochs


def test_a_tie_on_the_monitored_metric_is_broken_by_the_validation_loss() -> None:
    # signed scores: lower is better (accuracy 1.0 -> -1.0)
    assert improves(-1.0, 0.20, best=-1.0, best_loss=0.30, min_delta=0.0)  # saturated, loss falls
    assert not improves(-1.0, 0.35, best=-1.0, best_loss=0.30, min_delta=0.0)  # tie, loss rises
    assert improves(-0.99, 0.50, best=-0.98, best_loss=0.30, min_delta=0.0)  # the metric decides
    assert not improves(-0.97, 0.10, best=-0.98, best_loss=0.30, min_delta=0.0)  # worse: no
    # an improvement inside min_delta is no improvement, and no tie either
    assert not improves(-0.985, 0.10, best=-0.98, best_loss=0.30, min_delta=0.01)
