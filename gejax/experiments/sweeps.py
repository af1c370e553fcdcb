"""Compressed sensing repeated: over m (the paper's Figures 5-6), over the measurement
noise, and on G-made against real images (Table 2).
"""

from __future__ import annotations

import jax
import numpy as np

from gejax import report, validate
from gejax.experiments.cs import CS_METHODS, LASSO_ALPHA, check_m, run_cs
from gejax.experiments.solve import SolverConfig, batched, solve
from gejax.reconstruct import ge_measure
from gejax.workdir import Networks


def run_sweep(nets: Networks, x: np.ndarray, *, ms: list[int], solver: SolverConfig,
              lasso_alpha: float = LASSO_ALPHA, log=print) -> tuple[dict, dict]:
    """Figs. 5-6: Lasso, GA and GE1 (where the workdir has a GE1 with m outputs) per m.

    Returns ({method: {"m": [...], "mse": [...], "mse_std": [...], ...}},
             {m: {method: reconstructions}}).
    """
    for m in ms:  # all of them before the first solve, not after an hour
        check_m(m, x.shape[1:])
    points, images = {}, {}
    for m in ms:
        log(f"m = {m}")
        ge1 = ("ge1",) if nets.encoder_for("ge1", m) is not None else ()
        if not ge1:
            log(f"GE1 skipped at m = {m}: the workdir has no GE1 encoder with m outputs")
        points[m], images[m] = run_cs(nets, x, m=m, solver=solver, lasso_alpha=lasso_alpha,
                                      methods=("lasso", "ga", *ge1), log=log)
    return report.curves(points, "m"), images


def run_noise_sweep(nets: Networks, x: np.ndarray, *, m: int, levels: list[float],
                    solver: SolverConfig, methods=CS_METHODS, lasso_alpha: float = LASSO_ALPHA,
                    log=print, deviations: dict | None = None) -> dict:
    """MSE against the measurement noise (`run_cs`'s noise_sigma), as CSGM sweeps it.

    Returns {method: {"noise_sigma": [...], "mse": [...], "mse_std": [...], ...}}.
    """
    for level in levels:
        validate.number(level, "--sweep_noise")
    points = {}
    for level in levels:
        log(f"noise sigma = {level}")
        points[level], _ = run_cs(nets, x, m=m, solver=solver, lasso_alpha=lasso_alpha,
                                  noise_sigma=level, methods=methods, log=log,
                                  deviations=deviations)
    return report.curves(points, "noise_sigma")


def run_fake_vs_real(nets: Networks, x_real: np.ndarray, *, m: int, solver: SolverConfig
                     ) -> dict:
    """Table 2: the same GE on images made by G (systematic error only) and on real images.

    Uses GE1 with m outputs if the workdir has one, else GE0; `g_floor` of the real
    images says how much of the real-image error is G's own.
    """
    method = "ge1" if nets.encoder_for("ge1", m) is not None else "ge0"
    encoder = nets.encoder_for(method, m)
    if encoder is None:
        raise ValueError(f"the fake-vs-real split needs a GE0 or GE1 encoder with m={m} outputs")
    key = jax.random.key(solver.seed + 1)
    z = jax.random.normal(key, (len(x_real), nets.began.latent_dim))
    x_fake = np.clip(batched(nets.generator, z, solver.batch_size), 0, 1)
    measure = ge_measure(encoder)
    out = {"encoder": method}
    for name, x in (("fake", x_fake), ("real", x_real)):
        y = batched(measure, x, solver.batch_size)
        x_hat, seconds, run = solve(nets, measure, y, solver, solver.reg_ge,
                                     jax.random.fold_in(key, 7), f"{method} {name}",
                                     learned=nets.init_for(method, m))
        out[name] = report.summarize(x_hat, x, seconds, **run)
    out["ratio"] = out["fake"]["mse"] / out["real"]["mse"]
    return out
