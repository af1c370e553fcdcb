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
`reconstruct`); on the CPU path a few images run at a time and the next starts when
one stops, so an early stop saves the time of the steps it skips. With `whiten=True`
Adam runs in latent coordinates where the objective's curvature near the starts is
even, which near an answer (a learned start) needs several times fewer steps.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gejax import parallel, solver, validate
from gejax.solver import Reconstruction

__all__ = ["Reconstruction", "ga_measure", "ge_measure", "projection_floor", "reconstruct"]


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


def _identity(x, *args):
    return x


def _encode_transformed(encoder, transform, x, *args):
    return encoder(transform(x, *args))


def _matvec(a, x):
    return a @ x.reshape(-1)


def _as_partial(fn: Callable) -> Partial:
    return fn if isinstance(fn, Partial) else Partial(fn)


def _shard(mesh, generator, measure, data, z, opt_state):
    """Split images (padded to a multiple of the devices) over the mesh; replicate the rest.

    z is drawn before padding and padded with zeros, so every image starts from the same z
    as on one device and the sharded result equals the unsharded one.
    """
    n = z.shape[0]
    pad = -n % mesh.size
    if pad:
        def grow(a, fill):
            return jnp.concatenate([a, jnp.broadcast_to(fill, (pad,) + a.shape[1:])])

        # A real image's measurement and operator keep the padded rows finite.
        data = jax.tree_util.tree_map(lambda a: grow(a, a[-1]), data)
        z, opt_state = jax.tree_util.tree_map(
            lambda a: grow(a, 0.0) if a.ndim and a.shape[0] == n else a, (z, opt_state))
    generator, measure = parallel.put((generator, measure), mesh)
    data, z, opt_state = parallel.put((data, z, opt_state), mesh, batch=z.shape[0])
    return generator, measure, data, z, opt_state


def _validate(generator, measure, y, key, latent_dim, num_restarts, steps, learning_rate, reg,
              init, tol, whiten, args):
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
    if not isinstance(whiten, bool):
        raise TypeError(f"whiten must be True or False, got {whiten!r}")
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


def _chunked_here(traced: bool) -> bool:
    """Jitted chunks called from Python on XLA:CPU (see the module docstring); one program
    elsewhere and whenever the caller traces the inputs."""
    return jax.default_backend() == "cpu" and not traced


