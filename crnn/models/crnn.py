"""The CRNN: conv blocks -> the feature map read as a sequence along the width -> RNN -> head.

The seed's Keras example (Conv2D -> MaxPool -> LSTM) cannot run as written: an LSTM needs a
sequence. Here the (C, H', W') feature map is turned into W' steps of C*H' features, so the RNN
walks the image left to right, as in Shi et al. (2015).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from crnn.config import ModelConfig
from crnn.registry import Registry
from crnn.types.records import SourceFeatures


class ConvBlock(nn.Sequential):
    """3x3 conv -> batch norm -> ReLU -> optional (h, w) max-pool."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        if tuple(pool) != (1, 1):
            layers.append(nn.MaxPool2d(kernel_size=tuple(pool), stride=tuple(pool)))
        super().__init__(*layers)


class RecurrentHead(nn.Module):
    """The recurrent half shared by every CRNN: RNN over a (B, T, F) sequence -> dropout -> head."""

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        head: str,
        rnn: str,
        rnn_hidden: int,
        rnn_layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn](
            input_size=input_size,
            hidden_size=rnn_hidden,
            num_layers=rnn_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if rnn_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        width = rnn_hidden * (2 if bidirectional else 1)
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        self.head: nn.Module = HEADS[head](width, num_classes)

    autocast_rnn = True  # False where the stack has no low-precision RNN (see crnn.engine.train)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> the RNN's (B, T, D) outputs after dropout, before the head."""
        kind = seq.device.type
        if not self.autocast_rnn and torch.is_autocast_enabled(kind):
            with torch.autocast(kind, enabled=False):
                out, _ = self.rnn(seq.float())
        else:
            out, _ = self.rnn(seq)  # (B, T, D)
        return self.dropout(out)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(seq))  # ctc: (B, T, K); classification: (B, K); (B,)


class CRNN(nn.Module):
    """CNN feature extractor + recurrent layer over the width + CTC or classification head."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        head: str = "ctc",
        conv_channels: tuple[int, ...] = (32, 64, 128),
        pool: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1)),
        rnn: str = "lstm",
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.1,
        sequence_axis: str = "width",
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        self.by_rows = sequence_axis == "height"
        if self.by_rows:  # read rows: the image is transposed, so rows become the "width"
            h, w = w, h
        blocks, c_in = [], c
        for c_out, p in zip(conv_channels, pool, strict=True):
            blocks.append(ConvBlock(c_in, c_out, p))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        try:
            with torch.no_grad():
                _, fc, fh, fw = self.features(torch.zeros(1, c, h, w)).shape
        except RuntimeError:
            fh = fw = 0
        if fh < 1 or fw < 1:
            raise ValueError(f"input {h}x{w} is too small for pooling {[list(p) for p in pool]}")
        self.seq_len = fw
        self.width_pools = [int(p[1]) for p in pool]
        self.sequence = RecurrentHead(
            fc * fh, num_classes, head, rnn, rnn_hidden, rnn_layers, bidirectional, dropout
        )

    def frames(self, widths: torch.Tensor) -> torch.Tensor | None:
        """Output frames of inputs ``widths`` pixels wide (each max-pool floors the width);
        None when the sequence runs down the rows."""
        if self.by_rows:
            return None
        out = widths.to(torch.long)
        for pw in self.width_pools:
            out = out // pw
        return out.clamp(min=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.by_rows:
            x = x.transpose(-1, -2)  # (B, C, W, H): the sequence runs down the rows
        f = self.features(x)  # (B, C', H', W')
        b, c, h, w = f.shape
        seq = f.permute(0, 3, 1, 2).reshape(b, w, c * h)  # (B, T=W', C'*H')
        return self.sequence(seq)  # ctc: (B, T, K); classification: (B, K)


class CTCHead(nn.Module):
    """Per-frame scores over characters + blank (index 0)."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, num_classes)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.proj(seq)  # (B, T, K)


