"""The solving phase of GE: find z minimising ||measure(G(z)) - y||^2 + reg ||z||^2.

One function, `reconstruct`, solves a batch of B measurements from R random starts
each with Adam (optax), and returns per image the restart with the lowest objective.
The objective is never compared with a ground-truth image.

`generator` and `measure` are per-example callables. To let a second call with new
parameters reuse the compiled program, pass them as `jax.tree_util.Partial(fn, params)`:
the function is static, the parameters are traced inputs. Plain functions work too
(they are static; arrays they close over become constants of the program).

How the Adam steps run depends on the backend, by measurement (benchmarks/solver.py):
on XLA:CPU a convolution inside a while loop (lax.scan) runs ~6x slower than the same
step outside one, so on CPU a jitted chunk of fully unrolled steps is called from
Python; elsewhere, and whenever the inputs are traced by the caller's own jit/vmap,
the whole solve is one program with lax.scan over the steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.tree_util import Partial

from gejax import parallel, validate

# Steps per compiled chunk on CPU: long enough that Python dispatch is negligible next
# to a step (milliseconds at least), short enough to compile in seconds.
CPU_CHUNK = 10


class Reconstruction(NamedTuple):
    """What `reconstruct` returns.

    Attributes:
      x_hat: (B, H, W, C) G(z) of the best restart of each image.
      z: (B, latent_dim) the best restart's latent.
      objective: (B, R) the final objective of every image and restart.
      best_restart: (B,) index of the restart chosen (argmin of `objective`).
    """

    x_hat: jax.Array
    z: jax.Array
    objective: jax.Array
    best_restart: jax.Array


def ge_measure(encoder: Callable, transform: Callable | None = None) -> Partial:
    """The GE measurement EN(S(x)) (paper eq. 3, 5): S = `transform`, identity if None."""
    for name, fn in (("encoder", encoder), ("transform", transform)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    return Partial(_encode_transformed, _as_partial(encoder), _as_partial(transform or _identity))


def ga_measure(a: jax.Array) -> Partial:
    """The CSGM ("GA") measurement A vec(x) with A of shape (m, H*W*C) (paper eq. 4)."""
    a = jnp.asarray(a, jnp.float32)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"A must be a non-empty (m, H*W*C) matrix, got shape {a.shape}")
    validate.finite(a, "A")
    return Partial(_matvec, a)


def _identity(x):
    return x


def _encode_transformed(encoder, transform, x):
    return encoder(transform(x))


def _matvec(a, x):
    return a @ x.reshape(-1)


def _as_partial(fn: Callable) -> Partial:
    return fn if isinstance(fn, Partial) else Partial(fn)


def _objectives(generator, measure, z, y, reg):
    """Objective of every image and restart: z (B, R, L), y (B, ...) -> (B, R)."""

    def one(z1, y1):
        r = measure(generator(z1)) - y1
        return jnp.sum(r**2) + reg * jnp.sum(z1**2)

    return jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(0, 0))(z, y)


def _optimizer():
    return optax.inject_hyperparams(optax.adam)(learning_rate=0.1)


def _init(y, key, latent_dim, num_restarts, learning_rate):
    z = jax.random.normal(key, (y.shape[0], num_restarts, latent_dim), jnp.float32)
    opt_state = _optimizer().init(z)
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    return z, opt_state


def _steps(generator, measure, y, z, opt_state, reg, num_steps, unroll):
    """`num_steps` Adam steps on the summed objective (images and restarts are independent)."""
    opt = _optimizer()

    def step(carry, _):
        z, state = carry
        grad = jax.grad(lambda z: jnp.sum(_objectives(generator, measure, z, y, reg)))(z)
        updates, state = opt.update(grad, state)
        return (optax.apply_updates(z, updates), state), None

    (z, opt_state), _ = jax.lax.scan(step, (z, opt_state), None, length=num_steps, unroll=unroll)
    return z, opt_state


def _finish(generator, measure, y, z, reg):
    objective = _objectives(generator, measure, z, y, reg)
    best = jnp.argmin(objective, axis=1)
    z_best = jnp.take_along_axis(z, best[:, None, None], axis=1)[:, 0]
    return Reconstruction(jax.vmap(generator)(z_best), z_best, objective, best)


@functools.partial(jax.jit, static_argnames=("steps",))
def _solve_scan(generator, measure, y, z, opt_state, reg, *, steps):
    z, _ = _steps(generator, measure, y, z, opt_state, reg, steps, unroll=1)
    return _finish(generator, measure, y, z, reg)


_init_jit = jax.jit(_init, static_argnames=("latent_dim", "num_restarts"))
_finish_jit = jax.jit(_finish)


@functools.partial(jax.jit, static_argnames=("num_steps",), donate_argnums=(3, 4))
def _chunk(generator, measure, y, z, opt_state, reg, *, num_steps):
    return _steps(generator, measure, y, z, opt_state, reg, num_steps, unroll=num_steps)


def _solve_chunked(generator, measure, y, z, opt_state, reg, *, steps, chunk=CPU_CHUNK,
                   progress=None):
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        z, opt_state = _chunk(generator, measure, y, z, opt_state, reg, num_steps=n)
        done += n
        if progress is not None:
            z.block_until_ready()  # report finished steps, not steps queued by async dispatch
            progress(n)
    return _finish_jit(generator, measure, y, z, reg)


def _shard(mesh, generator, measure, y, z, opt_state):
    """Split images (padded to a multiple of the devices) over the mesh; replicate the rest.

    z is drawn before padding and padded with zeros, so every image starts from the same z
    as on one device and the sharded result equals the unsharded one.
    """
    n = y.shape[0]
    pad = -n % mesh.size
    if pad:
        def grow(a, fill):
            return jnp.concatenate([a, jnp.broadcast_to(fill, (pad,) + a.shape[1:])])

        y = grow(y, y[-1])  # a real measurement keeps the padded rows finite
        z, opt_state = jax.tree_util.tree_map(
            lambda a: grow(a, 0.0) if a.ndim and a.shape[0] == n else a, (z, opt_state))
    generator, measure = parallel.put((generator, measure), mesh)
    y, z, opt_state = parallel.put((y, z, opt_state), mesh, batch=y.shape[0])
    return generator, measure, y, z, opt_state


def _validate(generator, measure, y, key, latent_dim, num_restarts, steps, learning_rate, reg):
    for name, fn in (("generator", generator), ("measure", measure)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    validate.prng_key(key)
    validate.integer(latent_dim, "latent_dim", 1)
    validate.integer(num_restarts, "num_restarts", 1)
    validate.integer(steps, "steps", 0)
    validate.number(learning_rate, "learning_rate")
    validate.number(reg, "reg")
    if y.ndim < 1 or y.shape[0] < 1:
        raise ValueError(f"y must have a leading batch axis B >= 1, got shape {y.shape}")
    validate.finite(y, "y")
    z_spec = jax.ShapeDtypeStruct((latent_dim,), jnp.float32)
    try:
        x_spec = jax.eval_shape(generator, z_spec)
    except Exception as e:  # the user's generator, any failure: say which input broke it
        raise ValueError(f"generator failed on z of shape ({latent_dim},) "
                         f"(is latent_dim right?): {e}") from e
    try:
        m_spec = jax.eval_shape(measure, x_spec)
    except Exception as e:
        raise ValueError(f"measure failed on the generator's output of shape {x_spec.shape}: "
                         f"{e}") from e
    if m_spec.shape != y.shape[1:]:
        raise ValueError(f"measure(generator(z)) has shape {m_spec.shape} but each measurement "
                         f"in y has shape {y.shape[1:]} (y is {y.shape})")


def reconstruct(generator: Callable, measure: Callable, y: jax.typing.ArrayLike, *,
                key: jax.Array, latent_dim: int, num_restarts: int = 2, steps: int = 500,
                learning_rate: float = 0.1, reg: float = 1e-3, loop: str = "auto",
                progress: Callable[[int], None] | None = None,
                mesh: jax.sharding.Mesh | None = None) -> Reconstruction:
    """Solve z* = argmin_z ||measure(generator(z)) - y_b||^2 + reg ||z||^2 for every y_b.

    Args:
      generator: G, per example: z (latent_dim,) -> image (H, W, C).
      measure: per example: image (H, W, C) -> measurement, e.g. `ge_measure(EN, S)` for
        GE or `ga_measure(A)` for CSGM.
      y: (B, *measurement_shape) measurements, e.g. EN(x) or EN(x_dagger) or A vec(x).
      key: PRNG key for the random starts z ~ N(0, I).
      latent_dim: size of z.
      num_restarts: R random starts per image.
      steps: Adam steps.
      learning_rate: Adam's step size (paper: 0.1).
      reg: lambda, the weight of ||z||^2.
      loop: "scan" (one program, lax.scan), "chunked" (jitted unrolled chunks of steps
        called from Python; fastest on CPU) or "auto" (chunked on CPU unless traced).
      progress: optional callback given the number of steps just done (chunked only).
      mesh: split the images over this device mesh (`gejax.parallel.batch_mesh()`; axis
        "batch"), parameters replicated. Same result as one device. With several hosts
        every process passes the same y and key; outputs are global arrays
        (`gejax.parallel.to_host` gathers them). Ignored when called under the caller's
        own jit, where the caller's shardings rule.

    Returns:
      A `Reconstruction`: x_hat (B, H, W, C), z (B, latent_dim), objective (B, R),
      best_restart (B,), the restart with the lowest objective for each image.
    """
    y = jnp.asarray(y) if not validate.is_traced(y) else y
    _validate(generator, measure, y, key, latent_dim, num_restarts, steps, learning_rate, reg)
    if loop not in ("auto", "scan", "chunked"):
        raise ValueError(f"loop must be 'auto', 'scan' or 'chunked', got {loop!r}")
    if mesh is not None and not (isinstance(mesh, jax.sharding.Mesh)
                                 and mesh.axis_names == (parallel.BATCH,)):
        raise TypeError("mesh must be a 1-D jax.sharding.Mesh with axis 'batch' "
                        f"(gejax.parallel.batch_mesh()), got {mesh!r}")
    traced = validate.is_traced(y, key, learning_rate, reg, generator, measure)
    if loop == "auto":
        loop = "chunked" if jax.default_backend() == "cpu" and not traced else "scan"
    generator, measure = _as_partial(generator), _as_partial(measure)
    y = y.astype(jnp.float32)
    reg = jnp.asarray(reg, jnp.float32)
    init = _init if traced else _init_jit
    z, opt_state = init(y, key, int(latent_dim), int(num_restarts),
                        jnp.asarray(learning_rate, jnp.float32))
    n = y.shape[0]
    if mesh is not None and not traced:
        generator, measure, y, z, opt_state = _shard(mesh, generator, measure, y, z, opt_state)
        reg = parallel.put(reg, mesh)
    if loop == "chunked":
        out = _solve_chunked(generator, measure, y, z, opt_state, reg, steps=int(steps),
                             progress=progress)
    else:
        out = _solve_scan(generator, measure, y, z, opt_state, reg, steps=int(steps))
    return out if out.x_hat.shape[0] == n else Reconstruction(*(a[:n] for a in out))


def projection_floor(generator: Callable, x: jax.typing.ArrayLike, *, key: jax.Array,
                     latent_dim: int, num_restarts: int = 2, steps: int = 500,
                     learning_rate: float = 0.1, mesh: jax.sharding.Mesh | None = None,
                     progress: Callable[[int], None] | None = None) -> jax.Array:
    """G's floor on images x (B, H, W, C): per-image MSE of G(z*), z* = argmin ||G(z) - x||^2.

    The measurement is x itself and lambda is 0, so no method that returns some G(z) can
    beat it on these images: it tells a weak G from a weak encoder or solver. G(z*) is
    clipped to [0, 1] as every reported reconstruction is. Returns (B,) per-pixel MSEs.
    """
    x = jnp.asarray(x, jnp.float32)
    out = reconstruct(generator, _identity, x, key=key, latent_dim=latent_dim,
                      num_restarts=num_restarts, steps=steps, learning_rate=learning_rate,
                      reg=0.0, progress=progress, mesh=mesh)
    # Gathering is collective across hosts: only with a mesh do all processes take part.
    x_hat = jnp.clip(out.x_hat if mesh is None else parallel.to_host(out.x_hat), 0.0, 1.0)
    return jnp.mean((x_hat - x) ** 2, axis=tuple(range(1, x.ndim)))
