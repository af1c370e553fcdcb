"""The restoration tasks of the paper's section 3.2, one frozen dataclass each, in one
registry: how x_dagger is made, the operator S that GE applies to G(z) (eq. 5/6), the
classical baselines a user would reach for, and the settings a user may change.

evaluate.restore degrades test images with them, and train.ae --corrupt trains an
encoder on the same degradations (the paper's "customized encoders ... for different
challenges", sec. 4.2). `degrade` and `operator` are jnp, so they also run inside a
jitted step. Adding a task means adding a class here and an entry in TASKS.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial
from jax.typing import ArrayLike

from gejax import baselines, operators, validate

Baseline = Callable[[np.ndarray], np.ndarray]  # x_dagger (N, H, W, C) -> x_hat


@dataclasses.dataclass(frozen=True)
class Task:
    """What every task answers; a subclass sets `name` and `figure` and overrides `degrade`.

    `key` always means the same draw: the same key gives the same noise or line mask to
    `degrade`, `operator`, `observed` and `baselines`.
    """

    name: ClassVar[str]
    figure: ClassVar[str]  # the paper's figure that evaluate.restore reproduces

    def check(self, image_shape: tuple[int, ...]) -> None:
        """Refuse settings that cannot work on images of `image_shape` (H, W, C)."""

    def degrade(self, x: ArrayLike, key: jax.Array) -> jax.Array:
        """x_dagger (N, H, W, C) from clean images x (N, H, W, C)."""
        raise NotImplementedError

    def operator(self, image_shape: tuple[int, ...], key: jax.Array) -> Partial | None:
        """S, per image (H, W, C) -> (H, W, C), that GE applies to G(z); None: identity."""
        return None

    def ge_input(self, x_dagger: np.ndarray) -> np.ndarray:
        """What GE encodes, EN(.) of eq. 6, from x_dagger (N, H, W, C): x_dagger itself
        unless a classical method preconditions it (deblur)."""
        return x_dagger

    def observed(self, image_shape: tuple[int, ...], key: jax.Array) -> jax.Array | None:
        """(H, W, 1) mask of the pixels x_dagger shows as they are (inpainting), else None."""
        return None

    def observed_each(self, n: int, image_shape: tuple[int, ...], key: jax.Array
                      ) -> jax.Array | None:
        """(n, H, W, 1): each of n images its own mask, or None where `observed` is None.

        evaluate.restore degrades with these: x_dagger = M_i x_i and S_i(x) = M_i x, M_i
        passed to the solver as each image's `measure_params`, and the baselines given them
        (`baselines(..., masks=)`). A random mask is drawn per image from split(key, n); a
        fixed one is repeated. (`degrade` keeps one mask for the batch: the recipe the
        shipped encoders were trained with.)
        """
        return None

    def params(self, image_shape: tuple[int, ...]) -> dict:
        """The settings as used on images of `image_shape`, for results.json."""
        return dataclasses.asdict(self)

    def baselines(self, image_shape: tuple[int, ...], key: jax.Array, masks=None
                  ) -> dict[str, Baseline]:
        """The classical methods: name -> (x_dagger -> x_hat), for images degraded with
        `key` by `degrade`, or, where `masks` (N, H, W, 1) is given, masked image by image
        with those (`observed_each`)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Denoise(Task):
    """Additive Gaussian noise of std `sigma` (the paper's 0.4); GE's S is the identity."""

    sigma: float = 0.4
    name: ClassVar[str] = "denoise"
    figure: ClassVar[str] = "figure8"

    def check(self, image_shape):
        validate.number(self.sigma, "--sigma", positive=True)

    def degrade(self, x, key):
        return operators.gaussian_noise(x, key, sigma=self.sigma)

    def baselines(self, image_shape, key, masks=None):
        return {"bm3d": functools.partial(baselines.bm3d_denoise, sigma=self.sigma)}


