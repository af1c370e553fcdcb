"""Restoration, the paper's Figures 8-11: GE (eq. 5/6) against the classical baselines of
each task (gejax.tasks), on the same degraded images.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gejax import operators, plotting, report, tasks, workdir
from gejax.experiments import deviation as deviations
from gejax.experiments import own
from gejax.experiments.solve import (
    SolverConfig,
    batched,
    check_learned,
    check_solver,
    g_floor,
    solve,
)
from gejax.reconstruct import ge_measure


@dataclasses.dataclass(frozen=True)
class RestoreRun:
    """Restoration with GE against classical baselines, the paper's Figures 8-11.

    denoise: Gaussian noise (sigma 0.4) vs BM3D. deblur: Gaussian blur vs Wiener and
    Richardson-Lucy with the true kernel and blind Richardson-Lucy (GE is blind too).
    superres: down-sampling by 4; the bicubic up-sampling is the baseline and GE's
    x_dagger. inpaint: a centre block or hand-drawn-like lines vs biharmonic inpainting.
    GE runs with GE0, GE1 and, as ge1_task, an encoder trained for the task if the workdir
    has one (train.ae --name ae_denoise --corrupt denoise).
    """

    task: str
    """denoise, deblur, superres or inpaint"""
    mask: str = "block"
    """inpaint: block or lines"""
    sigma: float | None = None
    """denoise: noise std on [0, 1] pixels; None: the paper's 0.4"""
    blur_sigma: float | None = None
    """deblur: blur std in pixels; None: 1.5 at 32x32, scaled with the side"""
    precondition: float | None = None
    """deblur: GE encodes x_dagger + p (blind Richardson-Lucy(x_dagger) - x_dagger); None:
    0.5, chosen on train; 0: x_dagger, the paper's"""
    factor: int | None = None
    """superres: down-sampling factor, a divisor of the side; None: 4"""
    block_size: int | None = None
    """inpaint --mask block: side of the hole; None: 30 at 64x64, scaled"""
    keep_observed: bool = True
    """inpaint: GE returns M x_dagger + (1 - M) G(z*); --no_keep_observed: G(z*), as the paper"""
    workdir: str | None = None
    """trained checkpoints; None: the shipped embedded default"""
    split: str = "test"
    """report on test; tune hyper-parameters on train"""
    num_images: int = 32
    images: str | None = None
    """your own clean images (a folder, an .npz or one image file) instead of the
    workdir's --split: degraded here, then scored"""
    degraded: str | None = None
    """your own degraded images (same forms; superres: the low-resolution ones): restored,
    each answer written as a PNG into --out, with no score (no ground truth)"""
    masks: str | None = None
    """inpaint --degraded: each image's observed pixels (white) as images of the same
    names or order"""
    convert: str | None = None
    """--images / --degraded of another size or colour: resize (centre-crop, bicubic) or
    pad (zero-pad smaller ones); None: refused"""
    out: str | None = None
    """output folder; None: <workdir>/results/<task>, or results/<task> for the default"""
    reg: float | None = None
    """lambda for GE; None: the solver's reg_ge"""
    sweep_sigma: str | None = None
    """denoise: comma-separated noise levels, e.g. 0.05,0.1,0.2,0.4: PSNR against the level
    for every method (figure sweep_sigma.png)"""
    grid_columns: int = 8
    solver: SolverConfig = SolverConfig()


