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
the whole solve is one program with lax.scan over the steps. The choice is internal:
both paths give the same numbers and report progress.

With `tol > 0` an image stops once its objective has stopped falling (see
`reconstruct`); on the CPU path the stopped images leave the batch, so an early stop
saves the time of the steps it skips.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
      steps_run: (B,) Adam steps each image ran: `steps`, or fewer where `tol` stopped it.
    """

    x_hat: jax.Array
    z: jax.Array
    objective: jax.Array
    best_restart: jax.Array
    steps_run: jax.Array


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


def _init(y, key, latent_dim, num_restarts, learning_rate, z0):
    """Starting latents (B, R, L): z ~ N(0, I) from `key`, the first K set to z0 (B, K, L)."""
    z = jax.random.normal(key, (y.shape[0], num_restarts, latent_dim), jnp.float32)
    if z0 is not None:
        z = z.at[:, :z0.shape[1]].set(z0)
    opt_state = _optimizer().init(z)
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    return z, opt_state


def _adam_step(generator, measure, y, reg):
    """One Adam step on the summed objective (images and restarts are independent)."""
    opt = _optimizer()

    def step(carry, _):
        z, state = carry
        grad = jax.grad(lambda z: jnp.sum(_objectives(generator, measure, z, y, reg)))(z)
        updates, state = opt.update(grad, state)
        return (optax.apply_updates(z, updates), state), None

    return step


def _steps(generator, measure, y, z, opt_state, reg, num_steps, unroll):
    """`num_steps` Adam steps, unrolled `unroll` at a time."""
    (z, opt_state), _ = jax.lax.scan(_adam_step(generator, measure, y, reg), (z, opt_state),
                                     None, length=num_steps, unroll=unroll)
    return z, opt_state


def _pick(generator, z, objective, steps_run):
    """The Reconstruction of the restart with the lowest objective: z (B, R, L), (B, R)."""
    best = jnp.argmin(objective, axis=1)
    z_best = jnp.take_along_axis(z, best[:, None, None], axis=1)[:, 0]
    return Reconstruction(jax.vmap(generator)(z_best), z_best, objective, best, steps_run)


def _finish(generator, measure, y, z, reg, steps_run):
    return _pick(generator, z, _objectives(generator, measure, z, y, reg), steps_run)


def _report(n):
    """Host side of the scan path's progress: pass n finished steps to the caller's callback."""
    if _progress_sink:
        _progress_sink[-1](int(n))


# The progress callback of the running solve. A compiled program cannot hold a Python
# callable that changes from call to call without recompiling, so it calls `_report`,
# which looks the callback up here.
_progress_sink: list[Callable[[int], None]] = []


def _windows(step_fn, carry, steps, report):
    """Run `step_fn` `steps` times in lax.scan windows of CPU_CHUNK steps, reporting each."""
    def window(carry, _, length=CPU_CHUNK):
        carry, _ = jax.lax.scan(step_fn, carry, None, length=length)
        if report:
            jax.debug.callback(_report, length)
        return carry, None

    full, rest = divmod(steps, CPU_CHUNK)
    carry, _ = jax.lax.scan(window, carry, None, length=full)
    if rest:
        carry, _ = window(carry, None, length=rest)
    return carry


@functools.partial(jax.jit, static_argnames=("steps", "report"))
def _solve_scan(generator, measure, y, z, opt_state, reg, *, steps, report=False):
    z, _ = _windows(_adam_step(generator, measure, y, reg), (z, opt_state), steps, report)
    return _finish(generator, measure, y, z, reg, jnp.full(z.shape[:1], steps, jnp.int32))


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
    return _finish_jit(generator, measure, y, z, reg, jnp.full(z.shape[:1], steps, jnp.int32))


# Early stopping (tol > 0), per image. Each restart remembers the best z it has visited;
# every CPU_CHUNK steps an image whose best objective over its restarts fell by no more
# than tol x its value CPU_CHUNK steps earlier stops, and each restart keeps its best z.


class _Track(NamedTuple):
    """A solve that can stop early: z, Adam's state, and the best z each restart visited."""

    z: jax.Array  # (B, R, L)
    opt_state: optax.OptState
    best_z: jax.Array  # (B, R, L)
    best: jax.Array  # (B, R) objective of best_z; +inf before the first step


