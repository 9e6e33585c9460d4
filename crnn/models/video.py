"""Video CRNN: one CNN shared by every frame -> a feature vector per frame -> RNN over frames."""

from __future__ import annotations

import torch
from torch import nn

from crnn.models.crnn import ARCHITECTURES, Architecture, ConvBlock, RecurrentHead


class FrameCRNN(nn.Module):
    """Input (B, T, C, H, W): frames are encoded independently, then read in order by the RNN."""

    def __init__(
        self,
        input_shape: tuple[int, int, int, int],
        num_classes: int,
        head: str = "classification",
        conv_channels: tuple[int, ...] = (32, 64, 128),
        pool: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2)),
        rnn: str = "lstm",
        rnn_hidden: int = 128,
        rnn_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        _, c, _, _ = input_shape
        blocks, c_in = [], c
        for c_out, p in zip(conv_channels, pool, strict=True):
            blocks.append(ConvBlock(c_in, c_out, p))
            c_in = c_out
        self.frame_encoder = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.sequence = RecurrentHead(
            c_in, num_classes, head, rnn, rnn_hidden, rnn_layers, bidirectional, dropout
        )
        self.seq_len = input_shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        feats = self.frame_encoder(x.flatten(0, 1)).view(b, t, -1)  # (B*T, C,H,W) -> (B, T, F)
        return self.sequence(feats)  # classification: (B, K); ctc: (B, T, K)


ARCHITECTURES.register("video_crnn")(
    Architecture(
        FrameCRNN,
        {"pool": ((2, 2), (2, 2), (2, 2)), "rnn_layers": 1},
        "video: per-frame CNN shared across time -> RNN over frames",
        example_input=(8, 1, 24, 24),
    )
)
