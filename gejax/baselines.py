"""Classical baselines, on NumPy arrays (N, H, W, C) in [0, 1].

* Lasso on an overcomplete 2-D DCT dictionary (the paper's "Lasso"; scikit-learn).
* BM3D denoising (the `bm3d` package), Wiener/Richardson-Lucy deconvolution with the true
  kernel and biharmonic / total-variation inpainting (scikit-image), bicubic up-sampling
  (jax.image), and blind Richardson-Lucy (SciPy FFTs), which must find the kernel itself.
"""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from gejax import validate


@functools.cache
def dct_dictionary(side: int, atoms: int | None = None) -> np.ndarray:
    """Overcomplete separable 2-D DCT dictionary Psi (side*side, atoms*atoms), unit columns.

    The 1-D atoms are cos(pi k (i + 1/2) / atoms), k = 0..atoms-1, sampled on `side`
    pixels; with atoms > side the dictionary is overcomplete (default 1.5x per axis).
    """
    atoms = atoms or (3 * side) // 2
    i = np.arange(side)[:, None] + 0.5
    k = np.arange(atoms)[None, :]
    d1 = np.cos(np.pi * k * i / atoms)
    d1 /= np.linalg.norm(d1, axis=0, keepdims=True)
    return np.kron(d1, d1).astype(np.float32)


def lasso_dct(y: np.ndarray, a: np.ndarray, image_shape: tuple[int, int, int], *,
              alpha: float, max_iter: int = 2000) -> np.ndarray:
    """min_beta ||A Psi beta - y||^2 / (2m) + alpha |beta|_1, x_hat = Psi beta, per channel.

    Args:
      y: (N, m) measurements y = A vec(x) with A (m, H*W*C).
      a: (m, H*W*C) the sensing matrix.
      image_shape: (H, W, C); the dictionary acts on each channel's H*W pixels.
      alpha: the l1 weight. scikit-learn's 1/(2m) and A's N(0, 1) entries make
        ||A Psi beta||^2 / (2m) ~ |beta|^2 / 2 whatever m, so alpha means the same at every
        m (the paper's 0.1 belongs to its own scaling).

    Returns:
      (N, H, W, C) reconstructions clipped to [0, 1].
    """
    h, w, c = image_shape
    if h != w:
        raise ValueError(f"lasso_dct needs square images, got {image_shape}")
    psi = dct_dictionary(h)
    # A vec(x) with x in HWC order: channel ch occupies every c-th entry of vec(x).
    design = np.concatenate([a[:, ch::c] @ psi for ch in range(c)], axis=1)

    def fit(yi):
        model = Lasso(alpha=alpha, fit_intercept=False, max_iter=max_iter, tol=1e-4)
        beta = model.fit(design, yi).coef_.reshape(c, -1)
        return np.stack([psi @ beta[ch] for ch in range(c)], axis=-1).reshape(-1)

    # One image per thread: scikit-learn's coordinate descent releases the GIL, so the
    # cores share the images (each fit alone, so the numbers do not change).
    with warnings.catch_warnings(), ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = np.stack(list(pool.map(fit, y))).astype(np.float32)
    return np.clip(out.reshape(len(y), h, w, c), 0, 1)


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (Dabov et al.) with the true noise level, per image. Sides under 16 pixels are
    mirror-padded to 16 first and cropped back: the bm3d package crashes the process
    (a segmentation fault) on 8x8 images, smaller than its search window."""
    import bm3d

    h, w = noisy.shape[1:3]
    pad = ((0, max(0, 16 - h)), (0, max(0, 16 - w)), (0, 0))
    out = [np.asarray(bm3d.bm3d(np.pad(x, pad, mode="reflect") if x.shape[-1] == 3
                                else np.pad(x, pad, mode="reflect")[..., 0],
                                sigma_psd=sigma))[:h, :w] for x in noisy]
    out = np.stack(out).astype(np.float32)
    return np.clip(out if out.ndim == 4 else out[..., None], 0, 1)


def _per_channel(fn, images: np.ndarray) -> np.ndarray:
    return np.stack([np.stack([fn(x[..., ch]) for ch in range(x.shape[-1])], axis=-1)
                     for x in images]).astype(np.float32)


def wiener_deconvolve(blurred: np.ndarray, kernel: np.ndarray, *, balance: float = 0.01
                      ) -> np.ndarray:
    """Wiener deconvolution with the known Gaussian kernel (skimage.restoration.wiener)."""
    from skimage.restoration import wiener

    return np.clip(_per_channel(lambda x: wiener(x, kernel, balance, clip=False), blurred), 0, 1)


def richardson_lucy_deconvolve(blurred: np.ndarray, kernel: np.ndarray, *,
                               num_iter: int = 30) -> np.ndarray:
    """Richardson-Lucy deconvolution with the known kernel (skimage.restoration)."""
    from skimage.restoration import richardson_lucy

    return _per_channel(lambda x: richardson_lucy(np.clip(x, 0, 1), kernel, num_iter=num_iter),
                        blurred)


def blind_richardson_lucy_deconvolve(blurred: np.ndarray, kernel_size: int, *,
                                     num_iter: int = 30, eps: float = 1e-3) -> np.ndarray:
    """Blind Richardson-Lucy (Fish et al. 1995): the kernel is estimated too, not given.

    Alternates one multiplicative Richardson-Lucy update of the kernel (kernel_size x
    kernel_size, non-negative, sum 1, started flat) with one of the image (started at
    the blurred image). It is given the kernel's size only (GE is given nothing about the
    blur). `eps` keeps the ratio finite on the black background.
    """
    from scipy.signal import fftconvolve

    validate.integer(kernel_size, "kernel_size", 1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")

    def deconvolve(y):
        y = np.clip(y, 0, 1).astype(np.float64)
        x, h = y.copy(), np.full((kernel_size, kernel_size), 1.0 / kernel_size**2)
        cy, cx, r = y.shape[0] // 2, y.shape[1] // 2, kernel_size // 2
        for _ in range(num_iter):
            ratio = y / (fftconvolve(x, h, mode="same") + eps)
            # sum_t ratio(t) x(t - s) for every shift s, zero shift at the centre
            corr = fftconvolve(ratio, x[::-1, ::-1], mode="same")
            h = np.maximum(h * corr[cy - r:cy + r + 1, cx - r:cx + r + 1] / (x.sum() + eps), 0)
            h /= h.sum() + 1e-12
            ratio = y / (fftconvolve(x, h, mode="same") + eps)
            x = x * fftconvolve(ratio, h[::-1, ::-1], mode="same")
        return x

    return np.clip(_per_channel(deconvolve, blurred), 0, 1)


def biharmonic_inpaint(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill pixels where mask == 0 by biharmonic interpolation (skimage).

    images (N, H, W, C); mask (H, W, 1) for all of them or (N, H, W, 1), one per image.
    """
    from skimage.restoration import inpaint_biharmonic

    holes = np.broadcast_to(mask[..., 0] == 0, (len(images), *images.shape[1:3]))
    # skimage's Cython code refuses a read-only (broadcast) mask: each image gets a copy.
    out = [inpaint_biharmonic(x, h.copy(), channel_axis=-1)
           for x, h in zip(images, holes, strict=True)]
    return np.clip(np.stack(out), 0, 1).astype(np.float32)
