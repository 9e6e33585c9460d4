"""Inference from a self-describing checkpoint: raw inputs in, decoded predictions out.

The checkpoint carries the model spec, the weights and the preprocessing (normalization statistics,
charset or classes), so evaluation, the MLflow pyfunc and batch scoring run the same code on the
same fitted statistics, without pipelines.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crnn.data.raw import channel_axis, raw_to_inputs, reads_own_input
from crnn.data.user_images import as_image_list, fit_images
from crnn.engine.checkpoint import Checkpoint, load_checkpoint
from crnn.engine.device import resolve_device
from crnn.errors import DataError
from crnn.models import create_model, penultimate
from crnn.normalization import NormalizationStats, Normalizer
from crnn.tasks import task_for


@dataclass
class Predictions:
    outputs: list[Any]  # decoded string (sequence), class name or number (regression)
    confidence: np.ndarray  # (N,) probability of the output; NaN where the task has none
    # per character of each line (a line model), else None
    char_confidence: list[list[float]] | None = None
    # (N, D) penultimate-layer embeddings, when asked for (drift monitoring), else None
    embeddings: np.ndarray | None = None


class Predictor:
    """A model rebuilt from a checkpoint, with the preprocessing it was trained with."""

    def __init__(
        self, ckpt: Checkpoint, device: str = "auto", decoder: dict[str, Any] | None = None
    ) -> None:
        spec, prep = ckpt.model, ckpt.preprocessing
        self.device = resolve_device(device)
        self.model = create_model(
            spec.architecture, spec.input_shape, spec.num_outputs, **spec.kwargs
        )
        self.model.load_state_dict(ckpt.state_dict)
        self.model.to(self.device).eval()
        self.input_shape = prep.input_shape
        self.normalizer = Normalizer.from_stats(prep.normalization)
        self.target = prep.target
        self.task = task_for(prep.target)
        self.source, self.features = prep.source, prep.features
        self.image_model = prep.image_model
        self.any_width = prep.any_width and hasattr(self.model, "frames")
        self.decoder = ckpt.decoder if decoder is None else decoder  # how outputs become text
        if self.decoder.get("kind") == "beam":
            from crnn.models.decoding import BeamDecoder

            self.task.decoder = BeamDecoder(self.decoder, self.target.charset)  # type: ignore[attr-defined]

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", decoder: dict[str, Any] | None = None
    ) -> Predictor:
        """``decoder``: a decoder record (:mod:`crnn.inference.decoder`) in place of the one the
        checkpoint carries."""
        return cls(load_checkpoint(Path(path)), device, decoder)

    def predict_input(self, model_input: Any, batch_size: int = 256) -> Predictions:
        """Predict on what a user has: strings for a text model, waveforms / WAV bytes / paths
        for an audio model (see :mod:`crnn.data.raw`); for an image model, images of any size,
        range and polarity as arrays, files or bytes (see :mod:`crnn.data.user_images`); raw
        arrays otherwise."""
        if self.image_model and not reads_own_input(self.source.get("source")):
            images = as_image_list(model_input)
            batch, widths = fit_images(images, self.input_shape, self.features, self.any_width)
            return self.predict_normalized(self.prepare(batch), batch_size, widths)
        raw = raw_to_inputs(model_input, self.source, self.features)
        return self.predict_raw(raw, batch_size)

    def predict_raw(self, raw: np.ndarray, batch_size: int = 256) -> Predictions:
        """Predict on raw inputs (N, H, W) or (N, C, H, W), in source units (not normalized)."""
        return self.predict_normalized(self.prepare(raw), batch_size)

    def prepare(
        self, x: np.ndarray, normalization: NormalizationStats | None = None
    ) -> torch.Tensor:
        """Inputs -> the model's normalized tensor (N, *input_shape).

        ``normalization``: the statistics ``x`` is already normalized with (a shard set's), or
        None for source units. Inputs normalized with this model's own statistics pass as they are;
        others are taken back to source units first.
        """
        x = np.asarray(x, dtype=np.float32)
        # single-channel data may come without its channel axis: (N, H, W), (N, T, H, W)
        axis = channel_axis(self.input_shape)
        if axis is not None and self.input_shape[axis] == 1:
            squeezed = tuple(d for i, d in enumerate(self.input_shape) if i != axis)
            if x.shape[1:] == squeezed:
                x = np.expand_dims(x, 1 + axis)
        fits = x.shape[1:] == self.input_shape or (
            self.any_width and x.ndim == 4 and x.shape[1:3] == self.input_shape[:2]
        )  # a line model reads any width
        if not fits:
            raise DataError(
                f"inputs of shape {list(x.shape[1:])} do not match the model's "
                f"{list(self.input_shape)}"
            )
        if normalization is not None and normalization == self.normalizer.stats_:
            return torch.from_numpy(x)
        if normalization is not None:
            x = Normalizer.from_stats(normalization).inverse_transform(x)
        return torch.from_numpy(self.normalizer.transform(x))

    @torch.inference_mode()
    def predict_normalized(
        self,
        x: torch.Tensor,
        batch_size: int = 256,
        widths: np.ndarray | None = None,
        embed: bool = False,
    ) -> Predictions:
        """Predict on already-normalized inputs (N, C, H, W), e.g. a shard split. ``widths``:
        each row's real width when rows are right-padded (line models decode only its frames).
        ``embed``: keep each row's penultimate-layer embedding too."""
        if not embed:
            return self._predict(x, batch_size, widths)
        with penultimate(self.model) as kept:
            preds = self._predict(x, batch_size, widths)
        if kept:
            preds.embeddings = torch.cat(kept).numpy()
        return preds

    def _predict(self, x: torch.Tensor, batch_size: int, widths: np.ndarray | None) -> Predictions:
        outputs: list[Any] = []
        confidence: list[np.ndarray] = []
        chars: list[list[float]] | None = []  # None: the task's outputs have no parts
        for start in range(0, len(x), batch_size):
            frames = None
            if widths is not None and self.any_width:
                count: Any = getattr(self.model, "frames")  # noqa: B009 (a CRNN's method)
                frames = count(torch.as_tensor(widths[start : start + batch_size]))
            out = self.model(x[start : start + batch_size].to(self.device))
            decoded, conf = self.task.decode(out, frames)
            outputs += decoded
            confidence.append(conf)
            parts = self.task.char_confidences(out, frames, decoded)
            if chars is not None and parts is not None:
                chars.extend(parts)
            else:
                chars = None
        conf = np.concatenate(confidence) if confidence else np.zeros(0, dtype=np.float32)
        return Predictions(outputs=outputs, confidence=conf, char_confidence=chars)
