"""The solving phase of GE: find z minimising ||measure(G(z)) - y||^2 + reg ||z||^2.

One function, `reconstruct`, solves a batch of B measurements from R random starts
each with Adam (optax), and returns per image the restart with the lowest objective.
The objective is never compared with a ground-truth image. With a `Deviation` the answer
is G(z) + nu, nu sparse in a basis (`gejax.deviation`), for images G cannot make.

`generator` and `measure` are per-example callables. To let a second call with new
parameters reuse the compiled program, pass them as `jax.tree_util.Partial(fn, params)`:
the function is static, the parameters are traced inputs. Plain functions work too
(they are static; arrays they close over become constants of the program).

How the Adam steps run (`gejax.solver`): in windows of 10 steps driven from Python, a
few images at a time with one step per call on XLA:CPU, where a convolution inside a
loop runs ~6x slower than outside one (benchmarks/solver.py), every image with 10 steps
per call elsewhere; inside one program (a while loop over the windows) whenever the
inputs are traced by the caller's own jit/vmap. Every image has its own Adam state, so
the paths give the same numbers, and an image's answer never depends on its batch-mates.

With `tol > 0` an image stops once its objective has stopped falling (see
`reconstruct`), and the next image takes its place, so an early stop saves the time of
the steps it skips. With `whiten=True` Adam runs in latent coordinates where each
image's curvature near its start is even, which near an answer (a learned start) needs
several times fewer steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gejax import curvature, parallel, solver, validate
from gejax.deviation import Deviation, Sparse, synthesis
from gejax.solver import Options, Reconstruction

__all__ = ["Deviation", "Options", "Reconstruction", "ga_measure", "ge_measure", "projection_floor",
           "reconstruct"]


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


def _shard(mesh, generator, measure, problem, state):
    """Split images (padded to a multiple of the devices) over the mesh; replicate the rest.

    z is drawn before padding and the padding repeats the last image, so every image starts
    from the same z as on one device and the sharded result equals the unsharded one.
    """
    n = state.z.shape[0]
    pad = -n % mesh.size
    if pad:
        problem, state = jax.tree_util.tree_map(
            lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), (problem, state))
    generator, measure = parallel.put((generator, measure), mesh)
    problem, state = parallel.put((problem, state), mesh, batch=n + pad)
    return generator, measure, problem, state


def reconstruct(generator: Callable, measure: Callable, y: jax.typing.ArrayLike, *,
                key: jax.Array, latent_dim: int, options: Options | None = None,
                num_restarts: int | None = None, steps: int | None = None,
                learning_rate: float | None = None, reg: float | None = None,
                init=None, tol: float | None = None, whiten: bool | None = None,
                deviation: Deviation | None = None, measure_params=None,
                progress: Callable[[int], None] | None = None,
                mesh: jax.sharding.Mesh | None = None) -> Reconstruction:
    """Solve z* = argmin_z ||measure(generator(z)) - y_b||^2 + reg ||z||^2 for every y_b.

    The settings come from `options` (a `gejax.Options`; its defaults: 2 restarts, 500
    steps, lr 0.1, reg 1e-3, random starts, tol 0, no whitening); each of them given as a
    keyword here replaces the same field of `options`.

    Args:
      generator: G, per example: z (latent_dim,) -> image (H, W, C).
      measure: per example: image (H, W, C) -> measurement, e.g. `ge_measure(EN, S)` for
        GE or `ga_measure(A)` for CSGM; with `measure_params`, (image, p) -> measurement.
      y: (B, *measurement_shape) measurements, e.g. EN(x) or EN(x_dagger) or A vec(x).
      key: PRNG key for the random starts z ~ N(0, I): one key (the batch's starts drawn
        at once), or one per image, shape (B,) (`jax.random.split`), so that an image
        starts where it would in any other batch.
      latent_dim: size of z.
      num_restarts: R starts per image.
      steps: Adam steps (at most, with `tol`).
      learning_rate: Adam's step size (paper: 0.1).
      reg: lambda, the weight of ||z||^2.
      init: where the first restarts start: latents (B, latent_dim) or (B, K,
        latent_dim) with K <= R (the others at the same random draws as without it), or a
        per-example callable y_b -> z_b such as a learned start (`nets.inits["ge1"]`),
        which sets restart 0.
      tol: per-image early stop. Every 10 steps, an image compares the lowest objective
        any of its restarts has reached with the lowest they had reached 20 steps before;
        if it fell by no more than tol x that earlier value, the image stops (all its
        restarts). Each restart returns the best z it visited, so an image's objective
        never rises after its stop, and the solve ends when every image has stopped or
        after `steps`. 0 (the default) runs every step and returns the final z: the
        paper's protocol.
      whiten: run Adam on u with z = P u, P a basis in which the image's objective's
        curvature is even (Gauss-Newton) at its first start (`solver.whitening`: the
        Jacobian of measure(generator(z)) there, one per image, so no image's answer
        depends on another). Near an answer, as from a learned start, this takes several
        times fewer steps to the same objective (docs/notes/speed.md); from random starts
        it helps little. False (the default): Adam on z, as the paper.
      deviation: a `gejax.Deviation(mu, basis)`: solve for x = G(z) + nu with nu sparse in
        the basis (DCT or Haar wavelets), min ||measure(G(z) + nu) - y||^2 + reg ||z||^2 +
        mu ||Psi nu||_1, Adam on z and a proximal step on Psi nu (`gejax.deviation`), so
        that an image G cannot make is still within reach. None or mu = inf: x = G(z).
      measure_params: optional pytree whose arrays have the leading axis B: image b is
        measured by measure(x, p_b), p_b its slice (its own mask, blur kernel, noise
        level, ...). One program serves the whole batch, as if measure were called once
        per image.
      progress: optional callback, called every 10 steps with the number of steps just
        finished, counted as the batch's image-steps / B (images run a few at a time on
        CPU), so that its calls add up to `steps` when no image stops early. Not called
        under the caller's own jit.
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
    given = dict(num_restarts=num_restarts, steps=steps, learning_rate=learning_rate,
                 reg=reg, init=init, tol=tol, whiten=whiten, deviation=deviation)
    options = dataclasses.replace(options or Options(),
                                  **{k: v for k, v in given.items() if v is not None})
    y = jnp.asarray(y) if not validate.is_traced(y) else y
    z0 = options.init
    if z0 is not None and not callable(z0) and not validate.is_traced(z0):
        options = dataclasses.replace(options, init=jnp.asarray(z0, jnp.float32))
    args = () if measure_params is None else (jax.tree_util.tree_map(
        lambda a: a if validate.is_traced(a) else jnp.asarray(a), measure_params),)
    if isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32:
        validate.prng_key(key)
        key = jax.random.wrap_key_data(jnp.asarray(key))  # the same draws as the legacy key
    validate.reconstruct_inputs(generator, measure, y, key, latent_dim, options, args)
    if options.deviation is not None:
        if not isinstance(options.deviation, Deviation):
            raise TypeError("deviation must be a gejax.Deviation(mu, basis) or None, got "
                            f"{options.deviation!r}")
        options.deviation.check()
    if mesh is not None and not (isinstance(mesh, jax.sharding.Mesh)
                                 and mesh.axis_names == (parallel.BATCH,)):
        raise TypeError("mesh must be a 1-D jax.sharding.Mesh with axis 'batch' "
                        f"(gejax.parallel.batch_mesh()), got {mesh!r}")
    o = options
    dev = None if o.deviation is None or o.deviation.off else o.deviation
    traced = validate.is_traced(y, key, o.learning_rate, o.reg, generator, measure,
                                None if callable(o.init) else o.init, o.tol, args,
                                None if dev is None else dev.mu)
    generator, measure = _as_partial(generator), _as_partial(measure)
    y, reg = y.astype(jnp.float32), jnp.asarray(o.reg, jnp.float32)
    problem = solver.Problem(y, args, None)
    if callable(o.init):
        z0 = _first_starts(_as_partial(o.init), y, traced)[:, None]
    else:
        z0 = None if o.init is None else (o.init[:, None] if o.init.ndim == 2 else o.init)
    start = solver.start if traced else solver.start_jit
    image_shape = None if dev is None else jax.eval_shape(
        generator, jax.ShapeDtypeStruct((latent_dim,), jnp.float32)).shape
    state = start(problem, key, int(latent_dim), int(o.num_restarts),
                  jnp.asarray(o.learning_rate, jnp.float32), z0, image_shape)
    if dev is not None:
        steps_fn = curvature.deviation_steps if traced else curvature.deviation_steps_jit
        problem = problem._replace(sparse=Sparse(
            jnp.full(y.shape[0], dev.mu, jnp.float32),
            steps_fn(generator, measure, problem, state.z), synthesis(dev.basis)))
    if o.whiten:
        problem = problem._replace(basis=_bases(generator, measure, problem, state.z, reg,
                                                traced))
    n = y.shape[0]
    if mesh is not None and not traced:
        generator, measure, problem, state = _shard(mesh, generator, measure, problem, state)
        reg = parallel.put(reg, mesh)
    width, length = _schedule(state.z.shape[0], int(o.num_restarts), mesh)
    out = solver.solve(generator, measure, problem, reg, state, steps=int(o.steps),
                       tol=o.tol if validate.is_traced(o.tol) else float(o.tol),
                       host=not traced, width=width, length=length, progress=progress)
    return out if out.x_hat.shape[0] == n else Reconstruction(*(a[:n] for a in out))


