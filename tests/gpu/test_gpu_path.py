"""The GPU path of the engine, parametrized over the devices present.

On a machine without CUDA every test runs on the CPU, so `make test` guards the same code; on a
GPU machine (`bench/gpu_check.sh`) each also runs on CUDA. These tests import only the core
(torch, numpy, pandas, pyarrow, scikit-learn, pydantic, pyyaml): the GPU image has no Prefect or
MLflow. Figures a reader of the GPU check wants (what the RNN ran in, weight distances) are
recorded with ``record_property`` and land in the check's JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters  # Dynamo's own count of captured graphs

from crnn.config import PipelineConfig, load_pipeline
from crnn.data.loader import ShardLoader, load_manifest, load_split
from crnn.data.preprocess import ShardSet, preprocess
from crnn.distributed import launch
from crnn.engine.callbacks import TrainCallback
from crnn.engine.checkpoint import load_checkpoint
from crnn.engine.train import Trainer, train_on_shards
from crnn.inference.predictor import Predictor
from crnn.inference.scoring import read_scores, score, shard_chunks
from crnn.models import create_model, model_kwargs
from crnn.types.records import ModelVersionRef
from tests.conftest import tiny_pipelines, write_config

pytestmark = pytest.mark.gpu

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", "cuda"] if CUDA else ["cpu"]
# (device, precision) pairs that exist on this machine: fp16 autocast needs CUDA
PRECISIONS = [("cpu", "bf16")] + ([("cuda", "bf16"), ("cuda", "fp16")] if CUDA else [])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineConfig, ShardSet]:
    """The tiny digit-strings pipeline (384 training rows) and its shards, built once."""
    root = tmp_path_factory.mktemp("gpu")
    _, cfg = load_pipeline(write_config(root / "pipelines.yaml", tiny_pipelines(root / "ws")))
    return cfg, preprocess(cfg.data, cfg.preprocessing, root / "shards")


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny model after 3 epochs on the CPU (predictions worth comparing)."""
    cfg, shards = tiny
    training = cfg.training.model_copy(update={"epochs": 3, "device": "cpu"})
    out = tmp_path_factory.mktemp("trained")
    return train_on_shards(shards.manifest_path, cfg.model, training, out).best_checkpoint


def _training(cfg: PipelineConfig, device: str, **update: object):
    return cfg.training.model_copy(update={"device": device, **update})


@pytest.mark.parametrize(("device", "precision"), PRECISIONS)
def test_training_under_autocast_is_finite_and_says_what_the_rnn_ran_in(
    tiny, tmp_path, device, precision, record_property
) -> None:
    cfg, shards = tiny
    training = _training(cfg, device, precision=precision, epochs=1)
    result = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path)
    epoch = result.history[0]
    assert np.isfinite(epoch["train_loss"]) and np.isfinite(epoch["val_loss"])
    setup = result.setup
    assert setup["autocast"] == {"bf16": "bfloat16", "fp16": "float16"}[precision]
    # fp16 trains with a gradient scaler, bf16 does not need one
    assert setup["grad_scaler"] == str(precision == "fp16").lower()
    assert setup["rnn_dtype"] in {"float32", setup["autocast"]}
    record_property(f"rnn_dtype_{device}_{precision}", setup["rnn_dtype"])
    weights = load_checkpoint(result.last_checkpoint).state_dict
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_is_on_for_cuda_convolutions_only(tiny, tmp_path, device) -> None:
    cfg, shards = tiny
    manifest = load_manifest(shards.manifest_path)
    model = _tiny_model(cfg, manifest)
    trainer = Trainer(model, _training(cfg, device), 1, tmp_path, {})
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    on = device == "cuda"
    assert trainer.setup["channels_last"] == str(on).lower()
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) or not on
    assert conv.weight.device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_front_end_is_compiled_and_matches_eager(tiny, tmp_path, device, record_property):
    """``training.compile`` compiles the conv front-end for real (Dynamo captures a graph: with
    ``nn.Module.compile()`` it silently captured none) and the result matches eager outputs."""
    cfg, shards = tiny
    model = _tiny_model(cfg, load_manifest(shards.manifest_path))
    trainer = Trainer(model, _training(cfg, device, compile=True), 1, tmp_path, {})
    assert trainer.setup["compiled"] == "features"
    eager = _tiny_model(cfg, load_manifest(shards.manifest_path)).to(device).eval()
    eager.load_state_dict(model.state_dict())  # same keys: compiling changed no state_dict name
    model.eval()
    x = load_split(shards.manifest_path, "val").inputs[:16].to(device)
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        compiled_out, eager_out = model.features(x), eager.features(x)
    assert counters["stats"]["unique_graphs"] > graphs
    gap = float((eager_out - compiled_out).abs().max())
    record_property(f"compile_max_abs_diff_{device}", gap)
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-3, atol=1e-3)


