"""The restoration tasks of the paper's section 3.2, in one place: how x_dagger is made
and the operator S that GE applies to G(z) (eq. 5/6).

evaluate.restore degrades test images with them, and train.ae --corrupt trains an
encoder on the same degradations (the paper's "customized encoders ... for different
challenges", sec. 4.2). Everything here is jnp, so it also runs inside a jitted step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.tree_util import Partial
from jax.typing import ArrayLike

from gejax import operators

# Inpainting is one task of the paper with two masks; each mask is a task of its own here.
NAMES = ("denoise", "deblur", "superres", "inpaint_block", "inpaint_lines")
NOISE_SIGMA = 0.4  # the paper's additive Gaussian noise
SR_FACTOR = 4  # the paper's 64x64 -> 16x16


def blur_sigma(image_size: int) -> float:
    """Blur width for the deblurring task: 1.5 px at 32x32, scaled with the image side."""
    return 1.5 * image_size / 32


def check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown task {name!r}: use one of {', '.join(NAMES)}")


def operator(name: str, image_shape: tuple[int, ...], key: jax.Array
             ) -> tuple[Partial | None, dict]:
    """S of a task (None for the identity) and the task's parameters.

    The parameters go to results.json; inpainting's also hold the mask ("mask_array",
    (H, W, 1)) for the classical baselines. `key` draws the line mask.
    """
    check_name(name)
    if name == "denoise":
        return None, {"sigma": NOISE_SIGMA}
    if name == "deblur":
        return None, {"blur_sigma": blur_sigma(image_shape[0])}
    if name == "superres":
        # x_dagger is the bicubic up-sampling of the low-resolution image (the paper's
        # preconditioner); S maps G(z) through the same down- and up-sampling.
        return Partial(_down_up(SR_FACTOR)), {"factor": SR_FACTOR}
    kind = name.removeprefix("inpaint_")
    mask = (operators.block_mask(image_shape) if kind == "block"
            else operators.line_mask(key, image_shape))
    return Partial(operators.apply_mask, mask=mask), {"mask": kind, "mask_array": mask}


def degrade(name: str, x: ArrayLike, key: jax.Array) -> jax.Array:
    """x_dagger (N, H, W, C) of a task from clean images x (N, H, W, C).

    The same key gives the same noise or line mask as `operator(name, ..., key)`.
    """
    s, params = operator(name, x.shape[1:], key)
    if name == "denoise":
        return operators.gaussian_noise(x, key, sigma=params["sigma"])
    if name == "deblur":
        return operators.gaussian_blur(x, sigma=params["blur_sigma"])
    return s(x)


def degrade_any(x: ArrayLike, key: jax.Array) -> jax.Array:
    """Each image of x (N, H, W, C) degraded by one task of NAMES, picked uniformly per image.

    For one encoder that serves every task (train.ae --corrupt all): all tasks degrade the
    whole batch (cheap beside the encoder's step) and each image keeps one of them.
    """
    x = jnp.asarray(x)
    k_pick, *keys = jax.random.split(key, 1 + len(NAMES))
    versions = jnp.stack([degrade(name, x, k) for name, k in zip(NAMES, keys, strict=True)])
    pick = jax.random.randint(k_pick, (x.shape[0],), 0, len(NAMES))
    return versions[pick, jnp.arange(x.shape[0])]


@functools.cache
def _down_up(factor: int) -> Callable:
    """S for super-resolution: down-sample by `factor`, then bicubic back (factor static)."""

    def down_up(x):
        return operators.bicubic_upsample(operators.downsample(x, factor), factor)

    return down_up
