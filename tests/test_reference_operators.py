"""Every degradation and measurement against a reference written here in NumPy/SciPy/Pillow.

The references do not call gejax: each one spells out the maths the paper and the docstrings
state (a normalised Gaussian kernel covering +-3 sigma with zero padding, the mean of each
f x f block, Keys' cubic with a = -0.5 on half-pixel centres, a centred or random square hole,
discs of the pen's width along quadratic Bezier strokes, A vec(x) in HWC order, EN(S(x))),
so a change of method, constant or layout in gejax fails here, not only a change of shape.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import Partial
from PIL import Image
from scipy import ndimage

import gejax
from gejax import operators as ops
from gejax import tasks


def _images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# ---- NumPy references -----------------------------------------------------------------


def ref_blur(x, sigma, radius=None):
    """Gaussian filter per channel, kernel truncated at ceil(3 sigma) px, zero padding."""
    radius = math.ceil(3 * sigma) if radius is None else radius
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-3]):
        for c in range(x.shape[-1]):
            out[idx + (..., c)] = ndimage.gaussian_filter(
                x[idx + (..., c)], sigma, mode="constant", cval=0.0, truncate=radius / sigma)
    return out


def ref_kernel(sigma):
    """The 2-D kernel: exp(-(i^2 + j^2) / 2 sigma^2) on |i|, |j| <= ceil(3 sigma), sum 1."""
    i = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1)
    k = np.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def ref_downsample(x, f):
    """The mean of each f x f block, summed offset by offset (not by a reshape)."""
    x = np.asarray(x, np.float64)
    return sum(x[..., i::f, j::f, :] for i in range(f) for j in range(f)) / f**2


def _keys_cubic(t, a=-0.5):
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def _resample_matrix(n, f):
    """(n f, n): output pixel i samples the input at (i + 1/2) / f - 1/2 with Keys' cubic;
    taps outside the image are dropped and the rest renormalised to sum 1."""
    centres = (np.arange(n * f) + 0.5) / f - 0.5
    w = _keys_cubic(centres[:, None] - np.arange(n)[None, :])
    return w / w.sum(axis=1, keepdims=True)


def ref_bicubic(x, f):
    h, w = x.shape[-3:-1]
    return np.einsum("ih,...hwc,jw->...ijc", _resample_matrix(h, f), np.asarray(x, np.float64),
                     _resample_matrix(w, f))


def ref_block_mask(h, w, size, top=None, left=None):
    m = np.ones((h, w, 1))
    top = (h - size) // 2 if top is None else top
    left = (w - size) // 2 if left is None else left
    m[top:top + size, left:left + size] = 0
    return m


def ref_line_mask(key, h, w, num_strokes=4, width=None, points=48):
    """Pixels within width/2 of `points` samples of each quadratic Bezier stroke are 0;
    the three control points of each stroke are uniform over the image, drawn from `key`."""
    width = max(1.0, h / 16) if width is None else width
    ctrl = np.asarray(jax.random.uniform(key, (num_strokes, 3, 2)), np.float64) * [h - 1, w - 1]
    t = np.linspace(0, 1, points)[None, :, None]
    curve = ((1 - t) ** 2 * ctrl[:, :1] + 2 * (1 - t) * t * ctrl[:, 1:2]
             + t**2 * ctrl[:, 2:]).reshape(-1, 2)
    rows, cols = np.mgrid[:h, :w]
    d2 = ((rows[..., None] - curve[:, 0]) ** 2 + (cols[..., None] - curve[:, 1]) ** 2).min(-1)
    return np.where(d2 <= (width / 2) ** 2, 0.0, 1.0)[..., None]


# ---- Operators ------------------------------------------------------------------------


@pytest.mark.parametrize("sigma,size,shape", [(1.5, None, (2, 24, 20, 3)),
                                              (0.75, None, (1, 16, 16, 1)),
                                              (2.0, None, (1, 32, 32, 1)),
                                              (2.0, 7, (1, 16, 16, 1))])
def test_gaussian_blur_is_scipys_gaussian_filter_with_zero_padding(sigma, size, shape):
    # Tight enough that sigma off by 5% (1.4 for 1.5) or reflecting borders fail by > 1e-3.
    x = _images(shape)
    ref = ref_blur(x, sigma, None if size is None else size // 2)
    np.testing.assert_allclose(ops.gaussian_blur(x, sigma=sigma, kernel_size=size), ref,
                               atol=2e-6)


@pytest.mark.parametrize("sigma", [0.75, 1.5, 2.0])
def test_gaussian_blur_of_a_point_is_the_kernel(sigma):
    # The point spread function, written out: the kernel's shape, width and support.
    k = ref_kernel(sigma)
    assert ops.default_blur_kernel_size(sigma) == len(k)
    delta = np.zeros((31, 31, 1), np.float32)
    delta[15, 15] = 1
    r = len(k) // 2
    psf = np.zeros((31, 31))
    psf[15 - r:16 + r, 15 - r:16 + r] = k
    np.testing.assert_allclose(ops.gaussian_blur(delta, sigma=sigma)[..., 0], psf, atol=1e-7)


@pytest.mark.parametrize("factor", [2, 4])
def test_downsample_is_the_block_mean(factor):
    x = _images((2, 16, 24, 3))
    np.testing.assert_allclose(ops.downsample(x, factor), ref_downsample(x, factor), atol=1e-6)
    y = _images((2, 16 // factor, 24 // factor, 3), seed=1)
    # Each low-resolution value spread evenly over its block, / f^2 (the adjoint, not the
    # nearest-neighbour inverse, which would be f^2 times larger).
    np.testing.assert_allclose(ops.downsample_adjoint(y, factor),
                               np.kron(y, np.ones((1, factor, factor, 1))) / factor**2, atol=1e-7)


@pytest.mark.parametrize("factor", [2, 4])
def test_bicubic_upsample_is_keys_cubic(factor):
    # Nearest or bilinear resizing, or Keys' a = -0.75 (OpenCV), miss by > 0.05.
    x = _images((2, 6, 5, 3))
    ours = ops.bicubic_upsample(x, factor)
    np.testing.assert_allclose(ours, ref_bicubic(x, factor), atol=1e-6)
    # Pillow's BICUBIC is the same filter, edges included: the reference above is the usual one.
    pil = [Image.fromarray(x[0, ..., c], "F").resize((5 * factor, 6 * factor), Image.BICUBIC)
           for c in range(3)]
    np.testing.assert_allclose(ours[0], np.stack([np.asarray(p) for p in pil], -1), atol=1e-6)


def test_bicubic_upsample_reproduces_a_quadratic():
    # Keys' a = -0.5 cubic is exact on quadratics (away from the renormalised border):
    # bilinear misses by ~5e-4 here and nearest by ~3e-2.
    n, f = 8, 4
    def q(u, v):
        return 0.3 + 0.02 * u - 0.01 * v + 0.004 * u * u + 0.003 * u * v - 0.002 * v * v

    j = np.arange(n)
    x = q(j[:, None], j[None, :]).astype(np.float32)[None, ..., None]
    c = (np.arange(n * f) + 0.5) / f - 0.5  # where each output pixel samples the input
    inner = slice(2 * f, -2 * f)
    np.testing.assert_allclose(ops.bicubic_upsample(x, f)[0, inner, inner, 0],
                               q(c[:, None], c[None, :])[inner, inner], atol=1e-5)


@pytest.mark.parametrize("shape,size", [((64, 64, 3), None), ((32, 32, 1), None),
                                        ((16, 16, 1), None), ((20, 13, 1), 5), ((9, 9, 1), 4)])
def test_block_mask_is_a_centred_square_hole(shape, size):
    # Default side: the paper's 30 at 64x64, scaled with H (15 at 32, 8 at 16).
    expected_size = size if size is not None else round(30 * shape[0] / 64)
    np.testing.assert_array_equal(ops.block_mask(shape, size=size),
                                  ref_block_mask(shape[0], shape[1], expected_size))


def test_random_block_mask_is_a_square_anywhere_inside():
    h, w, size = 10, 9, 7  # 4 x 3 possible positions
    masks = np.asarray(jax.vmap(lambda k: ops.block_mask((h, w, 1), size=size, key=k))(
        jax.random.split(jax.random.key(0), 48)))
    corners = set()
    for m in masks:
        rows, cols = np.nonzero(m[..., 0] == 0)
        top, left = int(rows.min()), int(cols.min())
        np.testing.assert_array_equal(m, ref_block_mask(h, w, size, top, left))
        corners.add((top, left))
    # Every row and every column of positions is drawn, the last ones included.
    assert {t for t, _ in corners} == set(range(h - size + 1))
    assert {left for _, left in corners} == set(range(w - size + 1))


@pytest.mark.parametrize("seed,shape", [(0, (64, 64, 3)), (1, (32, 48, 1)), (2, (16, 16, 1))])
def test_line_mask_is_discs_along_bezier_strokes(seed, shape):
    key = jax.random.key(seed)
    ref = ref_line_mask(key, shape[0], shape[1])
    np.testing.assert_array_equal(ops.line_mask(key, shape), ref)
    # The default pen (H/16 px) covers roughly a sixth of the image.
    assert 0.08 < 1 - ref.mean() < 0.3


def test_line_mask_width_and_strokes_are_used():
    key = jax.random.key(3)
    np.testing.assert_array_equal(ops.line_mask(key, (32, 32, 1), num_strokes=2, width=3.0),
                                  ref_line_mask(key, 32, 32, num_strokes=2, width=3.0))


def test_apply_mask_is_the_hadamard_product():
    x = _images((2, 8, 8, 3))
    m1 = ref_block_mask(8, 8, 3)
    mc = (_images((8, 8, 3), seed=1) > 0.5).astype(np.float32)  # one mask per channel
    np.testing.assert_array_equal(ops.apply_mask(x, m1), x * m1[None].astype(np.float32))
    np.testing.assert_array_equal(ops.apply_mask(x, mc), x * mc[None])


def test_gaussian_measure_is_a_times_vec_x_in_hwc_order():
    x = _images((3, 4, 5, 2))
    a = np.random.default_rng(1).standard_normal((7, 40)).astype(np.float32)
    # vec(x) walks H, then W, then C fastest: the order baselines.lasso_dct assumes.
    vec = np.stack([[x[b, i, j, c] for i in range(4) for j in range(5) for c in range(2)]
                    for b in range(3)])
    np.testing.assert_allclose(ops.gaussian_measure(a, x), vec @ a.T, rtol=1e-5, atol=1e-5)
    y = np.random.default_rng(2).standard_normal((3, 7)).astype(np.float32)
    np.testing.assert_allclose(ops.gaussian_measure_adjoint(a, y, (4, 5, 2)),
                               (y @ a).reshape(3, 4, 5, 2), rtol=1e-5, atol=1e-5)


# ---- The GE and GA measurements (gejax.reconstruct) ----------------------------------

_W = np.random.default_rng(5).standard_normal((3, 4 * 4 * 2)).astype(np.float32)


def _encoder(x):
    """A tiny encoder, tanh(W vec(x)), that sees every pixel."""
    return jnp.tanh(jnp.asarray(_W) @ x.reshape(-1))


def _ref_encoder(x):
    return np.tanh(_W.astype(np.float64) @ np.asarray(x, np.float64).reshape(-1))


def test_ge_measure_is_the_encoder_of_the_transformed_image():
    x = _images((4, 4, 2))
    mask = ref_block_mask(4, 4, 2)
    # S = the mask: EN(x * M), not EN(x) (the operator dropped) nor EN(x) * anything.
    measure = gejax.ge_measure(_encoder, Partial(ops.apply_mask, mask=mask))
    np.testing.assert_allclose(measure(x), _ref_encoder(x * mask), rtol=1e-5, atol=1e-6)
    assert np.abs(_ref_encoder(x * mask) - _ref_encoder(x)).max() > 0.05
    # S with a per-image argument (measure_params) reaches S, not the encoder.
    per_image = gejax.ge_measure(_encoder, ops.apply_mask)
    np.testing.assert_allclose(per_image(x, mask), _ref_encoder(x * mask), rtol=1e-5, atol=1e-6)
    # No S: EN(x).
    np.testing.assert_allclose(gejax.ge_measure(_encoder)(x), _ref_encoder(x), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("m", [5, 32])  # 32 = n: a square A, where A^T x would also run
def test_ga_measure_is_a_times_vec_x(m):
    x = _images((4, 4, 2))
    a = np.random.default_rng(6).standard_normal((m, 32)).astype(np.float32)
    np.testing.assert_allclose(gejax.ga_measure(a)(x), a @ x.reshape(-1), rtol=1e-5, atol=1e-5)


# ---- Tasks: x_dagger and S against the references ------------------------------------


def test_denoise_adds_unclipped_zero_mean_noise_of_the_set_std():
    x = _images((8, 32, 32, 1))
    for sigma in (0.4, 0.1):
        n = np.asarray(tasks.get("denoise", sigma=sigma).degrade(x, jax.random.key(1))) - x
        # 8192 samples: the std's standard error is 0.8% of sigma, so 3% separates 0.4 from
        # 0.38 or 0.42; clipping to [0, 1] would shrink it by far more.
        assert abs(n.std() / sigma - 1) < 0.03, n.std()
        assert abs(n.mean()) < 4 * sigma / np.sqrt(n.size)
        assert abs(np.corrcoef(n.ravel(), x.ravel())[0, 1]) < 0.05  # additive, not x-scaled
        # BM3D is told the true noise level.
        bm3d = tasks.get("denoise", sigma=sigma).baselines(x.shape[1:], jax.random.key(1))
        assert bm3d["bm3d"].keywords["sigma"] == sigma


@pytest.mark.parametrize("side,blur_sigma,expected", [(16, None, 0.75), (32, None, 1.5),
                                                      (32, 1.0, 1.0)])
def test_deblur_is_a_gaussian_of_1p5_px_at_32_scaled_with_the_side(side, blur_sigma, expected):
    x = _images((2, side, side, 1))
    task = tasks.get("deblur", blur_sigma=blur_sigma)
    np.testing.assert_allclose(task.degrade(x, jax.random.key(0)), ref_blur(x, expected),
                               atol=2e-6)
    # The non-blind baselines are given this very kernel, the blind one only its size.
    given = task.baselines((side, side, 1), jax.random.key(0))
    for name in ("wiener", "richardson_lucy"):
        np.testing.assert_allclose(given[name].keywords["kernel"], ref_kernel(expected),
                                   atol=1e-7)
    assert given["blind_richardson_lucy"].keywords["kernel_size"] == len(ref_kernel(expected))


@pytest.mark.parametrize("factor", [2, 4])
def test_superres_x_dagger_and_s_are_bicubic_of_the_block_mean(factor):
    x = _images((2, 16, 16, 3))
    task, key = tasks.get("superres", factor=factor), jax.random.key(0)
    ref = ref_bicubic(ref_downsample(x, factor), factor)
    np.testing.assert_allclose(task.degrade(x, key), ref, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(task.operator(x.shape[1:], key))(x), ref, atol=1e-6)


@pytest.mark.parametrize("side,size", [(16, 8), (32, 15), (64, 30)])
def test_inpaint_block_zeroes_the_papers_centred_square(side, size):
    x = _images((2, side, side, 1))
    task, key = tasks.get("inpaint_block"), jax.random.key(0)
    mask = ref_block_mask(side, side, size)
    np.testing.assert_array_equal(task.observed(x.shape[1:], key), mask)
    np.testing.assert_array_equal(task.degrade(x, key), x * mask.astype(np.float32))
    np.testing.assert_array_equal(jax.vmap(task.operator(x.shape[1:], key))(x),
                                  x * mask.astype(np.float32))


def test_inpaint_lines_zeroes_the_strokes_of_the_key():
    x = _images((2, 32, 32, 3))
    task = tasks.get("inpaint_lines")
    for seed in (0, 1):
        key = jax.random.key(seed)
        mask = ref_line_mask(key, 32, 32).astype(np.float32)
        np.testing.assert_array_equal(task.degrade(x, key), x * mask)
        np.testing.assert_array_equal(jax.vmap(task.operator(x.shape[1:], key))(x), x * mask)
