"""CTC decoding: best path (greedy, vectorized) and prefix beam search with an optional lexicon
or pattern constraint."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import torch


def ctc_greedy_decode(logits: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best path decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        logits: (B, T, K) scores (logits or log-probabilities) per frame.
    Returns:
        one list of class indices per sample.
    """
    best = logits.argmax(dim=-1)  # (B, T)
    prev = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    keep = (best != blank) & (best != prev)
    return [row[mask].tolist() for row, mask in zip(best.cpu(), keep.cpu(), strict=True)]


def ctc_greedy_strings(logits: torch.Tensor, charset: str, blank: int = 0) -> list[str]:
    """Best path decoding straight to strings, vectorized: index ``i`` is ``charset[i - 1]``.

    Same result as decoding each row of :func:`ctc_greedy_decode` character by character, without
    a Python step per character: kept indices are mapped to code points in one gather, decoded as
    one string, and sliced per row.
    """
    best = logits.argmax(dim=-1)  # (B, T)
    prev = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    keep = ((best != blank) & (best != prev)).cpu().numpy()
    best_np = best.cpu().numpy()
    codes = np.frombuffer(charset.encode("utf-32-le"), dtype=np.uint32)
    table = np.concatenate([np.zeros(1, np.uint32), codes])  # blank -> never kept
    chars = table[best_np[keep]]
    text = chars.tobytes().decode("utf-32-le")
    ends = np.cumsum(keep.sum(axis=1)).tolist()
    starts = [0, *ends[:-1]]
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]


class Constraint:
    """What a decoded line may be: every word (split on spaces) one of ``lexicon``, and the whole
    line a full match of ``pattern``. While a line is being built, its last word need only start
    a lexicon word; the pattern is checked on whole lines (Python's ``re`` has no partial match),
    so it picks among the beam's lines."""

    def __init__(self, lexicon: Iterable[str] | None = None, pattern: str | None = None) -> None:
        self.words = set(lexicon) if lexicon is not None else None
        self.starts = (
            {w[:i] for w in self.words for i in range(len(w) + 1)} if self.words else set()
        )
        self.pattern = re.compile(pattern) if pattern else None

    def may_grow(self, text: str) -> bool:
        """Whether ``text`` can still become an allowed line."""
        if self.words is None:
            return True
        *done, last = text.split(" ")
        return all(w in self.words for w in done if w) and last in self.starts

    def allows(self, text: str) -> bool:
        """Whether ``text`` is an allowed whole line."""
        if self.words is not None and not all(w in self.words for w in text.split(" ") if w):
            return False
        return self.pattern is None or self.pattern.fullmatch(text) is not None


def ctc_beam_strings(
    log_probs: np.ndarray,
    charset: str,
    beam_width: int = 10,
    constraint: Constraint | None = None,
) -> tuple[list[str], np.ndarray]:
    """CTC prefix beam search (Hannun et al. 2014) per line of ``log_probs`` (B, T, K, log-softmax
    over blank + charset): the most probable text summed over all its alignments, not the best
    single path. With a ``constraint``, the best allowed line; a line with no allowed text in its
    beam keeps the unconstrained best. Returns the texts and each one's probability."""
    texts, probs = [], []
    for row in log_probs:
        text, logp = _beam_line(row, charset, beam_width, constraint)
        texts.append(text)
        probs.append(float(np.exp(logp)))
    return texts, np.asarray(probs, dtype=np.float32)


def _beam_line(
    lp: np.ndarray, charset: str, width: int, constraint: Constraint | None
) -> tuple[str, float]:
    beams: dict[str, tuple[float, float]] = {"": (0.0, -np.inf)}  # text -> (ends blank, not)
    kept = min(lp.shape[1] - 1, max(width, 8))  # the likeliest characters of a frame
    for frame in lp:
        chars: list[int] = (
            (np.argpartition(-frame[1:], kept - 1)[:kept] + 1).tolist() if kept else []
        )
        grown: dict[str, list[float]] = {}
        for text, (blank, other) in beams.items():
            total = np.logaddexp(blank, other)
            _add(grown, text, 0, total + frame[0])
            for c in chars:
                ch = charset[c - 1]
                if text and text[-1] == ch:  # a repeat: from a blank only; else it merges
                    _add(grown, text, 1, other + frame[c])
                    source = blank
                else:
                    source = total
                longer = text + ch
                if constraint is None or constraint.may_grow(longer):
                    _add(grown, longer, 1, source + frame[c])
        scored = sorted(grown.items(), key=lambda kv: -np.logaddexp(kv[1][0], kv[1][1]))
        beams = {t: (b, o) for t, (b, o) in scored[:width]}
    ranked = sorted(beams.items(), key=lambda kv: -np.logaddexp(*kv[1]))
    allowed = [kv for kv in ranked if constraint is None or constraint.allows(kv[0])]
    text, (blank, other) = (allowed or ranked)[0]
    return text, float(np.logaddexp(blank, other))


