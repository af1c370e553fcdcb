"""The Adam loops over z behind `gejax.reconstruct`: the objective, one step, and the
two ways to run the steps (chunks called from Python on XLA:CPU, one lax.scan program
elsewhere), each with or without the per-image early stop. Internal: call `reconstruct`.

What the loops call `y` is each image's data, the pair (y, args): the measurements
y (B, ...) and a tuple of per-image arguments of `measure` (leading axis B; empty when
`measure` takes the image alone), so that one program serves every image's operator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
      spread: (B, H, W, C) how much the restarts disagree, per pixel, around the answer:
        sqrt(sum_r w_r (G(z_r) - x_hat)^2) with weights w_r proportional to
        exp(-(f_r - f_best) / f_best) of the objectives f (a restart whose objective is
        twice the best counts e^-1 as much as one that ties it). 0 where every restart
        agrees, and always 0 with one restart.
    """

    x_hat: jax.Array
    z: jax.Array
    objective: jax.Array
    best_restart: jax.Array
    steps_run: jax.Array
    spread: jax.Array


def _objectives(generator, measure, z, y, reg):
    """Objective of every image and restart: z (B, R, L), y = (y (B, ...), args) -> (B, R)."""

    def one(z1, data):
        y1, args = data
        r = measure(generator(z1), *args) - y1
        return jnp.sum(r**2) + reg * jnp.sum(z1**2)

    return jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(0, 0))(z, y)


def _optimizer():
    return optax.inject_hyperparams(optax.adam)(learning_rate=0.1)


def init(y, key, latent_dim, num_restarts, learning_rate, z0):
    """Starting latents (B, R, L): z ~ N(0, I) from `key`, the first K set to z0 (B, K, L)."""
    z = jax.random.normal(key, (y[0].shape[0], num_restarts, latent_dim), jnp.float32)
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
    x_hat = jax.vmap(generator)(z_best)
    return Reconstruction(x_hat, z_best, objective, best, steps_run,
                          _spread(jax.vmap(jax.vmap(generator))(z), x_hat, objective))


def _spread(x_all, x_hat, objective):
    """Reconstruction.spread: x_all (B, R, H, W, C), x_hat (B, H, W, C), objective (B, R)."""
    f_best = objective.min(axis=1, keepdims=True)
    w = jax.nn.softmax(-(objective - f_best) / jnp.maximum(f_best, 1e-12), axis=1)
    return jnp.sqrt(jnp.einsum("br,br...->b...", w, (x_all - x_hat[:, None]) ** 2))


def _finish(generator, measure, y, z, reg, steps_run):
    return _pick(generator, z, _objectives(generator, measure, z, y, reg), steps_run)


def _report(n):
    """Host side of the scan path's progress: pass n finished steps to the caller's callback."""
    if progress_sink:
        progress_sink[-1](int(n))


# The progress callback of the running solve. A compiled program cannot hold a Python
# callable that changes from call to call without recompiling, so it calls `_report`,
# which looks the callback up here.
progress_sink: list[Callable[[int], None]] = []


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
def solve_scan(generator, measure, y, z, opt_state, reg, *, steps, report=False):
    z, _ = _windows(_adam_step(generator, measure, y, reg), (z, opt_state), steps, report)
    return _finish(generator, measure, y, z, reg, jnp.full(z.shape[:1], steps, jnp.int32))


init_jit = jax.jit(init, static_argnames=("latent_dim", "num_restarts"))
_finish_jit = jax.jit(_finish)


@functools.partial(jax.jit, static_argnames=("num_steps",), donate_argnums=(3, 4))
def _chunk(generator, measure, y, z, opt_state, reg, *, num_steps):
    return _steps(generator, measure, y, z, opt_state, reg, num_steps, unroll=num_steps)


def solve_chunked(generator, measure, y, z, opt_state, reg, *, steps, chunk=CPU_CHUNK,
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
def solve_scan_tol(generator, measure, y, z, opt_state, reg, tol, *, steps, report=False):
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
def _chunk_tracked(generator, measure, y, track, reg, idx, *, num_steps):
    """`num_steps` unrolled steps of the rows idx (a bucket of images) of y and track; the
    other rows are left as they are. Gathering and scattering inside the one program keeps
    the many small per-leaf ops off the host (each would compile on first use)."""
    b = track.best.shape[0]
    rows = jax.tree_util.tree_map(lambda a: a[idx], y)
    live = jnp.ones(idx.shape, bool)
    sub, _ = jax.lax.scan(
        lambda t, _: (_tracked_step(generator, measure, rows, reg, t, live), None),
        _take(track, idx, b), None, length=num_steps, unroll=num_steps)
    return _put(track, sub, idx, b)


_finish_tracked_jit = jax.jit(_finish_tracked)


def _bucket(n: int, total: int) -> int:
    """Images to compute for n live ones: total, or a half, a quarter, ... of it (at least
    4), so that a shrinking batch compiles a few shapes, not one per count."""
    size = total
    while size // 2 >= max(n, 4):
        size //= 2
    return size


def _take(track: _Track, idx, b: int) -> _Track:
    """The rows idx of every per-image leaf (leading axis b); shared leaves as they are."""
    return jax.tree_util.tree_map(lambda a: a[idx] if a.ndim and a.shape[0] == b else a, track)


def _put(track: _Track, sub: _Track, idx, b: int) -> _Track:
    """`track` with its rows idx replaced by `sub`'s; shared leaves (Adam's count) from sub."""
    return jax.tree_util.tree_map(
        lambda a, s: a.at[idx].set(s) if a.ndim and a.shape[0] == b else s, track, sub)


def solve_chunked_tol(generator, measure, y, z, opt_state, reg, tol, *, steps, progress=None):
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
        # Padding repeats a live image: its duplicate rows compute and write the same values.
        idx = np.concatenate([live, np.full(_bucket(len(live), b) - len(live), live[-1])])
        track = _chunk_tracked(generator, measure, y, track, reg, jnp.asarray(idx, jnp.int32),
                               num_steps=n)
        done += n
        steps_run[live] = done
        best = np.asarray(track.best)
        active &= ~np.asarray(_stalled(before, best, tol))
        before = best.min(axis=1)
        if progress is not None:
            progress(n)
    return _finish_tracked_jit(generator, measure, y, reg, track, jnp.asarray(steps_run))
