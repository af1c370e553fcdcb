"""The restoration tasks: x_dagger and S from one place, usable inside jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gejax import tasks

SHAPE = (16, 16, 1)


def _images(n=3):
    return jax.random.uniform(jax.random.key(0), (n,) + SHAPE)


@pytest.mark.parametrize("name", tasks.NAMES)
def test_degrade_keeps_the_shape_and_changes_the_images(name):
    x = _images()
    x_dagger = tasks.get(name).degrade(x, jax.random.key(1))
    assert x_dagger.shape == x.shape
    assert float(jnp.mean((x_dagger - x) ** 2)) > 1e-4


@pytest.mark.parametrize("name", tasks.NAMES)
def test_degrade_runs_inside_jit_and_matches_eager(name):
    x, key, task = _images(), jax.random.key(3), tasks.get(name)
    jitted = jax.jit(lambda x, key: task.degrade(x, key))
    np.testing.assert_allclose(jitted(x, key), task.degrade(x, key), atol=1e-6)


# What x_dagger and S are, pixel by pixel, is pinned against NumPy references in
# test_reference_operators.py; here: how the key and the settings reach them.


def test_line_masks_follow_the_key_and_the_block_does_not():
    lines = tasks.get("inpaint_lines")
    a, b = (lines.observed(SHAPE, jax.random.key(i)) for i in (0, 1))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, lines.observed(SHAPE, jax.random.key(0)))
    block = tasks.get("inpaint_block")
    centred = np.ones(SHAPE[:2] + (1,), np.float32)
    centred[4:12, 4:12] = 0  # 30/64 of 16 is 8 px, centred
    for i in (0, 1):
        np.testing.assert_array_equal(block.observed(SHAPE, jax.random.key(i)), centred)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task 'colorize'"):
        tasks.get("colorize")


@pytest.mark.parametrize("flags,message", [
    ({"task": "colorize"}, "unknown task 'colorize'"),
    ({"task": "inpaint", "mask": "dots"}, "--mask must be"),
    ({"task": "denoise", "factor": 2}, "--factor does not apply"),
])
def test_select_refuses_what_cannot_be(flags, message):
    with pytest.raises(ValueError, match=message):
        tasks.select(**flags)


@pytest.mark.parametrize("flags,shape,message", [
    ({"task": "denoise", "sigma": -1.0}, SHAPE, "--sigma"),
    ({"task": "deblur", "blur_sigma": 0.0}, SHAPE, "--blur_sigma"),
    ({"task": "deblur", "precondition": 1.5}, SHAPE, "--precondition must be in"),
    ({"task": "superres", "factor": 3}, (32, 32, 1), "--factor 3 must divide"),
    ({"task": "inpaint", "block_size": 17}, SHAPE, "--block_size must be in"),
])
def test_settings_are_checked_against_the_images(flags, shape, message):
    with pytest.raises(ValueError, match=message):
        tasks.select(**flags).check(shape)


def test_settings_reach_the_degradation():
    x, key = _images(), jax.random.key(2)
    noise = {s: tasks.select("denoise", sigma=s).degrade(x, key) - x for s in (0.1, 0.4)}
    np.testing.assert_allclose(np.std(noise[0.1]) * 4, np.std(noise[0.4]), rtol=1e-5)
    assert tasks.select("superres", factor=2).params(SHAPE) == {"factor": 2}
    hole = tasks.select("inpaint", block_size=4).observed(SHAPE, key)
    assert int((np.asarray(hole) == 0).sum()) == 16


@pytest.mark.parametrize("name", tasks.NAMES)
def test_ge_encodes_x_dagger_itself_except_where_deblur_preconditions_it(name):
    x_dagger = np.asarray(tasks.get(name).degrade(_images(), jax.random.key(1)))
    if name != "deblur":
        np.testing.assert_array_equal(tasks.get(name).ge_input(x_dagger), x_dagger)
        return
    blind = tasks.get(name).baselines(SHAPE, jax.random.key(1))["blind_richardson_lucy"]
    deconvolved = blind(x_dagger)
    assert np.abs(deconvolved - x_dagger).mean() > 1e-2
    for p in (0.0, 0.5, 1.0):  # p of the way from x_dagger to blind Richardson-Lucy's answer
        np.testing.assert_allclose(tasks.select(name, precondition=p).ge_input(x_dagger),
                                   x_dagger + p * (deconvolved - x_dagger), atol=1e-6)


def test_degrade_any_gives_each_image_one_task_and_uses_them_all():
    x, key = _images(40), jax.random.key(5)
    mixed = np.asarray(tasks.degrade_any(x, key))
    _, *keys = jax.random.split(key, 1 + len(tasks.NAMES))
    versions = [np.asarray(tasks.get(n).degrade(x, k))
                for n, k in zip(tasks.NAMES, keys, strict=True)]
    picked = []
    for i in range(len(x)):
        match = [t for t, v in enumerate(versions) if np.allclose(mixed[i], v[i], atol=1e-6)]
        assert match, f"image {i} is none of the task degradations"
        picked.append(match[0])
    assert set(picked) == set(range(len(tasks.NAMES)))
