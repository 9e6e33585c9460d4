"""Video: the moving-digits source (clips rendered from real sklearn digits) and clip augmentation.

A clip is (T, 1, H, W): every frame shows the same digit image moved by an affine map that changes
over time (translation for left/right/up/down, scale for zoom in/out, angle for rotate).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from crnn.config import AugmentationConfig, MovingDigitsData, VideoClipsData
from crnn.data.augment import AUGMENTERS, augment_images
from crnn.data.embedded import _digest, _sklearn_digits
from crnn.data.files import (
    IMAGE_SUFFIXES,
    class_folders,
    files_digest,
    new_data_files,
    refused,
    require_input,
    require_path,
    visible_under,
)
from crnn.data.sources import SOURCES, SPLITS, TargetSpec, per_file_chunks
from crnn.data.splits import split_indices
from crnn.errors import DataError
from crnn.types.records import Chunk, SourceFeatures, SourceInfo


def motion_paths(motion: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame (dx, dy, scale, angle) of one clip; dx, dy in normalized frame coordinates."""
    t = np.linspace(0.0, 1.0, frames)
    dx = np.full(frames, rng.uniform(-0.25, 0.25))
    dy = np.full(frames, rng.uniform(-0.25, 0.25))
    scale = np.full(frames, rng.uniform(0.9, 1.1))
    angle = np.zeros(frames)
    travel = rng.uniform(0.8, 1.1)  # share of the frame crossed
    if motion in ("left", "right"):
        dx = (t - 0.5) * travel * (1 if motion == "right" else -1)
    elif motion in ("up", "down"):
        dy = (t - 0.5) * travel * (1 if motion == "down" else -1)
    elif motion in ("zoom_in", "zoom_out"):
        lo, hi = rng.uniform(0.55, 0.7), rng.uniform(1.4, 1.7)
        scale = lo + (hi - lo) * (t if motion == "zoom_in" else 1 - t)
    elif motion == "rotate":
        angle = t * rng.uniform(100, 160) * (1 if rng.random() < 0.5 else -1) * math.pi / 180
    return np.stack([dx, dy, scale, angle], axis=1)


