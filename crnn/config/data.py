"""The ``data:`` section of a pipeline: one typed model per source, chosen by ``source``."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BaseModel, Field, model_validator

from crnn.config.base import Frozen


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


TargetKind = Literal["class", "value"]


class DigitStringsData(Frozen):
    """Lines of 3-8 real handwritten digits (scikit-learn's bundled 8x8 digits), random spacing."""

    targets: ClassVar[tuple[str, ...]] = ("sequence",)  # the target kinds this source gives
    source: Literal["digit_strings"] = "digit_strings"
    seed: int = Field(0, description="Seed for the split and the composition of lines.")
    split: SplitFractions = Field(default_factory=SplitFractions)
    lines: LineCounts = Field(default_factory=LineCounts)
    min_digits: int = Field(3, ge=1, description="Fewest digits in a line.")
    max_digits: int = Field(8, ge=1, le=32, description="Most digits in a line.")
    digit_scale: int = Field(1, ge=1, le=4, description="Upscaling of each 8x8 digit.")
    max_gap: int = Field(3, ge=0, le=16, description="Largest gap between digits, in pixels.")
    margin: int = Field(2, ge=0, le=8, description="Blank border around a line, in pixels.")
    typed_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the lines typed in a TrueType font (those Pillow and matplotlib "
        "bundle) instead of handwritten, so that typed digits read too (crnn.data.typed).",
    )

    @model_validator(mode="after")
    def _digit_range(self) -> DigitStringsData:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) > max_digits ({self.max_digits})")
        return self


class DigitsData(Frozen):
    """scikit-learn's bundled 8x8 handwritten digits: a 10-class image classification task, or,
    with ``target: value``, the regression of each digit's value from its image."""

    targets: ClassVar[tuple[str, ...]] = ("class", "value")
    source: Literal["digits"] = "digits"
    seed: int = Field(0, description="Seed for the stratified split.")
    split: SplitFractions = Field(default_factory=SplitFractions)
    target: TargetKind = Field(
        "class", description="class: the digit as a label; value: as a number (regression)."
    )


Motion = Literal["left", "right", "up", "down", "zoom_in", "zoom_out", "rotate"]
MOTIONS: tuple[Motion, ...] = get_args(Motion)


class MovingDigitsData(Frozen):
    """Video action recognition: clips of a real sklearn digit moving in one of several ways.

    Generated deterministically (no download); split by source digit image like digit_strings.
    """

    targets: ClassVar[tuple[str, ...]] = ("class",)
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

    targets: ClassVar[tuple[str, ...]] = ("class",)
    path: str | None = Field(
        None, description="Where the data lives (a folder); relative paths are from the config."
    )
    seed: int = Field(0, description="Seed of the split.")


class FolderSourceBase(FileSourceBase):
    """A source that lists the files of a folder tree: symlinks that leave it are refused."""

    follow_symlinks: bool = Field(
        False,
        description="Read symlinks under data.path that point outside it (files and class "
        "folders); else each such file is quarantined as path_outside_data.",
    )


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


class ImageFolderData(FolderSourceBase):
    """One folder per class (PNG / JPEG, any size and mode), optionally under train/ val/ test/.

    Without split folders, the images are split with ``split`` fractions, stratified by class.
    """

    source: Literal["image_folder"] = "image_folder"
    image_size: tuple[int, int] = Field((32, 32), description="(height, width) after resizing.")
    mode: Literal["grayscale", "rgb"] = "grayscale"
    split: SplitFractions = Field(default_factory=SplitFractions)


class VideoClipsData(FolderSourceBase):
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


class Recordings(FolderSourceBase):
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

    targets: ClassVar[tuple[str, ...]] = ("class", "value")
    classical_baseline: ClassVar[str] = "mfcc"  # what evaluation.baseline auto fits
    source: Literal["audio_folder"] = "audio_folder"
    target: TargetKind = Field(
        "class",
        description="class: labels; value: numeric labels (labels_csv or the file name's "
        "`label` group) for model.head: regression, which sets it.",
    )
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

    targets: ClassVar[tuple[str, ...]] = ("sequence",)
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
    With ``target: value`` (set by ``model.head: regression``) the label column holds numbers.
    """

    targets: ClassVar[tuple[str, ...]] = ("class", "value")
    # the only preprocessing.normalization it allows, and why
    fixed_normalization: ClassVar[tuple[str, str]] = ("none", "inputs are token ids")
    classical_baseline: ClassVar[str] = "tfidf"  # what evaluation.baseline auto fits
    source: Literal["text_table"] = "text_table"
    target: TargetKind = Field(
        "class",
        description="class: the label column names classes; value: it holds numbers "
        "(model.head: regression sets it).",
    )
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


class LineImagesData(FolderSourceBase):
    """Text-line images and their transcriptions: ``NAME.png`` beside ``NAME.gt.txt`` (the
    layout of tesstrain, kraken and Calamari), or a ``labels_csv`` with the columns
    ``path,text[,split][,group]``. A given split is kept (a CSV ``split`` column, or ``train/
    val/ test/`` sub-folders); else ``split`` fractions by file, or by ``group`` (a CSV column,
    or ``folder``: the image's folder, e.g. one per page or writer).

    PNG / JPEG / TIFF / BMP, grey or colour, any size and polarity: each line is read as dark
    ink on light, resized to ``height`` keeping its aspect ratio, squeezed to ``width`` when
    wider, padded on the right with its own background when narrower.
    """

    targets: ClassVar[tuple[str, ...]] = ("sequence",)
    source: Literal["line_images"] = "line_images"
    labels_csv: str | None = Field(
        None, description="CSV of path,text[,split][,group] under data.path (else NAME.gt.txt)."
    )
    group: str | None = Field(
        None, description="Keep groups apart across splits: a labels_csv column, or `folder`."
    )
    split: SplitFractions = Field(
        default_factory=lambda: SplitFractions(train=0.8, val=0.1, test=0.1)
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="A given split without val: this share of train is val."
    )
    height: int = Field(32, ge=8, le=256, description="Line height the model reads, pixels.")
    width: int = Field(
        512, ge=16, le=8192, description="Line width the model reads: wider lines are squeezed."
    )
    mode: Literal["grayscale", "rgb"] = "grayscale"
    charset: str | None = Field(
        None, description="The characters the model reads (default: the training texts')."
    )
    frame_pixels: int = Field(
        4,
        ge=1,
        le=64,
        description="Pixels of width per CTC frame (the product of model.pool widths): a line "
        "whose text needs more frames than its width gives is set aside.",
    )
    max_image_pixels: int = Field(
        25_000_000, ge=1, description="Larger images are refused unread (decompression bombs)."
    )


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
    | LineImagesData
)
DataConfig = Annotated[SourceConfig, Field(discriminator="source")]
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
    "line_images": LineImagesData,
}
