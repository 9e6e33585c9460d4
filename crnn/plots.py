"""Figures saved as PNG for the run's artifacts (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """``fig`` as a PNG at ``path``, written atomically (no partial image on a full disk)."""
    from crnn.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path
) -> Path:
    plt = _pyplot()
    m = np.asarray(matrix)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(np.log1p(m), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_title("confusion matrix (test)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_learning_curves(history: Sequence[dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    keys = [k for k in history[0] if k.startswith("val_") and k != "val_loss"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for k in ("train_loss", "val_loss"):
        axes[0].plot(epochs, [h[k] for h in history], marker="o", label=k)
    axes[0].set_yscale("log")
    for k in keys:
        axes[1].plot(epochs, [h[k] for h in history], marker="o", label=k)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def display_image(image: np.ndarray) -> np.ndarray:
    """(H, W), (C, H, W) or a clip (T, C, H, W), any units -> (H, W[*T]) or (H, W[*T], 3) in [0, 1].

    A clip is shown as its frames side by side.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 4:
        x = np.concatenate(list(x), axis=-1)  # (C, H, T*W)
    x = x[0] if x.ndim == 3 and x.shape[0] == 1 else x
    x = x.transpose(1, 2, 0) if x.ndim == 3 else x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def plot_samples(
    images: np.ndarray, truths: Sequence[str], preds: Sequence[str], path: Path
) -> Path:
    """A gallery of input images captioned with truth and prediction (red when wrong)."""
    plt = _pyplot()
    n = len(images)
    cols = 4
    rows = max(1, -(-n // cols))
    h, w = images.shape[-2:]
    gray = images.ndim == 3 or images.shape[-3] == 1
    w = images.shape[-1] * (images.shape[1] if images.ndim == 5 else 1)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.0, rows * max(0.9, 3.0 * h / w + 0.5)))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, img, t, p in zip(np.atleast_1d(axes).ravel(), images, truths, preds, strict=False):
        ax.imshow(display_image(img), cmap="gray_r" if gray else None)
        ax.set_title(f"{t} -> {p}", fontsize=8, color="black" if t == p else "red")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_regression(truths: Sequence[float], preds: Sequence[float], path: Path) -> Path:
    """Predicted against true values (test), with the line of perfect predictions."""
    plt = _pyplot()
    y, p = np.asarray(truths, dtype=np.float64), np.asarray(preds, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.scatter(y, p, s=8, alpha=0.5)
    lo, hi = (float(min(y.min(), p.min())), float(max(y.max(), p.max()))) if len(y) else (0, 1)
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title("predicted vs true (test)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
