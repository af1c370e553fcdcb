"""Per-image quality metrics on the [0, 1] scale: MSE, PSNR (dB) and SSIM.

All take (..., H, W, C) arrays and return one value per image (shape (...)).
MSE is the mean over pixels and channels on [0, 1]; the paper's code worked on
[-1, 1], where the same error is 4x larger.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[jax.Array, jax.Array]:
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"expected two image arrays (..., H, W, C) of one shape, "
                         f"got {a.shape} and {b.shape}")
    return a, b


def mse(a: ArrayLike, b: ArrayLike) -> jax.Array:
    """Mean squared error per image: (..., H, W, C) x2 -> (...)."""
    a, b = _pair(a, b)
    return jnp.mean((a - b) ** 2, axis=(-3, -2, -1))


def psnr(a: ArrayLike, b: ArrayLike) -> jax.Array:
    """Peak signal-to-noise ratio in dB for a dynamic range of 1: (...)."""
    a, b = _pair(a, b)
    return dm_pix.psnr(a, b)


def ssim(a: ArrayLike, b: ArrayLike) -> jax.Array:
    """Structural similarity (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5): (...)."""
    a, b = _pair(a, b)
    size = min(11, a.shape[-3], a.shape[-2])
    return dm_pix.ssim(a, b, max_val=1.0, filter_size=size)
