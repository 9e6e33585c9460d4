"""Typed configuration: the only reader of pipelines.yaml.

The file is parsed once into frozen pydantic models that forbid unknown keys. Every library
function receives the small slice it needs (``cfg.training``, ``cfg.preprocessing``), never a dict.
An invalid file raises :class:`ConfigError` with one line: key path, bad value, what is allowed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crnn.errors import ConfigError

CONFIG_VERSION = 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------- data


class SplitFractions(Frozen):
    """Fractions of the *source images* assigned to each split (they sum to 1)."""

    train: float = Field(0.6, gt=0, lt=1)
    val: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, got {total:g}")
        return self


class LineCounts(Frozen):
    """How many text lines to compose per split."""

    train: int = Field(5000, ge=1)
    val: int = Field(600, ge=1)
    test: int = Field(1000, ge=1)


class DigitStringsData(Frozen):
    """Lines of 3-8 real handwritten digits (scikit-learn's bundled 8x8 digits), random spacing."""

    source: Literal["digit_strings"] = "digit_strings"
    seed: int = Field(0, description="Seed for the split and the composition of lines.")
    split: SplitFractions = Field(default_factory=SplitFractions)
    lines: LineCounts = Field(default_factory=LineCounts)
    min_digits: int = Field(3, ge=1, description="Fewest digits in a line.")
    max_digits: int = Field(8, ge=1, le=32, description="Most digits in a line.")
    digit_scale: int = Field(1, ge=1, le=4, description="Upscaling of each 8x8 digit.")
    max_gap: int = Field(3, ge=0, le=16, description="Largest gap between digits, in pixels.")
    margin: int = Field(2, ge=0, le=8, description="Blank border around a line, in pixels.")

    @model_validator(mode="after")
    def _digit_range(self) -> DigitStringsData:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) > max_digits ({self.max_digits})")
        return self


class DigitsData(Frozen):
    """scikit-learn's bundled 8x8 handwritten digits as a 10-class image classification task."""

    source: Literal["digits"] = "digits"
    seed: int = Field(0, description="Seed for the stratified split.")
    split: SplitFractions = Field(default_factory=SplitFractions)


Motion = Literal["left", "right", "up", "down", "zoom_in", "zoom_out", "rotate"]
MOTIONS: tuple[Motion, ...] = get_args(Motion)


class MovingDigitsData(Frozen):
    """Video action recognition: clips of a real sklearn digit moving in one of several ways.

    Generated deterministically (no download); split by source digit image like digit_strings.
    """

    source: Literal["moving_digits"] = "moving_digits"
    seed: int = 0
    split: SplitFractions = Field(default_factory=SplitFractions)
    clips: LineCounts = Field(
        default_factory=lambda: LineCounts(train=3000, val=500, test=1000),
        description="Clips per split.",
    )
    frames: int = Field(8, ge=2, le=64, description="Frames per clip.")
    frame_size: int = Field(24, ge=12, le=128, description="Frame height and width, pixels.")
    motions: tuple[Motion, ...] = Field(MOTIONS, min_length=2, description="Classes.")


class FileSourceBase(Frozen):
    """A source read from files the user points at with ``path``."""

    path: str | None = Field(
        None, description="Where the data lives (a folder); relative paths are from the config."
    )
    seed: int = Field(0, description="Seed of the split.")


class MnistIdxData(FileSourceBase):
    """MNIST-family IDX files as published: ``*-images-idx3-ubyte[.gz]``, ``*-labels-idx1-ubyte``.

    ``train-*`` files give train and val (``val_fraction``, stratified), ``t10k-*`` give test.
    """

    source: Literal["mnist_idx"] = "mnist_idx"
    val_fraction: float = Field(0.1, gt=0, lt=1)
    classes: tuple[str, ...] = Field(tuple(str(d) for d in range(10)), min_length=2)


class Cifar10Data(FileSourceBase):
    """CIFAR-10 "python version": ``data_batch_1..5``, ``test_batch``, ``batches.meta``."""

    source: Literal["cifar10"] = "cifar10"
    val_fraction: float = Field(0.1, gt=0, lt=1)
    grayscale: bool = Field(False, description="Convert to one channel.")


class ImageFolderData(FileSourceBase):
    """One folder per class (PNG / JPEG, any size and mode), optionally under train/ val/ test/.

    Without split folders, the images are split with ``split`` fractions, stratified by class.
    """

    source: Literal["image_folder"] = "image_folder"
    image_size: tuple[int, int] = Field((32, 32), description="(height, width) after resizing.")
    mode: Literal["grayscale", "rgb"] = "grayscale"
    split: SplitFractions = Field(default_factory=SplitFractions)


