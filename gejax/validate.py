"""Argument checks shared by the public functions: a user mistake raises here, naming the
argument, instead of surfacing from deep inside XLA. Values traced by a caller's jit
cannot be inspected and pass through."""

from __future__ import annotations

import math

import jax
import numpy as np


def is_traced(*xs) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def prng_key(key, name: str = "key") -> None:
    """A typed key (jax.random.key) or a legacy uint32 (2,) key (jax.random.PRNGKey)."""
    typed = isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    legacy = (isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32
              and key.shape == (2,))
    if not (typed or legacy):
        raise TypeError(f"{name} must be a PRNG key from jax.random.key(seed) (or PRNGKey), "
                        f"got {type(key).__name__} {getattr(key, 'dtype', '')}")


def integer(value, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def number(value, name: str, *, positive: bool = False) -> None:
    """A finite real >= 0 (> 0 if `positive`)."""
    if is_traced(value):
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value}")


def finite(x, name: str) -> None:
    if not is_traced(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} contains NaN or infinite values")


def config_fields(cfg, *, zero_ok: tuple[str, ...] = (), positive: tuple[str, ...] = ()
                  ) -> None:
    """A training config's fields as flags: ints >= 1 (>= 0 if in `zero_ok`), numbers >= 0
    (> 0 if in `positive`); str fields are left to the config's own check."""
    import dataclasses

    for f in dataclasses.fields(cfg):
        value, flag = getattr(cfg, f.name), f"--{f.name}"
        if f.type in (int, "int"):
            integer(value, flag, 0 if f.name in zero_ok else 1)
        elif f.type in (float, "float"):
            number(value, flag, positive=f.name in positive)


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the last good checkpoint is kept. Here, beside
    the other checks, so that the commands can catch it without loading training."""