def _add(beams: dict[str, list[float]], text: str, ending: int, logp: float) -> None:
    entry = beams.setdefault(text, [-np.inf, -np.inf])
    entry[ending] = np.logaddexp(entry[ending], logp)


class BeamDecoder:
    """:func:`ctc_beam_strings` with its settings, from a checkpoint's ``decoder`` record
    (``beam_width``, ``lexicon``: the words, ``regex``)."""

    def __init__(self, spec: dict[str, object], charset: str) -> None:
        self.charset = charset
        self.beam_width = int(spec.get("beam_width", 10))  # type: ignore[call-overload]
        lexicon, pattern = spec.get("lexicon"), spec.get("regex")
        constrained = lexicon is not None or pattern is not None
        words = list(lexicon) if isinstance(lexicon, list) else None
        self.constraint = (
            Constraint(words, str(pattern) if pattern else None) if constrained else None
        )

    def __call__(self, logits: torch.Tensor) -> tuple[list[str], np.ndarray]:
        log_probs = logits.float().log_softmax(-1).cpu().numpy()
        return ctc_beam_strings(log_probs, self.charset, self.beam_width, self.constraint)


def greedy_char_confidences(probs: np.ndarray) -> list[list[float]]:
    """Per character of each best-path line of ``probs`` (B, T, K, softmax over blank + charset):
    the highest probability of that character over the frames it was read from (its run of equal
    best frames), in the order :func:`ctc_greedy_strings` reads them."""
    best, top = probs.argmax(-1), probs.max(-1)
    lines = []
    for labels, p in zip(best, top, strict=True):
        starts = np.flatnonzero(np.diff(labels, prepend=-1) != 0)  # where each run begins
        peaks = np.maximum.reduceat(p, starts) if len(starts) else p[:0]
        lines.append(peaks[labels[starts] != 0].astype(float).tolist())
    return lines


def aligned_char_confidences(log_probs: np.ndarray, labels: list[int]) -> list[float]:
    """Per character of ``labels`` (a decoded line's indices, 1-based into the charset): its
    highest probability over the frames the best CTC alignment of the whole line to ``log_probs``
    (T, K) reads it from. For a best-path line the alignment is the best path itself, so this
    equals :func:`greedy_char_confidences`; it also scores lines a beam or a lexicon chose. NaN
    per character where no alignment fits the frames."""
    if not labels:
        return []
    ext = np.zeros(2 * len(labels) + 1, dtype=np.int64)  # blank, c1, blank, c2, ..., blank
    ext[1::2] = labels
    frames, states = log_probs.shape[0], len(ext)
    emit = log_probs[:, ext]  # (T, S)
    skip = np.zeros(states, dtype=bool)  # a character may follow the previous one directly
    skip[2:] = (ext[2:] != 0) & (ext[2:] != ext[:-2])
    score = np.full(states, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((frames, states), dtype=np.int8)  # states moved back: 0, 1 or 2
    for t in range(1, frames):
        step = np.concatenate([[-np.inf], score[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        moves = np.stack([score, step, jump])
        back[t] = moves.argmax(0)
        score = moves.max(0) + emit[t]
    state = states - 1 if score[-1] >= score[-2] else states - 2
    if not np.isfinite(score[state]):
        return [float("nan")] * len(labels)
    peaks = np.zeros(len(labels))
    for t in range(frames - 1, -1, -1):
        if state % 2:
            k = state // 2
            peaks[k] = max(peaks[k], float(np.exp(emit[t, state])))
        state -= back[t, state]
    return peaks.tolist()