def run_restore(nets: workdir.Networks, x: np.ndarray, *, task: tasks.Task | str,
                solver: SolverConfig, keep_observed: bool = True, log=print,
                deviation: dict | None = None, methods=None) -> tuple[dict, dict, dict]:
    """Restore degraded copies of x (N, H, W, C) with GE (eq. 5/6) and the task's baselines.

    `task` is a gejax.tasks.Task (or a name of gejax.tasks.NAMES, with the paper's
    settings). GE runs with each encoder the workdir has: GE0, GE1 and, as "ge1_task", an
    encoder trained on this task's degradation (train.ae --corrupt <task>) if there is
    one. Where the task observes some pixels as they are (inpainting), `keep_observed`
    returns M x_dagger + (1 - M) G(z*) (as biharmonic inpainting and Yeh et al. 2017 do);
    False returns G(z*), the paper's output. `deviation` and `methods` as `restore_each`'s.

    Returns (methods dict of results.json, {method: images}, task parameters with
    "degraded_input", x_dagger (N, H, W, C)).
    """
    task = tasks.get(task) if isinstance(task, str) else task
    shape = x.shape[1:]
    task.check(shape)
    k_degrade = jax.random.split(jax.random.key(solver.seed))[0]
    mask = task.observed_each(len(x), shape, k_degrade)  # (N, H, W, 1) or None
    params = task.params(shape)
    if mask is None:
        x_dagger = np.asarray(task.degrade(jnp.asarray(x), k_degrade))
    else:
        mask = np.asarray(mask)
        x_dagger = x * mask
        params["keep_observed"] = keep_observed
    results, images = {}, {}

    def record(name, x_hat, seconds, **extra):
        results[name] = report.summarize(x_hat, x, seconds, **extra)
        images[name] = np.clip(x_hat, 0, 1)
        log(report.line(name, results[name], width=21))

    record("degraded", x_dagger, 0.0)
    restore_each(nets, x_dagger, task, solver, masks=mask, keep_observed=keep_observed,
                 done=record, deviation=deviation, methods=methods)
    return results, images, {"degraded_input": x_dagger, **params}


def restore_each(nets: workdir.Networks, x_dagger: np.ndarray, task: tasks.Task,
                 solver: SolverConfig, *, masks: np.ndarray | None, keep_observed: bool,
                 done, deviation: dict | None = None, methods=None) -> None:
    """Every method on degraded images x_dagger (N, H, W, C): the task's baselines, then
    GE with each encoder; `done(name, x_hat, seconds, **run)` as each finishes (run: the
    solver's settings and "spread" for GE). `masks` (N, H, W, 1): the observed pixels of
    each image (inpainting), else None. Needs no ground truth (evaluate.restore
    --degraded). `deviation`: a record of `experiments.deviation` ({"mu", "basis"}, mu None
    for none), which adds the row "ge1_dev", GE1 solving for G(z) + nu (where mu is None,
    GE1's own answer). `methods`: the rows to run; None: all of them."""
    shape = x_dagger.shape[1:]
    k_degrade, k_solve = jax.random.split(jax.random.key(solver.seed))
    if masks is None:  # S as the task degrades
        s, s_params = task.operator(shape, k_degrade), None
    else:  # S_i(x) = M_i x, each image's mask passed to the solver beside its y
        s, s_params = Partial(operators.apply_mask), masks
    for name, baseline in task.baselines(shape, k_degrade, masks=masks).items():
        if methods is not None and name not in methods:
            continue
        t0 = time.perf_counter()
        x_hat = baseline(x_dagger)
        done(name, x_hat, time.perf_counter() - t0)
    x_in = task.ge_input(x_dagger)  # x_dagger itself, or preconditioned (deblur)
    ge = {"ge0": nets.encoders.get("ge0"), "ge1": nets.encoders.get("ge1")}
    task_ae, ge["ge1_task"] = nets.task_encoders.get(task.name, (None, None))
    ge["ge1_dev"] = ge["ge1"] if deviation is not None else None
    dev = None if deviation is None else deviations.of(deviation)
    answers = {}
    for name, encoder in ge.items():
        if encoder is None or (methods is not None and name not in methods):
            continue
        if name == "ge1_dev" and dev is None and "ge1" in answers:  # GE1's own answer
            done(name, *answers["ge1"][:2], **answers["ge1"][2], mu=None)
            continue
        measure = ge_measure(encoder, s)
        y = batched(encoder, x_in, solver.batch_size)  # EN(x_dagger), eq. 6 (preconditioned)
        x_hat, seconds, run = solve(nets, measure, y, solver, solver.reg_ge, k_solve,
                                    name.upper(), learned=nets.inits.get(deviations.base(name)),
                                    measure_params=s_params, experiment="restore",
                                    deviation=dev if name == "ge1_dev" else None)
        if masks is not None and keep_observed:
            x_hat = masks * x_dagger + (1 - masks) * x_hat
            run["spread"] = (1 - masks) * run["spread"]  # the kept pixels are certain
        extra = {"encoder": task_ae} if name == "ge1_task" else {}
        answers[name] = (x_hat, seconds, {**run, **extra})
        done(name, x_hat, seconds, **run, **extra)


