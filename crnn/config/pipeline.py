"""A pipeline's sections beyond its data (preprocessing, model, training, evaluation, registry,
tracking), the pipeline with its resolved defaults, and the whole pipelines.yaml."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from crnn.config.base import NAME_PATTERN, Frozen
from crnn.config.data import DataConfig
from crnn.config.evaluation import EvaluationConfig
from crnn.config.execution import DistributedConfig, ExecutionConfig
from crnn.config.monitoring import MonitoringConfig
from crnn.config.notifications import (
    NotificationsConfig,
    check_drift_action,
    valid_notifications,
)
from crnn.config.registry import RegistryConfig, resolve_baseline
from crnn.config.schedule import RetrainSchedule, ScoringJob
from crnn.config.sweep import SweepConfig, resolve_sweep
from crnn.metric_names import product_name
from crnn.metrics import metric_direction, metric_mode
from crnn.types.kinds import KINDS, TaskKind, kind_for_head

# -------------------------------------------------------------------------------- preprocessing


MONITOR_KEY = "training.early_stopping.monitor"


class AugmentationConfig(Frozen):
    """Augmented copies of the training split (val/test are never augmented)."""

    copies: int = Field(1, ge=0, le=32, description="Augmented copies per training sample.")
    seed: int = Field(0, description="Seed: the same seed gives the same augmented shards.")
    rotation_degrees: float = Field(0.0, ge=0, le=45, description="Max rotation, +/- degrees.")
    scale: tuple[float, float] = Field((1.0, 1.0), description="Random zoom range (min, max).")
    translate_px: tuple[float, float] = Field(
        (0.0, 0.0), description="Max shift (x, y) in pixels; content leaving the frame is cropped."
    )
    noise_std: float = Field(0.0, ge=0, le=1, description="Gaussian noise, normalized units.")
    shear_degrees: float = Field(
        0.0, ge=0, le=30, description="Max horizontal shear (slant), +/- degrees."
    )
    contrast: tuple[float, float] = Field(
        (1.0, 1.0), description="Random contrast factor range (min, max) around each mean."
    )
    blur_sigma: float = Field(0.0, ge=0, le=4, description="Max Gaussian blur sigma, pixels.")
    time_shift: float = Field(0.0, ge=0, lt=1, description="Audio: max roll, share of frames.")
    time_masks: int = Field(0, ge=0, le=8, description="Audio: masked time stripes.")
    freq_masks: int = Field(0, ge=0, le=8, description="Audio: masked frequency stripes.")
    mask_width: float = Field(0.1, gt=0, lt=1, description="Audio: max stripe width, share.")
    token_dropout: float = Field(0.0, ge=0, lt=1, description="Text: share of tokens dropped.")
    token_swaps: int = Field(0, ge=0, le=16, description="Text: adjacent token swaps.")
    temporal_jitter: int = Field(
        0, ge=0, le=8, description="Video: shift each clip by up to this many frames."
    )

    @model_validator(mode="after")
    def _scale_range(self) -> AugmentationConfig:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 4:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 4, got {list(self.scale)}")
        lo, hi = self.contrast
        if not 0 < lo <= hi <= 4:
            raise ValueError(
                f"contrast must satisfy 0 < min <= max <= 4, got {list(self.contrast)}"
            )
        return self


class PreprocessingConfig(Frozen):
    normalization: Literal["minmax", "symmetric", "standardize", "none"] = Field(
        "minmax",
        description="minmax: [0,1]; symmetric: [-1,1]; standardize: zero mean, unit variance; "
        "none: as read (token ids). Statistics are fit on the training split only.",
    )
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    shard_rows: int = Field(8192, ge=16, description="Most rows in one Parquet shard.")
    shuffle_seed: int = Field(
        0,
        description="Seeds the order of the training rows in the shards: a random order over "
        "the whole split, whatever order the source has (e.g. sorted by class).",
    )
    max_quarantine_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Fail when more than this fraction of input records is quarantined.",
    )


# ---------------------------------------------------------------------------------------- model


class ModelConfig(Frozen):
    """A CRNN: conv blocks -> sequence along the width -> RNN -> head.

    A preset architecture supplies its own defaults; keys set here override them.
    """

    architecture: str = Field("crnn", description="A registered architecture (`crnn list`).")
    head: Literal["ctc", "classification", "regression"] = Field(
        "ctc",
        description="ctc: a sequence of characters; classification: one label per input; "
        "regression: one number per input.",
    )
    conv_channels: tuple[int, ...] = Field((32, 64, 128), min_length=1)
    pool: tuple[tuple[int, int], ...] = Field(
        ((2, 2), (2, 2), (2, 1)),
        description="(height, width) max-pool after each conv block; (1, 1) for none.",
    )
    rnn: Literal["lstm", "gru"] = "lstm"
    rnn_hidden: int = Field(128, ge=1)
    rnn_layers: int = Field(2, ge=1, le=8)
    bidirectional: bool = True
    dropout: float = Field(0.1, ge=0, lt=1)
    embedding_dim: int = Field(64, ge=1, description="Text models: token embedding size.")
    sequence_axis: Literal["width", "height"] = Field(
        "width", description="Images: the RNN reads columns (width) or rows (height)."
    )

    @model_validator(mode="after")
    def _pool_per_block(self) -> ModelConfig:
        if len(self.pool) != len(self.conv_channels):
            raise ValueError(
                f"pool has {len(self.pool)} entries but conv_channels has "
                f"{len(self.conv_channels)}: give one (height, width) pool per conv block"
            )
        return self


# ------------------------------------------------------------------------------------- training


class EarlyStoppingConfig(Frozen):
    monitor: str | None = Field(
        None, description="Validation metric; default val_cer (ctc), val_accuracy or val_rmse."
    )
    mode: Literal["min", "max"] | None = Field(None, description="Default follows the metric.")
    patience: int = Field(5, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0)


class LoaderConfig(Frozen):
    workers: int = Field(
        2, ge=0, le=64, description="Processes that read and shuffle shards; 0: the trainer's own."
    )
    window_rows: int = Field(
        8192, ge=1, description="Rows shuffled together (a few shards); bounds loader memory."
    )
    prefetch: int = Field(2, ge=1, le=16, description="Windows each worker reads ahead.")
    pin_memory: bool = Field(
        True, description="Page-locked batches for asynchronous copies to a GPU (CUDA only)."
    )


class TrainingConfig(Frozen):
    epochs: int = Field(20, ge=1, le=10_000)
    loss: Literal["ctc", "cross_entropy", "mse", "huber"] | None = Field(
        None,
        description="The head's loss; default ctc, cross_entropy or mse (regression: mse or "
        "huber, on the standardized target).",
    )
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only.")
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "onecycle"
    step_size: int = Field(10, ge=1, description="Epochs per decay, schedule=step only.")
    gamma: float = Field(0.1, gt=0, le=1, description="Decay factor, schedule=step only.")
    grad_clip: float | None = Field(5.0, gt=0, description="Max gradient norm; null for none.")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    deterministic: bool = Field(False, description="Deterministic algorithms (slower).")
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="Also write the resumable last.pt every this many steps."
    )
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Mixed precision. auto: bf16 on GPUs that have it, else fp16 with a gradient "
        "scaler; fp32 on CPU. The RNN falls back to fp32 where the stack has no low-precision RNN.",
    )
    channels_last: bool = Field(True, description="channels_last convolutions (CUDA only).")
    cudnn_benchmark: bool = Field(
        True, description="Let cuDNN pick the fastest kernels (off when deterministic)."
    )
    compile: bool = Field(False, description="torch.compile the convolutional front-end.")
    devices: int = Field(
        1,
        ge=1,
        le=64,
        description="Training processes on this machine (one per GPU); >1 launches torchrun "
        "with DistributedDataParallel (gloo on CPU).",
    )
    log_every_steps: int = Field(
        50, ge=1, description="Read the loss back from the device (progress, logs) this often."
    )
    distributed: DistributedConfig | None = Field(
        None, description="Several machines (torchrun, c10d); in place of devices. Null: one."
    )


class TrackingConfig(Frozen):
    experiment: str | None = Field(None, description="MLflow experiment; default the pipeline.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default a SQLite store in the workspace. "
        "MLFLOW_TRACKING_URI overrides it.",
    )
    system_metrics_interval: float | None = Field(
        10.0,
        gt=0,
        description="Seconds between CPU / memory / GPU samples while training; null: off.",
    )


class PipelineConfig(Frozen):
    """One named pipeline: data -> preprocessing -> model -> training -> evaluation -> registry."""

    name: str = Field("", description="Filled from the key under `pipelines`.")
    description: str = ""
    data: DataConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    schedule: RetrainSchedule | None = Field(
        None, description="Scheduled retraining (`crnn deploy`, `crnn serve`); none: by hand."
    )
    scoring: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ScoringJob] = Field(
        default_factory=dict, description="Scheduled batch scoring jobs, by name."
    )
    sweep: SweepConfig | None = Field(
        None, description="A hyperparameter sweep of this pipeline (`crnn sweep`)."
    )
    notifications: NotificationsConfig | None = Field(
        None,
        exclude=True,  # never in a run's params or config artifact (a webhook may hold a token)
        description="Where this pipeline's notices go; default the file's `notifications:`.",
    )

    @model_validator(mode="after")
    def _drift_action(self) -> PipelineConfig:
        check_drift_action(self.monitoring.on_drift, self.schedule is not None, self.notifications)
        return self

    @model_validator(mode="after")
    def _resolve_defaults(self) -> PipelineConfig:
        kind = self._check_task()
        es = self.training.early_stopping
        monitor = product_name(es.monitor or kind.monitor)  # val/cer, as MLflow shows it, too
        training = self.training.model_copy(
            update={
                "early_stopping": es.model_copy(
                    update={
                        "monitor": monitor,
                        "mode": es.mode or metric_mode(monitor, MONITOR_KEY),
                    }
                ),
                "loss": self.training.loss or kind.losses[0],
            }
        )
        metric = product_name(self.registry.metric or kind.gate_metric)
        registry = self.registry.model_copy(
            update={
                "model_name": self.registry.model_name or f"crnn-{self.name}",
                "metric": metric,
                "direction": self.registry.direction or metric_direction(metric, "registry.metric"),
            }
        )
        tracking = self.tracking.model_copy(
            update={"experiment": self.tracking.experiment or self.name}
        )
        champion = f"{registry.model_name}@champion"
        scoring = {
            name: job.model_copy(update={"model": job.model or champion})
            for name, job in self.scoring.items()
        }
        data = self.data
        if "target" in type(data).model_fields:  # sources of labels or numbers: the head says
            data = data.model_copy(update={"target": kind.target})
        # frozen: assemble the resolved copy rather than mutating
        evaluation = resolve_baseline(self.evaluation, registry, kind, type(data))
        return self.model_copy(
            update={
                "data": data,
                "evaluation": evaluation,
                "training": training,
                "registry": registry,
                "tracking": tracking,
                "scoring": scoring,
            }
        )

    @model_validator(mode="after")
    def _resolve_sweep(self) -> PipelineConfig:
        """The sweep's metric and direction filled, its space checked against this pipeline
        (after the defaults: a swept key's own value is the resolved one)."""
        if self.sweep is None:
            return self
        assert self.registry.metric is not None
        sweep = resolve_sweep(self.sweep, self, self.registry.metric)
        return self.model_copy(update={"sweep": sweep})

    def _check_task(self) -> TaskKind:
        """The task kind of ``model.head``, checked against the source and the other keys."""
        kind, source = kind_for_head(self.model.head), type(self.data)
        fixed = getattr(source, "fixed_normalization", None)  # a source that allows one only
        if fixed is not None and self.preprocessing.normalization != fixed[0]:
            raise ValueError(
                f"preprocessing.normalization must be {fixed[0]} for {self.data.source}: {fixed[1]}"
            )
        if kind.target not in source.targets:
            fits = [k.head for k in KINDS.values() if k.target in source.targets]
            raise ValueError(
                f"model.head {self.model.head!r} does not fit data.source "
                f"{self.data.source!r}: use head: {' or '.join(fits)}"
            )
        chosen = getattr(self.data, "target", kind.target)
        if "target" in self.data.model_fields_set and chosen != kind.target:
            raise ValueError(
                f"data.target {chosen!r} does not fit model.head {self.model.head!r}; "
                f"drop data.target (the head sets it)"
            )
        decoding = self.evaluation.decoder
        if (decoding.kind != "greedy" or decoding.lexicon or decoding.regex) and kind.head != "ctc":
            raise ValueError("evaluation.decoder reads CTC outputs: it needs model.head: ctc")
        if (decoding.lexicon or decoding.regex) and decoding.kind != "beam":
            raise ValueError("evaluation.decoder.lexicon and regex need kind: beam")
        if self.training.loss and self.training.loss not in kind.losses:
            raise ValueError(
                f"training.loss {self.training.loss!r} does not fit model.head "
                f"{self.model.head!r}: use {' or '.join(kind.losses)}"
            )
        return kind

    @property
    def task_kind(self) -> TaskKind:
        return kind_for_head(self.model.head)

    def training_digest(self) -> str:
        """What the trained weights depend on besides the shard set: the model and training
        sections. Equal digests on equal shards: retraining would learn nothing new."""
        payload = {
            "model": self.model.model_dump(mode="json"),
            "training": self.training.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class PipelinesFile(Frozen):
    """The whole pipelines.yaml."""

    version: Literal[1] = Field(description="Format version of this file.")
    workspace: str = Field(
        "workspace",
        description="Folder for shards, checkpoints and the MLflow store, relative to this file. "
        "CRNN_WORKSPACE overrides it.",
    )
    default_pipeline: str = Field(description="The pipeline `crnn run` runs when none is named.")
    pipelines: dict[Annotated[str, Field(pattern=NAME_PATTERN)], PipelineConfig] = Field(
        min_length=1
    )
    notifications: NotificationsConfig | None = Field(
        None,
        description="Notices of failed runs, promotions and drift (a pipeline's own block wins).",
    )

    @model_validator(mode="before")
    @classmethod
    def _inject_names(cls, raw: Any) -> Any:
        """Each pipeline gets its name, and the file's notifications unless it has its own."""
        if isinstance(raw, dict) and isinstance(raw.get("pipelines"), dict):
            raw = dict(raw)
            notices = raw.get("notifications")
            shared = {"notifications": notices} if valid_notifications(notices) else {}
            raw["pipelines"] = {
                k: {**shared, **v, "name": k} if isinstance(v, dict) else v
                for k, v in raw["pipelines"].items()
            }
        return raw

    @model_validator(mode="after")
    def _default_exists(self) -> PipelinesFile:
        if self.default_pipeline not in self.pipelines:
            known = ", ".join(sorted(self.pipelines))
            raise ValueError(f"default_pipeline {self.default_pipeline!r} is not one of: {known}")
        return self