class ClassificationHead(nn.Module):
    """Mean over time, then a linear layer: one label per input."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, num_classes)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.proj(seq.mean(dim=1))  # (B, T, D) -> (B, K)


class RegressionHead(nn.Module):
    """Mean over time, then a linear layer to one number (the standardized target)."""

    def __init__(self, width: int, num_outputs: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(width, num_outputs)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.proj(seq.mean(dim=1)).squeeze(-1)  # (B, T, D) -> (B,)


@contextmanager
def penultimate(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """The penultimate layer of every forward pass of ``model`` inside the block, one (B, D)
    float tensor on the CPU per pass: what the head reads (the recurrent output, averaged over
    time). Nothing is kept for a model without a :class:`RecurrentHead`."""
    kept: list[torch.Tensor] = []
    heads = [m.head for m in model.modules() if isinstance(m, RecurrentHead)]

    def keep(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seq = args[0]
        kept.append((seq.mean(dim=1) if seq.dim() == 3 else seq).detach().float().cpu())

    handles = [head.register_forward_pre_hook(keep) for head in heads[-1:]]
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()


# by ``model.head``: the head of each task kind (crnn.types.kinds names them)
HEADS: dict[str, type[nn.Module]] = {
    "ctc": CTCHead,
    "classification": ClassificationHead,
    "regression": RegressionHead,
}


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: a module class and the defaults its preset fixes."""

    module: type[nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    example_input: tuple[int, ...] = (1, 32, 128)  # a shape it accepts (tests sweep with it)


ARCHITECTURES: Registry[Architecture] = Registry("architecture")
ARCHITECTURES.register("crnn")(
    Architecture(CRNN, description="configurable CRNN; every model key applies")
)
ARCHITECTURES.register("crnn_small")(
    Architecture(
        CRNN,
        {"conv_channels": (16, 32, 64), "rnn_hidden": 64, "rnn_layers": 1},
        "small CRNN for quick runs and tests",
    )
)
ARCHITECTURES.register("crnn_shi2015")(
    Architecture(
        CRNN,
        {
            "conv_channels": (64, 128, 256, 256, 512, 512, 512),
            "pool": ((2, 2), (2, 2), (1, 1), (2, 1), (1, 1), (2, 1), (2, 1)),
            "rnn": "lstm",
            "rnn_hidden": 256,
            "rnn_layers": 2,
            "bidirectional": True,
        },
        "Shi et al. 2015 layout: 7 conv 64..512 (all 3x3), 2 BiLSTM of 256; 32-pixel lines",
    )
)


ARCHITECTURES.register("audio_crnn")(
    Architecture(
        CRNN,
        {"conv_channels": (32, 64, 128), "pool": ((2, 1), (2, 2), (2, 1)), "rnn_layers": 1},
        "audio: 2-D convs over a log-mel spectrogram (frequency pooled most) -> RNN over time",
        example_input=(1, 40, 63),
    )
)


def model_kwargs(cfg: ModelConfig, features: SourceFeatures | None = None) -> dict[str, Any]:
    """Resolved constructor arguments: config defaults < the preset < keys set in the config.

    Only arguments the architecture's module accepts are kept; data-dependent ones (such as a
    text model's ``vocab_size``) come from the shard set's ``features``.
    """
    arch = ARCHITECTURES.get(cfg.architecture)
    kwargs = cfg.model_dump(exclude={"architecture"})
    kwargs.update(arch.defaults)
    kwargs.update({k: getattr(cfg, k) for k in cfg.model_fields_set if k != "architecture"})
    if features and "vocab_size" in features:
        kwargs["vocab_size"] = int(features["vocab_size"])
    accepted = inspect.signature(arch.module.__init__).parameters
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items() if k in accepted}


def create_model(
    architecture: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any
) -> nn.Module:
    """Build a registered architecture (kwargs as returned by :func:`model_kwargs`)."""
    arch = ARCHITECTURES.get(architecture)
    if "pool" in kwargs:
        kwargs["pool"] = tuple(tuple(p) for p in kwargs["pool"])
    if "conv_channels" in kwargs:
        kwargs["conv_channels"] = tuple(kwargs["conv_channels"])
    return arch.module(tuple(input_shape), num_classes, **kwargs)