def _tracked_step(generator, measure, y, reg, track: _Track, live) -> _Track:
    """One Adam step of the images where `live` (B,); the others keep their state."""
    def total(z):
        objective = _objectives(generator, measure, z, y, reg)
        return jnp.sum(objective), objective

    (_, objective), grad = jax.value_and_grad(total, has_aux=True)(track.z)
    better = objective < track.best
    best_z = jnp.where(better[..., None], track.z, track.best_z)
    best = jnp.where(better, objective, track.best)
    updates, state = _optimizer().update(grad, track.opt_state)
    keep = live[:, None, None]

    def masked(new, old):  # Adam's moments are per restart; its step count is shared
        return jnp.where(keep, new, old) if new.shape == track.z.shape else new

    z = jnp.where(keep, optax.apply_updates(track.z, updates), track.z)
    state = jax.tree_util.tree_map(masked, state, track.opt_state)
    return _Track(z, state, best_z, best)


def _stalled(before, best, tol):
    """Images (B,) whose best objective `best` (B, R), the lowest over restarts, fell by
    <= tol x `before` (B,), its value one window earlier."""
    now = best.min(axis=1)
    return jnp.isfinite(before) & (before - now <= tol * jnp.abs(before))


def _track_start(z, opt_state):
    return _Track(z, opt_state, z, jnp.full(z.shape[:2], jnp.inf, jnp.float32))


def _finish_tracked(generator, measure, y, reg, track: _Track, steps_run):
    """Every restart's best visited z (its final z included), then the best restart."""
    last = _objectives(generator, measure, track.z, y, reg)
    better = last < track.best
    return _pick(generator, jnp.where(better[..., None], track.z, track.best_z),
                 jnp.where(better, last, track.best), steps_run)


@functools.partial(jax.jit, static_argnames=("steps", "report"))
def _solve_scan_tol(generator, measure, y, z, opt_state, reg, tol, *, steps, report=False):
    """The scan path with early stopping: a while loop over windows, until all images stop."""
    def window(carry):
        track, active, before, done, steps_run = carry

        def step(track, i):
            live = active & (done + i < steps)
            return _tracked_step(generator, measure, y, reg, track, live), None

        track, _ = jax.lax.scan(step, track, jnp.arange(CPU_CHUNK))
        n = jnp.minimum(CPU_CHUNK, steps - done)
        steps_run = jnp.where(active, done + n, steps_run)
        active = active & ~_stalled(before, track.best, tol)
        if report:
            jax.debug.callback(_report, n)
        return track, active, track.best.min(axis=1), done + n, steps_run

    b = z.shape[0]
    carry = (_track_start(z, opt_state), jnp.ones(b, bool), jnp.full(b, jnp.inf, jnp.float32),
             jnp.int32(0), jnp.zeros(b, jnp.int32))
    track, *_, steps_run = jax.lax.while_loop(
        lambda c: (c[3] < steps) & jnp.any(c[1]), window, carry)
    return _finish_tracked(generator, measure, y, reg, track, steps_run)


@functools.partial(jax.jit, static_argnames=("num_steps",))
def _chunk_tracked(generator, measure, y, track, reg, *, num_steps):
    live = jnp.ones(track.best.shape[:1], bool)
    track, _ = jax.lax.scan(
        lambda t, _: (_tracked_step(generator, measure, y, reg, t, live), None),
        track, None, length=num_steps, unroll=num_steps)
    return track


_finish_tracked_jit = jax.jit(_finish_tracked)


def _bucket(n: int, total: int) -> int:
    """Images to compute for n live ones: total, or a quarter, a sixteenth, ... of it (at
    least 4), so that a shrinking batch compiles a few shapes, not one per count."""
    size = total
    while size // 4 >= max(n, 4):
        size //= 4
    return size


def _take(track: _Track, idx, b: int) -> _Track:
    """The rows idx of every per-image leaf (leading axis b); shared leaves as they are."""
    return jax.tree_util.tree_map(lambda a: a[idx] if a.ndim and a.shape[0] == b else a, track)


def _put(track: _Track, sub: _Track, idx, b: int) -> _Track:
    """`track` with its rows idx replaced by `sub`'s; shared leaves (Adam's count) from sub."""
    return jax.tree_util.tree_map(
        lambda a, s: a.at[idx].set(s) if a.ndim and a.shape[0] == b else s, track, sub)


