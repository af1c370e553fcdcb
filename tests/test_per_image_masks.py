"""Inpainting as evaluate.restore runs it: each image its own line mask (issue 17)."""

import jax
import numpy as np
import pytest
from skimage.restoration import inpaint_biharmonic

from gejax import baselines, tasks

SHAPE = (16, 16, 1)


def test_each_image_gets_its_own_line_mask_drawn_from_the_key():
    lines = tasks.get("inpaint_lines")
    masks = np.asarray(lines.observed_each(5, SHAPE, jax.random.key(0)))
    assert masks.shape == (5, *SHAPE[:2], 1)
    assert len({m.tobytes() for m in masks}) == 5  # five different draws
    np.testing.assert_array_equal(masks, lines.observed_each(5, SHAPE, jax.random.key(0)))
    assert not np.array_equal(masks, lines.observed_each(5, SHAPE, jax.random.key(1)))
    holes = 1 - masks.mean(axis=(1, 2, 3))
    assert np.all((holes > 0.05) & (holes < 0.7)), holes  # strokes, not all or nothing


def test_the_block_is_the_same_centred_hole_for_every_image():
    masks = np.asarray(tasks.get("inpaint_block").observed_each(3, SHAPE, jax.random.key(0)))
    side = round(30 * 16 / 64)
    hole = np.ones(SHAPE[:2])
    top = (16 - side) // 2
    hole[top:top + side, top:top + side] = 0
    for m in masks:
        np.testing.assert_array_equal(m[..., 0], hole)


@pytest.mark.parametrize("name", ["denoise", "deblur", "superres"])
def test_tasks_without_observed_pixels_have_no_masks(name):
    assert tasks.get(name).observed_each(3, SHAPE, jax.random.key(0)) is None


def test_biharmonic_fills_each_image_with_its_own_mask():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, *SHAPE)).astype(np.float32)
    masks = np.asarray(tasks.get("inpaint_lines").observed_each(3, SHAPE, jax.random.key(2)))
    out = baselines.biharmonic_inpaint(x * masks, masks)
    for i in range(3):
        ref = inpaint_biharmonic(x[i] * masks[i], masks[i, ..., 0] == 0, channel_axis=-1)
        np.testing.assert_allclose(out[i], np.clip(ref, 0, 1), atol=1e-6)
    baseline = tasks.get("inpaint_lines").baselines(SHAPE, jax.random.key(2), masks=masks)
    np.testing.assert_allclose(baseline["biharmonic"](x * masks), out)


def test_the_key_alone_gives_the_baseline_the_mask_that_degrade_used():
    """Task's promise: the same key, the same mask in degrade and baselines (no masks=)."""
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    x = (0.5 + 0.3 * np.sin(2 * yy + xx))[None, ..., None].astype(np.float32)
    task, key = tasks.get("inpaint_lines"), jax.random.key(3)
    restored = task.baselines(SHAPE, key)["biharmonic"](np.asarray(task.degrade(x, key)))
    assert np.abs(restored - x).max() < 0.05
