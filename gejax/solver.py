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


# Images whose Jacobians estimate the whitening basis, and its damping (relative to the
# mean curvature), both chosen on *train* digits (docs/notes/speed.md).
WHITEN_IMAGES = 16
WHITEN_DAMPING = 1e-2


def whitening(generator, measure, z, y, reg, damping=WHITEN_DAMPING):
    """A basis P (L, L) of the latent space in which the objective's curvature near the
    latents z (K, L) is even, from their Gauss-Newton matrix: H = mean_k J_k^T J_k +
    reg I, J_k (M, L) the Jacobian of measure(generator(z_k), *args_k) (y = (y (K, ...),
    args) as elsewhere), H = U diag(e) U^T, P = U diag(sqrt(mean(e) / (e + damping
    mean(e)))). Adam on u with z = P u then takes even steps along G's steep and flat
    directions, where on z its per-coordinate scaling cannot undo a rotation (the shipped
    GE1's H spans 0.8 to 3,500). The scale keeps directions of mean curvature as they are.
    """
    def jacobian(z1, data):
        _, args = data
        return jax.jacfwd(lambda z: measure(generator(z), *args).reshape(-1))(z1)

    j = jax.vmap(jacobian)(z, y)  # (K, M, L): L forward-mode passes per latent
    h = jnp.einsum("kmi,kmj->ij", j, j) / z.shape[0] + reg * jnp.eye(z.shape[-1])
    e, u = jnp.linalg.eigh(h)
    mean = jnp.mean(e)
    return u * jnp.sqrt(mean / (e + damping * mean))


def _to_basis(grad, basis):
    """The gradient in z (..., L) as one in u, z = P u: P^T grad; unchanged without a basis."""
    return grad if basis is None else grad @ basis


def _from_basis(update, basis):
    """A step in u (..., L) as one in z: P update."""
    return update if basis is None else update @ basis.T


def init(y, key, latent_dim, num_restarts, learning_rate, z0):
    """Starting latents (B, R, L): z ~ N(0, I) from `key`, the first K set to z0 (B, K, L)."""
    z = jax.random.normal(key, (y[0].shape[0], num_restarts, latent_dim), jnp.float32)
    if z0 is not None:
        z = z.at[:, :z0.shape[1]].set(z0)
    opt_state = _optimizer().init(z)
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    return z, opt_state


def _adam_step(generator, measure, y, reg, basis):
    """One Adam step on the summed objective (images and restarts are independent), in
    the coordinates u of z = P u where a `basis` P is given (`whitening`)."""
    opt = _optimizer()

    def step(carry, _):
        z, state = carry
        grad = jax.grad(lambda z: jnp.sum(_objectives(generator, measure, z, y, reg)))(z)
        updates, state = opt.update(_to_basis(grad, basis), state)
        return (optax.apply_updates(z, _from_basis(updates, basis)), state), None

    return step


def _steps(generator, measure, y, z, opt_state, reg, basis, num_steps, unroll):
    """`num_steps` Adam steps, unrolled `unroll` at a time."""
    (z, opt_state), _ = jax.lax.scan(_adam_step(generator, measure, y, reg, basis),
                                     (z, opt_state), None, length=num_steps, unroll=unroll)
    return z, opt_state


def _pick(generator, z, objective, steps_run):
    """The Reconstruction of the restart with the lowest objective: z (B, R, L), (B, R)."""
    best = jnp.argmin(objective, axis=1)
    z_best = jnp.take_along_axis(z, best[:, None, None], axis=1)[:, 0]
    x_all = jax.vmap(jax.vmap(generator))(z)  # G once: every restart's image is needed
    x_hat = jnp.take_along_axis(x_all, best.reshape((-1, 1) + (1,) * (x_all.ndim - 2)),
                                axis=1)[:, 0]
    return Reconstruction(x_hat, z_best, objective, best, steps_run,
                          _spread(x_all, x_hat, objective))


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
def solve_scan(generator, measure, y, z, opt_state, reg, basis, *, steps, report=False):
    z, _ = _windows(_adam_step(generator, measure, y, reg, basis), (z, opt_state), steps,
                    report)
    return _finish(generator, measure, y, z, reg, jnp.full(z.shape[:1], steps, jnp.int32))


init_jit = jax.jit(init, static_argnames=("latent_dim", "num_restarts"))
_finish_jit = jax.jit(_finish)
_objectives_jit = jax.jit(_objectives)


@functools.partial(jax.jit, static_argnames=("num_steps",), donate_argnums=(3, 4))
def _chunk(generator, measure, y, z, opt_state, reg, basis, *, num_steps):
    return _steps(generator, measure, y, z, opt_state, reg, basis, num_steps,
                  unroll=num_steps)


def _committed(tree):
    """`tree` committed to its one device, as a jitted chunk's outputs are: the second chunk
    would otherwise find its inputs changed from uncommitted to committed and compile
    again. On several devices as it is (`reconstruct`'s mesh placed what it splits)."""
    devices = set().union(*(a.sharding.device_set for a in jax.tree_util.tree_leaves(tree)))
    return jax.device_put(tree, devices.pop()) if len(devices) == 1 else tree