def reconstruct(generator: Callable, measure: Callable, y: jax.typing.ArrayLike, *,
                key: jax.Array, latent_dim: int, num_restarts: int = 2, steps: int = 500,
                learning_rate: float = 0.1, reg: float = 1e-3,
                init: jax.typing.ArrayLike | None = None, tol: float = 0.0,
                whiten: bool = False, measure_params=None,
                progress: Callable[[int], None] | None = None,
                mesh: jax.sharding.Mesh | None = None) -> Reconstruction:
    """Solve z* = argmin_z ||measure(generator(z)) - y_b||^2 + reg ||z||^2 for every y_b.

    Args:
      generator: G, per example: z (latent_dim,) -> image (H, W, C).
      measure: per example: image (H, W, C) -> measurement, e.g. `ge_measure(EN, S)` for
        GE or `ga_measure(A)` for CSGM; with `measure_params`, (image, p) -> measurement.
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
        any of its restarts has reached with the lowest they had reached 20 steps before;
        if it fell by no more than tol x that earlier value, the image stops (all its
        restarts). Each restart returns the best z it visited, so an image's objective
        never rises after its stop, and the solve ends when every image has stopped or
        after `steps`. 0 (the default) runs every step and returns the final z: the
        paper's protocol, the same numbers as before early stopping existed.
      whiten: run Adam on u with z = P u, P a basis in which the objective's curvature
        is even (Gauss-Newton) near the starts of up to 16 of the images, evenly spaced
        in the batch (`solver.whitening`: the Jacobians of measure(generator(z)) at
        their first restart's z). Near an answer, as from a learned start, this takes
        several times fewer steps to the same objective (docs/notes/speed.md); from random
        starts it helps little. False (the default): Adam on z, as the paper.
      measure_params: optional pytree whose arrays have the leading axis B: image b is
        measured by measure(x, p_b), p_b its slice (its own mask, blur kernel, noise
        level, ...). One program serves the whole batch, as if measure were called once
        per image.
      progress: optional callback given the number of steps just done (not called under
        the caller's own jit). With `tol` on CPU, where images run a few at a time, steps
        count as the batch's image-steps / B: they add up to `steps` if no image stops.
      mesh: split the images over this device mesh (`gejax.parallel.batch_mesh()`; axis
        "batch"), parameters replicated. Same result as one device. With several hosts
        every process passes the same y and key; outputs are global arrays
        (`gejax.parallel.to_host` gathers them). Ignored when called under the caller's
        own jit, where the caller's shardings rule.

    Returns:
      A `Reconstruction`: x_hat (B, H, W, C), z (B, latent_dim), objective (B, R),
      best_restart (B,), the restart with the lowest objective for each image,
      steps_run (B,), and spread (B, H, W, C), how much the restarts disagree per pixel
      (see `Reconstruction`).
    """
    y = jnp.asarray(y) if not validate.is_traced(y) else y
    if init is not None and not validate.is_traced(init):
        init = jnp.asarray(init, jnp.float32)
    args = () if measure_params is None else (jax.tree_util.tree_map(
        lambda a: a if validate.is_traced(a) else jnp.asarray(a), measure_params),)
    _validate(generator, measure, y, key, latent_dim, num_restarts, steps, learning_rate, reg,
              init, tol, whiten, args)
    if mesh is not None and not (isinstance(mesh, jax.sharding.Mesh)
                                 and mesh.axis_names == (parallel.BATCH,)):
        raise TypeError("mesh must be a 1-D jax.sharding.Mesh with axis 'batch' "
                        f"(gejax.parallel.batch_mesh()), got {mesh!r}")
    traced = validate.is_traced(y, key, learning_rate, reg, generator, measure, init, tol, args)
    generator, measure = _as_partial(generator), _as_partial(measure)
    y = y.astype(jnp.float32)
    reg = jnp.asarray(reg, jnp.float32)
    if init is not None and init.ndim == 2:
        init = init[:, None]
    data = (y, args)  # each image's measurement and the per-image arguments of measure
    start = solver.init if traced else solver.init_jit
    z, opt_state = start(data, key, int(latent_dim), int(num_restarts),
                         jnp.asarray(learning_rate, jnp.float32), init)
    n = y.shape[0]
    basis = _whitening(generator, measure, data, z, reg, traced) if whiten else None
    if mesh is not None and not traced:
        generator, measure, data, z, opt_state = _shard(mesh, generator, measure, data, z,
                                                        opt_state)
        reg, basis = parallel.put((reg, basis), mesh)
    steps = int(steps)
    early = validate.is_traced(tol) or float(tol) > 0  # a traced tol may be anything
    if _chunked_here(traced):
        if early:
            out = solver.solve_chunked_tol(generator, measure, data, z, opt_state, reg, basis,
                                           float(tol), steps=steps, progress=progress)
        else:
            out = solver.solve_chunked(generator, measure, data, z, opt_state, reg, basis,
                                       steps=steps, progress=progress)
    else:
        report = progress is not None and not traced
        if report:
            solver.progress_sink.append(progress)
        try:
            if early:
                out = solver.solve_scan_tol(generator, measure, data, z, opt_state, reg, basis,
                                            jnp.asarray(tol, jnp.float32), steps=steps,
                                            report=report)
            else:
                out = solver.solve_scan(generator, measure, data, z, opt_state, reg, basis,
                                        steps=steps, report=report)
            if report:
                jax.block_until_ready(out)  # every callback has run before the sink goes
        finally:
            if report:
                solver.progress_sink.pop()
    return out if out.x_hat.shape[0] == n else Reconstruction(*(a[:n] for a in out))


def _whitening(generator, measure, data, z, reg, traced):
    """`solver.whitening` at the first restart of up to WHITEN_IMAGES images spread evenly
    over the batch (a fixed choice: no number depends on which image came first)."""
    n = z.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, solver.WHITEN_IMAGES)).round().astype(int))
    fn = _whitening_at if traced else _whitening_at_jit
    return fn(generator, measure, data, z, reg, jnp.asarray(rows))


def _whitening_at(generator, measure, data, z, reg, rows):
    pick = jax.tree_util.tree_map(lambda a: a[rows], data)
    return solver.whitening(generator, measure, z[rows, 0], pick, reg)


_whitening_at_jit = jax.jit(_whitening_at)  # the gathers in the program, not compiled apart


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
