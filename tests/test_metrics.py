import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from gejax import metrics


def test_mse_and_psnr_per_image():
    a = jnp.zeros((3, 8, 8, 1))
    b = a.at[1].set(0.1).at[2].set(0.5)
    np.testing.assert_allclose(metrics.mse(a, b), [0.0, 0.01, 0.25], rtol=1e-6)
    np.testing.assert_allclose(metrics.psnr(a[1:], b[1:]), [20.0, 10 * np.log10(4)], rtol=1e-5)


def test_ssim_matches_scikit_image():
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.uniform(k1, (2, 32, 32, 1))
    b = jnp.clip(a + 0.1 * jax.random.normal(k2, a.shape), 0, 1)
    ours = metrics.ssim(a, b)
    ref = [structural_similarity(np.asarray(a[i, ..., 0]), np.asarray(b[i, ..., 0]),
                                 data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for i in range(2)]
    np.testing.assert_allclose(ours, ref, atol=2e-2)
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, rtol=1e-5)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        metrics.mse(jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 8, 8, 3)))