def solve_chunked(generator, measure, y, z, opt_state, reg, basis, *, steps,
                  chunk=CPU_CHUNK, progress=None):
    z, opt_state = _committed((z, opt_state))
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        z, opt_state = _chunk(generator, measure, y, z, opt_state, reg, basis, num_steps=n)
        done += n
        if progress is not None:
            z.block_until_ready()  # report finished steps, not steps queued by async dispatch
            progress(n)
    return _finish_jit(generator, measure, y, z, reg, jnp.full(z.shape[:1], steps, jnp.int32))


# Early stopping (tol > 0), per image. Each restart remembers the best z it has visited;
# every CPU_CHUNK steps an image whose best objective over its restarts fell by no more
# than tol x its value STALL_WINDOWS windows earlier stops, and each restart keeps its best z.
# Every image has its own Adam state, step count included, so that on the CPU path an
# image can start when another stops and still be solved as if it ran alone.

# Rows (images x restarts) the CPU early-stop path computes at a time. Measured on the
# embedded default (2-core CPU, docs/notes/speed.md): a row-step costs about the same from 4 to
# 64 rows (0.55-0.8 ms), so a small fixed width wastes little on the last images and
# compiles one program, where each program costs seconds to compile or load.
CPU_SLOT_ROWS = 16

# Windows of CPU_CHUNK steps over which an image must fall by more than tol to go on. One
# window (10 steps) stopped some images on a short plateau, before their objective fell
# again: on 4 x 64 *train* digits (CS, m = 128, GE1 from its learned start) the worst group
# of 64 ended 5.3% above the paper protocol's MSE at tol 0.03 (146 steps per image), with
# two windows 3.6% at tol 0.06 (157 steps): docs/notes/speed.md.
STALL_WINDOWS = 2


class _Track(NamedTuple):
    """A solve that can stop early: z, Adam's state, and the best z each restart visited.
    Every leaf has the leading image axis B."""

    z: jax.Array  # (B, R, L)
    opt_state: optax.OptState  # per image: count (B,), learning rate (B,), moments (B, R, L)
    best_z: jax.Array  # (B, R, L)
    best: jax.Array  # (B, R) objective of best_z; +inf before the first step


def _tracked_step(generator, measure, y, reg, basis, track: _Track, live) -> _Track:
    """One Adam step of the images where `live` (B,); the others keep their state."""
    def total(z):
        objective = _objectives(generator, measure, z, y, reg)
        return jnp.sum(objective), objective

    (_, objective), grad = jax.value_and_grad(total, has_aux=True)(track.z)
    better = objective < track.best
    best_z = jnp.where(better[..., None], track.z, track.best_z)
    best = jnp.where(better, objective, track.best)
    updates, state = jax.vmap(_optimizer().update)(_to_basis(grad, basis), track.opt_state)
    z = optax.apply_updates(track.z, _from_basis(updates, basis))

    def keep(new, old):
        return jnp.where(live.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    return _Track(keep(z, track.z), jax.tree_util.tree_map(keep, state, track.opt_state),
                  best_z, best)


def _stalled(before, best, tol, xp=jnp):
    """Images (B,) whose best objective `best` (B, R), the lowest over restarts, fell by
    <= tol x `before[:, 0]`, its value STALL_WINDOWS windows earlier; `before` (B,
    STALL_WINDOWS) holds the last windows' values, oldest first (+inf until there are
    enough). `xp`: jax.numpy in a program, NumPy on the host (where jnp would compile its
    ops anew for every number of images)."""
    now, then = best.min(axis=1), before[:, 0]
    return xp.isfinite(then) & (then - now <= tol * xp.abs(then))


def _shifted(before, best, xp=jnp):
    """`before` (B, STALL_WINDOWS) after a window that reached `best` (B, R)."""
    return xp.concatenate([before[:, 1:], best.min(axis=1)[:, None]], axis=1)


def _track_start(z, opt_state):
    """The shared scalars of `init`'s Adam state (step count, learning rate) become one per
    image; the moments already are."""
    b = z.shape[0]
    per_image = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (b,) + a.shape) if a.ndim == 0 else a, opt_state)
    return _Track(z, per_image, z, jnp.full(z.shape[:2], jnp.inf, jnp.float32))


def _finish_tracked(generator, measure, y, reg, track: _Track, steps_run):
    """Every restart's best visited z (its final z included), then the best restart."""
    return _pick_tracked(generator, track, _objectives(generator, measure, track.z, y, reg),
                         steps_run)


def _pick_tracked(generator, track: _Track, last, steps_run):
    """`_pick` over every restart's best visited z, `last` (B, R) the final z's objective."""
    better = last < track.best
    return _pick(generator, jnp.where(better[..., None], track.z, track.best_z),
                 jnp.where(better, last, track.best), steps_run)


