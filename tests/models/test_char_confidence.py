"""A probability per character of a decoded line: the frames that read it, found on the best path
(greedy) or by aligning the chosen line to the frames (a beam's or a lexicon's line)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crnn.models.decoding import (
    aligned_char_confidences,
    ctc_greedy_strings,
    greedy_char_confidences,
)
from crnn.tasks.sequence import SequenceTask
from crnn.types.kinds import TargetSpec


def test_each_character_reads_its_own_frames_best_probability() -> None:
    # frames: a (0.7), a (0.9), blank, b (0.6), blank, a (0.8): "aba", peaks 0.9, 0.6, 0.8
    probs = np.array(
        [
            [0.2, 0.7, 0.1],
            [0.05, 0.9, 0.05],
            [0.8, 0.1, 0.1],
            [0.3, 0.1, 0.6],
            [0.9, 0.05, 0.05],
            [0.1, 0.8, 0.1],
        ]
    )
    assert ctc_greedy_strings(torch.from_numpy(probs[None]), "ab") == ["aba"]
    assert greedy_char_confidences(probs[None]) == [pytest.approx([0.9, 0.6, 0.8])]
    assert aligned_char_confidences(np.log(probs), [1, 2, 1]) == pytest.approx([0.9, 0.6, 0.8])


def test_aligning_a_best_path_line_gives_the_best_paths_figures() -> None:
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0, 3, size=(40, 30, 6)))
    probs = logits.softmax(-1).numpy()
    texts = ctc_greedy_strings(logits, "abcde")
    greedy = greedy_char_confidences(probs)
    for text, peaks, p in zip(texts, greedy, probs, strict=True):
        assert len(peaks) == len(text)
        labels = ["abcde".index(c) + 1 for c in text]
        assert aligned_char_confidences(np.log(p), labels) == pytest.approx(peaks)


def test_a_line_that_cannot_fit_the_frames_has_no_figures() -> None:
    lp = np.log(np.full((2, 3), 1 / 3))  # two frames cannot spell "aa" (needs a blank between)
    assert np.isnan(aligned_char_confidences(lp, [1, 1])).all()
    assert aligned_char_confidences(lp, []) == []


def test_the_sequence_task_scores_a_beams_own_line() -> None:
    task = SequenceTask(TargetSpec(kind="sequence", charset="ab"))
    # the best path reads "" (blank 0.6 twice); the beam reads "a" (0.64 over its alignments)
    out = torch.log(torch.tensor([[[0.6, 0.4, 1e-6], [0.6, 0.4, 1e-6]]]))
    assert task.decode(out)[0] == [""] and task.char_confidences(out, None, [""]) == [[]]
    task.decoder = lambda logits: (["a"], np.array([0.64], np.float32))
    texts, _ = task.decode(out)
    assert texts == ["a"]
    assert task.char_confidences(out, None, texts) == [pytest.approx([0.4])]
    frames = torch.tensor([1])  # the second frame is past the line: only the first reads "a"
    assert task.char_confidences(out, frames, texts) == [pytest.approx([0.4])]
