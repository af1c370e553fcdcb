"""Compressed sensing, the paper's Tables 1-2 and Figures 4-6: every method on the same
images, sensing matrix and seeds; GE and GA restarts chosen by their objective, never by
the ground truth.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gejax import baselines, operators, plotting, report, validate, workdir
from gejax.experiments import deviation, own
from gejax.experiments.solve import SolverConfig, batched, check_solver, g_floor, solve
from gejax.reconstruct import ga_measure, ge_measure
from gejax.workdir import Networks

PAPER_LASSO_M = 500
# The paper's alpha = 0.1 belongs to its own scaling; in ours ([0, 1] pixels, scikit-learn's
# ||.||^2 / 2m, N(0, 1) A) alpha means the same at every m. On 16 *train* images, MSE at
# m = 128 / 500: 1e-4 0.066 / 0.0146, 3e-4 0.044 / 0.0082, 1e-3 0.042 / 0.0087, 3e-3 0.049 /
# 0.0089, 0.01 0.051 / 0.0091, 0.05 0.052 / 0.0102. Below 3e-3 the 2,000 coordinate-descent
# sweeps no longer solve a 3-channel sparse image (tests/test_baselines.py): 3e-3 is the
# smallest weight that does. Until 2026-11-29 A and y were also divided by sqrt(m), which
# made the weight alpha * m (1e-4 then acted as 0.0128 at m = 128 and 0.05 at m = 500).
LASSO_ALPHA = 3e-3
CS_METHODS = ("lasso", "lasso_m500", "ga", "ge0", "ge1", "ga_dev", "ge1_dev")


def check_m(m: int, image_shape: tuple[int, ...]) -> None:
    """Compressed sensing takes 1 to H*W*C measurements."""
    n_pixels = int(np.prod(image_shape))
    if not 0 < m <= n_pixels:
        raise ValueError(f"m must be in [1, {n_pixels}] (the number of pixels), got {m}")


def check_methods(methods) -> None:
    """Refuse compressed-sensing methods other than CS_METHODS ("_dev": with a sparse
    deviation, `gejax.experiments.deviation`)."""
    unknown = set(methods) - set(CS_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}: use {', '.join(CS_METHODS)}")


def noisy(y: np.ndarray, sigma: float, key: jax.Array) -> np.ndarray:
    """y + sigma * e with e ~ N(0, I) drawn from `key`: measurement noise, y = S(x) + e.
    y itself (bit for bit) when sigma is 0."""
    if sigma == 0:
        return y
    return np.asarray(y + sigma * jax.random.normal(key, np.shape(y), jnp.float32))


def run_cs(nets: Networks, x: np.ndarray, *, m: int, solver: SolverConfig,
           lasso_alpha: float = LASSO_ALPHA, noise_sigma: float = 0.0,
           methods=CS_METHODS, log=print, spreads: dict | None = None,
           deviations: dict | None = None) -> tuple[dict, dict]:
    """Compressed sensing of x (N, H, W, C) from m measurements by every method.

    `noise_sigma` adds Gaussian noise of that std to every method's measurements y
    (A x for Lasso and GA, EN(x) for GE), drawn from the seed, independently per method.
    Note that the measurements' own scales differ: A has N(0, 1/m) entries, so A x is
    about ||x|| / sqrt(m) per entry, while EN(x) has the scale the encoder learned.

    `deviations` {"ga_dev": gejax.Deviation, ...}: the deviation of each "_dev" row
    (`experiments.deviation`; none: the method's own answer, solved again or, where its
    method ran here, the same). Each row shares its method's random starts and noise.

    Returns (results dict of docs/guide/results.md, {method: reconstructions}); `spreads`,
    if a dict, receives each solver method's per-pixel restart spread (N, H, W, C).
    """
    check_methods(methods)
    check_m(m, x.shape[1:])
    n_pixels = int(np.prod(x.shape[1:]))
    validate.number(lasso_alpha, "lasso_alpha", positive=True)
    validate.number(noise_sigma, "--noise_sigma")
    key = jax.random.key(solver.seed)
    k_a, k_a500, k_ga, k_ge = jax.random.split(key, 4)
    k_noise = jax.random.fold_in(key, 1)  # leaves the keys above as they were
    a = np.asarray(operators.gaussian_matrix(k_a, m, n_pixels))
    results, images = {}, {}

    def record(name, x_hat, seconds, m_used, **extra):
        if spreads is not None and "spread" in extra:
            spreads[name] = extra["spread"]
        results[name] = report.summarize(x_hat, x, seconds, m=m_used, **extra)
        images[name] = np.clip(x_hat, 0, 1)
        log(report.line(name, results[name], width=11))

    deviations = deviations or {}
    for name in methods:
        dev, method = deviations.get(name), deviation.base(name)
        noise_key = jax.random.fold_in(k_noise, CS_METHODS.index(method))
        if deviation.is_deviation(name) and dev is None and method in results:  # its answer
            results[name], images[name] = {**results[method], "mu": None}, images[method]
            log(report.line(name, results[name], width=11))
        elif name.startswith("lasso"):
            m_used = min(PAPER_LASSO_M, n_pixels) if name == "lasso_m500" else m
            a_used = a if m_used == m else np.asarray(
                operators.gaussian_matrix(k_a500, m_used, n_pixels))
            t0 = time.perf_counter()
            y = noisy(x.reshape(len(x), -1) @ a_used.T, noise_sigma, noise_key)
            x_hat = baselines.lasso_dct(y, a_used, x.shape[1:], alpha=lasso_alpha)
            record(name, x_hat, time.perf_counter() - t0, m_used, alpha=lasso_alpha)
        elif method == "ga":
            measure = ga_measure(a)
            y = noisy(batched(measure, x, solver.batch_size), noise_sigma, noise_key)
            x_hat, seconds, run = solve(nets, measure, y, solver, solver.reg_ga, k_ga,
                                        name.upper(), deviation=dev)
            record(name, x_hat, seconds, m, **run)
        else:
            encoder = nets.encoder_for(method, m)
            if encoder is None:
                raise ValueError(f"{name} needs an encoder with m={m} outputs, which the "
                                 f"workdir lacks (train one: python -m train.ae --name "
                                 f"ae_m{m} --code_dim {m}), or leave {name} out of --methods")
            measure = ge_measure(encoder)
            y = noisy(batched(measure, x, solver.batch_size), noise_sigma, noise_key)
            x_hat, seconds, run = solve(nets, measure, y, solver, solver.reg_ge, k_ge,
                                        name.upper(), deviation=dev,
                                        learned=nets.init_for(method, m))
            record(name, x_hat, seconds, m, **run)
    return results, images


ROWS = (("original", None), ("Lasso (m=500)", "lasso_m500"), ("Lasso", "lasso"), ("GA", "ga"),
        ("GA + nu", "ga_dev"), ("GE0", "ge0"), ("GE1", "ge1"), ("GE1 + nu", "ge1_dev"))


@dataclasses.dataclass(frozen=True)
class CsRun:
    """Compressed sensing, the paper's Table 1, Table 2 and Figure 4.

    Recovers the first N test images from m measurements with Lasso-DCT (at m and at the
    paper's m=500), GA (Bora et al.'s CSGM with the same G) and GE0/GE1.
    """

    m: int = 128
    """number of measurements"""
    workdir: str | None = None
    """trained checkpoints; None: the shipped embedded default"""
    split: str = "test"
    """report on test; tune hyper-parameters on train"""
    num_images: int = 64
    images: str | None = None
    """your own clean images (a folder, an .npz or an image file) instead of --split"""
    convert: str | None = None
    """--images of another size or colour: resize or pad them; None: refused"""
    measurements: str | None = None
    """an .npz of your y (N, m), A (m, pixels) and, to score, x: Lasso-DCT and GA run"""
    out: str | None = None
    """output folder; None: <workdir>/results/cs_m<m>, or results/cs_m<m> for the default"""
    methods: str | None = None
    """comma-separated, of lasso, lasso_m500, ga, ge0, ge1; None: those the workdir has
    encoders for (a method asked for that cannot run is an error)"""
    lasso_alpha: float = LASSO_ALPHA
    """l1 weight of Lasso-DCT (chosen on the train split)"""
    reg: float | None = None
    """lambda for GE and GA alike; None: the solver's reg_ge, reg_ga"""
    sweep: str | None = None
    """comma-separated m values for Figs. 5-6, e.g. 16,32,64,128,256 (GE1 needs an encoder
    per m: train.ae --name ae_m64 --code_dim 64)"""
    fake_vs_real: bool = False
    """also run the paper's Table 2"""
    noise_sigma: float = 0.0
    """std of Gaussian noise added to every method's measurements y (seeded)"""
    sweep_noise: str | None = None
    """comma-separated noise levels, e.g. 0,0.01,0.05,0.1: MSE against the level for each
    method at --m (figure noise.png)"""
    uncertainty: bool = False
    """also draw uncertainty.png: answer, restart spread and true error side by side (GE1,
    else the last solver method); results.json has every solver method's
    spread_error_corr either way"""
    grid_columns: int = 8
    solver: SolverConfig = SolverConfig()