@dataclasses.dataclass(frozen=True)
class Deblur(Task):
    """Gaussian blur of std `blur_sigma` px (default 1.5 at 32x32, scaled with the side).

    GE is blind (S is the identity); so is blind Richardson-Lucy, given only the kernel's
    size, while Wiener and Richardson-Lucy get the true kernel. GE encodes x_dagger moved
    a fraction `precondition` of the way to blind Richardson-Lucy's answer, a classical
    preconditioner as bicubic up-sampling is for super-resolution (the paper's sec. 4.2).
    """

    blur_sigma: float | None = None
    precondition: float = 0.5
    """GE encodes x_dagger + p (blind RL(x_dagger) - x_dagger); 0: x_dagger, the paper's.
    0.5 was the best of {0, 0.25, 0.5, 0.75, 1} for GE1 on 64 *train* digits
    (docs/notes/training.md)"""
    name: ClassVar[str] = "deblur"
    figure: ClassVar[str] = "figure9"

    def sigma_for(self, image_size: int) -> float:
        return self.blur_sigma if self.blur_sigma is not None else 1.5 * image_size / 32

    def check(self, image_shape):
        validate.number(self.sigma_for(image_shape[0]), "--blur_sigma", positive=True)
        validate.number(self.precondition, "--precondition")
        if not 0 <= self.precondition <= 1:
            raise ValueError(f"--precondition must be in [0, 1], got {self.precondition}")

    def degrade(self, x, key):
        return operators.gaussian_blur(x, sigma=self.sigma_for(x.shape[-3]))

    def params(self, image_shape):
        return {"blur_sigma": self.sigma_for(image_shape[0]), "precondition": self.precondition}

    def _blind(self, image_shape) -> Baseline:
        size = operators.default_blur_kernel_size(self.sigma_for(image_shape[0]))
        # 100 iterations were the best of {10, 30, 100} on 16 train images (19.97 dB; 30
        # gave 19.86).
        return functools.partial(baselines.blind_richardson_lucy_deconvolve, kernel_size=size,
                                 num_iter=100)

    def ge_input(self, x_dagger):
        if self.precondition == 0:
            return x_dagger
        return x_dagger + self.precondition * (self._blind(x_dagger.shape[1:])(x_dagger) - x_dagger)

    def baselines(self, image_shape, key, masks=None):
        sigma = self.sigma_for(image_shape[0])
        size = operators.default_blur_kernel_size(sigma)
        delta = np.zeros((size, size, 1), np.float32)
        delta[size // 2, size // 2] = 1
        kernel = np.asarray(operators.gaussian_blur(delta, sigma=sigma))[..., 0]
        return {"wiener": functools.partial(baselines.wiener_deconvolve, kernel=kernel),
                "richardson_lucy": functools.partial(baselines.richardson_lucy_deconvolve,
                                                     kernel=kernel),
                "blind_richardson_lucy": self._blind(image_shape)}


@dataclasses.dataclass(frozen=True)
class SuperRes(Task):
    """Down-sampling by `factor` (the paper's 64x64 -> 16x16 is 4).

    x_dagger is the bicubic up-sampling of the low-resolution image (the paper's
    preconditioner), so it is also the baseline; S maps G(z) through the same down- and
    up-sampling.
    """

    factor: int = 4
    name: ClassVar[str] = "superres"
    figure: ClassVar[str] = "figure10"

    def check(self, image_shape):
        validate.integer(self.factor, "--factor", 2)
        if image_shape[0] % self.factor or image_shape[1] % self.factor:
            raise ValueError(f"--factor {self.factor} must divide the image side "
                             f"{image_shape[0]}x{image_shape[1]}")

    def degrade(self, x, key):
        return _down_up(self.factor)(x)

    def operator(self, image_shape, key):
        return Partial(_down_up(self.factor))

    def baselines(self, image_shape, key, masks=None):
        return {"bicubic": _clip}


@dataclasses.dataclass(frozen=True)
class Inpaint(Task):
    """Missing pixels under a `mask`: a centre "block" of side `block_size` (default the
    paper's 30 at 64x64, scaled with the side) or hand-drawn-like "lines"."""

    mask: str = "block"
    block_size: int | None = None
    figure: ClassVar[str] = "figure11"

    @property
    def name(self) -> str:  # each mask is a task of its own (own encoder, own results)
        return f"inpaint_{self.mask}"

    def size_for(self, image_size: int) -> int:
        return self.block_size if self.block_size is not None else max(1, round(30 * image_size
                                                                                / 64))

    def check(self, image_shape):
        if self.mask not in ("block", "lines"):
            raise ValueError(f"--mask must be 'block' or 'lines', got {self.mask!r}")
        if self.block_size is not None and self.mask != "block":
            raise ValueError("--block_size applies to --mask block only")
        side = min(image_shape[:2])
        validate.integer(self.size_for(image_shape[0]), "--block_size", 1)
        if self.size_for(image_shape[0]) > side:
            raise ValueError(f"--block_size must be in [1, {side}], got {self.block_size}")

    def observed(self, image_shape, key):
        if self.mask == "block":
            return operators.block_mask(image_shape, size=self.size_for(image_shape[0]))
        return operators.line_mask(key, image_shape)

    def observed_each(self, n, image_shape, key):
        if self.mask == "block":
            return jnp.broadcast_to(self.observed(image_shape, key), (n, *image_shape[:2], 1))
        return jax.vmap(lambda k: self.observed(image_shape, k))(jax.random.split(key, n))

    def degrade(self, x, key):
        return operators.apply_mask(x, self.observed(x.shape[-3:], key))

    def operator(self, image_shape, key):
        return Partial(operators.apply_mask, mask=self.observed(image_shape, key))

    def params(self, image_shape):
        if self.mask == "lines":
            return {"mask": "lines"}
        return {"mask": "block", "block_size": self.size_for(image_shape[0])}

    def baselines(self, image_shape, key, masks=None):
        masks = self.observed(image_shape, key) if masks is None else masks
        return {"biharmonic": functools.partial(baselines.biharmonic_inpaint,
                                                mask=np.asarray(masks))}


# name -> the task with the paper's settings. Inpainting is one task of the paper with
# two masks; each mask is a task of its own here.
TASKS: dict[str, Task] = {t.name: t for t in (Denoise(), Deblur(), SuperRes(),
                                               Inpaint("block"), Inpaint("lines"))}
NAMES = tuple(TASKS)


def get(name: str, **settings) -> Task:
    """The task `name` with the paper's settings, those in `settings` replaced."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: use one of {', '.join(NAMES)}")
    return dataclasses.replace(TASKS[name], **settings)


def select(task: str, *, mask: str = "block", **settings) -> Task:
    """The task of evaluate.restore's flags: `task` one of denoise, deblur, superres,
    inpaint (with `mask`); `settings` (sigma, blur_sigma, precondition, factor, block_size)
    that are None keep the default, and one that the task does not have is refused."""
    masks = [n.removeprefix("inpaint_") for n in NAMES if n.startswith("inpaint_")]
    if task == "inpaint" and mask not in masks:
        raise ValueError(f"--mask must be one of {', '.join(masks)}, got {mask!r}")
    name = f"inpaint_{mask}" if task == "inpaint" else task
    if name not in TASKS or name.startswith("inpaint_") != (task == "inpaint"):
        choices = sorted({n.split("_")[0] for n in NAMES})
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(choices)}")
    given = {k: v for k, v in settings.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(TASKS[name])}
    for k in given:
        if k not in fields:
            raise ValueError(f"--{k} does not apply to --task {task}")
    return get(name, **given)


def degrade_any(x: ArrayLike, key: jax.Array) -> jax.Array:
    """Each image of x (N, H, W, C) degraded by one task of TASKS, picked uniformly per image.

    For one encoder that serves every task (train.ae --corrupt all): all tasks degrade the
    whole batch (cheap beside the encoder's step) and each image keeps one of them.
    """
    x = jnp.asarray(x)
    k_pick, *keys = jax.random.split(key, 1 + len(TASKS))
    versions = jnp.stack([t.degrade(x, k) for t, k in zip(TASKS.values(), keys, strict=True)])
    pick = jax.random.randint(k_pick, (x.shape[0],), 0, len(TASKS))
    return versions[pick, jnp.arange(x.shape[0])]


def _clip(x_dagger: np.ndarray) -> np.ndarray:
    return np.clip(x_dagger, 0, 1)


@functools.cache
def _down_up(factor: int) -> Callable:
    """S for super-resolution: down-sample by `factor`, then bicubic back (factor static)."""

    def down_up(x):
        return operators.bicubic_upsample(operators.downsample(x, factor), factor)

    return down_up
