"""MSE, PSNR and SSIM against scikit-image, tight enough that another window or sigma fails."""

import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from gejax import metrics


def _pair(shape, noise=0.1, seed=0):
    """A smooth image and a noisy copy: SSIM's window and weights matter on these."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[1]), np.linspace(0, 1, shape[2]),
                         indexing="ij")
    a = np.stack([0.5 + 0.3 * np.sin(3 * xx + 2 * yy + k) for k in range(shape[3])], -1)
    a = np.broadcast_to(a, shape) * rng.uniform(0.6, 1.0, (shape[0], 1, 1, 1))
    b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
    return a.astype(np.float32), b.astype(np.float32)


def test_mse_and_psnr_per_image():
    a = jnp.zeros((3, 8, 8, 1))
    b = a.at[1].set(0.1).at[2].set(0.5)
    np.testing.assert_allclose(metrics.mse(a, b), [0.0, 0.01, 0.25], rtol=1e-6)
    np.testing.assert_allclose(metrics.psnr(a[1:], b[1:]), [20.0, 10 * np.log10(4)], rtol=1e-5)


@pytest.mark.parametrize("shape", [(3, 16, 16, 1), (2, 12, 20, 3)])
def test_mse_and_psnr_match_scikit_image(shape):
    a, b = _pair(shape)
    ref_mse = [mean_squared_error(a[i], b[i]) for i in range(len(a))]
    ref_psnr = [peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(len(a))]
    np.testing.assert_allclose(metrics.mse(a, b), ref_mse, rtol=1e-5)
    np.testing.assert_allclose(metrics.psnr(a, b), ref_psnr, rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 32, 32, 1), (2, 24, 28, 3)])
def test_ssim_matches_scikit_image(shape):
    # Wang et al.'s SSIM: 11x11 Gaussian window of sigma 1.5, population covariances, the
    # mean over the valid region and the channels. dm-pix and scikit-image agree to ~2e-7;
    # a window of 5 or 7, sigma 1.0 or 2.5, or the sample covariance each miss by > 4e-4.
    a, b = _pair(shape)
    ours = metrics.ssim(a, b)
    ref = [structural_similarity(a[i], b[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=-1)
           for i in range(len(a))]
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, rtol=1e-5)


def test_ssim_ranks_noisier_copies_lower():
    a, b1 = _pair((2, 32, 32, 1), noise=0.05)
    _, b2 = _pair((2, 32, 32, 1), noise=0.2)
    assert np.all(np.asarray(metrics.ssim(a, b1)) > np.asarray(metrics.ssim(a, b2)) + 0.1)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        metrics.mse(jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 8, 8, 3)))