def _solve_chunked_tol(generator, measure, y, z, opt_state, reg, tol, *, steps, progress=None):
    """The CPU path with early stopping: every window runs only the images still going.

    After each window the stopped images drop out of the batch (padded to a few fixed
    sizes by repeating a live one), so a solve costs what its live images need, not
    B x R x steps.
    """
    b = z.shape[0]
    track = _track_start(z, opt_state)
    active = np.ones(b, bool)
    before = np.full(b, np.inf, np.float32)
    steps_run = np.zeros(b, np.int32)
    done = 0

    while done < steps and active.any():
        n = min(CPU_CHUNK, steps - done)
        live = np.flatnonzero(active)
        if len(live) == b:
            track = _chunk_tracked(generator, measure, y, track, reg, num_steps=n)
        else:
            idx = np.concatenate([live, np.full(_bucket(len(live), b) - len(live), live[-1])])
            sub = _chunk_tracked(generator, measure, y[idx], _take(track, idx, b), reg,
                                 num_steps=n)
            track = _put(track, sub, idx, b)
        done += n
        steps_run[live] = done
        best = np.asarray(track.best)
        active &= ~np.asarray(_stalled(before, best, tol))
        before = best.min(axis=1)
        if progress is not None:
            progress(n)
    return _finish_tracked_jit(generator, measure, y, reg, track, jnp.asarray(steps_run))


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


