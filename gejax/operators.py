"""Degradations and measurement operators: pure functions of arrays and explicit parameters.

Images are float32 (..., H, W, C) in [0, 1]. Random operators take a PRNG key and draw
their parameters from it, so the same key always gives the same degradation; masks and
sensing matrices are built once by a function of their own and then passed in.

Linear operators and their adjoints (<A x, y> = <x, A^T y>, tested):

    gaussian_blur        self-adjoint (symmetric kernel, zero padding)
    downsample           adjoint: downsample_adjoint
    apply_mask           self-adjoint
    gaussian_measure     adjoint: gaussian_measure_adjoint
"""

from __future__ import annotations

import math

import dm_pix
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from gejax import validate


def _check_image(x: jax.Array, name: str = "x") -> None:
    if x.ndim < 3:
        raise ValueError(f"{name} must be an image (..., H, W, C), got shape {x.shape}")


def _check_shape(image_shape) -> tuple[int, int]:
    if len(image_shape) != 3 or any(int(d) < 1 for d in image_shape):
        raise ValueError(f"image_shape must be (H, W, C) with positive sizes, got {image_shape}")
    return int(image_shape[0]), int(image_shape[1])


# Noise models (not linear: they add or multiply random noise).


def gaussian_noise(x: ArrayLike, key: jax.Array, *, sigma: float = 0.4) -> jax.Array:
    """x + sigma * n with n ~ N(0, 1) per pixel; the paper's denoising uses sigma 0.4.

    The result is not clipped, so the noise stays zero-mean Gaussian.
    """
    validate.prng_key(key)
    validate.number(sigma, "sigma")
    x = jnp.asarray(x, jnp.float32)
    return x + sigma * jax.random.normal(key, x.shape, x.dtype)


def multiplicative_noise(x: ArrayLike, key: jax.Array, *, sigma: float = 0.2) -> jax.Array:
    """x * (1 + sigma * n) with n ~ N(0, 1) per pixel (speckle-like noise)."""
    validate.prng_key(key)
    validate.number(sigma, "sigma")
    x = jnp.asarray(x, jnp.float32)
    return x * (1.0 + sigma * jax.random.normal(key, x.shape, x.dtype))


# Blur, down- and up-sampling.


def default_blur_kernel_size(sigma: float) -> int:
    """An odd kernel side covering +-3 sigma, like MATLAB's fspecial('gaussian') in practice."""
    return 2 * math.ceil(3 * sigma) + 1


def gaussian_blur(x: ArrayLike, *, sigma: float = 1.5, kernel_size: int | None = None) -> jax.Array:
    """Rotationally symmetric Gaussian low-pass filter, zero padding ('SAME').

    Args:
      x: images (..., H, W, C).
      sigma: standard deviation of the kernel in pixels.
      kernel_size: odd side of the kernel; default covers +-3 sigma.

    Returns:
      Blurred images, same shape. The operator is linear and self-adjoint.
    """
    x = jnp.asarray(x, jnp.float32)
    _check_image(x)
    validate.number(sigma, "sigma", positive=True)
    size = kernel_size or default_blur_kernel_size(sigma)
    validate.integer(size, "kernel_size", 1)
    if size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a centred kernel), got {size}")
    flat = x.reshape((-1,) + x.shape[-3:])
    return dm_pix.gaussian_blur(flat, sigma, size, padding="SAME").reshape(x.shape)