@functools.partial(jax.jit, static_argnames=("steps", "report"))
def solve_scan_tol(generator, measure, y, z, opt_state, reg, basis, tol, *, steps,
                   report=False):
    """The scan path with early stopping: a while loop over windows, until all images stop."""
    def window(carry):
        track, active, before, done, steps_run = carry

        def step(track, i):
            live = active & (done + i < steps)
            return _tracked_step(generator, measure, y, reg, basis, track, live), None

        track, _ = jax.lax.scan(step, track, jnp.arange(CPU_CHUNK))
        n = jnp.minimum(CPU_CHUNK, steps - done)
        steps_run = jnp.where(active, done + n, steps_run)
        active = active & ~_stalled(before, track.best, tol)
        if report:
            jax.debug.callback(_report, n)
        return track, active, _shifted(before, track.best), done + n, steps_run

    b = z.shape[0]
    carry = (_track_start(z, opt_state), jnp.ones(b, bool),
             jnp.full((b, STALL_WINDOWS), jnp.inf, jnp.float32),
             jnp.int32(0), jnp.zeros(b, jnp.int32))
    track, *_, steps_run = jax.lax.while_loop(
        lambda c: (c[3] < steps) & jnp.any(c[1]), window, carry)
    return _finish_tracked(generator, measure, y, reg, track, steps_run)


@jax.jit
def _step_tracked(generator, measure, y, track, reg, basis, idx, live):
    """One step of the rows idx (W,) of y and track where `live` (W,); the other rows are
    left as they are. Gathering and scattering inside the one program keeps the many small
    per-leaf ops off the host (each would compile on first use).

    One step per call, with no loop in the program: XLA:CPU compiles it in about 1 s,
    where 10 unrolled steps took 3-4 s at the same seconds per step (a loop would run
    the convolutions several times slower), and a short solve pays mostly compiling."""
    rows = jax.tree_util.tree_map(lambda a: a[idx], y)
    sub = _tracked_step(generator, measure, rows, reg, basis,
                        jax.tree_util.tree_map(lambda a: a[idx], track), live)
    return jax.tree_util.tree_map(lambda a, s: a.at[idx].set(s), track, sub)


_pick_tracked_jit = jax.jit(_pick_tracked)
_track_start_jit = jax.jit(_track_start)  # one program, not one per leaf compiled on first use


def solve_chunked_tol(generator, measure, y, z, opt_state, reg, basis, tol, *, steps,
                      progress=None):
    """The CPU path with early stopping: a fixed number of slots, each image in one until
    it stops, then the next waiting image takes its place.

    Every window runs CPU_CHUNK steps (fewer where an image reaches `steps`) of the first
    W images still going, W = CPU_SLOT_ROWS // R (at least 1, at most B), so a solve costs
    what its images' own steps need, in one compiled program, whatever B. Since every image
    has its own Adam state, when it runs changes no number (tested against the scan path,
    which steps all images together).

    Images take the slots in the order of their starting objective, largest first: those
    farthest from an answer tend to need the most steps, and starting them first leaves
    fewer slots idle while the last ones finish (256 *train* digits, CS from the learned
    start: 285 windows against 313 in index order, docs/notes/speed.md).

    `progress` gets the batch's finished steps, counted as image-steps / B (rounded down
    as they accrue), so that they add up to `steps` when no image stops early.
    """
    b, r = z.shape[:2]
    width = min(b, max(1, CPU_SLOT_ROWS // r))
    track = _committed(_track_start_jit(z, opt_state))
    # The same compiled program gives the starting objectives and, at the end, the final
    # ones (committed z both times, so one compile).
    start = np.asarray(_objectives_jit(generator, measure, track.z, y, reg)).min(axis=1)
    order = np.argsort(-np.nan_to_num(start, nan=np.inf), kind="stable")
    active = np.full(b, steps > 0)
    before = np.full((b, STALL_WINDOWS), np.inf, np.float32)
    steps_run = np.zeros(b, np.int32)
    reported = 0

    while active.any():
        live = order[active[order]][:width]
        # Padding repeats a live image: its duplicate rows compute and write the same values.
        idx = np.concatenate([live, np.full(width - len(live), live[-1])])
        left = np.minimum(CPU_CHUNK, steps - steps_run[idx])
        rows = jnp.asarray(idx, jnp.int32)
        for i in range(int(left.max())):
            track = _step_tracked(generator, measure, y, track, reg, basis, rows,
                                  jnp.asarray(i < left))
        steps_run[live] += left[:len(live)]
        now = np.asarray(track.best)[live]
        stopped = _stalled(before[live], now, tol, np) | (steps_run[live] >= steps)
        active[live] = ~stopped
        before[live] = _shifted(before[live], now, np)
        finished = int(steps_run.sum()) // b
        if progress is not None and finished > reported:
            progress(finished - reported)
            reported = finished
    last = _objectives_jit(generator, measure, track.z, y, reg)
    return _pick_tracked_jit(generator, track, last, jnp.asarray(steps_run))
