"""The records that cross packages: what a source is (:class:`SourceInfo`) and yields
(:class:`Chunk`); what a manifest says of its source (:class:`SourceRecord`,
:class:`SourceFeatures`) and of the records set aside (:class:`Quarantined`,
:class:`QuarantineCounts`); the registered model version a scoring job pins
(:class:`ModelVersionRef`); a `crnn doctor` check's verdict (:class:`Check`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from crnn.types.kinds import TargetSpec

if TYPE_CHECKING:
    from crnn.normalization import NormalizationStats


@dataclass(frozen=True)
class Quarantined:
    """One input record that did not make it into the shards, and why."""

    sample_id: str
    split: str
    origin: str  # the file (or file and index) it came from
    reason: str  # a short code: unreadable_file, truncated_file, non_finite, ...
    detail: str = ""


@dataclass(frozen=True)
class QuarantineCounts:
    """What a shard set's build set aside (``manifest.quarantine``): how many records, by
    reason, the records read in all (written + quarantined: ``None`` in manifests older than the
    count) and the quarantine file beside the shards."""

    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    input_records: int | None = None
    file: str = ""


class SourceFeatures(TypedDict, total=False):
    """What a source fit or fixed that a scorer needs to read new data as training did:
    a text table's tokenizer, an audio source's log-mel settings, line images' profile."""

    kind: str  # word | char (a tokenizer), log_mel (audio)
    lowercase: bool
    max_length: int
    vocabulary: list[str]
    vocab_size: int
    sample_rate: int
    duration_seconds: float
    n_mels: int
    n_fft: int
    hop_length: int
    image: dict[str, Any]  # the measured profile of user line images (low, high, background)


class SourceRecord(TypedDict):
    """Where a shard set came from (``manifest.source``): the reader, what it read and how."""

    name: str  # the registered source (data.source)
    description: str
    digest: str  # sha256 of the raw data and the settings that read it
    config: dict[str, Any]  # the data section it was read with
    modality: NotRequired[str]  # image | video | audio | text (manifests before it: image)


@dataclass(frozen=True)
class SourceInfo:
    name: str
    description: str
    digest: str  # sha256 of the raw data and the settings that read it
    input_shape: tuple[int, ...]  # (channels, height, width) of one sample
    target: TargetSpec
    config: dict[str, Any] = field(default_factory=dict)
    modality: str = "image"  # picks the augmenter: image | video | audio | text
    # what a scorer needs to turn raw inputs into model inputs (vocabulary, audio parameters...)
    features: SourceFeatures = field(default_factory=lambda: SourceFeatures())


@dataclass(frozen=True)
class Chunk:
    """Raw samples of one split: ``inputs`` is (N, H, W) or (N, C, H, W) float32, source units.

    Unless ``normalization`` is set: then ``inputs`` are already normalized with those statistics
    (chunks read back from a shard set), and a consumer with other statistics undoes them first.

    ``quarantined`` holds the records of this stretch of input that a reader could not turn into
    samples (unreadable or truncated files...): they are counted, never dropped silently.
    """

    split: str
    sample_ids: list[str]
    inputs: np.ndarray
    texts: list[str] | None = None
    labels: np.ndarray | None = None
    values: np.ndarray | None = None  # numeric targets (regression)
    widths: np.ndarray | None = None  # line images right-padded to the widest: real widths
    quarantined: list[Quarantined] = field(default_factory=list)
    normalization: NormalizationStats | None = None
    # new data to score: what a sample is said to be where the input says (a line's NAME.gt.txt),
    # else None; scoring reports metrics against it
    truth: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass(frozen=True)
class ModelVersionRef:
    """The concrete model a job uses: resolved once, at the start, and pinned in job.json."""

    name: str
    version: str
    run_id: str


@dataclass(frozen=True)
class Check:
    """One `crnn doctor` check's verdict; a failing one says in one line what to do."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""
