"""How gejax scales: devices, batch x restarts, and solver steps.

    python benchmarks/scaling.py [--devices 1,2,4 --images 64 --restarts 2]

1. Devices: solver throughput (images*restarts*steps/s, GE0) and BEGAN train steps/s on
   a 1-D "batch" mesh of 1, 2, 4 devices. Each count runs in a fresh process; on a CPU
   the devices are fake (`jax_num_cpu_devices`) and share the machine's cores, so this
   shows the overhead of sharding there, and real speed-up only on several GPUs.
2. Batch: seconds per solver step for growing images x restarts; the cost per
   image*restart*step should stay flat (cost linear in the batch).
3. Steps: XLA's temporary memory of the one-program solver (lax.scan) for growing
   `steps`; it must not grow (no per-step history is kept).

Ratios against the first row are printed beside the figures: machines here are shared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

# The smallest timed piece is one solver chunk (10 steps) or one train step.
SOLVER_STEPS = 20
TRAIN_STEPS = 20


def _networks(preset):
    import jax
    import jax.numpy as jnp

    import gejax
    from gejax import models

    cfg = getattr(models, f"began_{preset}")()
    key = jax.random.key(0)
    gp = models.Generator(cfg).init(key, jnp.zeros((cfg.latent_dim,)))
    dp = models.Discriminator(cfg).init(key, jnp.zeros(cfg.image_shape))
    return cfg, models.generator_fn(gp, cfg), gejax.ge_measure(models.began_encoder_fn(dp, cfg))


def _timed(fn, repeats=2):
    fn()  # compile
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _solver_seconds(cfg, generator, measure, images, restarts, steps, mesh):
    import jax

    import gejax

    x = jax.random.uniform(jax.random.key(1), (images,) + cfg.image_shape)
    y = jax.vmap(measure)(x)

    def run():
        out = gejax.reconstruct(generator, measure, y, key=jax.random.key(2),
                                latent_dim=cfg.latent_dim, num_restarts=restarts, steps=steps,
                                mesh=mesh)
        out.x_hat.block_until_ready()

    return _timed(run)


def _train_steps_per_second(cfg, batch_size, mesh):
    import functools

    import jax
    import numpy as np

    from gejax import parallel, training

    tcfg = training.BeganTrainConfig(batch_size=batch_size)
    state = parallel.put(training.began_init(cfg, tcfg), mesh)
    real = np.random.default_rng(0).uniform(size=(batch_size,) + cfg.image_shape)
    batch = parallel.put(real.astype(np.float32), mesh, batch=batch_size)
    step = jax.jit(functools.partial(training.began_step, model=cfg, cfg=tcfg))

    def run():
        s = state
        for i in range(TRAIN_STEPS):
            s, metrics = step(s, batch, jax.random.key(i))
        metrics["M"].block_until_ready()

    return TRAIN_STEPS / _timed(run)


def one_device_count(args) -> dict:
    """Runs inside a child process that was started with `--child N`."""
    import jax

    jax.config.update("jax_num_cpu_devices", args.child)
    from gejax import parallel

    cfg, generator, measure = _networks(args.preset)
    mesh = parallel.batch_mesh(jax.devices()[:args.child])
    seconds = _solver_seconds(cfg, generator, measure, args.images, args.restarts,
                              SOLVER_STEPS, mesh)
    return {"devices": args.child, "backend": jax.default_backend(),
            "solver": args.images * args.restarts * SOLVER_STEPS / seconds,
            "train": _train_steps_per_second(cfg, args.batch_size, mesh)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist32", help="began_<preset> networks, e.g. celeba64")
    p.add_argument("--devices", default="1,2,4")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--restarts", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=32, help="BEGAN training batch")
    p.add_argument("--batches", default="8,32,128", help="images for the batch table")
    p.add_argument("--steps", default="10,100,1000", help="steps for the memory table")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(one_device_count(args)))
        return

    print(f"1. devices ({args.preset}, GE0 solver {args.images} images x {args.restarts} "
          f"restarts; BEGAN batch {args.batch_size})")
    print(f"{'devices':>7} {'img*rst*steps/s':>16} {'x':>5} {'train steps/s':>14} {'x':>5}")
    base = None
    for n in (int(v) for v in args.devices.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--preset", args.preset,
                              "--images", str(args.images), "--restarts", str(args.restarts),
                              "--batch_size", str(args.batch_size)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or row
        print(f"{n:>7} {row['solver']:16.0f} {row['solver'] / base['solver']:5.2f} "
              f"{row['train']:14.1f} {row['train'] / base['train']:5.2f}  ({row['backend']})")

    import jax

    import gejax

    cfg, generator, measure = _networks(args.preset)
    print(f"\n2. batch (one device, {SOLVER_STEPS} steps)")
    print(f"{'images':>7} {'restarts':>8} {'s/step':>8} {'us per img*rst*step':>20} {'x':>5}")
    base = None
    for images in (int(v) for v in args.batches.split(",")):
        per_step = _solver_seconds(cfg, generator, measure, images, args.restarts,
                                   SOLVER_STEPS, None) / SOLVER_STEPS
        unit = per_step / (images * args.restarts) * 1e6
        base = base or unit
        print(f"{images:>7} {args.restarts:>8} {per_step:8.4f} {unit:20.1f} {unit / base:5.2f}")

    print("\n3. steps (lax.scan program, XLA temporary memory)")
    print(f"{'steps':>7} {'temp MiB':>9}")
    y = jax.ShapeDtypeStruct((args.images,) + jax.eval_shape(
        measure, jax.ShapeDtypeStruct(cfg.image_shape, "float32")).shape, "float32")
    for steps in (int(v) for v in args.steps.split(",")):
        # Under the caller's jit, reconstruct is one program with lax.scan over the steps.
        solve = jax.jit(lambda y, steps=steps: gejax.reconstruct(
            generator, measure, y, key=jax.random.key(0), latent_dim=cfg.latent_dim,
            num_restarts=args.restarts, steps=steps))
        memory = solve.lower(y).compile().memory_analysis()
        print(f"{steps:>7} {memory.temp_size_in_bytes / 2**20:9.1f}")

if __name__ == "__main__":
    main()