def evaluate(run: CsRun) -> None:
    """`python -m evaluate.cs`: results.json, results.md and figures 4 (5, 6) into run.out."""
    from gejax.experiments import sweeps  # it builds on this module

    where = run.workdir or workdir.default_workdir()
    solver = run.solver if run.reg is None else dataclasses.replace(
        run.solver, reg_ge=run.reg, reg_ga=run.reg)
    check_solver(solver)
    nets = workdir.load_networks(where)
    if run.measurements is not None:
        return own.cs_measurements(run, nets, solver, where)
    x, dataset, split = own.clean_images(nets, run)
    ms = [int(v) for v in run.sweep.split(",")] if run.sweep else []
    for m in [run.m, *ms]:
        check_m(m, x.shape[1:])
    names = own.cs_methods(nets, run.methods, run.m, solver)
    validate.number(run.noise_sigma, "--noise_sigma")
    levels = [float(v) for v in run.sweep_noise.split(",")] if run.sweep_noise else []
    for level in levels:
        validate.number(level, "--sweep_noise")
    # After the checks, so that a mistyped flag leaves no empty results/cs_m<m> behind.
    out_dir = report.prepare_out(own.out_dir(run, f"cs_m{run.m}"))
    print(f"compressed sensing: {len(x)} {split} images {x.shape[1:]} of "
          f"{dataset}, m={run.m}, solver {solver}")
    spreads = {}
    deviations, tuned = deviation.for_cs(nets, where, names, run.m, solver)
    methods, recon = run_cs(nets, x, m=run.m, solver=solver, methods=names,
                            lasso_alpha=run.lasso_alpha, noise_sigma=run.noise_sigma,
                            spreads=spreads, deviations=deviations)
    results = {"experiment": "cs", "dataset": dataset, "image_shape": list(x.shape[1:]),
               "num_images": len(x), "m": run.m, "seed": solver.seed, "methods": methods,
               **report.provenance(solver, where), "split": split,
               "noise_sigma": run.noise_sigma, "deviation": tuned,
               "g_floor": g_floor(nets, x, solver)}
    print(f"G's floor on these images, min_z ||G(z) - x||^2: {results['g_floor']['mse']:.5f}")
    table2 = None
    if run.fake_vs_real:
        table2 = results["fake_vs_real"] = sweeps.run_fake_vs_real(nets, x, m=run.m, solver=solver)
        print(f"Table 2 ({table2['encoder']}): fake MSE {table2['fake']['mse']:.5f}, real MSE "
              f"{table2['real']['mse']:.5f}, ratio {table2['ratio']:.3f}")
    sweep = sweep_recon = None
    if ms:
        sweep, sweep_recon = sweeps.run_sweep(nets, x, ms=ms, solver=solver,
                                       lasso_alpha=run.lasso_alpha)
        results["sweep"] = sweep
    noise = None
    if levels:
        noise = results["noise_sweep"] = sweeps.run_noise_sweep(
            nets, x, m=run.m, levels=levels, solver=solver, methods=names,
            lasso_alpha=run.lasso_alpha, deviations=deviations)
    shown = slice(0, min(run.grid_columns, len(x)))

    def figures(out: Path):
        if sweep is not None:
            plotting.curves({k: (v["m"], v["mse"]) for k, v in sweep.items()},
                            out / "figure6.png",
                            errors={k: v["mse_std"] for k, v in sweep.items()},
                            xlabel="measurements m", ylabel="MSE per pixel ([0, 1] scale)",
                            title=f"MSE vs m, {len(x)} {split} images")
            rows = [("original", x[shown])] + [
                (f"GE1 m={m}", sweep_recon[m]["ge1"][shown]) for m in ms if "ge1" in sweep_recon[m]]
            plotting.image_grid(rows, out / "figure5.png", title="GE1 with increasing m")
        if noise is not None:
            plotting.curves({k: (v["noise_sigma"], v["mse"]) for k, v in noise.items()},
                            out / "noise.png", errors={k: v["mse_std"] for k, v in noise.items()},
                            xlabel="measurement noise sigma", ylabel="MSE per pixel",
                            title=f"MSE vs noise, m={run.m}, {len(x)} {split} images")
        if run.uncertainty and spreads:
            name = "ge1" if "ge1" in spreads else list(spreads)[-1]
            plotting.uncertainty(x[shown], recon[name][shown], spreads[name][shown],
                                 out / "uncertainty.png", label=name.upper(),
                                 corr=methods[name]["spread_error_corr"]["pixels"])
        rows = [(label, x[shown] if key is None else recon[key][shown])
                for label, key in ROWS if key is None or key in recon]
        plotting.image_grid(rows, out / "figure4.png",
                            title=f"compressed sensing, m={run.m} ({dataset})")

    table = report.markdown_table(results, title=f"Compressed sensing, m={run.m}, "
                                  f"{len(x)} {split} images of {dataset}")
    if table2 is not None:
        table += (f"\nTable 2 ({table2['encoder']}): MSE on G-made images "
                  f"{table2['fake']['mse']:.5f}, on real images {table2['real']['mse']:.5f}, "
                  f"ratio {table2['ratio']:.3f}\n")
    if noise is not None:
        table += "\n" + report.sweep_table(noise, "noise_sigma", "mse",
                                            title=f"MSE vs measurement noise, m={run.m}")
    report.write_outputs(out_dir, results, table, figures)
    print(table)
    print(f"wrote {out_dir}/results.json, results.md, figure4.png"
          + (", figure5.png, figure6.png" if sweep is not None else "")
          + (", noise.png" if noise is not None else ""))
