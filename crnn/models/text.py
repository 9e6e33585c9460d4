"""Text CRNN: token embedding -> 1-D conv blocks over the tokens -> RNN -> head.

The input is a row of token ids (float32 like every shard input, 0 = padding) from
:class:`crnn.data.tokenizer.Tokenizer`; ``vocab_size`` comes from the shard set's features.
"""

from __future__ import annotations

import torch
from torch import nn

from crnn.models.crnn import ARCHITECTURES, Architecture, RecurrentHead

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
    ) -> None:
        super().__init__()
        (length,) = input_shape
        if vocab_size < 2:
            raise ValueError(f"vocab_size {vocab_size} < 2: it counts <pad> and <unk>")
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long()  # (B, L)
        # an id the embedding does not have (another tokenizer's) reads as <unk>, not a crash
        ids = ids.masked_fill((ids < 0) | (ids >= self.vocab_size), UNK_ID)
        emb = self.embedding(ids)  # (B, L, E)
        f = self.features(emb.transpose(1, 2))  # (B, C', T)
        return self.sequence(f.transpose(1, 2))  # classification: (B, K); ctc: (B, T, K)


ARCHITECTURES.register("text_crnn")(
    Architecture(
        TextCRNN,
        {"conv_channels": (64, 128), "pool": ((1, 2), (1, 2)), "rnn_layers": 1},
        "text: embedding -> 1-D convs -> RNN",
        example_input=(32,),
    )
)
