"""Your own degradation operator S, written in JAX, solved by GE with the shipped networks.

    python examples/own_operator.py [--num_images 8 --steps 300]

S here keeps every other row of the image and smears each kept row horizontally (a
camera that reads half its lines with motion blur): not one of gejax's tasks. GE needs
only S as a pure function of one image: `gejax.ge_measure(EN, S)` measures EN(S(x)),
and `reconstruct` solves z* = argmin ||EN(S(G(z))) - EN(x_dagger)||^2 + lambda ||z||^2
(the paper's eq. 6), vmapped over images and restarts and jitted. An S with its own
parameters per image (a mask, a kernel) goes in `measure_params` instead.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import gejax
from gejax import metrics, workdir


def smear_half_rows(x: jax.Array) -> jax.Array:
    """S: (H, W, C) -> (H, W, C), odd rows zeroed, even rows blurred by a 5-pixel box."""
    kernel = jnp.ones(5) / 5
    blurred = jax.vmap(jax.vmap(lambda row: jnp.convolve(row, kernel, mode="same"),
                                in_axes=1, out_axes=1))(x)  # each row, each channel
    keep = (jnp.arange(x.shape[0]) % 2 == 0)[:, None, None]
    return jnp.where(keep, blurred, 0.0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_images", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)

    nets = workdir.load_networks(workdir.default_workdir())
    x = workdir.eval_images(nets, args.num_images)  # (N, 32, 32, 1) test digits
    x_dagger = jax.vmap(smear_half_rows)(x)  # what the camera gives
    measure = gejax.ge_measure(nets.encoders["ge1"], smear_half_rows)  # EN o S
    y = jax.vmap(gejax.ge_measure(nets.encoders["ge1"]))(x_dagger)  # EN(x_dagger), eq. 6
    out = gejax.reconstruct(nets.generator, measure, y, key=jax.random.key(0),
                            latent_dim=nets.began.latent_dim, num_restarts=2,
                            steps=args.steps, reg=1e-3)
    x_hat = np.clip(np.asarray(out.x_hat), 0, 1)
    print(f"{len(x)} test digits through S: PSNR {float(np.mean(metrics.psnr(x_dagger, x))):.2f}"
          f" dB as taken, {float(np.mean(metrics.psnr(x_hat, x))):.2f} dB restored by GE")


if __name__ == "__main__":
    main()
