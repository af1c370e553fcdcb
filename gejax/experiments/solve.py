"""Solving many images with `gejax.reconstruct` as the experiments do: the solver's
settings, `solver.batch_size` images at a time with a progress bar, and G's floor.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial
from tqdm import tqdm

from gejax import parallel, validate
from gejax.reconstruct import _as_partial, projection_floor, reconstruct
from gejax.workdir import Networks


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Adam on z from the paper: lr 0.1, 500 steps, 2 random starts; GE1 from its learned
    start instead, where the workdir has one (`init`), for 1,000 steps: the paper's
    restart-steps in one start (`steps_for`).

    Why GE1's learned start by default: on 32 *train* digits the paper's two random starts
    leave GE1's objective far above what exists (started at G's floor's z, a diagnostic
    that sees x, it ends 36% lower in CS and 12% in deblurring), and starting at the
    learned start reaches most of it at half the seconds: CS MSE 0.00495 -> 0.00423
    (floor 0.00364), deblurring 19.33 -> 20.11 dB, denoising 19.35 -> 19.61 dB
    (docs/notes/training.md). `init="random"` is the paper's protocol.

    `reg_ge` and `reg_ga` are lambda for the two objectives, whose residuals have very
    different scales (m encoder outputs vs m Gaussian projections of H*W*C pixels). The
    defaults were the best of {0, 1e-3, 1e-2, 0.1} and {0.01, 0.1, 1, 10} on 16 *train*
    images of the embedded default at m = 128 (the MSE moved by < 15% over the range).
    Re-checked with the pull-away G (train MSE): GE0 0.0095 at 0 vs 0.0101 at 1e-3, GE1
    equal at both, GA within 2.5% over its range; the defaults were kept.
    """

    steps: int | None = None
    """Adam steps per start; None: the paper's 500, or 1,000 from GE1's learned start
    alone, the paper's 2 x 500 restart-steps in one start (steps_for)"""
    restarts: int | None = None
    """starts per image; None: the paper's 2 random ones, or GE1's learned start alone
    where it has one (restarts_for)"""
    learning_rate: float = 0.1
    reg_ge: float = 1e-3
    reg_ga: float = 1.0
    seed: int = 0
    tol: float = 0.0
    """stop each image once its objective stops falling (reconstruct's tol; 0.6 chosen
    on train for a learned start with whitened Adam, docs/notes/speed.md); 0: every step, as
    the paper"""
    init: str = "auto"
    """auto: GE1 starts at the workdir's learned start (train.init) where it has one, else
    at random; learned: the same, and an error where there is none; random: the paper's
    protocol. GA and GE0 always start at random"""
    batch_size: int = 64
    """images solved at a time: memory stays flat in N; it changes no number"""
    whiten: bool | None = None
    """Adam in latent coordinates whitened by the curvature near the starts (reconstruct's
    whiten); None: from a learned start with tol > 0 (whiten_for)"""

    def whiten_for(self, learned: bool) -> bool:
        """Whitened Adam: `whiten` if given, else from a learned start with early stopping.
        Near the answer it reaches in 20 steps what plain Adam reaches in 140 (CS, train
        digits); from the paper's random starts it moved the MSE by -8% to +4% after 200
        steps and by +24% to +37% after 100 (docs/notes/speed.md). Not by default at tol 0, the
        README's full-length runs, whose numbers were measured with plain Adam."""
        return self.whiten if self.whiten is not None else learned and self.tol > 0

    def restarts_for(self, learned: bool) -> int:
        """Starts per image: `restarts` if given, else the paper's 2 random ones, or 1 from
        a learned start (on 64 train images a second, random start moved the CS MSE by
        0.2% and denoising not at all, and doubled the seconds: docs/notes/speed.md)."""
        if self.restarts is not None:
            return self.restarts
        return 1 if learned else 2

    def steps_for(self, learned: bool) -> int:
        """Adam steps per start: `steps` if given, else the paper's 500, or 1,000 from a
        learned start alone. On train images the 1,000 steps lowered GE1's CS MSE by 7.5%
        (64 digits: 0.00373 -> 0.00345) and moved restoration by -0.14 to +0.07 dB (32 per
        task; docs/notes/training.md). Random starts, and G's floor, keep the paper's 500."""
        if self.steps is not None:
            return self.steps
        return 1000 if learned and self.restarts_for(learned) == 1 else 500


def check_solver(solver: SolverConfig) -> None:
    """Refuse solver settings that cannot run, before any work is done."""
    if solver.steps is not None:
        validate.integer(solver.steps, "--steps", 1)
    if solver.restarts is not None:
        validate.integer(solver.restarts, "--restarts", 1)
    validate.number(solver.learning_rate, "--learning_rate", positive=True)
    validate.number(solver.reg_ge, "--reg_ge")
    validate.number(solver.reg_ga, "--reg_ga")
    validate.number(solver.tol, "--tol")
    validate.integer(solver.batch_size, "--batch_size", 1)
    if solver.init not in ("auto", "learned", "random"):
        raise ValueError(f"--init must be 'auto', 'learned' or 'random', got {solver.init!r}")


