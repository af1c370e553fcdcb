"""Solver throughput on the embedded-default networks, beside a same-run f32 matmul.

    python benchmarks/solver.py [--preset mnist32 --images 64 --restarts 2 --steps 50]

Prints, for each loop strategy of `gejax.reconstruct`, the throughput in
images*restarts*steps per second and the FLOP/s it reaches as a fraction of the
FLOP/s of a large f32 matmul timed in the same run (ratios, not seconds, because
shared machines are noisy). FLOPs per step come from XLA's own cost analysis.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp

import gejax
from gejax import models

rec = sys.modules["gejax.reconstruct"]  # the module; gejax.reconstruct is the function


def _best_of(fn, repeats):
    fn()  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    seconds = _best_of(lambda: mm(a).block_until_ready(), repeats)
    return 2 * n**3 / seconds


def step_flops(generator, measure, y, latent_dim, restarts) -> float:
    """XLA's FLOP count of one Adam step over all images and restarts."""
    z = jnp.zeros((y.shape[0], restarts, latent_dim))

    def loss(z):
        x = jax.vmap(jax.vmap(generator))(z)
        return jnp.sum((jax.vmap(jax.vmap(measure))(x) - y[:, None]) ** 2)

    compiled = jax.jit(jax.grad(loss)).lower(z).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist32",
                        help="began_<preset> networks (random weights): mnist32, celeba64, ...")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loops", default="chunked,scan")
    args = parser.parse_args()

    cfg = getattr(models, f"began_{args.preset}")()
    key = jax.random.key(0)
    gp = models.Generator(cfg).init(key, jnp.zeros((cfg.latent_dim,)))
    dp = models.Discriminator(cfg).init(key, jnp.zeros(cfg.image_shape))
    generator = models.generator_fn(gp, cfg)
    measure = gejax.ge_measure(models.began_encoder_fn(dp, cfg))
    x = jax.random.uniform(key, (args.images,) + cfg.image_shape)
    y = jax.vmap(measure)(x)

    flops = step_flops(generator, measure, y, cfg.latent_dim, args.restarts)
    peak = matmul_flops_per_second()
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); "
          f"{args.images} images x {args.restarts} restarts x {args.steps} steps, "
          f"GE0 on {cfg}")
    print(f"f32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s; one solver step: {flops / 1e9:.3f} GFLOP")
    print(f"{'loop':>8} {'seconds':>8} {'img*rst*steps/s':>16} {'GFLOP/s':>8} {'of matmul':>9}")
    for loop in args.loops.split(","):
        # The path is internal to reconstruct; the benchmark forces each in turn.
        rec._chunked_here = lambda traced, loop=loop: loop == "chunked" and not traced

        def run():
            out = gejax.reconstruct(generator, measure, y, key=key, latent_dim=cfg.latent_dim,
                                    num_restarts=args.restarts, steps=args.steps)
            out.x_hat.block_until_ready()
        seconds = _best_of(run, args.repeats)
        rate = flops * args.steps / seconds
        print(f"{loop:>8} {seconds:8.2f} {args.images * args.restarts * args.steps / seconds:16.0f}"
              f" {rate / 1e9:8.1f} {rate / peak:9.0%}")


if __name__ == "__main__":
    main()
