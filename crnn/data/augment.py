"""Augmentation by modality, registered by name; deterministic for a seed.

Images (and text-line images): a random affine map per sample (rotation, shear, scaling,
translation, so content pushed past the frame is cropped) resampled with border padding, then a
random contrast, a Gaussian blur and Gaussian noise. Nothing flips an image: text read backwards
is not text.
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
_IMAGE = (
    "rotation_degrees",
    "shear_degrees",
    "scale",
    "translate_px",
    "contrast",
    "blur_sigma",
    "noise_std",
)
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
    slant = torch.tan(uniform(-cfg.shear_degrees, cfg.shear_degrees) * (math.pi / 180))
    zoom = uniform(*cfg.scale)
    # affine_grid works in normalized coords [-1, 1]: a shift of p pixels is 2p / size
    tx = uniform(-cfg.translate_px[0], cfg.translate_px[0]) * (2 / w)
    ty = uniform(-cfg.translate_px[1], cfg.translate_px[1]) * (2 / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    aspect = h / w  # rotate and shear in pixel space, not in the stretched normalized space
    k = slant * aspect  # x_in += slant * y, in normalized coordinates
    theta = torch.stack(
        [
            torch.stack([cos, cos * k - sin * aspect, tx], dim=1),
            torch.stack([sin / aspect, sin / aspect * k + cos, ty], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3), maps output coords to input coords: rotation after shear
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if tuple(cfg.contrast) != (1.0, 1.0):
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = mean + (out - mean) * uniform(*cfg.contrast)[:, None, None, None]
    if cfg.blur_sigma > 0:
        out = _blur(out, uniform(0.0, cfg.blur_sigma))
    if cfg.noise_std > 0:
        out = out + cfg.noise_std * torch.randn(out.shape, generator=gen)
    return out.reshape(shape).numpy()


def _blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian blur of each image (N, C, H, W) with its own sigma (0: unchanged)."""
    n, c, h, w = x.shape
    radius = max(1, math.ceil(2 * float(sigmas.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.exp(-(offsets[None] ** 2) / (2 * sigmas.clamp(min=1e-3)[:, None] ** 2))
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    flat = x.reshape(1, n * c, h, w)
    across = F.conv2d(
        F.pad(flat, (radius, radius, 0, 0), mode="replicate"),
        kernels[:, None, None, :],
        groups=n * c,
    )
    down = F.conv2d(
        F.pad(across, (0, 0, radius, radius), mode="replicate"),
        kernels[:, None, :, None],
        groups=n * c,
    )
    return down.reshape(n, c, h, w)