def check_learned(nets: Networks, solver: SolverConfig, names, m: int | None = None) -> None:
    """Refuse `--init learned` where a GE1 encoder to run has no learned start (`auto`
    falls back to random starts there, and says so in results.json's "init")."""
    if solver.init != "learned":
        return
    for name in names:
        if not name.startswith("ge1"):
            continue
        has = (nets.init_for(name, m) if m is not None else nets.inits.get(name)) is not None
        if not has:
            raise ValueError(f"--init learned: {nets.data.name}'s workdir has no learned start "
                             f"for {name}{f' with m={m}' if m else ''}; train one with python "
                             "-m train.init --workdir W, or leave --init out")


def batched(fn: Callable, x, batch_size: int):
    """jax.vmap(fn) over the leading axis of x, `batch_size` rows at a time, as NumPy.
    Jitted: run op by op, each of fn's operations would compile on its first use."""
    return np.concatenate([np.asarray(_vmapped(_as_partial(fn), jnp.asarray(x[i:i + batch_size])))
                           for i in range(0, len(x), batch_size)])


@jax.jit
def _vmapped(fn: Partial, x):
    return jax.vmap(fn)(x)  # fn's arrays are inputs of the program, not its constants


def solve(nets: Networks, measure, y, solver: SolverConfig, reg: float, key, desc: str,
           learned=None, measure_params=None) -> tuple[np.ndarray, float, dict]:
    """reconstruct on all devices, `solver.batch_size` images at a time, with a progress bar.

    The random starts of all N images are drawn at once from `key` (as one batch of N
    would draw them), so the batch size changes no number. `learned` (Q: y -> z) sets
    restart 0 of every image when `solver.init` is "learned". `measure_params` (arrays
    with the leading axis N) are `reconstruct`'s, sliced with y.

    Returns (x_hat (N, H, W, C), seconds, {"init", "restarts", "steps", "whiten",
    "steps_run", "spread"}), "spread" the restarts' per-pixel spread (N, H, W, C)
    (`Reconstruction.spread`).
    """
    t0 = time.perf_counter()
    n, size = len(y), solver.batch_size
    use_learned = solver.init != "random" and learned is not None
    restarts, steps = solver.restarts_for(use_learned), solver.steps_for(use_learned)
    whiten = solver.whiten_for(use_learned)
    if use_learned and restarts == 1:  # no random start to draw (a program to compile)
        z0 = batched(learned, y, size)[:, None]
    else:
        z0 = jax.random.normal(key, (n, restarts, nets.began.latent_dim), jnp.float32)
        if use_learned:
            z0 = z0.at[:, 0].set(batched(learned, y, size))
    x_hat, steps_run, spread = [], [], []
    with tqdm(total=steps * -(-n // size), desc=desc, unit="step", leave=False,
              disable=not parallel.is_primary()) as bar:
        for i in range(0, n, size):
            rows = jax.tree_util.tree_map(lambda a, i=i: a[i:i + size], measure_params)
            out = reconstruct(nets.generator, measure, y[i:i + size], key=key,
                              latent_dim=nets.began.latent_dim, num_restarts=restarts,
                              steps=steps, learning_rate=solver.learning_rate, reg=reg,
                              init=z0[i:i + size], tol=solver.tol,
                              whiten=whiten, measure_params=rows,
                              progress=bar.update, mesh=parallel.default_mesh())
            x_hat.append(parallel.to_host(out.x_hat))
            steps_run.append(parallel.to_host(out.steps_run))
            spread.append(parallel.to_host(out.spread))
            bar.update(steps * (i // size + 1) - bar.n)  # steps an early stop skipped
    steps_run = np.concatenate(steps_run)
    return np.concatenate(x_hat), time.perf_counter() - t0, {
        "init": "learned" if use_learned else "random", "restarts": restarts, "steps": steps,
        "whiten": whiten, "steps_run": float(steps_run.mean()),
        "spread": np.concatenate(spread)}


def g_floor(nets: Networks, x: np.ndarray, solver: SolverConfig) -> dict:
    """G's floor on the evaluated images x (N, H, W, C), beside every results.json.

    `reconstruct.projection_floor` with the solver's steps, restarts and learning rate
    (lambda 0, random starts, no early stop: a reference, not a method): no method that
    returns G(z) can beat it on these images, so it tells a weak G from a weak encoder or
    solver. Solved `solver.batch_size` images at a time from starts drawn for all N.
    """
    t0 = time.perf_counter()
    n, size = len(x), solver.batch_size
    key = jax.random.fold_in(jax.random.key(solver.seed + 1), 8)
    restarts, steps = solver.restarts_for(learned=False), solver.steps_for(learned=False)
    z0 = jax.random.normal(key, (n, restarts, nets.began.latent_dim), jnp.float32)
    mse = []
    with tqdm(total=steps * -(-n // size), desc="G's floor", unit="step", leave=False,
              disable=not parallel.is_primary()) as bar:
        for i in range(0, n, size):
            mse.append(np.asarray(projection_floor(
                nets.generator, x[i:i + size], key=key, latent_dim=nets.began.latent_dim,
                num_restarts=restarts, steps=steps, init=z0[i:i + size],
                learning_rate=solver.learning_rate, progress=bar.update,
                mesh=parallel.default_mesh())))
    mse = np.concatenate(mse)
    return {"mse": float(mse.mean()), "mse_std": float(mse.std()),
            "seconds": time.perf_counter() - t0}