def downsample(x: ArrayLike, factor: int) -> jax.Array:
    """Average over non-overlapping factor x factor blocks: (..., H, W, C) -> (..., H/f, W/f, C)."""
    x = jnp.asarray(x, jnp.float32)
    _check_image(x)
    validate.integer(factor, "factor", 1)
    h, w, c = x.shape[-3:]
    if h % factor or w % factor:
        raise ValueError(f"factor {factor} must be >= 1 and divide the image size {h}x{w}")
    blocks = x.reshape(x.shape[:-3] + (h // factor, factor, w // factor, factor, c))
    return blocks.mean(axis=(-4, -2))


def downsample_adjoint(y: ArrayLike, factor: int) -> jax.Array:
    """Adjoint of `downsample`: spread each value over its block, divided by factor**2."""
    y = jnp.asarray(y, jnp.float32)
    _check_image(y, "y")
    validate.integer(factor, "factor", 1)
    up = jnp.repeat(jnp.repeat(y, factor, axis=-3), factor, axis=-2)
    return up / factor**2


def bicubic_upsample(x: ArrayLike, factor: int) -> jax.Array:
    """Bicubic resize by `factor`: the paper's super-resolution preconditioner."""
    x = jnp.asarray(x, jnp.float32)
    _check_image(x)
    validate.integer(factor, "factor", 1)
    h, w, c = x.shape[-3:]
    return jax.image.resize(x, x.shape[:-3] + (h * factor, w * factor, c), method="bicubic")


# Masks: (H, W, 1) float arrays, 0 on missing pixels and 1 elsewhere.


def block_mask(image_shape: tuple[int, ...], *, size: int | None = None,
               key: jax.Array | None = None) -> jax.Array:
    """A square hole: centred, or at a random position when `key` is given.

    Args:
      image_shape: (H, W, C) of the images to be masked.
      size: side of the block; default is the paper's 30 at 64x64, scaled with H.
      key: PRNG key for a random position; None centres the block.

    Returns:
      (H, W, 1) float32 mask.
    """
    h, w = _check_shape(image_shape)
    if key is not None:
        validate.prng_key(key)
    size = size if size is not None else max(1, round(30 * h / 64))
    if not 0 < size <= min(h, w):
        raise ValueError(f"block size {size} must be in [1, {min(h, w)}]")
    if key is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        k1, k2 = jax.random.split(key)
        top = jax.random.randint(k1, (), 0, h - size + 1)
        left = jax.random.randint(k2, (), 0, w - size + 1)
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    hole = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(hole, 0.0, 1.0)[..., None].astype(jnp.float32)


def line_mask(key: jax.Array, image_shape: tuple[int, ...], *, num_strokes: int = 4,
              width: float | None = None, points_per_stroke: int = 48) -> jax.Array:
    """Random hand-drawn-like strokes: quadratic Bezier curves of a given pen width.

    Args:
      key: PRNG key that fixes the strokes.
      image_shape: (H, W, C) of the images to be masked.
      num_strokes: number of curves.
      width: pen width in pixels; default H/16 (4 pixels at 64x64).
      points_per_stroke: samples along each curve.

    Returns:
      (H, W, 1) float32 mask, 0 under the strokes.
    """
    validate.prng_key(key)
    h, w = _check_shape(image_shape)
    validate.integer(num_strokes, "num_strokes", 1)
    validate.integer(points_per_stroke, "points_per_stroke", 2)
    width = width if width is not None else max(1.0, h / 16)
    validate.number(width, "width", positive=True)
    # Three control points per stroke, anywhere in the image.
    ctrl = jax.random.uniform(key, (num_strokes, 3, 2)) * jnp.array([h - 1, w - 1])
    t = jnp.linspace(0.0, 1.0, points_per_stroke)[None, :, None]
    p0, p1, p2 = ctrl[:, 0:1], ctrl[:, 1:2], ctrl[:, 2:3]
    curve = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).reshape(-1, 2)
    grid = jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij"), -1)
    dist2 = jnp.sum((grid.reshape(-1, 1, 2) - curve[None]) ** 2, axis=-1).min(axis=1)
    return jnp.where(dist2 <= (width / 2) ** 2, 0.0, 1.0).reshape(h, w, 1).astype(jnp.float32)


def apply_mask(x: ArrayLike, mask: ArrayLike) -> jax.Array:
    """S(x) = x * M, the Hadamard product with a (H, W, 1) or (H, W, C) mask. Self-adjoint."""
    x, mask = jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32)
    _check_image(x)
    if mask.ndim != 3 or mask.shape[:2] != x.shape[-3:-1] or mask.shape[2] not in (1, x.shape[-1]):
        raise ValueError(f"mask must be (H, W, 1) or (H, W, C) for images {x.shape[-3:]}, got "
                         f"{mask.shape}")
    return x * mask


# Compressed sensing with a random Gaussian matrix (Bora et al.'s CSGM and Lasso).


def gaussian_matrix(key: jax.Array, m: int, n: int) -> jax.Array:
    """A (m, n) sensing matrix with i.i.d. N(0, 1) entries, as CSGM uses."""
    validate.prng_key(key)
    validate.integer(m, "m", 1)
    validate.integer(n, "n", 1)
    return jax.random.normal(key, (m, n), jnp.float32)


def gaussian_measure(a: ArrayLike, x: ArrayLike) -> jax.Array:
    """y = A vec(x): (m, H*W*C) x (..., H, W, C) -> (..., m)."""
    x, a = jnp.asarray(x, jnp.float32), jnp.asarray(a, jnp.float32)
    _check_image(x)
    n = math.prod(x.shape[-3:])
    if a.ndim != 2 or a.shape[1] != n:
        raise ValueError(f"A must be (m, {n}) for images {x.shape[-3:]}, got {a.shape}")
    return x.reshape(x.shape[:-3] + (-1,)) @ a.T


def gaussian_measure_adjoint(a: ArrayLike, y: ArrayLike,
                             image_shape: tuple[int, int, int]) -> jax.Array:
    """A^T y reshaped to images: (m, n) x (..., m) -> (..., H, W, C)."""
    y, a = jnp.asarray(y, jnp.float32), jnp.asarray(a, jnp.float32)
    _check_shape(image_shape)
    if a.ndim != 2 or a.shape != (y.shape[-1], math.prod(image_shape)):
        raise ValueError(f"A must be ({y.shape[-1]}, {math.prod(image_shape)}) for y of shape "
                         f"{y.shape} and images {tuple(image_shape)}, got {a.shape}")
    return (y @ a).reshape(y.shape[:-1] + tuple(image_shape))
