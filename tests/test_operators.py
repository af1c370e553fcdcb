"""The operators: shapes under jit, adjoints, linearity and the noise statistics.

What each operator computes, pixel by pixel, is pinned against NumPy/SciPy references in
test_reference_operators.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gejax import operators as ops

SHAPE = (2, 16, 16, 3)


@pytest.fixture
def images():
    return jax.random.uniform(jax.random.key(0), SHAPE)


KEY = jax.random.key(7)
MASK = ops.block_mask(SHAPE[1:], size=6)
A = ops.gaussian_matrix(jax.random.key(3), 20, 16 * 16 * 3)

# name -> (operator on a batch of images, output shape)
OPERATORS = {
    "gaussian_noise": (lambda x: ops.gaussian_noise(x, KEY), SHAPE),
    "multiplicative_noise": (lambda x: ops.multiplicative_noise(x, KEY), SHAPE),
    "gaussian_blur": (lambda x: ops.gaussian_blur(x, sigma=1.5), SHAPE),
    "downsample": (lambda x: ops.downsample(x, 4), (2, 4, 4, 3)),
    "bicubic_upsample": (lambda x: ops.bicubic_upsample(x, 2), (2, 32, 32, 3)),
    "apply_mask": (lambda x: ops.apply_mask(x, MASK), SHAPE),
    "gaussian_measure": (lambda x: ops.gaussian_measure(A, x), (2, 20)),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_shape_dtype_and_jit(name, images):
    op, shape = OPERATORS[name]
    out = jax.jit(op)(images)
    assert out.shape == shape and out.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(out))
    np.testing.assert_allclose(out, op(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["gaussian_blur", "downsample", "apply_mask"])
def test_range_preserving_operators_stay_in_unit_interval(name, images):
    out = OPERATORS[name][0](images)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 + 1e-6


MASK_C = (jax.random.uniform(jax.random.key(4), SHAPE[1:]) > 0.5).astype(jnp.float32)
LINES = ops.line_mask(jax.random.key(5), SHAPE[1:])

# Every linear operator with its adjoint: name -> (A, A^T, input shape). gaussian_blur
# and the masks are self-adjoint (a symmetric kernel with zero padding; a diagonal).
LINEAR = {
    "gaussian_blur": (functools.partial(ops.gaussian_blur, sigma=1.2),
                      functools.partial(ops.gaussian_blur, sigma=1.2), SHAPE),
    "gaussian_blur_wide": (functools.partial(ops.gaussian_blur, sigma=2.0, kernel_size=7),
                           functools.partial(ops.gaussian_blur, sigma=2.0, kernel_size=7),
                           (2, 12, 20, 1)),
    "downsample_2": (functools.partial(ops.downsample, factor=2),
                     functools.partial(ops.downsample_adjoint, factor=2), (2, 8, 12, 3)),
    "downsample_4": (functools.partial(ops.downsample, factor=4),
                     functools.partial(ops.downsample_adjoint, factor=4), SHAPE),
    "apply_mask": (lambda x: ops.apply_mask(x, MASK), lambda y: ops.apply_mask(y, MASK), SHAPE),
    "apply_mask_per_channel": (lambda x: ops.apply_mask(x, MASK_C),
                               lambda y: ops.apply_mask(y, MASK_C), SHAPE),
    "apply_line_mask": (lambda x: ops.apply_mask(x, LINES), lambda y: ops.apply_mask(y, LINES),
                        SHAPE),
    "gaussian_measure": (lambda x: ops.gaussian_measure(A, x),
                         lambda y: ops.gaussian_measure_adjoint(A, y, SHAPE[1:]), SHAPE),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_adjoint_identity(name):
    # <A x, y> = <x, A^T y> on random x, y (deepinv's adjointness test); a missing 1/f^2,
    # a reflecting border or a transposed layout breaks it by far more than rtol.
    fwd, adj, shape = LINEAR[name]
    kx, ky = jax.random.split(jax.random.key(11))
    x = jax.random.normal(kx, shape)
    y = jax.random.normal(ky, fwd(x).shape)
    lhs = jnp.vdot(fwd(x), y)
    rhs = jnp.vdot(x, adj(y))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)
    # Pixel by pixel too: A^T is the transpose JAX derives from A.
    (transposed,) = jax.linear_transpose(fwd, x)(y)
    np.testing.assert_allclose(adj(y), transposed, rtol=1e-4, atol=1e-5)


# The linear operators without an adjoint of their own: bicubic up-sampling and the
# super-resolution S = bicubic(downsample(.)) that GE applies to G(z).
LINEAR_ONLY = {
    "bicubic_upsample": lambda x: ops.bicubic_upsample(x, 2),
    "superres_s": lambda x: ops.bicubic_upsample(ops.downsample(x, 4), 4),
    **{name: fwd for name, (fwd, _, shape) in LINEAR.items() if shape == SHAPE},
}


@pytest.mark.parametrize("name", sorted(LINEAR_ONLY))
def test_linear_operators_are_linear(name):
    # A(a x + b y) = a A(x) + b A(y): no offset, clipping or data-dependent step.
    fwd = LINEAR_ONLY[name]
    kx, ky = jax.random.split(jax.random.key(12))
    x, y = jax.random.normal(kx, SHAPE), jax.random.normal(ky, SHAPE)
    np.testing.assert_allclose(fwd(2.0 * x - 3.0 * y), 2.0 * fwd(x) - 3.0 * fwd(y),
                               rtol=1e-4, atol=1e-4)


def test_gaussian_noise_statistics():
    x = jnp.full((64, 64, 64, 1), 0.5)
    n = np.asarray(ops.gaussian_noise(x, jax.random.key(0), sigma=0.4) - x).ravel()
    # 262,144 draws: the std's standard error is 0.14% of sigma, so 0.5% holds 0.4 and
    # fails 0.39 or 0.41; the mean's is 8e-4.
    assert abs(n.mean()) < 3e-3 and abs(n.std() / 0.4 - 1) < 5e-3, (n.mean(), n.std())
    # Gaussian, not uniform or Laplace noise of the same std.
    assert stats.kstest(n[:20000], "norm", args=(0.0, 0.4)).pvalue > 1e-3
    # Additive: the same key adds the same noise to any image, and nothing is clipped.
    np.testing.assert_allclose(ops.gaussian_noise(jnp.zeros((4, 4, 1)), jax.random.key(2))
                               + 0.9, ops.gaussian_noise(jnp.full((4, 4, 1), 0.9),
                                                         jax.random.key(2)), atol=1e-6)
    assert n.min() < -0.5 and n.max() > 0.5  # 0.5 + n leaves [0, 1]: not clipped
    # Same key, same noise; different key, different noise.
    assert jnp.array_equal(ops.gaussian_noise(x, jax.random.key(0)),
                           ops.gaussian_noise(x, jax.random.key(0)))
    assert not jnp.array_equal(ops.gaussian_noise(x, jax.random.key(0)),
                               ops.gaussian_noise(x, jax.random.key(1)))


def test_multiplicative_noise_statistics():
    x = jnp.linspace(0.1, 1.0, 64 * 64).reshape(64, 64, 1)
    y = ops.multiplicative_noise(x, jax.random.key(0), sigma=0.2)
    n = np.asarray(y / x - 1).ravel()  # x (1 + sigma n): the relative error is sigma n
    assert abs(n.mean()) < 0.01 and abs(n.std() / 0.2 - 1) < 0.03, (n.mean(), n.std())
    assert stats.kstest(n, "norm", args=(0.0, 0.2)).pvalue > 1e-3
    # Black stays black: the noise scales with the signal.
    assert jnp.array_equal(ops.multiplicative_noise(jnp.zeros((4, 4, 1)), jax.random.key(0)),
                           jnp.zeros((4, 4, 1)))


def test_bicubic_upsample_of_downsample_is_close_on_smooth_images():
    # Super-resolution's S on a smooth image loses little; the bound holds bicubic
    # (2.2e-4) and fails bilinear (4.7e-4) and nearest-neighbour (2.4e-3).
    yy, xx = jnp.meshgrid(jnp.linspace(0, 1, 32), jnp.linspace(0, 1, 32), indexing="ij")
    smooth = (0.5 + 0.4 * jnp.sin(4 * xx + 2.8 * yy))[None, ..., None]
    back = ops.bicubic_upsample(ops.downsample(smooth, 4), 4)
    assert float(jnp.mean((back - smooth) ** 2)) < 3e-4


def test_block_mask_size_and_position():
    m = ops.block_mask((64, 64, 3))
    assert m.shape == (64, 64, 1) and set(np.unique(m)) == {0.0, 1.0}
    assert int((m == 0).sum()) == 30 * 30  # the paper's 30x30 block at 64x64
    assert m[32, 32, 0] == 0 and m[0, 0, 0] == 1
    assert int((ops.block_mask((32, 32, 1)) == 0).sum()) == 15 * 15
    r1 = ops.block_mask((64, 64, 3), key=jax.random.key(1))
    assert int((r1 == 0).sum()) == 900
    assert not jnp.array_equal(r1, ops.block_mask((64, 64, 3), key=jax.random.key(2)))
    with pytest.raises(ValueError):
        ops.block_mask((16, 16, 1), size=17)


def test_line_mask_draws_strokes():
    m = ops.line_mask(jax.random.key(0), (64, 64, 3))
    assert m.shape == (64, 64, 1) and set(np.unique(m)) == {0.0, 1.0}
    covered = float(1 - m.mean())
    assert 0.02 < covered < 0.5
    assert jnp.array_equal(m, ops.line_mask(jax.random.key(0), (64, 64, 3)))
    assert not jnp.array_equal(m, ops.line_mask(jax.random.key(1), (64, 64, 3)))


def test_gaussian_matrix_entries_are_standard_normal():
    a = np.asarray(ops.gaussian_matrix(jax.random.key(0), 200, 300))
    assert a.shape == (200, 300)
    # 60,000 entries: standard errors 0.004 (mean) and 0.003 (std).
    assert abs(a.mean()) < 0.015 and abs(a.std() - 1) < 0.01
    assert stats.kstest(a.ravel()[:20000], "norm").pvalue > 1e-3
    # Independent entries: no two rows (measurements) alike.
    gram = np.corrcoef(a)
    assert np.abs(gram - np.eye(200)).max() < 0.35


@pytest.mark.parametrize("call", [
    lambda: ops.downsample(jnp.zeros((1, 10, 10, 1)), 4),
    lambda: ops.gaussian_blur(jnp.zeros((10, 10))),
    lambda: ops.gaussian_matrix(jax.random.key(0), 0, 5),
])
def test_bad_operator_input(call):
    with pytest.raises(ValueError):
        call()
