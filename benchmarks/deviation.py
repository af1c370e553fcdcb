"""What a sparse deviation costs: the same solve with and without `gejax.Deviation`.

    python benchmarks/deviation.py [--workdir W --images 32 --mu_ga 100 --mu_ge 0.01]

Solves compressed sensing at m = 128 (GA from random starts, GE1 from its learned start,
the commands' default protocol) on the first test images of a workdir (the embedded
default if none), each twice with and twice without a deviation, alternating, and prints
the best seconds of each and their ratio (the same run, warm: compiling apart), with
the mean steps run (an early stop may stop later when nu keeps the objective falling);
then the same with --fixed_steps steps every image (tol 0): the cost of a step alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

import gejax
from gejax import operators, workdir
from gejax.experiments.solve import SolverConfig, batched


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.x_hat)
    return time.perf_counter() - t, float(np.mean(out.steps_run))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--m", type=int, default=128)
    parser.add_argument("--mu_ga", type=float, default=100.0)
    parser.add_argument("--mu_ge", type=float, default=0.01)
    parser.add_argument("--basis", default="haar")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fixed_steps", type=int, default=100)
    args = parser.parse_args()
    nets = workdir.load_networks(args.workdir or workdir.default_workdir())
    x = workdir.eval_images(nets, args.images)
    keys = jax.random.split(jax.random.key(0), len(x))
    a = operators.gaussian_matrix(jax.random.key(1), args.m, x[0].size)
    solver = SolverConfig()
    cases = {"ga": (gejax.ga_measure(a), solver.options(solver.reg_ga), args.mu_ga),
             "ge1": (gejax.ge_measure(nets.encoder_for("ge1", args.m)),
                     solver.options(solver.reg_ge, nets.init_for("ge1", args.m)), args.mu_ge)}
    print(f"{len(x)} images, m = {args.m}, basis {args.basis}, {jax.default_backend()}")
    for name, (measure, protocol, mu) in cases.items():
        for label, options in ((name, protocol), (f"{name}, {args.fixed_steps} steps",
                               dataclasses.replace(protocol, steps=args.fixed_steps, tol=0.0))):
            _compare(label, nets, measure, batched(measure, x, 64), keys, options,
                     gejax.Deviation(mu, args.basis), args.repeats)


def _compare(name, nets, measure, y, keys, options, deviation, repeats) -> None:
    """Times one solve without and with `deviation`, alternating; prints the ratio."""
    runs = {}
    for label, dev in (("without", None), ("with", deviation)):
        o = dataclasses.replace(options, deviation=dev)
        runs[label] = lambda o=o, measure=measure, y=y: gejax.reconstruct(
            nets.generator, measure, y, key=keys, latent_dim=nets.began.latent_dim,
            options=o)
        runs[label]()  # compile
    seconds = {k: [] for k in runs}
    steps = {}
    for _ in range(repeats):
        for label, fn in runs.items():
            s, steps[label] = _timed(fn)
            seconds[label].append(s)
    best = {k: min(v) for k, v in seconds.items()}
    print(f"{name}: without {best['without']:.2f} s ({steps['without']:.0f} steps), "
          f"with mu {deviation.mu:g} {best['with']:.2f} s ({steps['with']:.0f} steps): "
          f"ratio {best['with'] / best['without']:.2f}")


if __name__ == "__main__":
    main()
