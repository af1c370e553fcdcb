"""Sparse deviations from G's range (Dhar, Grover and Ermon, ICML 2018): x = G(z) + nu with
nu = Psi^T c sparse in an orthonormal basis Psi, so that an image G cannot make is still
within reach where the measurements ask for it.

`reconstruct(..., deviation=Deviation(mu))` solves

    min_{z, c} ||measure(G(z) + Psi^T c) - y||^2 + lambda ||z||^2 + mu ||c||_1

by Adam on z and a proximal-gradient (ISTA) step on c: c <- soft(c - eta grad_c, eta mu),
eta = 1 / (2 L), L the largest eigenvalue of J^T J, J the Jacobian of each image's
measure at its first start (`curvature.lipschitz`). With mu large c stays 0 and the
answer is G(z); with G constant it is the Lasso in Psi.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from gejax import validate

BASES = ("dct", "haar")


@dataclasses.dataclass(frozen=True)
class Deviation:
    """A sparse deviation nu added to G(z) (see the module's docstring).

    Attributes:
      mu: the weight of ||Psi nu||_1; inf (or `deviation=None`) is the solver without nu.
        It has the scale of the objective's residual, so it is chosen per measurement
        (GA's A x and GE's EN(x) differ) on train images.
      basis: Psi, per channel: "dct" (the 2-D orthonormal DCT-II, Lasso-DCT's) or "haar"
        (the orthonormal Haar wavelets, every level the image's side allows).
    """

    mu: float
    basis: str = "dct"

    def check(self) -> None:
        if not self.off:  # inf: no deviation
            validate.number(self.mu, "deviation.mu")
        if self.basis not in BASES:
            raise ValueError(f"deviation.basis must be one of {BASES}, got {self.basis!r}")

    @property
    def off(self) -> bool:
        return not validate.is_traced(self.mu) and math.isinf(self.mu)


def dct(x: jax.Array) -> jax.Array:
    """Orthonormal 2-D DCT-II of an image (H, W, C), channel by channel."""
    return jax.scipy.fft.dctn(x, norm="ortho", axes=(0, 1))


def idct(c: jax.Array) -> jax.Array:
    """The inverse of `dct`: coefficients (H, W, C) -> image."""
    return jax.scipy.fft.idctn(c, norm="ortho", axes=(0, 1))


def _levels(h: int, w: int) -> int:
    n = 0
    while h % 2 == 0 and w % 2 == 0 and h > 1 and w > 1:
        h, w, n = h // 2, w // 2, n + 1
    return n


def _split(a, axis):  # (..., 2n, ...) -> averages then details, orthonormal
    even = jax.lax.slice_in_dim(a, 0, None, 2, axis)
    odd = jax.lax.slice_in_dim(a, 1, None, 2, axis)
    return jnp.concatenate([even + odd, even - odd], axis) / math.sqrt(2.0)


def _merge(a, axis):  # the inverse of _split
    lo, hi = jnp.split(a, 2, axis)
    even, odd = (lo + hi) / math.sqrt(2.0), (lo - hi) / math.sqrt(2.0)
    return jnp.stack([even, odd], axis + 1).reshape(a.shape)


def haar(x: jax.Array) -> jax.Array:
    """Orthonormal 2-D Haar wavelet transform of an image (H, W, C): at each level the
    top-left block (averages) splits into averages and details along rows and columns
    (pywt.wavedec2's "haar" coefficients, laid out in one array), as long as both sides
    are even."""
    x = jnp.asarray(x)
    h, w = x.shape[:2]
    for _ in range(_levels(h, w)):
        block = _split(_split(x[:h, :w], 0), 1)
        x, h, w = x.at[:h, :w].set(block), h // 2, w // 2
    return x


def ihaar(c: jax.Array) -> jax.Array:
    """The inverse of `haar`: coefficients (H, W, C) -> image."""
    c = jnp.asarray(c)
    h, w = c.shape[:2]
    n = _levels(h, w)
    for level in reversed(range(n)):
        hh, ww = h >> level, w >> level
        c = c.at[:hh, :ww].set(_merge(_merge(c[:hh, :ww], 1), 0))
    return c


def synthesis(basis: str) -> Partial:
    """Psi^T of a basis name: coefficients (H, W, C) -> deviation nu (H, W, C)."""
    return Partial({"dct": idct, "haar": ihaar}[basis])


def analysis(basis: str) -> Partial:
    """Psi of a basis name: image (H, W, C) -> coefficients (H, W, C)."""
    return Partial({"dct": dct, "haar": haar}[basis])


def soft_threshold(c: jax.Array, t: jax.typing.ArrayLike) -> jax.Array:
    """The proximal map of t ||c||_1: sign(c) max(|c| - t, 0), elementwise."""
    return jnp.sign(c) * jnp.maximum(jnp.abs(c) - t, 0.0)


class Coefficients(NamedTuple):
    """A solve's deviation coefficients, each (B, R, H, W, C): the FISTA iterate `now`,
    the one before, and those of the best point each restart has visited."""

    now: jax.Array
    before: jax.Array
    best: jax.Array

    @classmethod
    def zeros(cls, shape) -> Coefficients:
        c = jnp.zeros(shape, jnp.float32)
        return cls(c, c, c)

    def point(self, count: jax.Array) -> jax.Array:
        """FISTA's extrapolated point now + k / (k + 3) (now - before), where the gradient
        is taken; `count` (B,) the steps each image has taken (k)."""
        k = count.astype(jnp.float32).reshape((-1,) + (1,) * (self.now.ndim - 1))
        return self.now + k / (k + 3.0) * (self.now - self.before)

    def step(self, point, grad, eta, mu, better) -> Coefficients:
        """The proximal step from `point` with its gradient: soft(point - eta grad, eta mu),
        eta, mu (B,); `better` (B, R) where point's objective beats the restart's best."""
        eta, mu = (a.reshape((-1,) + (1,) * (point.ndim - 1)) for a in (eta, mu))
        best = jnp.where(better.reshape(better.shape + (1,) * (point.ndim - 2)), point, self.best)
        return Coefficients(soft_threshold(point - eta * grad, eta * mu), self.now, best)


class Sparse(NamedTuple):
    """Each image's deviation in a solve (`solver.Problem`): nu = synth(c)."""

    mu: jax.Array  # (B,) the weight of ||c||_1
    step: jax.Array  # (B,) the proximal step on c
    synth: Partial  # Psi^T without arrays (static): coefficients (H, W, C) -> image
