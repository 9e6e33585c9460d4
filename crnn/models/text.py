"""Text CRNN: token embedding -> 1-D conv blocks over the tokens -> RNN -> head.

The input is a row of token ids (float32 like every shard input, 0 = padding) from
:class:`crnn.data.tokenizer.Tokenizer`; ``vocab_size`` comes from the shard set's features.
"""

from __future__ import annotations

import torch
from torch import nn

from crnn.models.crnn import ARCHITECTURES, HEADS, Architecture, ClassificationHead, RecurrentHead

PAD_ID, UNK_ID = 0, 1  # as in crnn.data.tokenizer (not imported: models do not depend on data code)


class ConvBlock1d(nn.Sequential):
    """k=3 conv over the token axis -> batch norm -> ReLU -> optional max-pool of ``pool`` steps."""

    def __init__(self, c_in: int, c_out: int, pool: int) -> None:
        layers: list[nn.Module] = [
            nn.Conv1d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
        ]
        if pool > 1:
            layers.append(nn.MaxPool1d(kernel_size=pool, stride=pool))
        super().__init__(*layers)


class TextCRNN(nn.Module):
    """Input (B, L) token ids. Convs see n-grams; the RNN reads the pooled sequence in order.

    ``pool`` keeps the (height, width) pairs of the image models so one config shape fits every
    architecture: only the width (the token axis) is used here.
    """

    def __init__(
        self,
        input_shape: tuple[int],
        num_classes: int,
        head: str = "classification",
        conv_channels: tuple[int, ...] = (64, 128),
        pool: tuple[tuple[int, int], ...] = ((1, 2), (1, 2)),
        rnn: str = "lstm",
        rnn_hidden: int = 128,
        rnn_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
        vocab_size: int = 20002,
        embedding_dim: int = 64,
        embedding_dropout: float = 0.0,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        (length,) = input_shape
        if vocab_size < 2:
            raise ValueError(f"vocab_size {vocab_size} < 2: it counts <pad> and <unk>")
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        # whole embedding channels dropped per text ("spatial" dropout): no single word feature
        # can carry a prediction alone
        self.embedding_dropout = nn.Dropout1d(embedding_dropout)
        if pooling not in ("mean", "max_mean"):
            raise ValueError(f"unknown pooling {pooling!r}; known: mean, max_mean")
        self.pooling = pooling
        blocks, c_in, steps = [], embedding_dim, length
        for c_out, p in zip(conv_channels, pool, strict=True):
            blocks.append(ConvBlock1d(c_in, c_out, int(p[1])))
            c_in, steps = c_out, steps // max(int(p[1]), 1)
        if steps < 1:
            raise ValueError(f"input of {length} tokens is too short for pooling {pool}")
        self.features = nn.Sequential(*blocks)
        self.seq_len = steps
        self.sequence = RecurrentHead(
            c_in, num_classes, head, rnn, rnn_hidden, rnn_layers, bidirectional, dropout
        )
        self.pooled: MaxMeanHead | None = None
        if pooling == "max_mean" and HEADS[head] is ClassificationHead:  # one class a text
            self.pooled = MaxMeanHead(rnn_hidden * (2 if bidirectional else 1), num_classes)
            self.sequence.head = nn.Identity()  # the pooled head reads the RNN's outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long()  # (B, L)
        # an id the embedding does not have (another tokenizer's) reads as <unk>, not a crash
        ids = ids.masked_fill((ids < 0) | (ids >= self.vocab_size), UNK_ID)
        emb = self.embedding_dropout(self.embedding(ids).transpose(1, 2))  # (B, E, L)
        f = self.features(emb)  # (B, C', T)
        if self.pooled is not None:  # the real steps of each text, pooled
            out = self.sequence.encode(f.transpose(1, 2))
            return self.pooled(out, _pooled_mask(ids != PAD_ID, f.shape[-1]))
        return self.sequence(f.transpose(1, 2))  # classification: (B, K); ctc: (B, T, K)


def _pooled_mask(tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, L) real-token mask -> (B, T): a step is real when any token pooled into it is."""
    mask = tokens.float().unsqueeze(1)
    if mask.shape[-1] != steps:
        mask = nn.functional.adaptive_max_pool1d(mask, steps)
    return mask.squeeze(1) > 0


class MaxMeanHead(nn.Module):
    """Max and mean over the real (non-padding) steps, concatenated, then a linear layer: the
    strongest cue anywhere in a text and its overall tone; padding never dilutes either."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * width, num_classes)

    def forward(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) outputs and (B, T) real steps -> (B, K) scores."""
        mask = mask.clone()
        mask[:, 0] |= ~mask.any(1)  # an all-padding row keeps its first step
        m = mask.unsqueeze(-1).to(seq.dtype)
        mean = (seq * m).sum(1) / m.sum(1)
        top = seq.masked_fill(~mask.unsqueeze(-1), torch.finfo(seq.dtype).min).amax(1)
        return self.proj(torch.cat([top, mean], dim=-1))


ARCHITECTURES.register("text_crnn")(
    Architecture(
        TextCRNN,
        {
            "conv_channels": (64, 128),
            "pool": ((1, 2), (1, 2)),
            "rnn_layers": 1,
            "embedding_dropout": 0.2,
            "pooling": "max_mean",
        },
        "text: embedding (channel dropout) -> 1-D convs -> RNN -> max + mean over real tokens",
        example_input=(32,),
    )
)
