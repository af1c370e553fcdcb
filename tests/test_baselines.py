"""Classical baselines on images whose answer is known."""

import jax
import numpy as np
import pytest
from scipy import fft

from gejax import baselines, metrics, operators, tasks
from gejax.experiments.cs import LASSO_ALPHA


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


def _blobs(n: int = 1, size: int = 32, channels: int = 1) -> np.ndarray:
    """Smooth images on black: a few Gaussian spots of 1.5-3 px, zero at the border (like
    MNIST's background, so zero-padded blur and FFT-based deconvolution agree)."""
    rng = np.random.default_rng(1)
    g = np.arange(size)
    x = np.zeros((n, size, size, channels))
    for img in x:
        for _ in range(4):
            cy, cx = rng.uniform(7, size - 7, 2)
            s = rng.uniform(1.5, 3)
            spot = np.exp(-((g[:, None] - cy) ** 2 + (g[None, :] - cx) ** 2) / (2 * s * s))
            img += rng.uniform(0.4, 0.8, channels) * spot[..., None]
    return np.clip(x, 0, 1).astype(np.float32)


def _gain(restored, degraded, x) -> float:
    """PSNR of the restoration minus PSNR of the degraded input, in dB."""
    return float(np.mean(metrics.psnr(restored, x)) - np.mean(metrics.psnr(degraded, x)))


def _dct_sparse(side: int, seed: int) -> np.ndarray:
    """A side x side image with 4 non-zero orthonormal DCT-II coefficients (SciPy), all of
    even frequency, so that each is one atom of the 1.5x-overcomplete dictionary."""
    rng = np.random.default_rng(seed)
    coef = np.zeros((side, side))
    coef[0, 0] = side / 2  # a mean of 0.5
    for _ in range(3):
        i, j = 2 * rng.integers(0, 5, 2)
        coef[i, j] += rng.choice([-1, 1]) * rng.uniform(0.8, 1.5)
    return fft.idctn(coef, norm="ortho")


@pytest.mark.parametrize("channels,m", [(1, 64), (3, 150)])
def test_lasso_dct_recovers_a_dct_sparse_image(channels, m):
    # 4 atoms per channel among 576 from m << H*W*C Gaussian measurements: compressed
    # sensing's promise. Each channel its own image, so a channel-layout mix-up fails.
    x = np.stack([_dct_sparse(16, seed) for seed in range(channels)], -1)[None]
    x = x.astype(np.float32)
    a = np.random.default_rng(0).standard_normal((m, x.size)).astype(np.float32)
    y = x.reshape(1, -1) @ a.T  # A vec(x), HWC order
    x_hat = baselines.lasso_dct(y, a, x.shape[1:], alpha=LASSO_ALPHA)
    assert x_hat.shape == x.shape
    err = np.mean((x_hat - x) ** 2, axis=(0, 1, 2))
    assert np.all(err < 1e-4), err  # ~5e-6; the images' variance is ~0.015


def test_bm3d_removes_most_of_the_papers_noise():
    x = _blobs()
    noisy = np.asarray(operators.gaussian_noise(x, jax.random.key(0), sigma=0.4))
    restored = baselines.bm3d_denoise(noisy, sigma=0.4)
    assert restored.shape == x.shape
    gain = _gain(restored, np.clip(noisy, 0, 1), x)
    assert gain > 8.0, gain  # ~12 dB


@pytest.mark.parametrize("name", ["wiener", "richardson_lucy"])
def test_deconvolution_with_the_true_kernel_sharpens(name):
    # The deblur task's own baseline, with the kernel it hands over, on its own x_dagger.
    x = _blobs()
    task = tasks.get("deblur")
    blurred = np.asarray(task.degrade(x, jax.random.key(0)))
    restored = task.baselines(x.shape[1:], jax.random.key(0))[name](blurred)
    assert restored.shape == x.shape
    gain = _gain(restored, np.clip(blurred, 0, 1), x)
    assert gain > 8.0, gain  # Wiener ~14 dB, Richardson-Lucy ~19 dB


@pytest.mark.parametrize("mask", ["block", "lines"])
def test_biharmonic_fills_holes_in_a_smooth_image(mask):
    yy, xx = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16), indexing="ij")
    x = (0.5 + 0.3 * np.sin(3 * xx + 2 * yy))[None, ..., None].astype(np.float32)
    m = np.asarray(operators.block_mask(x.shape[1:]) if mask == "block"
                   else operators.line_mask(jax.random.key(0), x.shape[1:]))
    masked = x * m
    restored = baselines.biharmonic_inpaint(masked, m)
    # The observed pixels are kept as they are; the holes are filled.
    np.testing.assert_allclose(restored * m, masked, atol=1e-6)
    assert float(np.max(np.abs(restored - x))) < 0.02  # ~5e-3; the mean would miss by 0.3
    assert _gain(restored, masked, x) > 15.0


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