def render_clips(digits: np.ndarray, paths: np.ndarray, size: int) -> np.ndarray:
    """(N, 8, 8) digits and (N, T, 4) paths -> (N, T, 1, size, size) float32 clips."""
    n, frames = paths.shape[:2]
    canvas = np.zeros((n, size, size), np.float32)
    o = (size - digits.shape[1]) // 2
    canvas[:, o : o + digits.shape[1], o : o + digits.shape[2]] = digits
    p = torch.from_numpy(paths.reshape(n * frames, 4)).float()
    cos, sin = torch.cos(p[:, 3]) / p[:, 2], torch.sin(p[:, 3]) / p[:, 2]
    # output -> input map: input = R(-a)(out - d) / s
    a = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # (NT, 2, 2)
    b = -(a @ p[:, :2, None])[..., 0]
    theta = torch.cat([a, b[:, :, None]], dim=2)
    src = torch.from_numpy(canvas).repeat_interleave(frames, 0)[:, None]  # (NT, 1, S, S)
    grid = F.affine_grid(theta, [n * frames, 1, size, size], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(n, frames, 1, size, size).numpy()


@SOURCES.register("moving_digits")
class MovingDigitsSource:
    """Clips of a sklearn digit moving one way; the label is the motion."""

    def __init__(self, cfg: MovingDigitsData) -> None:
        self.cfg = cfg
        self.images, labels = _sklearn_digits()
        self.pools = split_indices(labels, cfg.split, cfg.seed)
        self._raw = _digest(self.images.tobytes(), labels.tobytes())

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        s = self.cfg.frame_size
        return SourceInfo(
            name="moving_digits",
            description=f"moving sklearn digits: {self.cfg.frames} frames of {s}x{s}, "
            f"{len(self.cfg.motions)} motions",
            digest=_digest(self._raw, json.dumps(config, sort_keys=True)),
            input_shape=(self.cfg.frames, 1, s, s),
            target=TargetSpec(kind="class", classes=tuple(self.cfg.motions)),
            config=config,
            modality="video",
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        n_clips = getattr(self.cfg.clips, split)
        rng = np.random.default_rng([self.cfg.seed, 100 + SPLITS.index(split)])
        for start in range(0, n_clips, chunk_rows):
            n = min(chunk_rows, n_clips - start)
            digits = rng.choice(self.pools[split], size=n)
            labels = rng.integers(0, len(self.cfg.motions), size=n)
            paths = np.stack(
                [motion_paths(self.cfg.motions[k], self.cfg.frames, rng) for k in labels]
            )
            yield Chunk(
                split=split,
                sample_ids=[f"{split}-{i:07d}" for i in range(start, start + n)],
                inputs=render_clips(self.images[digits], paths, self.cfg.frame_size),
                labels=labels.astype(np.int64),
            )


@AUGMENTERS.register("video")
def augment_clips(x: np.ndarray, cfg: AugmentationConfig, gen: torch.Generator) -> np.ndarray:
    """The same spatial transform on every frame of a clip, plus a temporal shift per clip."""
    n, frames = x.shape[:2]
    if cfg.temporal_jitter:
        shift = torch.randint(-cfg.temporal_jitter, cfg.temporal_jitter + 1, (n,), generator=gen)
        index = (torch.arange(frames)[None, :] + shift[:, None]).clamp(0, frames - 1).numpy()
        x = np.take_along_axis(x, index.reshape(n, frames, *([1] * (x.ndim - 2))), axis=1)
    # one transform per clip: fold the frames into the channel axis of a single image
    c, h, w = x.shape[2:]
    folded = augment_images(x.reshape(n, frames * c, h, w), cfg, gen)
    return folded.reshape(x.shape)


# ------------------------------------------------------------------------------ video files

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def read_clip(path: Path, gray: bool) -> np.ndarray:
    """All frames of one clip as (T, H, W, C) float32, whatever its format."""
    if path.is_dir():
        from PIL import Image

        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        mode = "L" if gray else "RGB"
        arrays = []
        for f in frames:
            with Image.open(f) as img:
                arrays.append(np.asarray(img.convert(mode), dtype=np.float32))
        data = np.stack(arrays) if arrays else np.zeros((0, 1, 1), np.float32)
    elif path.suffix in (".npy", ".npz"):
        loaded = np.load(path, allow_pickle=False)  # never unpickle a user's file
        if isinstance(loaded, np.lib.npyio.NpzFile):
            key = "frames" if "frames" in loaded.files else loaded.files[0]
            data = loaded[key]
        else:
            data = loaded
    else:
        import av

        with av.open(str(path)) as container:
            fmt = "gray" if gray else "rgb24"
            data = np.stack([f.to_ndarray(format=fmt) for f in container.decode(video=0)])
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4 or data.shape[0] == 0:
        raise ValueError(f"expected frames (T, H, W[, C]), got shape {list(data.shape)}")
    if gray and data.shape[-1] == 3:
        data = (data * np.array([0.299, 0.587, 0.114], np.float32)).sum(-1, keepdims=True)
    if not gray and data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    return data


def sample_frames(clip: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, C) -> (frames, C, h, w): evenly spaced frames (repeated when T is short)."""
    index = np.linspace(0, len(clip) - 1, frames).round().astype(int)
    t = torch.from_numpy(np.ascontiguousarray(clip[index])).permute(0, 3, 1, 2)  # (F, C, H, W)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False).numpy()


@SOURCES.register("video_clips")
class VideoClipsSource:
    """CLASS/<clip> under ``data.path``; a clip is a frame folder, .npy/.npz, or a video file."""

    WHAT = "one folder per class of clips (frame folders, .npy/.npz arrays, .mp4/.avi files)"

    def __init__(self, cfg: VideoClipsData) -> None:
        self.cfg = cfg
        self.root = require_path(cfg.path, self.WHAT)
        self.classes, others = class_folders(self.root, self.root, cfg.follow_symlinks)
        clips = [(p, k) for k, cls in enumerate(self.classes) for p in _clips(self.root / cls)]
        # the clips of folders that cannot be classes: quarantined, under train
        self.set_aside = [
            refused(p, self.root, "train", why) for d, why in others for p in _clips(d)
        ]
        if not clips:
            raise DataError(f"{self.root}: no clips found; expected {self.WHAT}")
        self.clips = clips
        labels = np.array([c for _, c in clips])
        self.pools = split_indices(labels, cfg.split, cfg.seed)
        self.channels = 1 if cfg.mode == "grayscale" else 3

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        files = [f for p, _ in self.clips for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
        return SourceInfo(
            name="video_clips",
            description=f"video clips in {self.root}: {len(self.clips)} clips, "
            f"{len(self.classes)} classes",
            digest=files_digest(files, {k: v for k, v in config.items() if k != "path"}),
            input_shape=(self.cfg.frames, self.channels, *self.cfg.frame_size),
            target=TargetSpec(kind="class", classes=self.classes),
            config=config,
            modality="video",
        )

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        clips = [self.clips[i] for i in self.pools[split]]
        read, shape = clip_reader(self.cfg)
        if split == "train" and self.set_aside:  # counted, never dropped
            yield Chunk(split, [], np.zeros((0, *shape), np.float32), quarantined=self.set_aside)
        files, labels = [p for p, _ in clips], np.array([c for _, c in clips], np.int64)
        reason, follow = "unreadable_video", self.cfg.follow_symlinks
        yield from per_file_chunks(
            files, self.root, chunk_rows, read, shape, reason, split, labels, follow_symlinks=follow
        )

    @classmethod
    def new_data(
        cls, cfg: VideoClipsData, features: SourceFeatures, chunk_rows: int
    ) -> Iterator[Chunk]:
        """Every clip under ``cfg.path``: video and .npy/.npz files, and folders of frames."""
        root = require_input(cfg.path)
        follow = cfg.follow_symlinks
        files = new_data_files(root, VIDEO_SUFFIXES | {".npy", ".npz"}, follow)
        frame_dirs = [
            p
            for p in ([root] if root.is_dir() else []) + visible_under(root, follow)
            if p.is_dir()
            and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir() if f.is_file())
        ]
        clips = sorted({*files, *frame_dirs})  # a folder link that leaves root: listed once
        if not clips:
            raise DataError(f"{root}: no clips to score (video files, .npy/.npz, frame folders)")
        read, shape = clip_reader(cfg)
        yield from per_file_chunks(
            clips, root, chunk_rows, read, shape, "unreadable_video", follow_symlinks=follow
        )


def _clips(folder: Path) -> list[Path]:
    """The clips in a class folder: frame folders, video and array files."""
    suffixes = VIDEO_SUFFIXES | {".npy", ".npz"}
    return [p for p in sorted(folder.iterdir()) if p.is_dir() or p.suffix.lower() in suffixes]


def clip_reader(cfg: VideoClipsData) -> tuple[Callable[[Path], np.ndarray], tuple[int, ...]]:
    """(clip -> its (frames, C, h, w) sampled frames, that shape) for ``cfg``."""
    channels = 1 if cfg.mode == "grayscale" else 3

    def read(path: Path) -> np.ndarray:
        return sample_frames(read_clip(path, gray=channels == 1), cfg.frames, cfg.frame_size)

    return read, (cfg.frames, channels, *cfg.frame_size)
