import numpy as np
import torch

from crnn.config import AugmentationConfig, MovingDigitsData, PreprocessingConfig
from crnn.data.augment import AUGMENTERS, generator_for
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.data.video import motion_paths, render_clips

SMALL = MovingDigitsData(clips={"train": 40, "val": 10, "test": 14}, frames=6, frame_size=20)


def _centre_of_mass(clip: np.ndarray) -> np.ndarray:
    f = clip[:, 0]
    grid = np.arange(f.shape[-1])
    mass = f.sum(axis=(1, 2))
    return np.stack([(f.sum(axis=1) * grid).sum(1) / mass, (f.sum(axis=2) * grid).sum(1) / mass], 1)


def test_each_motion_moves_the_digit_the_way_its_label_says() -> None:
    digit = open_source(SMALL).images[:1]
    rng = np.random.default_rng(0)
    for motion, check in {
        "left": lambda c, m: c[-1, 0] < c[0, 0] - 5,
        "right": lambda c, m: c[-1, 0] > c[0, 0] + 5,
        "up": lambda c, m: c[-1, 1] < c[0, 1] - 5,
        "down": lambda c, m: c[-1, 1] > c[0, 1] + 5,
        "zoom_in": lambda c, m: m[-1] > 2 * m[0],
        "zoom_out": lambda c, m: m[0] > 2 * m[-1],
        "rotate": lambda c, m: abs(m[-1] - m[0]) < 0.2 * m[0],
    }.items():
        clip = render_clips(digit, motion_paths(motion, 8, rng)[None], 24)[0]
        assert clip.shape == (8, 1, 24, 24)
        assert check(_centre_of_mass(clip), clip.sum(axis=(1, 2, 3))), motion


def test_clips_are_deterministic_and_split_by_source_image() -> None:
    a, b = open_source(SMALL), open_source(SMALL)
    ca, cb = next(a.chunks("test", 100)), next(b.chunks("test", 100))
    np.testing.assert_array_equal(ca.inputs, cb.inputs)
    assert ca.inputs.shape == (14, 6, 1, 20, 20) and a.info().input_shape == (6, 1, 20, 20)
    assert not set(a.pools["train"]) & set(a.pools["test"])
    assert a.info().modality == "video" and a.info().target.num_outputs == 7


def test_video_augmentation_moves_all_frames_of_a_clip_together() -> None:
    frame = np.zeros((12, 16), np.float32)
    frame[4:8, 5:11] = 1.0
    clips = np.repeat(frame[None, None, None], 5, axis=1).repeat(3, axis=0)  # (3, 5, 1, 12, 16)
    cfg = AugmentationConfig(rotation_degrees=10, translate_px=(2, 2), scale=(0.9, 1.1))
    out = AUGMENTERS.get("video")(clips, cfg, generator_for(0))
    assert out.shape == clips.shape
    for clip in out:  # identical frames in, identical frames out: one transform per clip
        assert all(np.allclose(clip[0], f) for f in clip[1:])
    assert not np.allclose(out[0], out[1])  # but clips differ from each other
    again = AUGMENTERS.get("video")(clips, cfg, generator_for(0))
    np.testing.assert_array_equal(out, again)


def test_temporal_jitter_shifts_frames_within_the_clip() -> None:
    clip = np.arange(6, dtype=np.float32)[None, :, None, None, None] * np.ones((4, 6, 1, 3, 3))
    out = AUGMENTERS.get("video")(clip, AugmentationConfig(temporal_jitter=2), generator_for(1))
    firsts = out[:, :, 0, 0, 0]
    for row in firsts:  # still ordered frames of the same clip, shifted by at most 2
        assert np.all(np.diff(row) >= 0) and abs(row[0] - 0) <= 2
    assert len({tuple(r) for r in firsts}) > 1


