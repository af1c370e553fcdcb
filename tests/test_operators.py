import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


# name -> (A, A^T, input shape)
LINEAR = {
    "gaussian_blur": (functools.partial(ops.gaussian_blur, sigma=1.2),
                      functools.partial(ops.gaussian_blur, sigma=1.2), SHAPE),
    "downsample": (functools.partial(ops.downsample, factor=4),
                   functools.partial(ops.downsample_adjoint, factor=4), SHAPE),
    "apply_mask": (lambda x: ops.apply_mask(x, MASK), lambda y: ops.apply_mask(y, MASK), SHAPE),
    "gaussian_measure": (lambda x: ops.gaussian_measure(A, x),
                         lambda y: ops.gaussian_measure_adjoint(A, y, SHAPE[1:]), SHAPE),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_adjoint_identity(name):
    fwd, adj, shape = LINEAR[name]
    kx, ky = jax.random.split(jax.random.key(11))
    x = jax.random.normal(kx, shape)
    y = jax.random.normal(ky, fwd(x).shape)
    lhs = jnp.vdot(fwd(x), y)
    rhs = jnp.vdot(x, adj(y))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


def test_gaussian_noise_statistics():
    x = jnp.full((64, 64, 64, 1), 0.5)
    n = ops.gaussian_noise(x, jax.random.key(0), sigma=0.4) - x
    assert abs(float(n.mean())) < 0.01 and abs(float(n.std()) - 0.4) < 0.01
    # Same key, same noise; different key, different noise.
    assert jnp.array_equal(ops.gaussian_noise(x, jax.random.key(0)),
                           ops.gaussian_noise(x, jax.random.key(0)))
    assert not jnp.array_equal(ops.gaussian_noise(x, jax.random.key(0)),
                               ops.gaussian_noise(x, jax.random.key(1)))


def test_blur_is_low_pass_and_preserves_constants():
    const = jnp.full((1, 32, 32, 1), 0.7)
    # Away from the zero-padded border a constant image is unchanged.
    np.testing.assert_allclose(ops.gaussian_blur(const, sigma=1.5)[0, 8:-8, 8:-8], 0.7, rtol=1e-5)
    checker = (jnp.indices((32, 32)).sum(0) % 2).astype(jnp.float32)[None, ..., None]
    assert float(ops.gaussian_blur(checker, sigma=1.5)[0, 8:-8, 8:-8].std()) < 0.01


def test_bicubic_upsample_of_downsample_is_close_on_smooth_images():
    yy, xx = jnp.meshgrid(jnp.linspace(0, 1, 32), jnp.linspace(0, 1, 32), indexing="ij")
    smooth = (0.5 + 0.4 * jnp.sin(2 * xx + yy))[None, ..., None]
    back = ops.bicubic_upsample(ops.downsample(smooth, 4), 4)
    assert float(jnp.mean((back - smooth) ** 2)) < 1e-3


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
    a = ops.gaussian_matrix(jax.random.key(0), 200, 300)
    assert a.shape == (200, 300)
    assert abs(float(a.mean())) < 0.02 and abs(float(a.std()) - 1) < 0.02


@pytest.mark.parametrize("call", [
    lambda: ops.downsample(jnp.zeros((1, 10, 10, 1)), 4),
    lambda: ops.gaussian_blur(jnp.zeros((10, 10))),
    lambda: ops.gaussian_matrix(jax.random.key(0), 0, 5),
])
def test_bad_operator_input(call):
    with pytest.raises(ValueError):
        call()
