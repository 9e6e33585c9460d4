"""Where and how the engine computes: device, mixed precision, seeding, what the RNN runs in, and
the compiled convolutional front-end. Needs only torch."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from crnn.errors import ConfigError
from crnn.models.crnn import RecurrentHead

# the convolutional front-ends of the registered architectures; RNNs break compiled graphs
FRONT_ENDS = ("features", "frame_encoder")


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else as given."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"training.device is {spec!r} but no CUDA device is available; use auto or cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"training.device is {spec!r} but MPS is not available; use auto or cpu")
    return device


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if spec == "fp32" or (spec == "auto" and device.type != "cuda"):
        return None
    if spec == "fp16" and device.type != "cuda":
        raise ConfigError("training.precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    if spec == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[spec]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def configure_rnn_precision(
    model: nn.Module, device: torch.device, amp_dtype: torch.dtype | None
) -> str:
    """Run one tiny batch through each recurrent head under autocast: where the stack has no
    low-precision RNN (cuDNN < 9.13 for bf16) it raises, and the heads then run in fp32.
    Returns what the RNN really runs in."""
    heads = [m for m in model.modules() if isinstance(m, RecurrentHead)]
    if amp_dtype is None or not heads:
        return "float32"
    ran = "float32"
    for head in heads:
        rnn = head.rnn
        probe = torch.zeros(2, 3, rnn.input_size, device=device)
        try:
            with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype):
                ran = str(rnn(probe)[0].dtype).split(".")[-1]
        except RuntimeError:
            head.autocast_rnn = False
            ran = "float32"
    return ran


def compile_front_end(model: nn.Module) -> list[str]:
    """``torch.compile`` each convolutional front-end of ``model`` in place; returns their names.

    The module's ``forward`` is compiled, not the module: ``nn.Module.compile()`` compiles
    ``_call_impl``, which Dynamo skips for built-in containers such as ``nn.Sequential``, so it
    silently ran eager (pytorch/pytorch#150915). Weights and state_dict keys stay as they are.
    """
    compiled = []
    for name in FRONT_ENDS:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            module.forward = torch.compile(module.forward)
            compiled.append(name)
    return compiled