class VideoClipsData(FileSourceBase):
    """Video clips, one folder per class: each clip a folder of frame images, a ``.npy`` /
    ``.npz`` array (T, H, W[, C]), or an ``.mp4`` / ``.avi`` file (decoded with PyAV).

    Every clip is sampled to ``frames`` evenly spaced frames and resized to ``frame_size``.
    """

    source: Literal["video_clips"] = "video_clips"
    frames: int = Field(16, ge=1, le=256, description="Frames sampled per clip.")
    frame_size: tuple[int, int] = Field((64, 64), description="(height, width) of each frame.")
    mode: Literal["grayscale", "rgb"] = "grayscale"
    split: SplitFractions = Field(default_factory=SplitFractions)


class SplitRule(Frozen):
    """A split the dataset publishes in its file names: files whose ``group`` (a named group of
    ``filename_pattern``) has one of the ``test`` values are test, of the ``val`` values val, the
    rest train. A value is a string or an inclusive numeric range, e.g. ``"0-4"``."""

    group: str = Field(description="A named group of data.filename_pattern, e.g. index.")
    test: list[str] = Field(min_length=1, description='Values or ranges ("0-4") that are test.')
    val: list[str] = Field(default_factory=list, description="Values that are val; none: carved.")


class Recordings(FileSourceBase):
    """WAV recordings labelled by a CSV or their file names, and the log-mel features read from
    them: what ``audio_folder`` and ``spoken_digit_strings`` share."""

    labels_csv: str | None = Field(None, description="CSV of path,label[,group] under data.path.")
    filename_pattern: str | None = Field(
        r"(?P<label>\d)_(?P<speaker>[a-z]+)_\d+\.wav",
        description="Regex on the file name with a named group `label` (used without a CSV).",
    )
    group: str | None = Field("speaker", description="Group key: no group in two splits.")
    split: SplitFractions = Field(default_factory=SplitFractions)
    sample_rate: int = Field(8000, ge=1000, le=96000, description="Resampled to this rate, Hz.")
    duration_seconds: float = Field(1.0, gt=0, le=60, description="Clips padded / cropped to it.")
    n_mels: int = Field(40, ge=8, le=256)
    n_fft: int = Field(256, ge=32, le=8192)
    hop_length: int = Field(128, ge=8, le=4096)


class AudioFolderData(Recordings):
    """A folder of WAV files -> log-mel spectrograms (1, n_mels, frames), time along the width.

    Labels come from a CSV (``labels_csv``: columns path,label[,group][,split]) or from the file
    name (``filename_pattern``, a regex with a named group ``label``). With ``group`` set (a named
    group of the pattern or a CSV column, e.g. the speaker), no group spans two splits.

    A split the dataset publishes is kept as given, three ways: a ``split_column`` in the CSV,
    ``train/ val/ test/`` sub-folders, or a ``split_rule`` on the file names. Without a given val,
    ``val_fraction`` of train becomes val (grouped when ``group`` is set).
    """

    source: Literal["audio_folder"] = "audio_folder"
    split_column: str = Field(
        "split", description="labels_csv column of train / val / test, when the CSV has it."
    )
    split_rule: SplitRule | None = Field(None, description="A given split by file name.")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="A given split without val: this share of train is val."
    )

    @model_validator(mode="after")
    def _split_rule_names_a_group(self) -> AudioFolderData:
        rule = self.split_rule
        if rule is None:
            return self
        if self.labels_csv:
            raise ValueError("split_rule reads file names: use a split column in labels_csv")
        groups = re.compile(self.filename_pattern or "").groupindex
        if rule.group not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise ValueError(
                f"split_rule.group {rule.group!r} is not a named group of filename_pattern "
                f"(its groups: {known})"
            )
        return self


class SpokenDigitStringsData(Recordings):
    """Speech to text: utterances of several words composed from a folder of single-word
    recordings (named as ``audio_folder`` names them), with random pauses, and their transcripts.

    The recordings are split first (by ``group`` when set, e.g. the speaker), so no recording
    or speaker appears in two splits; each split composes ``lines`` utterances from its own.
    """

    source: Literal["spoken_digit_strings"] = "spoken_digit_strings"
    lines: LineCounts = Field(
        default_factory=lambda: LineCounts(train=3000, val=300, test=500),
        description="Utterances composed per split.",
    )
    min_words: int = Field(2, ge=1, le=32)
    max_words: int = Field(5, ge=1, le=32)
    min_pause_seconds: float = Field(0.05, ge=0, le=5, description="Shortest pause between words.")
    max_pause_seconds: float = Field(0.3, ge=0, le=5, description="Longest pause between words.")
    duration_seconds: float = Field(3.0, gt=0, le=60, description="Utterances padded to it.")

    @model_validator(mode="after")
    def _ranges(self) -> SpokenDigitStringsData:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) > max_words ({self.max_words})")
        if self.min_pause_seconds > self.max_pause_seconds:
            raise ValueError("min_pause_seconds > max_pause_seconds")
        return self


