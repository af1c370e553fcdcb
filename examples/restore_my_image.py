"""Restore your own images with the shipped networks, from your own JAX code.

    python examples/restore_my_image.py noisy.png [more.png ...] --sigma 0.2 --out restored

Each image (any size; grey, or RGB turned grey) is fitted to the networks' 32x32 grey,
encoded by GE1 and restored by GE: z* = argmin ||EN(G(z)) - EN(x_dagger)||^2 +
lambda ||z||^2 from GE1's learned start, whitened Adam with the early stop. With no image
given it noises a few test digits itself and prints the PSNR gained. The command-line
version of this is `python -m evaluate.restore --task denoise --degraded FOLDER`.
"""

import argparse

import jax
import numpy as np

import gejax
from gejax import inputs, metrics, operators, workdir


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", help="your degraded images (files or folders)")
    p.add_argument("--sigma", type=float, default=0.2, help="noise added to the digits "
                   "when no image is given")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--out", default="restored")
    args = p.parse_args(argv)

    nets = workdir.load_networks(workdir.default_workdir())
    shape = nets.began.image_shape
    clean = None
    if args.images:
        read = [inputs.read(path, shape, convert="resize") for path in args.images]
        x_dagger = np.concatenate([x for x, _ in read])
        names = [n for _, ns in read for n in ns]
    else:  # a demo: noisy test digits, with the clean ones to score against
        clean = workdir.eval_images(nets, 4)
        x_dagger = np.asarray(operators.gaussian_noise(clean, jax.random.key(1), sigma=args.sigma))
        names = [f"digit{i}" for i in range(len(clean))]

    encoder, start = nets.encoders["ge1"], nets.inits["ge1"]
    measure = gejax.ge_measure(encoder)  # S = identity: the noise is GE's to remove
    y = jax.vmap(measure)(x_dagger)  # (N, m) codes of the degraded images
    # The commands' default ("fast") protocol for GE1: its learned start alone, whitened
    # Adam, each image stopping once its objective stops falling.
    fast = gejax.Options(num_restarts=1, steps=args.steps, reg=1e-3, init=start, tol=0.05,
                         whiten=True)
    out = gejax.reconstruct(nets.generator, measure, y, key=jax.random.key(0),
                            latent_dim=nets.began.latent_dim, options=fast)
    x_hat = np.clip(np.asarray(out.x_hat), 0, 1)
    inputs.write_images(args.out, x_hat, names)
    print(f"wrote {len(names)} restored images to {args.out}/ "
          f"({float(np.mean(out.steps_run)):.0f} Adam steps each on average)")
    if clean is not None:
        before = float(np.mean(metrics.psnr(np.clip(x_dagger, 0, 1), clean)))
        after = float(np.mean(metrics.psnr(x_hat, clean)))
        print(f"PSNR {before:.2f} dB noisy -> {after:.2f} dB restored")


if __name__ == "__main__":
    main()
