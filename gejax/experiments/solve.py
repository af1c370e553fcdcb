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
from tqdm import tqdm

from gejax import parallel, validate
from gejax.experiments import deviation
from gejax.reconstruct import Options, _as_partial, _vmapped, projection_floor, reconstruct
from gejax.workdir import Networks

# The default protocol from a learned start, per experiment: (tol, whiten), chosen on
# *train* digits (docs/notes/speed.md). Whitened Adam gained 5% in CS (64 digits, m =
# 128) but lost 0.2-0.7 dB in denoising and deblurring (32 digits), where plain Adam with
# a finer stop beat 1,000 plain steps in every task. From random starts the objective
# falls to the 500th step: every tol tried there (0.01 to 0.1) cost GA 25% or more of
# its MSE and GE0 11% or more, so they run every step.
FAST_LEARNED = {"cs": (0.05, True), "restore": (0.01, False)}


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """The commands' solver settings, turned into one `gejax.Options` per method by
    `options` (reconstruct's own vocabulary).

    Two protocols. "paper": Adam on z from the paper, lr 0.1, 500 steps from each of 2
    random starts, every step, for every method. "fast" (the default): GE1 from its
    learned start alone where the workdir has one (train.init), each image stopping once
    its objective stops falling, for at most 1,000 steps (the paper's 2 x 500
    restart-steps in one start), with the tol and whitening of FAST_LEARNED; random
    starts (GA, GE0, G's floor) as the paper's. A flag overrides the protocol's setting.

    Why GE1's learned start: on 32 *train* digits the paper's two random starts leave
    GE1's objective far above what exists (started at G's floor's z, a diagnostic that
    sees x, it ends 36% lower in CS and 12% in deblurring), and the learned start reaches
    most of it at half the seconds (docs/notes/training.md).

    `reg_ge` and `reg_ga` are lambda for the two objectives, whose residuals have very
    different scales (m encoder outputs vs m Gaussian projections of H*W*C pixels). The
    defaults were the best of {0, 1e-3, 1e-2, 0.1} and {0.01, 0.1, 1, 10} on 16 *train*
    images of the embedded default at m = 128 (the MSE moved by < 15% over the range).
    """

    protocol: str = "fast"
    """fast: learned starts, whitening and early stops where they hold the quality; paper:
    the paper's protocol exactly (2 random starts x 500 Adam steps, every step)"""
    steps: int | None = None
    """Adam steps per start (at most, with tol); None: the protocol's"""
    restarts: int | None = None
    """starts per image; None: the protocol's (2 random, or a learned start alone)"""
    learning_rate: float = 0.1
    reg_ge: float = 1e-3
    reg_ga: float = 1.0
    seed: int = 0
    tol: float | None = None
    """stop each image once its objective stops falling (reconstruct's tol); None: the
    protocol's; 0: every step"""
    init: str = "auto"
    """auto: GE1 starts at the workdir's learned start (train.init) where it has one, else
    at random; learned: the same, and an error where there is none; random: random starts
    (the paper's). GA and GE0 always start at random"""
    batch_size: int = 64
    """images solved at a time: memory stays flat in N; it changes no number"""
    whiten: bool | None = None
    """Adam in latent coordinates whitened per image by the curvature at its start
    (reconstruct's whiten); None: the protocol's (from a learned start in "fast")"""

    def options(self, reg: float, learned: Callable | None = None,
                experiment: str = "cs") -> Options:
        """reconstruct's Options for one method of an `experiment` ("cs" or "restore"):
        `learned` (y_b -> z_b) its learned start, used unless init is "random" or the
        protocol is the paper's."""
        if self.protocol == "paper" or self.init == "random":
            learned = None
        alone = learned is not None and self.restarts in (None, 1)
        tol, whiten = FAST_LEARNED[experiment] if learned is not None else (0.0, False)
        return Options(
            num_restarts=self.restarts or (1 if learned is not None else 2),
            steps=self.steps or (1000 if alone else 500),
            learning_rate=self.learning_rate, reg=reg, init=learned,
            tol=tol if self.tol is None else self.tol,
            whiten=whiten if self.whiten is None else self.whiten)


