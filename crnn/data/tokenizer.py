"""The tokenizer of text pipelines: texts -> rows of token ids, fit on the training split only
and carried with the shards and the checkpoint."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from crnn.types.records import SourceFeatures

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Tokenizer:
    """Texts -> (N, max_length) float32 token ids, scikit-learn style (``fit``, ``transform``).

    ``kind="word"``: tokens are ``\\w+`` runs and single punctuation marks; ``kind="char"``: every
    character (spaces included). The vocabulary ``vocab_`` (token -> id) is learned by ``fit``:
    0 is padding (``<pad>``), 1 out-of-vocabulary (``<unk>``), real tokens from 2, most frequent
    first, ties alphabetical. Tokens seen fewer than ``min_count`` times, or beyond the
    ``max_vocab`` most frequent, are out-of-vocabulary. Longer texts are truncated, shorter ones
    padded with 0 at the end.
    """

    def __init__(
        self,
        kind: str = "word",
        lowercase: bool = True,
        max_length: int = 64,
        min_count: int = 1,
        max_vocab: int = 20000,
    ) -> None:
        if kind not in ("word", "char"):
            raise ValueError(f"unknown tokenizer kind {kind!r}; known: char, word")
        if max_length < 1 or min_count < 1 or max_vocab < 0:
            raise ValueError("max_length and min_count must be >= 1, max_vocab >= 0")
        self.kind = kind
        self.lowercase = lowercase
        self.max_length = max_length
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.vocab_: dict[str, int] = {}  # empty until fit: pad and unk are always in a fitted one

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, before truncation."""
        text = text.lower() if self.lowercase else text
        return TOKEN_PATTERN.findall(text) if self.kind == "word" else list(text)

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Learn the vocabulary from ``texts`` (all their tokens, not only the first max_length)."""
        counts = Counter(tok for text in texts for tok in self.tokenize(text))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [tok for tok, n in ranked if n >= self.min_count][: self.max_vocab]
        self.vocab_ = {PAD: PAD_ID, UNK: UNK_ID, **{tok: i + 2 for i, tok in enumerate(kept)}}
        return self

    @property
    def vocab_size(self) -> int:
        """Embedding rows a model needs: real tokens + pad + unk."""
        self._check_fitted()
        return len(self.vocab_)

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """(N, max_length) float32 ids; unknown tokens are 1, padding 0 at the end."""
        self._check_fitted()
        rows = [
            [self.vocab_.get(tok, UNK_ID) for tok in self.tokenize(t)[: self.max_length]]
            for t in texts
        ]
        out = np.zeros((len(rows), self.max_length), dtype=np.float32)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return out

    def fit_transform(self, texts: Iterable[str]) -> np.ndarray:
        texts = list(texts)
        return self.fit(texts).transform(texts)

    def decode(self, ids: Iterable[float]) -> list[str]:
        """Tokens of one row of ids, padding left out (unknown ids read as ``<unk>``)."""
        vocabulary = self.vocabulary
        return [
            vocabulary[i] if 0 <= i < len(vocabulary) else UNK
            for i in (int(x) for x in ids)
            if i != PAD_ID
        ]

    @property
    def vocabulary(self) -> list[str]:
        """Tokens in id order (index = id)."""
        self._check_fitted()
        return sorted(self.vocab_, key=self.vocab_.__getitem__)

    def to_features(self) -> SourceFeatures:
        """What a scorer needs to tokenize new text the same way (JSON-serializable)."""
        return {
            "kind": self.kind,
            "lowercase": self.lowercase,
            "max_length": self.max_length,
            "vocabulary": self.vocabulary,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_features(cls, features: SourceFeatures) -> Tokenizer:
        """A fitted tokenizer from :meth:`to_features` (as stored in a manifest or checkpoint)."""
        vocabulary = list(features["vocabulary"])
        if vocabulary[:2] != [PAD, UNK] or len(vocabulary) != int(features["vocab_size"]):
            raise ValueError("features hold no valid vocabulary: expected <pad>, <unk> first")
        tok = cls(
            features["kind"],
            bool(features["lowercase"]),
            int(features["max_length"]),
            max_vocab=len(vocabulary) - 2,
        )
        tok.vocab_ = {t: i for i, t in enumerate(vocabulary)}
        return tok

    def _check_fitted(self) -> None:
        if not self.vocab_:
            raise RuntimeError("Tokenizer is not fitted: call fit first")