def test_moving_digits_shards_and_video_model_learn(tmp_path) -> None:
    from crnn.config import ModelConfig, TrainingConfig
    from crnn.engine.train import train_on_shards
    from crnn.inference.predictor import Predictor

    data = SMALL.model_copy(update={"motions": ("left", "right", "zoom_in")})
    shards = preprocess(
        data,
        PreprocessingConfig(
            augmentation={"copies": 1, "translate_px": (1, 1), "temporal_jitter": 1}
        ),
        tmp_path / "s",
    )
    manifest = load_manifest(shards.manifest_path)
    assert manifest.input_shape == [6, 1, 20, 20] and manifest.source["modality"] == "video"
    assert manifest.splits["train"] == {"rows": 80, "original": 40, "augmented": 40}
    model_cfg = ModelConfig(
        architecture="video_crnn", head="classification", conv_channels=(8, 16, 16), rnn_hidden=16
    )
    training = TrainingConfig(
        epochs=6,
        batch_size=8,
        lr=0.01,
        device="cpu",
        schedule="constant",
        early_stopping={"monitor": "val_loss", "mode": "min", "patience": 10},
    )
    result = train_on_shards(shards.manifest_path, model_cfg, training, tmp_path / "ckpt")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    # raw clips without their channel axis are accepted by the predictor
    chunk = next(open_source(data).chunks("test", 100))
    predictor = Predictor.from_checkpoint(result.last_checkpoint, device="cpu")
    with_axis = predictor.predict_raw(chunk.inputs).outputs
    without = predictor.predict_raw(chunk.inputs[:, :, 0]).outputs
    assert with_axis == without and set(with_axis) <= {"left", "right", "zoom_in"}
    assert torch.is_tensor(load_split(shards.manifest_path, "test").inputs)


def _frames(direction: int, n: int = 10, size: int = 24) -> np.ndarray:
    """A bright bar sweeping left (-1) or right (+1): (n, size, size) uint8."""
    out = np.zeros((n, size, size), np.uint8)
    for t in range(n):
        x = int((t if direction > 0 else n - 1 - t) * (size - 4) / (n - 1))
        out[t, :, x : x + 4] = 255
    return out


def _write_video(path, frames: np.ndarray, codec: str) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for f in frames:
            rgb = np.repeat(f[..., None], 3, axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_clips_in_every_format(tmp_path) -> None:
    from PIL import Image

    from crnn.config import VideoClipsData

    root = tmp_path / "clips"
    for cls, direction in (("left", -1), ("right", 1)):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            frames = _frames(direction, n=8 + k)
            np.save(root / cls / f"a{k}.npy", frames)
            np.savez(root / cls / f"b{k}.npz", frames=frames)
            (root / cls / f"c{k}").mkdir()
            for t, f in enumerate(frames):
                Image.fromarray(f).save(root / cls / f"c{k}" / f"{t:03d}.png")
            _write_video(root / cls / f"d{k}.mp4", frames, "mpeg4")
            _write_video(root / cls / f"e{k}.avi", frames, "mjpeg")
    (root / "left" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    np.save(root / "right" / "flat.npy", np.zeros(5))  # a 1-D array is not a clip
    cfg = VideoClipsData(path=str(root), frames=6, frame_size=(16, 16))
    src = open_source(cfg)
    assert src.info().input_shape == (6, 1, 16, 16) and src.info().modality == "video"
    shards = preprocess(
        cfg,
        PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=1.0),
        tmp_path / "s",
    )
    manifest = load_manifest(shards.manifest_path)
    assert manifest.quarantine.by_reason == {"unreadable_video": 2}
    assert sum(c["original"] for c in manifest.splits.values()) == 2 * 3 * 5
    # every format decodes to the same motion: the bar's centre moves the labelled way
    for split in ("train", "val", "test"):
        data = load_split(shards.manifest_path, split)
        for clip, label, sample_id in zip(data.inputs, data.labels, data.sample_ids, strict=True):
            f = clip[:, 0].numpy()
            cx = (f.sum(axis=1) * np.arange(16)).sum(1) / f.sum(axis=(1, 2))
            moved = cx[-1] - cx[0]
            assert (moved > 4) if src.info().target.classes[label] == "right" else (moved < -4), (
                sample_id
            )


def test_frame_sampling_is_even_and_repeats_short_clips() -> None:
    from crnn.data.video import sample_frames

    clip = np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones((10, 4, 4, 1))
    assert sample_frames(clip, 4, (4, 4))[:, 0, 0, 0].tolist() == [0, 3, 6, 9]
    short = clip[:2]
    assert sample_frames(short, 4, (4, 4))[:, 0, 0, 0].tolist() == [0, 0, 1, 1]