def evaluate(run: RestoreRun) -> None:
    """`python -m evaluate.restore`: results.json, results.md and the figure into run.out."""
    task = tasks.select(run.task, mask=run.mask, sigma=run.sigma, blur_sigma=run.blur_sigma,
                        precondition=run.precondition, factor=run.factor,
                        block_size=run.block_size)
    where = run.workdir or workdir.default_workdir()
    solver = run.solver if run.reg is None else dataclasses.replace(run.solver, reg_ge=run.reg)
    check_solver(solver)
    nets = workdir.load_networks(where)
    task.check(nets.began.image_shape)
    check_learned(nets, solver, ("ge1",))
    levels = [float(v) for v in run.sweep_sigma.split(",")] if run.sweep_sigma else []
    if levels and not hasattr(task, "sigma"):
        raise ValueError(f"--sweep_sigma applies to --task denoise, not {run.task}")
    for level in levels:
        dataclasses.replace(task, sigma=level).check(nets.began.image_shape)
    if run.degraded is not None:
        return own.restore_degraded(run, nets, task, solver, where)
    x, dataset, split = own.clean_images(nets, run)
    out_dir = report.prepare_out(own.out_dir(run, task.name))
    print(f"{task.name}: {len(x)} {split} images {x.shape[1:]} of {dataset}, solver {solver}")
    tuned = deviations.for_restore(nets, where, task, solver, keep_observed=run.keep_observed)
    methods, recon, params = run_restore(nets, x, task=task, solver=solver,
                                         keep_observed=run.keep_observed, deviation=tuned)
    x_dagger = params.pop("degraded_input")
    sweep = None
    if levels:
        points = {}
        for level in levels:
            print(f"sigma = {level}")
            points[level], _, _ = run_restore(nets, x, task=dataclasses.replace(task, sigma=level),
                                              solver=solver, deviation=tuned)
        sweep = report.curves(points, "sigma")
    results = {"experiment": run.task, "dataset": dataset,
               "image_shape": list(x.shape[1:]), "num_images": len(x), "split": split,
               "seed": solver.seed, "task": params, "methods": methods, "deviation": tuned,
               "g_floor": g_floor(nets, x, solver), **report.provenance(solver, where)}
    if sweep is not None:
        results["sweep_sigma"] = sweep

    def figures(out):
        shown = slice(0, min(run.grid_columns, len(x)))
        rows = [("original", x[shown]), ("degraded", x_dagger[shown])]
        rows += [(k, v[shown]) for k, v in recon.items() if k != "degraded"]
        plotting.image_grid(rows, out / f"{task.figure}.png",
                            title=f"{task.name} ({dataset})")
        if sweep is not None:
            plotting.curves({k: (v["sigma"], v["psnr"]) for k, v in sweep.items()},
                            out / "sweep_sigma.png", xlabel="noise sigma", ylabel="PSNR (dB)",
                            logy=False, title=f"denoising, {len(x)} {split} images")

    table = report.markdown_table(results, title=f"{task.name}, {len(x)} {split} images "
                                  f"of {dataset}")
    if sweep is not None:
        table += "\n" + report.sweep_table(sweep, "sigma", "psnr", title="PSNR (dB) vs noise")
    report.write_outputs(out_dir, results, table, figures)
    print(table)
    print(f"wrote {out_dir}/results.json, results.md, {task.figure}.png"
          + (", sweep_sigma.png" if sweep is not None else ""))
