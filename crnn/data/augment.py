"""Augmentation by modality, registered by name; deterministic for a seed.

Images (and text-line images): a random affine map per sample (rotation, scaling, translation, so
content pushed past the frame is cropped) resampled with border padding, then Gaussian noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from crnn.config import AugmentationConfig
from crnn.registry import Registry

Augmenter = Callable[[np.ndarray, AugmentationConfig, torch.Generator], np.ndarray]
AUGMENTERS: Registry[Augmenter] = Registry("augmenter")
# the augmentation keys each modality's augmenter reads (copies and seed apply to all): the
# settings a run of that modality is logged with
_IMAGE = ("rotation_degrees", "scale", "translate_px", "noise_std")
AUGMENTATION_KEYS: dict[str, tuple[str, ...]] = {
    "image": _IMAGE,
    "video": (*_IMAGE, "temporal_jitter"),
    "audio": ("time_shift", "time_masks", "freq_masks", "mask_width", "noise_std"),
    "text": ("token_dropout", "token_swaps"),
}


def generator_for(seed: int, *stream: int) -> torch.Generator:
    """A torch generator seeded from ``seed`` and a stream id (chunk index, copy number...)."""
    mixed = np.random.SeedSequence([seed, *stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & 0x7FFF_FFFF_FFFF_FFFF)


@AUGMENTERS.register("image")
def augment_images(x: np.ndarray, cfg: AugmentationConfig, gen: torch.Generator) -> np.ndarray:
    """Augment normalized images (N, H, W) or (N, C, H, W); returns a new array of that shape."""
    shape = x.shape
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    t = t[:, None] if t.ndim == 3 else t  # (N, C, H, W); noise below is per pixel
    n, c, h, w = t.shape

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-cfg.rotation_degrees, cfg.rotation_degrees) * (math.pi / 180)
    zoom = uniform(*cfg.scale)
    # affine_grid works in normalized coords [-1, 1]: a shift of p pixels is 2p / size
    tx = uniform(-cfg.translate_px[0], cfg.translate_px[0]) * (2 / w)
    ty = uniform(-cfg.translate_px[1], cfg.translate_px[1]) * (2 / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    aspect = h / w  # rotate in pixel space, not in the stretched normalized space
    theta = torch.stack(
        [
            torch.stack([cos, -sin * aspect, tx], dim=1),
            torch.stack([sin / aspect, cos, ty], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3), maps output coords to input coords
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.noise_std > 0:
        out = out + cfg.noise_std * torch.randn(out.shape, generator=gen)
    return out.reshape(shape).numpy()
