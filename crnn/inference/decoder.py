"""The decoder a model is registered with: ``evaluation.decoder`` as its checkpoint carries it
(settings, and the word list read in), so that evaluation, the pyfunc, `crnn predict` and
`crnn score` read outputs the one way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from crnn.config import DecoderConfig
from crnn.errors import DataError


def decoder_record(cfg: DecoderConfig) -> dict[str, Any]:
    """What a checkpoint carries of ``cfg``; {} for greedy (every model's default)."""
    if cfg.kind == "greedy":
        return {}
    record: dict[str, Any] = {"kind": cfg.kind, "beam_width": cfg.beam_width}
    if cfg.regex:
        record["regex"] = cfg.regex
    if cfg.lexicon:
        record["lexicon"] = read_lexicon(Path(cfg.lexicon))
    return record


def read_lexicon(path: Path) -> list[str]:
    """A word list: UTF-8, one word per line (NFC; blank lines and surrounding spaces ignored)."""
    import unicodedata

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: unreadable evaluation.decoder.lexicon ({exc}); give a UTF-8 word list"
        ) from None
    words = sorted({unicodedata.normalize("NFC", w.strip()) for w in lines if w.strip()})
    if not words:
        raise DataError(f"{path}: evaluation.decoder.lexicon holds no words")
    return words


def with_decoder(checkpoint: Path, record: dict[str, Any], out: Path) -> Path:
    """``checkpoint`` carrying ``record`` as its decoder, written to ``out`` (the model a run
    logs); ``checkpoint`` itself when there is nothing to add."""
    from crnn.atomic import atomic_path
    from crnn.engine.checkpoint import load_checkpoint

    if not record:
        return checkpoint
    import torch

    ckpt = replace(load_checkpoint(checkpoint), decoder=record, resume=None)
    with atomic_path(out) as tmp:
        torch.save(ckpt.to_payload(), tmp)
    return out