def check_solver(solver: SolverConfig) -> None:
    """Refuse solver settings that cannot run, before any work is done."""
    if solver.protocol not in ("fast", "paper"):
        raise ValueError(f"--protocol must be 'fast' or 'paper', got {solver.protocol!r}")
    if solver.protocol == "paper" and solver.init == "learned":
        raise ValueError("--protocol paper starts at random: leave --init learned out")
    if solver.steps is not None:
        validate.integer(solver.steps, "--steps", 1)
    if solver.restarts is not None:
        validate.integer(solver.restarts, "--restarts", 1)
    validate.number(solver.learning_rate, "--learning_rate", positive=True)
    validate.number(solver.reg_ge, "--reg_ge")
    validate.number(solver.reg_ga, "--reg_ga")
    if solver.tol is not None:
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
        name = deviation.base(name)  # GE1 with a deviation starts as GE1
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


def solve(nets: Networks, measure, y, solver: SolverConfig, reg: float, key, desc: str,
          learned=None, measure_params=None, experiment: str = "cs", deviation=None
          ) -> tuple[np.ndarray, float, dict]:
    """reconstruct with `solver.options(reg, learned, experiment)` and `deviation` (a
    `gejax.Deviation` or None) on all devices, `solver.batch_size` images at a time, with a
    progress bar.

    Image i draws its random starts from its own key (`jax.random.split(key, N)[i]`), so
    that neither the batch size nor the other images change its answer. `learned` (y_b ->
    z_b) is the method's learned start; `measure_params` (arrays with the leading axis N)
    are reconstruct's, sliced with y.

    Returns (x_hat (N, H, W, C), seconds, {"init", "restarts", "steps", "tol", "whiten",
    "steps_run", "spread"} and, with a deviation, "mu" and "basis"), "spread" the
    restarts' per-pixel spread (N, H, W, C) (`Reconstruction.spread`).
    """
    t0 = time.perf_counter()
    n, size = len(y), solver.batch_size
    options = dataclasses.replace(solver.options(reg, learned, experiment), deviation=deviation)
    keys = jax.random.split(key, n)
    x_hat, steps_run, spread = [], [], []
    total = options.steps * -(-n // size)
    with tqdm(total=total, desc=desc, unit="step", leave=False,
              disable=not parallel.is_primary()) as bar:
        for i in range(0, n, size):
            rows = jax.tree_util.tree_map(lambda a, i=i: a[i:i + size], measure_params)
            out = reconstruct(nets.generator, measure, y[i:i + size], key=keys[i:i + size],
                              latent_dim=nets.began.latent_dim, options=options,
                              measure_params=rows, progress=bar.update,
                              mesh=parallel.default_mesh())
            x_hat.append(parallel.to_host(out.x_hat))
            steps_run.append(parallel.to_host(out.steps_run))
            spread.append(parallel.to_host(out.spread))
            bar.update(options.steps * (i // size + 1) - bar.n)  # steps an early stop skipped
    steps_run = np.concatenate(steps_run)
    return np.concatenate(x_hat), time.perf_counter() - t0, {
        "init": "random" if options.init is None else "learned",
        "restarts": options.num_restarts, "steps": options.steps, "tol": options.tol,
        "whiten": options.whiten, "steps_run": float(steps_run.mean()),
        "spread": np.concatenate(spread),
        **({} if deviation is None else {"mu": deviation.mu, "basis": deviation.basis})}


def g_floor(nets: Networks, x: np.ndarray, solver: SolverConfig) -> dict:
    """G's floor on the evaluated images x (N, H, W, C), beside every results.json.

    `reconstruct.projection_floor` with the solver's random-start options (lambda 0): no
    method that returns G(z) can beat it on these images, so it tells a weak G from a weak
    encoder or solver. Solved `solver.batch_size` images at a time, each image from its
    own key.
    """
    t0 = time.perf_counter()
    n, size = len(x), solver.batch_size
    options = solver.options(0.0)
    keys = jax.random.split(jax.random.fold_in(jax.random.key(solver.seed + 1), 8), n)
    mse = []
    with tqdm(total=options.steps * -(-n // size), desc="G's floor", unit="step",
              leave=False, disable=not parallel.is_primary()) as bar:
        for i in range(0, n, size):
            mse.append(np.asarray(projection_floor(
                nets.generator, x[i:i + size], key=keys[i:i + size],
                latent_dim=nets.began.latent_dim, options=options, progress=bar.update,
                mesh=parallel.default_mesh())))
            bar.update(options.steps * (i // size + 1) - bar.n)
    mse = np.concatenate(mse)
    return {"mse": float(mse.mean()), "mse_std": float(mse.std()), "tol": options.tol,
            "seconds": time.perf_counter() - t0}
