"""The ``evaluation:`` section: what the test split is scored with, and how a CTC model's
per-frame scores become text (``evaluation.decoder``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from crnn.config.base import Frozen


class DecoderConfig(Frozen):
    """Greedy (best path) or a CTC prefix beam search, optionally held to a word list or a
    pattern. Used by evaluation, the pyfunc, `crnn predict` and `crnn score` alike: it travels
    with the registered model."""

    kind: Literal["greedy", "beam"] = Field("greedy", description="greedy or beam.")
    beam_width: int = Field(10, ge=1, le=256, description="Texts kept per frame (beam).")
    lexicon: str | None = Field(
        None,
        description="A word list file (UTF-8, one word per line; relative to the config): "
        "every space-separated word of a line is one of them (beam).",
    )
    regex: str | None = Field(
        None, description="A line must fully match this pattern: the best such line of the beam."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"evaluation.decoder.regex does not compile: {exc}") from None
        return value


class EvaluationConfig(Frozen):
    sample_predictions: int = Field(24, ge=0, le=512, description="Test samples shown with images.")
    baseline: Literal["auto", "svc", "tfidf", "mfcc"] | None = Field(
        "auto",
        description="A classical baseline fit on the same split and logged beside the model "
        "(classification only): svc (flattened inputs), tfidf (texts: word and character "
        "n-grams + logistic regression), mfcc (audio: MFCC statistics + logistic regression); "
        "auto: the source's own; null: none.",
    )
    decoder: DecoderConfig = Field(
        default_factory=DecoderConfig, description="CTC decoding: greedy or beam (head: ctc)."
    )
