"""The restoration tasks: x_dagger and S from one place, usable inside jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gejax import operators, tasks

SHAPE = (16, 16, 1)


def _images(n=3):
    return jax.random.uniform(jax.random.key(0), (n,) + SHAPE)


@pytest.mark.parametrize("name", tasks.NAMES)
def test_degrade_keeps_the_shape_and_changes_the_images(name):
    x = _images()
    x_dagger = tasks.degrade(name, x, jax.random.key(1))
    assert x_dagger.shape == x.shape
    assert float(jnp.mean((x_dagger - x) ** 2)) > 1e-4


@pytest.mark.parametrize("name", tasks.NAMES)
def test_degrade_runs_inside_jit_and_matches_eager(name):
    x, key = _images(), jax.random.key(3)
    jitted = jax.jit(lambda x, key: tasks.degrade(name, x, key))
    np.testing.assert_allclose(jitted(x, key), tasks.degrade(name, x, key), atol=1e-6)


@pytest.mark.parametrize("name", ["superres", "inpaint_block", "inpaint_lines"])
def test_x_dagger_is_s_of_the_clean_image(name):
    # GE compares EN(S G(z)) with EN(x_dagger): for these tasks S must be what degraded x.
    x, key = _images(), jax.random.key(4)
    s, _ = tasks.operator(name, SHAPE, key)
    np.testing.assert_allclose(tasks.degrade(name, x, key), jax.vmap(s)(x), atol=1e-6)


def test_line_masks_follow_the_key():
    _, a = tasks.operator("inpaint_lines", SHAPE, jax.random.key(0))
    _, b = tasks.operator("inpaint_lines", SHAPE, jax.random.key(1))
    assert not np.array_equal(a["mask_array"], b["mask_array"])
    _, block = tasks.operator("inpaint_block", SHAPE, jax.random.key(0))
    np.testing.assert_array_equal(block["mask_array"], operators.block_mask(SHAPE))


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task 'colorize'"):
        tasks.degrade("colorize", _images(), jax.random.key(0))


def test_degrade_any_gives_each_image_one_task_and_uses_them_all():
    x, key = _images(40), jax.random.key(5)
    mixed = np.asarray(tasks.degrade_any(x, key))
    _, *keys = jax.random.split(key, 1 + len(tasks.NAMES))
    versions = [np.asarray(tasks.degrade(n, x, k)) for n, k in zip(tasks.NAMES, keys, strict=True)]
    picked = []
    for i in range(len(x)):
        match = [t for t, v in enumerate(versions) if np.allclose(mixed[i], v[i], atol=1e-6)]
        assert match, f"image {i} is none of the task degradations"
        picked.append(match[0])
    assert set(picked) == set(range(len(tasks.NAMES)))