class TextTableData(FileSourceBase):
    """Text classification tables: CSV / TSV / JSONL / Parquet with text and label columns, or
    one file per class (``CLASS.txt``, one text per line). Token ids are the model's input.
    """

    source: Literal["text_table"] = "text_table"
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "lines"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    split_column: str | None = Field(None, description="A column holding train / val / test.")
    encoding: str = Field("utf-8", description="File encoding, e.g. utf-8, latin-1.")
    tokenizer: Literal["char", "word"] = "word"
    lowercase: bool = True
    max_length: int = Field(64, ge=1, le=4096, description="Tokens per text (pad / truncate).")
    min_count: int = Field(1, ge=1, description="Rarer training tokens become out-of-vocabulary.")
    max_vocab: int = Field(20000, ge=10)
    split: SplitFractions = Field(default_factory=SplitFractions)


SourceConfig = (
    DigitStringsData
    | DigitsData
    | MovingDigitsData
    | MnistIdxData
    | Cifar10Data
    | ImageFolderData
    | VideoClipsData
    | AudioFolderData
    | SpokenDigitStringsData
    | TextTableData
)
DataConfig = Annotated[SourceConfig, Field(discriminator="source")]
SEQUENCE_SOURCES = frozenset({"digit_strings", "spoken_digit_strings"})
SOURCE_MODELS: dict[str, type[BaseModel]] = {
    "digit_strings": DigitStringsData,
    "digits": DigitsData,
    "moving_digits": MovingDigitsData,
    "mnist_idx": MnistIdxData,
    "cifar10": Cifar10Data,
    "image_folder": ImageFolderData,
    "video_clips": VideoClipsData,
    "audio_folder": AudioFolderData,
    "spoken_digit_strings": SpokenDigitStringsData,
    "text_table": TextTableData,
}


