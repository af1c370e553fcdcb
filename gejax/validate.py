"""Argument checks shared by the public functions: a user mistake raises here, naming the
argument, instead of surfacing from deep inside XLA. Values traced by a caller's jit
cannot be inspected and pass through."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
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


def reconstruct_inputs(generator, measure, y, key, latent_dim, options, args) -> None:
    """`gejax.reconstruct`'s arguments (`options` a `gejax.Options`, `args` its per-image
    measure_params as a tuple), before anything is traced or compiled."""
    for name, fn in (("generator", generator), ("measure", measure)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) \
            and key.ndim == 1:
        if key.shape != y.shape[:1]:
            raise ValueError(f"key holds {key.shape[0]} keys but y has {y.shape[0]} images: "
                             "pass one key, or one per image")
    else:
        prng_key(key)
    integer(latent_dim, "latent_dim", 1)
    integer(options.num_restarts, "num_restarts", 1)
    integer(options.steps, "steps", 0)
    number(options.learning_rate, "learning_rate")
    number(options.reg, "reg")
    number(options.tol, "tol")
    if not isinstance(options.whiten, bool):
        raise TypeError(f"whiten must be True or False, got {options.whiten!r}")
    if y.ndim < 1 or y.shape[0] < 1:
        raise ValueError(f"y must have a leading batch axis B >= 1, got shape {y.shape}")
    finite(y, "y")
    init = options.init
    if init is not None and not callable(init):
        b, k = y.shape[0], init.shape[1] if init.ndim == 3 else 1
        if init.ndim not in (2, 3) or init.shape[0] != b or init.shape[-1] != latent_dim:
            raise ValueError(f"init must be (B, latent_dim) = ({b}, {latent_dim}) or "
                             f"(B, K, latent_dim), or a callable y_b -> z_b, got shape "
                             f"{init.shape}")
        if k > options.num_restarts:
            raise ValueError(f"init holds {k} starts per image but num_restarts is "
                             f"{options.num_restarts}")
        finite(init, "init")
    z_spec = jax.ShapeDtypeStruct((latent_dim,), jnp.float32)
    try:
        x_spec = jax.eval_shape(generator, z_spec)
    except Exception as e:  # the user's generator, any failure: say which input broke it
        raise ValueError(f"generator failed on z of shape ({latent_dim},) "
                         f"(is latent_dim right?): {e}") from e
    for leaf in jax.tree_util.tree_leaves(args):
        if np.ndim(leaf) < 1 or np.shape(leaf)[0] != y.shape[0]:
            raise ValueError(f"every array of measure_params needs the leading batch axis of y "
                             f"({y.shape[0]}), got one of shape {np.shape(leaf)}")
    one = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], a.dtype), args)
    try:
        m_spec = jax.eval_shape(measure, x_spec, *one)
    except Exception as e:
        raise ValueError(f"measure failed on the generator's output of shape {x_spec.shape}"
                         f"{' and one image of measure_params' if args else ''}: {e}") from e
    if m_spec.shape != y.shape[1:]:
        raise ValueError(f"measure(generator(z)) has shape {m_spec.shape} but each measurement "
                         f"in y has shape {y.shape[1:]} (y is {y.shape})")
    if callable(init):
        try:
            z0 = jax.eval_shape(init, jax.ShapeDtypeStruct(y.shape[1:], jnp.float32))
        except Exception as e:
            raise ValueError(f"init failed on one measurement of shape {y.shape[1:]}: {e}") from e
        if z0.shape != (latent_dim,):
            raise ValueError(f"init must map one measurement to a latent ({latent_dim},), "
                             f"got {z0.shape}")


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the last good checkpoint is kept. Here, beside
    the other checks, so that the commands can catch it without loading training."""
