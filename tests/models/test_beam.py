"""CTC prefix beam search: the most probable text over all alignments, a word list and a pattern
that hold it to allowed lines, carried with the model to the predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crnn.config import DecoderConfig, EvaluationConfig
from crnn.inference.decoder import decoder_record
from crnn.models.decoding import BeamDecoder, Constraint, ctc_beam_strings, ctc_greedy_strings


def _log(probs: list[list[float]]) -> np.ndarray:
    return np.log(np.asarray([probs], dtype=np.float64))


def test_beam_finds_the_text_the_best_path_misses() -> None:
    # blank 0.6 / "a" 0.4 twice: the best path is blank-blank (""), but "a" has 0.64 over its
    # three alignments (a-a, a-blank, blank-a) against 0.36 for ""
    lp = _log([[0.6, 0.4], [0.6, 0.4]])
    assert ctc_greedy_strings(torch.from_numpy(lp), "a") == [""]
    texts, probs = ctc_beam_strings(lp, "a", beam_width=4)
    assert texts == ["a"] and probs[0] == pytest.approx(0.64)


def test_beam_keeps_a_repeated_letter_only_across_a_blank() -> None:
    lp = _log([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    assert ctc_beam_strings(lp, "ab", beam_width=5)[0] == ["aa"]
    merged = _log([[0.05, 0.9, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    assert ctc_beam_strings(merged, "ab", beam_width=5)[0] == ["ab"]


def _frames(text: str, charset: str, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Per-frame probabilities spelling ``text`` (a blank between characters), blurred so a
    character is often read as its neighbour in the charset."""
    rows = []
    for ch in text:
        row = np.full(len(charset) + 1, 0.01)
        k = charset.index(ch) + 1
        row[k] = 1.0
        if rng.random() < noise:  # the right letter only second best
            row[1 + (k % len(charset))] = 1.3
        rows += [row / row.sum(), np.eye(len(charset) + 1)[0] * 0.9 + 0.1 / (len(charset) + 1)]
    return np.log(np.asarray(rows))


def test_a_lexicon_corrects_out_of_lexicon_greedy_reads_on_a_test_set() -> None:
    charset = "abcdefghij "
    rng = np.random.default_rng(0)
    lexicon = ["".join(rng.choice(list(charset[:-1]), 5)) for _ in range(40)]
    truths = [" ".join(rng.choice(lexicon, 2)) for _ in range(60)]
    frames = [_frames(t, charset, rng, noise=0.15) for t in truths]
    greedy = [ctc_greedy_strings(torch.from_numpy(f[None]), charset)[0] for f in frames]
    wrong = [i for i, (g, t) in enumerate(zip(greedy, truths, strict=True)) if g != t]
    assert len(wrong) >= 20  # the set is hard for the best path
    assert any(w not in lexicon for i in wrong for w in greedy[i].split(" "))
    constraint = Constraint(lexicon)
    fixed = [ctc_beam_strings(frames[i][None], charset, 10, constraint)[0][0] for i in wrong]
    right = sum(f == truths[i] for f, i in zip(fixed, wrong, strict=True))
    assert right >= 0.8 * len(wrong)
    assert all(all(w in lexicon for w in f.split(" ")) for f in fixed)


def test_a_pattern_picks_the_best_matching_line_of_the_beam() -> None:
    lp = _log([[0.05, 0.5, 0.45], [0.9, 0.05, 0.05], [0.05, 0.45, 0.5]])  # "ab" best, "ba" next
    assert ctc_beam_strings(lp, "ab", 5)[0] == ["ab"]
    assert ctc_beam_strings(lp, "ab", 5, Constraint(pattern="b.*"))[0][0].startswith("b")


def test_the_decoder_travels_as_a_record_and_the_predictor_task_uses_it(tmp_path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("cab\nbad\n\n cab \n", encoding="utf-8")
    record = decoder_record(DecoderConfig(kind="beam", beam_width=4, lexicon=str(words)))
    assert record == {"kind": "beam", "beam_width": 4, "lexicon": ["bad", "cab"]}
    assert decoder_record(EvaluationConfig().decoder) == {}  # greedy: nothing to carry
    beam = BeamDecoder({"kind": "beam", "beam_width": 4}, "a")
    logits = torch.log(torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]))
    assert beam(logits)[0] == ["a"]  # where greedy reads ""


def test_a_decoder_needs_a_ctc_head_and_a_compiling_pattern() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="does not compile"):
        DecoderConfig(kind="beam", regex="(")