def _schedule(b: int, r: int, mesh) -> tuple[int, int]:
    """(width, length) of the host loop: images per window, steps per program call. On
    XLA:CPU a convolution inside a loop runs ~6x slower than outside one
    (benchmarks/solver.py): one step per call there, a few images at a time on one device
    (every image on a mesh, whose devices each take their share)."""
    if jax.default_backend() != "cpu":
        return b, solver.CPU_CHUNK
    return (min(b, max(1, solver.CPU_SLOT_ROWS // r)) if mesh is None or mesh.size == 1
            else b), 1


def _first_starts(init: Partial, y, traced):
    """A per-example start y_b -> z_b over the batch: (B, latent_dim)."""
    return jax.vmap(init)(y) if traced else _vmapped(init, y)


@jax.jit
def _vmapped(fn: Partial, x):
    return jax.vmap(fn)(x)  # fn's arrays are inputs of the program, not its constants


def _bases(generator, measure, problem, z, reg, traced):
    """`curvature.bases`, on the host curvature.WHITEN_ROWS images per program (its memory
    holds L tangents of each image)."""
    if traced:
        return curvature.bases(generator, measure, problem, z, reg)
    size = curvature.WHITEN_ROWS
    parts = [curvature.bases_jit(generator, measure,
                              jax.tree_util.tree_map(lambda a, i=i: a[i:i + size], problem),
                              z[i:i + size], reg) for i in range(0, z.shape[0], size)]
    return jnp.concatenate(parts)


def projection_floor(generator: Callable, x: jax.typing.ArrayLike, *, key: jax.Array,
                     latent_dim: int, options: Options | None = None,
                     mesh: jax.sharding.Mesh | None = None,
                     progress: Callable[[int], None] | None = None, **settings) -> jax.Array:
    """G's floor on images x (B, H, W, C): per-image MSE of G(z*), z* = argmin ||G(z) - x||^2.

    The measurement is x itself and lambda is 0, so no method that returns some G(z) can
    beat it on these images: it tells a weak G from a weak encoder or solver. G(z*) is
    clipped to [0, 1] as every reported reconstruction is. `options` and the keywords
    `settings` (num_restarts, steps, ...) as in `reconstruct`; reg is always 0.
    Returns (B,) per-pixel MSEs.
    """
    x = jnp.asarray(x, jnp.float32)
    out = reconstruct(generator, _identity, x, key=key, latent_dim=latent_dim,
                      options=options, **settings | {"reg": 0.0}, progress=progress, mesh=mesh)
    # Gathering is collective across hosts: only with a mesh do all processes take part.
    x_hat = jnp.clip(out.x_hat if mesh is None else parallel.to_host(out.x_hat), 0.0, 1.0)
    return jnp.mean((x_hat - x) ** 2, axis=tuple(range(1, x.ndim)))
