"""The local curvature of an image's objective, which the solver adapts its steps to:
the whitening basis of z (Adam's coordinates) and the Lipschitz constant of the data
term in pixels (the step of a sparse deviation, `gejax.deviation`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# The whitening's damping, relative to the mean curvature, chosen on *train* digits
# (docs/notes/speed.md); and the images whose Jacobians one program takes at a time on
# the host, which bounds its memory (L tangents per image).
WHITEN_DAMPING = 1e-2
WHITEN_ROWS = 16


def whitening(generator, measure, z, y, args, reg, damping=WHITEN_DAMPING):
    """One image's basis P (L, L), in which its objective's curvature near z (L,) is even:
    H = J^T J + reg I = U diag(e) U^T (Gauss-Newton; J (M, L) the Jacobian of
    measure(generator(z), *args); y unused), P = U diag(sqrt(mean(e) / (e + damping
    mean(e)))). Adam on u with z = P u takes even steps along G's steep and flat
    directions, which on z its per-coordinate scaling cannot (the shipped GE1's H spans
    0.8 to 3,500); directions of mean curvature keep their scale."""
    del y
    j = jax.jacfwd(lambda z: measure(generator(z), *args).reshape(-1))(z)  # L forward passes
    e, u = jnp.linalg.eigh(j.T @ j + reg * jnp.eye(z.shape[-1]))
    mean = jnp.mean(e)
    return u * jnp.sqrt(mean / (e + damping * mean))


def bases(generator, measure, problem, z, reg):
    """`whitening` of every image at its first start: z (B, R, L) -> (B, L, L)."""
    return jax.vmap(whitening, in_axes=(None, None, 0, 0, 0, None))(
        generator, measure, z[:, 0], problem.y, problem.args, reg)


# Power iterations for the largest curvature: the estimate converges from below, fast
# where the top eigenvalue stands apart (Gaussian A: within 2% after 20 on 32x32 images).
POWER_ITERATIONS = 20


def lipschitz(measure, x, args, iterations=POWER_ITERATIONS):
    """The largest eigenvalue of J^T J, J the Jacobian of measure(., *args) at one image
    x (H, W, C), by power iteration from a fixed start: ||measure(x + d) - y||^2 has a
    gradient in d that is 2 L-Lipschitz near x."""
    _, forward = jax.linearize(lambda x: measure(x, *args), x)
    backward = jax.linear_transpose(forward, x)

    def normal(v):  # J^T J v
        return backward(forward(v))[0]

    def power(_, v):
        w = normal(v)
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)

    v = jax.random.normal(jax.random.key(0), x.shape, x.dtype)
    v = jax.lax.fori_loop(0, iterations, power, v / jnp.linalg.norm(v))
    return jnp.vdot(v, normal(v))


def deviation_steps(generator, measure, problem, z):
    """The proximal step eta (B,) = 1 / (2 L) of every image's deviation, L its `lipschitz`
    at its first start G(z[:, 0]): z (B, R, latent_dim)."""
    x = jax.vmap(generator)(z[:, 0])
    return jax.vmap(lambda x, args: 0.5 / jnp.maximum(lipschitz(measure, x, args), 1e-12))(
        x, problem.args)


bases_jit, deviation_steps_jit = jax.jit(bases), jax.jit(deviation_steps)