# -------------------------------------------------------------------------------- preprocessing


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
    head: Literal["ctc", "classification"] = Field(
        "ctc", description="ctc: sequence of characters; classification: one label per input."
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
        None, description="Validation metric; default val_cer (ctc) or val_accuracy."
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


class EvaluationConfig(Frozen):
    sample_predictions: int = Field(24, ge=0, le=512, description="Test samples shown with images.")
    baseline: Literal["svc"] | None = Field(
        None, description="A classical baseline scored on the same split (classification only)."
    )


class RegistryConfig(Frozen):
    model_name: str | None = Field(None, description="Registered model; default crnn-<pipeline>.")
    metric: str | None = Field(
        None, description="Gate metric; default test_sequence_accuracy (ctc) or test_accuracy."
    )
    direction: Literal["maximize", "minimize"] = "maximize"
    min_delta: float = Field(0.0, ge=0, description="Required improvement over the champion.")
    min_relative: float = Field(
        0.0, ge=0, description="Required relative improvement (0.01: 1 % of the champion's score)."
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

    @model_validator(mode="after")
    def _resolve_defaults(self) -> PipelineConfig:
        sequence = self.data.source in SEQUENCE_SOURCES
        if self.data.source == "text_table" and self.preprocessing.normalization != "none":
            raise ValueError(
                "preprocessing.normalization must be none for text_table: inputs are token ids"
            )
        if sequence and self.evaluation.baseline:
            raise ValueError("evaluation.baseline needs a classification pipeline; remove it")
        if sequence != (self.model.head == "ctc"):
            want = "ctc" if sequence else "classification"
            raise ValueError(
                f"model.head {self.model.head!r} does not fit data.source "
                f"{self.data.source!r}: use head: {want}"
            )
        es = self.training.early_stopping
        monitor = es.monitor or ("val_cer" if sequence else "val_accuracy")
        mode = es.mode or ("min" if monitor.endswith(("loss", "cer")) else "max")
        training = self.training.model_copy(
            update={"early_stopping": es.model_copy(update={"monitor": monitor, "mode": mode})}
        )
        registry = self.registry.model_copy(
            update={
                "model_name": self.registry.model_name or f"crnn-{self.name}",
                "metric": self.registry.metric
                or ("test_sequence_accuracy" if sequence else "test_accuracy"),
            }
        )
        tracking = self.tracking.model_copy(
            update={"experiment": self.tracking.experiment or self.name}
        )
        # frozen: assemble the resolved copy rather than mutating
        return self.model_copy(
            update={"training": training, "registry": registry, "tracking": tracking}
        )

    @property
    def is_sequence(self) -> bool:
        return self.model.head == "ctc"


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

    @model_validator(mode="before")
    @classmethod
    def _inject_names(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("pipelines"), dict):
            raw = dict(raw)
            raw["pipelines"] = {
                k: {**v, "name": k} if isinstance(v, dict) else v
                for k, v in raw["pipelines"].items()
            }
        return raw

    @model_validator(mode="after")
    def _default_exists(self) -> PipelinesFile:
        if self.default_pipeline not in self.pipelines:
            known = ", ".join(sorted(self.pipelines))
            raise ValueError(f"default_pipeline {self.default_pipeline!r} is not one of: {known}")
        return self


# -------------------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> PipelinesFile:
    """Parse and validate pipelines.yaml.

    Raises:
        ConfigError: one line with the key path, the bad value and what is allowed.
    """
    raw = _read_yaml(Path(path))
    _resolve_data_paths(raw, Path(path))
    return _validate(raw, Path(path))


def _resolve_data_paths(raw: dict[str, Any], path: Path) -> None:
    """Relative ``data.path`` values are relative to the config file's folder."""
    pipelines = raw.get("pipelines")
    for pipeline in pipelines.values() if isinstance(pipelines, dict) else ():
        data = pipeline.get("data") if isinstance(pipeline, dict) else None
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            data["path"] = str((path.resolve().parent / data["path"]).resolve())


def load_pipeline(
    path: str | Path, name: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[PipelinesFile, PipelineConfig]:
    """The whole file and one pipeline (``name`` or the default) with ``key.path=value`` overrides.

    Overrides are applied before validation, so a bad one fails like a bad file, naming its key.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if name is None:
        name = raw.get("default_pipeline") if isinstance(raw.get("default_pipeline"), str) else None
    for item in overrides:
        _apply_override(raw, str(name), item, path)
    _resolve_data_paths(raw, path)
    config = _validate(raw, path)
    name = name or config.default_pipeline
    if name not in config.pipelines:
        known = ", ".join(sorted(config.pipelines))
        raise ConfigError(f"{path}: no pipeline named {name!r}; known: {known}")
    return config, config.pipelines[name]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config PATH or create it")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where} {problem}; fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with version, pipelines; got {raw!r:.60}")
    return raw


def _validate(raw: dict[str, Any], path: Path) -> PipelinesFile:
    try:
        return PipelinesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None


def _apply_override(raw: dict[str, Any], pipeline: str, item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected KEY.PATH=VALUE, e.g. training.epochs=1")
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, dict) or pipeline not in pipelines:
        raise ConfigError(f"{path}: no pipeline {pipeline!r} to override; see `crnn list`")
    node = pipelines[pipeline]
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
    node[parts[-1]] = yaml.safe_load(value)


def format_validation_error(exc: ValidationError) -> str:
    """One line from a pydantic error: ``key.path: problem (got value)``, plus a count of others."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    raw_loc = tuple(first["loc"])
    # pydantic puts the tag of a tagged union (data.source) into the location: drop it
    loc = [str(p) for i, p in enumerate(raw_loc) if not (i and raw_loc[i - 1] == "data")]
    where = ".".join(loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(raw_loc[:-1])
        problem = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif first["type"] == "missing":
        problem = "required key is missing"
    else:
        problem = first["msg"].removeprefix("Value error, ")
        problem += f" (got {json.dumps(first.get('input'), default=str)[:80]})"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {problem}{more}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at ``loc`` (a pydantic error location) under PipelinesFile."""
    model: Any = PipelinesFile
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if model is PipelinesFile and part == "pipelines":
            if not parts:
                return []
            parts.pop(0)  # the pipeline's name
            model = PipelineConfig
        elif model is PipelineConfig and part == "data":
            model = SOURCE_MODELS.get(parts.pop(0)) if parts else None
        elif (
            isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields
        ):
            model = model.model_fields[part].annotation
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [n for n in model.model_fields if n != "name"]
    return []


def json_schema() -> dict[str, Any]:
    """JSON Schema of pipelines.yaml, for editors and CI."""
    schema = PipelinesFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "CRNN pipelines.yaml"
    return schema


def flatten(cfg: BaseModel, prefix: str = "") -> dict[str, str]:
    """A config slice as flat ``a.b.c -> str`` pairs (MLflow params)."""
    out: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        else:
            out[key] = json.dumps(node) if isinstance(node, list | tuple) else str(node)

    walk(cfg.model_dump(mode="json"), prefix)
    return out