class Interrupted(Exception):
    pass


class _StopAfter(TrainCallback):
    """Records the epochs it sees; raises after ``stop`` (last.pt is already written then)."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop, self.epochs = stop, []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(epoch)
        if epoch == self.stop:
            raise Interrupted


def _distance(a: Path, b: Path) -> float:
    wa, wb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    return float(sum(((wa[k].double() - wb[k].double()) ** 2).sum() for k in wa) ** 0.5)


@pytest.mark.parametrize("device", DEVICES)
def test_resume_lands_nearer_the_uninterrupted_weights_than_a_restart(
    tiny, tmp_path, device, record_property
) -> None:
    """Interrupted after epoch 1 of 3 and resumed, the weights end within the device's noise of an
    uninterrupted run (exactly equal on the CPU; CUDA's CTC backward is not deterministic), far
    nearer than a restart from scratch given the remaining epochs."""
    cfg, shards = tiny
    training = _training(cfg, device, epochs=3)
    whole = train_on_shards(shards.manifest_path, cfg.model, training, tmp_path / "whole")
    with pytest.raises(Interrupted):
        train_on_shards(
            shards.manifest_path, cfg.model, training, tmp_path / "cut", [_StopAfter(1)]
        )
    seen = _StopAfter()
    resumed = train_on_shards(
        shards.manifest_path, cfg.model, training, tmp_path / "cut", [seen], resume=True
    )
    assert seen.epochs == [2, 3]  # it continued; it did not train epoch 1 again
    restart_cfg = _training(cfg, device, epochs=2)
    restart = train_on_shards(shards.manifest_path, cfg.model, restart_cfg, tmp_path / "again")
    d_resume = _distance(resumed.last_checkpoint, whole.last_checkpoint)
    d_restart = _distance(restart.last_checkpoint, whole.last_checkpoint)
    record_property(f"resume_distance_{device}", d_resume)
    record_property(f"restart_distance_{device}", d_restart)
    assert d_resume < 0.1 * d_restart
    if device == "cpu":
        assert d_resume == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_predictor_and_scoring_on_the_device_agree_with_the_cpu(
    tiny, trained, tmp_path, device, record_property
) -> None:
    _, shards = tiny
    test = load_split(shards.manifest_path, "test")
    on_cpu = Predictor.from_checkpoint(trained, device="cpu").predict_normalized(test.inputs)
    predictor = Predictor.from_checkpoint(trained, device=device)
    here = predictor.predict_normalized(test.inputs)
    agree = float(np.mean([a == b for a, b in zip(here.outputs, on_cpu.outputs, strict=True)]))
    record_property(f"predictions_equal_to_cpu_{device}", agree)
    assert agree >= 0.98  # TF32 convolutions may flip a borderline frame, not a split
    np.testing.assert_allclose(here.confidence, on_cpu.confidence, atol=2e-2)
    ref = ModelVersionRef("gpu-check", "1", "none")
    summary = score(predictor, ref, shard_chunks(shards.manifest_path), tmp_path / "out", "shards")
    scored = read_scores(tmp_path / "out").to_pandas().set_index("sample_id")
    assert summary.rows_scored == len(scored)
    assert scored.loc[test.sample_ids, "prediction"].tolist() == here.outputs


@pytest.mark.integration
@pytest.mark.parametrize("device", DEVICES)
def test_one_rank_through_torchrun_uses_the_devices_backend(tiny, tmp_path, device) -> None:
    """NCCL on a GPU, gloo on the CPU: one rank, launched as `training.devices > 1` launches."""
    cfg, shards = tiny
    training = _training(cfg, device, epochs=1, devices=1)
    result = launch(shards.manifest_path, cfg.model, training, tmp_path / "ddp")
    assert result.setup["world_size"] == "1"
    assert result.setup["device"] == ("cuda:0" if device == "cuda" else "cpu")
    assert np.isfinite(result.history[0]["train_loss"])


def _tiny_model(cfg: PipelineConfig, manifest) -> torch.nn.Module:
    kwargs = model_kwargs(cfg.model, manifest.features)
    classes = manifest.target.num_outputs
    return create_model(cfg.model.architecture, tuple(manifest.input_shape), classes, **kwargs)


def test_the_shard_loader_pins_batches_only_for_cuda(tiny) -> None:
    _, shards = tiny
    loader = ShardLoader(shards.manifest_path, "train", 32, shuffle=True, pin_memory=CUDA)
    batch = next(iter(loader.batches(0)))
    assert batch.inputs.is_pinned() == CUDA
    loader.close()
