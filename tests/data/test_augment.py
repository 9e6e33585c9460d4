import numpy as np

from crnn.config import AugmentationConfig
from crnn.data.augment import AUGMENTERS, augment_images, generator_for


def _images() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((6, 12, 40), dtype=np.float32)
    x[:, 3:9, 10:30] = rng.uniform(0.5, 1, size=(6, 6, 20))
    return x


CFG = AugmentationConfig(
    copies=1, rotation_degrees=5, scale=(0.9, 1.1), translate_px=(2, 1), noise_std=0.05
)


def test_same_seed_same_output_other_seed_differs() -> None:
    x = _images()
    a = augment_images(x, CFG, generator_for(7, 0, 1))
    b = augment_images(x, CFG, generator_for(7, 0, 1))
    c = augment_images(x, CFG, generator_for(8, 0, 1))
    d = augment_images(x, CFG, generator_for(7, 1, 1))  # another chunk: another stream
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)
    assert a.shape == x.shape and a.dtype == np.float32


def test_identity_when_every_amount_is_zero() -> None:
    x = _images()
    out = augment_images(x, AugmentationConfig(), generator_for(0))
    np.testing.assert_allclose(out, x, atol=1e-5)


def test_translation_moves_content() -> None:
    x = _images()
    cfg = AugmentationConfig(translate_px=(3, 0))
    out = augment_images(x, cfg, generator_for(3))
    # content shifted horizontally but the total ink is (almost) conserved
    assert not np.allclose(out, x, atol=1e-3)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), x.sum(axis=(1, 2)), rtol=0.2)


def test_input_is_not_modified_and_registry() -> None:
    x = _images()
    before = x.copy()
    AUGMENTERS.get("image")(x, CFG, generator_for(0))
    np.testing.assert_array_equal(x, before)


def test_shear_slants_a_vertical_stroke() -> None:
    x = np.zeros((1, 24, 40), dtype=np.float32)
    x[0, :, 19:21] = 1.0  # a vertical stroke, full height
    out = augment_images(x, AugmentationConfig(shear_degrees=20), generator_for(1))[0]
    top, bottom = out[1].argmax(), out[-2].argmax()  # the stroke's column at the top and bottom
    assert abs(int(top) - int(bottom)) >= 4  # tan(<=20 deg) * 22 rows: slanted
    assert np.allclose(out.sum(), x.sum(), rtol=0.25)  # moved, not erased


def test_contrast_and_blur_keep_the_mean_and_soften_edges() -> None:
    x = _images()
    low = augment_images(x, AugmentationConfig(contrast=(0.5, 0.5)), generator_for(2))
    np.testing.assert_allclose(low.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(low.std(axis=(1, 2)), 0.5 * x.std(axis=(1, 2)), rtol=1e-4)
    blurred = augment_images(x, AugmentationConfig(blur_sigma=2.0), generator_for(3))
    assert np.abs(np.diff(blurred, axis=2)).sum() < 0.8 * np.abs(np.diff(x, axis=2)).sum()
    np.testing.assert_allclose(blurred.mean(), x.mean(), rtol=0.05)
