"""Classical baselines on images whose answer is known."""

import numpy as np
import pytest

from gejax import baselines, metrics, operators


def _strokes(n: int = 4, size: int = 32) -> np.ndarray:
    """Digit-like images: a few bright bars on black, like padded MNIST."""
    rng = np.random.default_rng(0)
    x = np.zeros((n, size, size, 1), np.float32)
    for img in x:
        for _ in range(3):
            r, c = rng.integers(6, size - 10, size=2)
            if rng.random() < 0.5:
                img[r:r + 2, c:c + 8] = 1.0
            else:
                img[r:r + 8, c:c + 2] = 1.0
    return x


def test_blind_richardson_lucy_sharpens_without_the_kernel():
    x = _strokes()
    blurred = np.asarray(operators.gaussian_blur(x, sigma=1.5))
    restored = baselines.blind_richardson_lucy_deconvolve(
        blurred, operators.default_blur_kernel_size(1.5), num_iter=30)
    assert restored.shape == x.shape and 0 <= restored.min() and restored.max() <= 1
    gain = np.mean(metrics.psnr(restored, x)) - np.mean(metrics.psnr(np.clip(blurred, 0, 1), x))
    assert gain > 1.0, gain


def test_blind_richardson_lucy_needs_an_odd_kernel_size():
    with pytest.raises(ValueError, match="odd"):
        baselines.blind_richardson_lucy_deconvolve(_strokes(1), 4)
