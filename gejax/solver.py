"""The Adam solve behind `gejax.reconstruct` (call that; `Options` is public): the
objective, one Adam step, and one loop over windows of steps, from Python or in a program.

Every image carries its own measurement, operator arguments, whitening basis and Adam
state (`Problem`, `State`), so that an image's answer never depends on the images that
share its batch, whichever way the steps run (tested).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gejax import deviation, parallel


@dataclasses.dataclass(frozen=True)
class Options:
    """How `reconstruct` solves: the one vocabulary of the library and the commands.

    Attributes:
      num_restarts: R starts per image.
      steps: Adam steps per start (at most, with `tol`).
      learning_rate: Adam's step size (paper: 0.1).
      reg: lambda, the weight of ||z||^2.
      init: where the first starts of each image begin: None (all at random), latents
        (B, latent_dim) or (B, K, latent_dim) with K <= R, or a per-example callable
        y_b -> z_b (latent_dim,), e.g. a learned start (`train.init`).
      tol: per-image early stop (`reconstruct`); 0: every step, the paper's protocol.
      whiten: Adam in latent coordinates whitened per image (`curvature.whitening`).
      deviation: a `gejax.Deviation` (x = G(z) + nu, nu sparse in a basis), or None.
    """

    num_restarts: int = 2
    steps: int = 500
    learning_rate: float = 0.1
    reg: float = 1e-3
    init: Any = None
    tol: float = 0.0
    whiten: bool = False
    deviation: Any = None


class Reconstruction(NamedTuple):
    """What `reconstruct` returns.

    Attributes:
      x_hat: (B, H, W, C) G(z) of the best restart of each image.
      z: (B, latent_dim) the best restart's latent.
      objective: (B, R) the final objective of every image and restart.
      best_restart: (B,) index of the restart chosen (argmin of `objective`).
      steps_run: (B,) Adam steps each image ran: `steps`, or fewer where `tol` stopped it.
      spread: (B, H, W, C) how much the restarts disagree per pixel: sqrt(sum_r w_r
        (G(z_r) - x_hat)^2), w_r proportional to exp(-(f_r - f_best) / f_best) of the
        objectives f (a restart at twice the best objective counts e^-1); 0 with one.
      nu: (B, H, W, C) the best restart's sparse deviation (x_hat = G(z) + nu); 0 without.
    """

    x_hat: jax.Array
    z: jax.Array
    objective: jax.Array
    best_restart: jax.Array
    steps_run: jax.Array
    spread: jax.Array
    nu: jax.Array


class Problem(NamedTuple):
    """What each image is solved against; every leaf has the leading image axis B."""

    y: jax.Array  # (B, ...) measurements
    args: tuple  # per-image arguments of measure; () when it takes the image alone
    basis: jax.Array | None  # (B, L, L) whitening basis P of each image, or None
    sparse: deviation.Sparse | None = None  # the deviation, or None (x = G(z))


class State(NamedTuple):
    """A solve in progress; every leaf has the leading image axis B."""

    z: jax.Array  # (B, R, L)
    opt_state: optax.OptState  # per image: count (B,), learning rate (B,), moments (B, R, L)
    best_z: jax.Array  # (B, R, L) the best z each restart has visited
    best: jax.Array  # (B, R) its objective; +inf before the first step
    c: deviation.Coefficients | None = None  # the deviation's, or None


def _parts(generator, measure, problem: Problem, z, reg, c):
    """(smooth, l1) (B, R): ||measure(G(z) + nu) - y||^2 + reg ||z||^2 and mu ||c||_1,
    nu = synth(c) (B, R, H, W, C) with a deviation, else nu = 0 and l1 = 0."""
    def one(z1, c1, y1, args):
        x = generator(z1) if c1 is None else generator(z1) + problem.sparse.synth(c1)
        r = measure(x, *args) - y1
        return jnp.sum(r**2) + reg * jnp.sum(z1**2)

    smooth = jax.vmap(jax.vmap(one, in_axes=(0, 0, None, None)))(z, c, problem.y, problem.args)
    return smooth, 0.0 if c is None else problem.sparse.mu[:, None] * jnp.sum(
        jnp.abs(c), axis=tuple(range(2, c.ndim)))


def objectives(generator, measure, problem: Problem, z, reg, c=None):
    """The objective (B, R) of every image and restart, z (B, R, L), c (B, R, H, W, C)."""
    return sum(_parts(generator, measure, problem, z, reg, c))


def _optimizer():
    return optax.inject_hyperparams(optax.adam)(learning_rate=0.1)


def start(problem: Problem, key, latent_dim, num_restarts, learning_rate, z0,
          image_shape=None) -> State:
    """Starting latents z ~ N(0, I) (B, R, L), the first K set to z0 (B, K, L), and a fresh
    Adam state per image; with `image_shape` (H, W, C) deviation coefficients c = 0. `key`
    is one key (z drawn for the batch at once) or one per image (B,) (each image's own
    draw, whatever shares its batch)."""
    b = problem.y.shape[0]
    if key.ndim:
        z = jax.vmap(lambda k: jax.random.normal(k, (num_restarts, latent_dim)))(key)
    else:
        z = jax.random.normal(key, (b, num_restarts, latent_dim), jnp.float32)
    if z0 is not None:
        z = z.at[:, :z0.shape[1]].set(z0)
    opt_state = jax.vmap(_optimizer().init)(z)
    opt_state.hyperparams["learning_rate"] = jnp.full(b, learning_rate, jnp.float32)
    c = None if image_shape is None else deviation.Coefficients.zeros(z.shape[:2] + image_shape)
    return State(z, opt_state, z, jnp.full(z.shape[:2], jnp.inf, jnp.float32), c)


start_jit = jax.jit(start, static_argnames=("latent_dim", "num_restarts", "image_shape"))


def step(generator, measure, problem: Problem, reg, state: State, live) -> State:
    """One Adam step of the images where `live` (B,); the others keep their state. In the
    coordinates u of z = P u where the problem has a basis P: the gradient is mapped into
    u (P^T g) and Adam's step back into z, so Adam's moments live in u and the objective,
    the best-z tracking and the answer are unchanged. With a deviation, c takes a
    proximal-gradient (FISTA) step (`deviation.Coefficients`). Each restart remembers the
    best z (and c) it has visited (the early stop returns it)."""
    def smooth(z, c):
        f, l1 = _parts(generator, measure, problem, z, reg, c)
        return jnp.sum(f), f + l1

    c = None if state.c is None else state.c.point(state.opt_state.count)
    (_, objective), (grad, grad_c) = jax.value_and_grad(smooth, (0, 1), has_aux=True)(
        state.z, c)
    better = (objective < state.best) & live[:, None]  # a held image's point is no iterate
    best_z = jnp.where(better[..., None], state.z, state.best_z)
    best = jnp.where(better, objective, state.best)
    if c is not None:
        c = state.c.step(c, grad_c, problem.sparse.step, problem.sparse.mu, better)
    p = problem.basis
    if p is not None:
        grad = jnp.einsum("brl,blk->brk", grad, p)
    updates, opt_state = jax.vmap(_optimizer().update)(grad, state.opt_state)
    if p is not None:
        updates = jnp.einsum("brk,blk->brl", updates, p)
    z = optax.apply_updates(state.z, updates)

    def keep(new, old):  # the images not `live` as they were
        return jnp.where(live.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return State(*jax.tree_util.tree_map(keep, (z, opt_state), (state.z, state.opt_state)),
                 best_z, best, jax.tree_util.tree_map(keep, c, state.c))


# Windows: every CPU_CHUNK steps an image whose best objective over its restarts fell by
# no more than tol x its value STALL_WINDOWS windows earlier stops (tol > 0), as does one
# that has run `steps`.
CPU_CHUNK = 10

# One window stopped some images on a short plateau: on 4 x 64 *train* digits (CS, m =
# 128, GE1 learned start) the worst 64 ended 5.3% above the paper protocol's MSE at tol
# 0.03, with two windows 3.6% at tol 0.06 (docs/notes/speed.md).
STALL_WINDOWS = 2

# Rows (images x restarts) a host window steps at a time on XLA:CPU: the cheapest per
# row-step (GE0 1.43 ms at 16 rows, 1.62 at 8, 1.75 at 64; docs/notes/speed.md), little
# waste on the last images, and one program to compile (seconds each).
CPU_SLOT_ROWS = 16


def _stops(before, best, steps_run, steps, tol, xp=jnp):
    """Images (B,) that stop after a window: those that ran `steps`, and with tol > 0 those
    whose best objective `best` (B, R), the lowest over restarts, fell by <= tol x
    `before[:, 0]`, its value STALL_WINDOWS windows earlier; `before` (B, STALL_WINDOWS)
    holds the last windows' values, oldest first (+inf until there are enough). `xp`:
    jax.numpy in a program, NumPy on the host (where jnp would compile its ops anew for
    every number of images)."""
    now, then = best.min(axis=1), before[:, 0]
    known = xp.isfinite(then)
    then = xp.where(known, then, 0.0)
    stalled = known & (then - now <= tol * xp.abs(then))
    return ((tol > 0) & stalled) | (steps_run >= steps)


def _shifted(before, best, xp=jnp):
    """`before` (B, STALL_WINDOWS) after a window that reached `best` (B, R)."""
    return xp.concatenate([before[:, 1:], best.min(axis=1)[:, None]], axis=1)


@functools.partial(jax.jit, static_argnames=("length",))
def advance(generator, measure, problem, reg, state, rows, left, first, *, length):
    """Steps first .. first + length - 1 of a window on the images `rows` (W,), image j
    only while the step is below left[j]; the others are left as they are. Gathering and
    scattering inside the program keeps many small per-leaf ops off the host. The steps
    are unrolled, not a scan: even a one-step scan is a loop, in which XLA:CPU ran the
    solve 5x slower (0.42 against 2.3 ms per image-restart-step, GA on 64 digits)."""
    sub = jax.tree_util.tree_map(lambda a: a[rows], (problem, state))
    new = sub[1]
    for i in range(length):  # unrolled: XLA:CPU runs convolutions ~5x slower in any loop
        new = step(generator, measure, sub[0], reg, new, first + i < left)
    return jax.tree_util.tree_map(lambda a, s: a.at[rows].set(s), state, new)


def run_host(generator, measure, problem, reg, state, *, steps, tol, width, length,
             progress=None):
    """The windows driven from Python: each runs CPU_CHUNK steps (fewer where an image
    reaches `steps`) of the first `width` images still going, `length` steps per call of
    `advance`, until every image has stopped. Returns (state, steps_run (B,) NumPy).

    Images take the slots largest starting objective first: the farthest from an answer
    tend to need the most steps, and fewer slots idle while they finish.

    `progress(n)` gets the steps just finished as the batch's image-steps / B (rounded
    down as they accrue): its calls add up to `steps` when no image stops early.
    """
    b = state.z.shape[0]
    first = parallel.to_host(objectives_jit(generator, measure, problem, state.z, reg,
                                                  None if state.c is None else state.c.now)).min(1)
    order = np.argsort(-np.nan_to_num(first, nan=np.inf), kind="stable")
    active = np.full(b, steps > 0)
    before = np.full((b, STALL_WINDOWS), np.inf, np.float32)
    steps_run = np.zeros(b, np.int32)
    reported = 0
    while active.any():
        live = order[active[order]][:width]
        # Padding repeats a live image: its duplicate rows compute and write the same values.
        idx = np.concatenate([live, np.full(width - len(live), live[-1])])
        left = np.minimum(CPU_CHUNK, steps - steps_run[idx])
        # NumPy inputs: the same on every process of a multi-host mesh.
        rows, left_np = idx.astype(np.int32), left.astype(np.int32)
        for i in range(0, int(left.max()), length):
            state = advance(generator, measure, problem, reg, state, rows, left_np,
                            np.int32(i), length=length)
        steps_run[live] += left[:len(live)]
        now = parallel.to_host(state.best)[live]
        active[live] = ~_stops(before[live], now, steps_run[live], steps, tol, np)
        before[live] = _shifted(before[live], now, np)
        finished = int(steps_run.sum()) // b
        if progress is not None and finished > reported:
            progress(finished - reported)
            reported = finished
    return state, steps_run


def run_program(generator, measure, problem, reg, state, *, steps, tol):
    """The windows inside one program, every image at once (for the caller's jit/vmap):
    a while loop until every image has stopped. Returns (state, steps_run (B,))."""
    def window(carry):
        state, active, before, steps_run = carry
        left = jnp.where(active, jnp.minimum(CPU_CHUNK, steps - steps_run), 0)

        def one(s, i):
            return step(generator, measure, problem, reg, s, i < left), None

        state, _ = jax.lax.scan(one, state, jnp.arange(CPU_CHUNK))
        steps_run = steps_run + left
        stop = _stops(before, state.best, steps_run, steps, tol)
        return state, active & ~stop, _shifted(before, state.best), steps_run

    b = state.z.shape[0]
    carry = (state, jnp.full(b, steps > 0), jnp.full((b, STALL_WINDOWS), jnp.inf, jnp.float32),
             jnp.zeros(b, jnp.int32))
    state, _, _, steps_run = jax.lax.while_loop(lambda c: jnp.any(c[1]), window, carry)
    return state, steps_run


def finish(generator, measure, problem, reg, state: State, steps_run, tol):
    """The Reconstruction: with tol > 0 from every restart's best visited z (its final z
    included), with tol 0 from the final z (the paper's protocol); then the restart with
    the lowest objective, never one chosen by a distance to a ground truth."""
    c = None if state.c is None else state.c.now
    last = objectives(generator, measure, problem, state.z, reg, c)
    better = (last < state.best) | (tol <= 0)
    z = jnp.where(better[..., None], state.z, state.best_z)
    objective = jnp.where(better, last, state.best)
    best = jnp.argmin(objective, axis=1)
    z_best = jnp.take_along_axis(z, best[:, None, None], axis=1)[:, 0]
    c = None if c is None else jnp.where(better[..., None, None, None], c, state.c.best)
    x_all = jax.vmap(jax.vmap(generator))(z)  # G once: every restart's image is needed
    nu = 0 * x_all if c is None else jax.vmap(jax.vmap(problem.sparse.synth))(c)
    x_all = x_all + nu
    def pick(a):  # (B, R, ...) -> the best restart's (B, ...)
        return jnp.take_along_axis(a, best.reshape((-1, 1) + (1,) * (a.ndim - 2)), 1)[:, 0]
    x_hat, nu = pick(x_all), pick(nu)
    f_best = objective.min(axis=1, keepdims=True)  # Reconstruction.spread's weights
    w = jax.nn.softmax(-(objective - f_best) / jnp.maximum(f_best, 1e-12), axis=1)
    spread = jnp.sqrt(jnp.einsum("br,br...->b...", w, (x_all - x_hat[:, None]) ** 2))
    return Reconstruction(x_hat, z_best, objective, best, jnp.asarray(steps_run), spread, nu)


objectives_jit, finish_jit = jax.jit(objectives), jax.jit(finish)


def solve(generator: Callable, measure: Callable, problem: Problem, reg, state: State, *,
          steps: int, tol, host: bool, width: int, length: int, progress=None):
    """Run the windows (`run_host` when `host`, else `run_program`) and `finish`."""
    if not host:
        state, steps_run = run_program(generator, measure, problem, reg, state, steps=steps,
                                       tol=tol)
        return finish(generator, measure, problem, reg, state, steps_run, tol)
    problem, state = parallel.committed((problem, state))
    state, steps_run = run_host(generator, measure, problem, reg, state, steps=steps,
                                tol=float(tol), width=width, length=length, progress=progress)
    return finish_jit(generator, measure, problem, reg, state, steps_run, jnp.float32(tol))