def _validate(generator, measure, y, key, latent_dim, num_restarts, steps, learning_rate, reg,
              init, tol):
    for name, fn in (("generator", generator), ("measure", measure)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    validate.prng_key(key)
    validate.integer(latent_dim, "latent_dim", 1)
    validate.integer(num_restarts, "num_restarts", 1)
    validate.integer(steps, "steps", 0)
    validate.number(learning_rate, "learning_rate")
    validate.number(reg, "reg")
    validate.number(tol, "tol")
    if y.ndim < 1 or y.shape[0] < 1:
        raise ValueError(f"y must have a leading batch axis B >= 1, got shape {y.shape}")
    validate.finite(y, "y")
    if init is not None:
        b, k = y.shape[0], init.shape[1] if init.ndim == 3 else 1
        if init.ndim not in (2, 3) or init.shape[0] != b or init.shape[-1] != latent_dim:
            raise ValueError(f"init must be (B, latent_dim) = ({b}, {latent_dim}) or "
                             f"(B, K, latent_dim), got shape {init.shape}")
        if k > num_restarts:
            raise ValueError(f"init holds {k} starts per image but num_restarts is "
                             f"{num_restarts}")
        validate.finite(init, "init")
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


def _chunked_here(traced: bool) -> bool:
    """Jitted chunks called from Python on XLA:CPU (see the module docstring); one program
    elsewhere and whenever the caller traces the inputs."""
    return jax.default_backend() == "cpu" and not traced


def reconstruct(generator: Callable, measure: Callable, y: jax.typing.ArrayLike, *,
                key: jax.Array, latent_dim: int, num_restarts: int = 2, steps: int = 500,
                learning_rate: float = 0.1, reg: float = 1e-3,
                init: jax.typing.ArrayLike | None = None, tol: float = 0.0,
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
      num_restarts: R starts per image.
      steps: Adam steps (at most, with `tol`).
      learning_rate: Adam's step size (paper: 0.1).
      reg: lambda, the weight of ||z||^2.
      init: optional starting latents, (B, latent_dim) or (B, K, latent_dim) with K <= R:
        the first K restarts of each image start there (e.g. from a learned network), the
        others at the same random draws as without `init`.
      tol: per-image early stop. Every 10 steps, an image compares the lowest objective
        any of its restarts has reached with the lowest they had reached 10 steps before;
        if it fell by no more than tol x that earlier value, the image stops (all its
        restarts). Each restart returns the best z it visited, so an image's objective
        never rises after its stop, and the solve ends when every image has stopped or
        after `steps`. 0 (the default) runs every step and returns the final z: the
        paper's protocol, the same numbers as before early stopping existed.
      progress: optional callback given the number of steps just done (not called under
        the caller's own jit).
      mesh: split the images over this device mesh (`gejax.parallel.batch_mesh()`; axis
        "batch"), parameters replicated. Same result as one device. With several hosts
        every process passes the same y and key; outputs are global arrays
        (`gejax.parallel.to_host` gathers them). Ignored when called under the caller's
        own jit, where the caller's shardings rule.

    Returns:
      A `Reconstruction`: x_hat (B, H, W, C), z (B, latent_dim), objective (B, R),
      best_restart (B,), the restart with the lowest objective for each image, and
      steps_run (B,).
    """
    y = jnp.asarray(y) if not validate.is_traced(y) else y
    if init is not None and not validate.is_traced(init):
        init = jnp.asarray(init, jnp.float32)
    _validate(generator, measure, y, key, latent_dim, num_restarts, steps, learning_rate, reg,
              init, tol)
    if mesh is not None and not (isinstance(mesh, jax.sharding.Mesh)
                                 and mesh.axis_names == (parallel.BATCH,)):
        raise TypeError("mesh must be a 1-D jax.sharding.Mesh with axis 'batch' "
                        f"(gejax.parallel.batch_mesh()), got {mesh!r}")
    traced = validate.is_traced(y, key, learning_rate, reg, generator, measure, init, tol)
    generator, measure = _as_partial(generator), _as_partial(measure)
    y = y.astype(jnp.float32)
    reg = jnp.asarray(reg, jnp.float32)
    if init is not None and init.ndim == 2:
        init = init[:, None]
    start = _init if traced else _init_jit
    z, opt_state = start(y, key, int(latent_dim), int(num_restarts),
                         jnp.asarray(learning_rate, jnp.float32), init)
    n = y.shape[0]
    if mesh is not None and not traced:
        generator, measure, y, z, opt_state = _shard(mesh, generator, measure, y, z, opt_state)
        reg = parallel.put(reg, mesh)
    steps = int(steps)
    early = validate.is_traced(tol) or float(tol) > 0  # a traced tol may be anything
    if _chunked_here(traced):
        if early:
            out = _solve_chunked_tol(generator, measure, y, z, opt_state, reg, float(tol),
                                     steps=steps, progress=progress)
        else:
            out = _solve_chunked(generator, measure, y, z, opt_state, reg, steps=steps,
                                 progress=progress)
    else:
        report = progress is not None and not traced
        if report:
            _progress_sink.append(progress)
        try:
            if early:
                out = _solve_scan_tol(generator, measure, y, z, opt_state, reg,
                                      jnp.asarray(tol, jnp.float32), steps=steps, report=report)
            else:
                out = _solve_scan(generator, measure, y, z, opt_state, reg, steps=steps,
                                  report=report)
            if report:
                jax.block_until_ready(out)  # every callback has run before the sink goes
        finally:
            if report:
                _progress_sink.pop()
    return out if out.x_hat.shape[0] == n else Reconstruction(*(a[:n] for a in out))


def projection_floor(generator: Callable, x: jax.typing.ArrayLike, *, key: jax.Array,
                     latent_dim: int, num_restarts: int = 2, steps: int = 500,
                     learning_rate: float = 0.1, init: jax.typing.ArrayLike | None = None,
                     mesh: jax.sharding.Mesh | None = None,
                     progress: Callable[[int], None] | None = None) -> jax.Array:
    """G's floor on images x (B, H, W, C): per-image MSE of G(z*), z* = argmin ||G(z) - x||^2.

    The measurement is x itself and lambda is 0, so no method that returns some G(z) can
    beat it on these images: it tells a weak G from a weak encoder or solver. G(z*) is
    clipped to [0, 1] as every reported reconstruction is. `init` as in `reconstruct`.
    Returns (B,) per-pixel MSEs.
    """
    x = jnp.asarray(x, jnp.float32)
    out = reconstruct(generator, _identity, x, key=key, latent_dim=latent_dim,
                      num_restarts=num_restarts, steps=steps, learning_rate=learning_rate,
                      reg=0.0, init=init, progress=progress, mesh=mesh)
    # Gathering is collective across hosts: only with a mesh do all processes take part.
    x_hat = jnp.clip(out.x_hat if mesh is None else parallel.to_host(out.x_hat), 0.0, 1.0)
    return jnp.mean((x_hat - x) ** 2, axis=tuple(range(1, x.ndim)))
