"""Your own images and measurements through the experiments: clean images scored in place
of the workdir's split (`--images`), degraded images restored with no ground truth
(`evaluate.restore --degraded`), and your own y = A x (`evaluate.cs --measurements`);
and where each command writes (`out_dir`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from gejax import (
    baselines,
    checkpoint,
    inputs,
    operators,
    parallel,
    plotting,
    report,
    tasks,
    workdir,
)
from gejax.experiments import deviation
from gejax.experiments.solve import SolverConfig, check_learned, solve
from gejax.reconstruct import ga_measure

GE_METHODS = ("ge0", "ge1")


def out_dir(run, experiment: str) -> Path:
    """--out, else inside the workdir evaluated (`W/results/<experiment>`), so that two
    workdirs' results never overwrite each other; `results/<experiment>` for the shipped
    default."""
    if run.out is not None:
        return Path(run.out)
    return Path(run.workdir or ".") / "results" / experiment


def clean_images(nets: workdir.Networks, run) -> tuple[np.ndarray, str, str]:
    """(x (N, H, W, C), the data set's name, the split's) of a command: the user's
    --images (the first --num_images of them), else the workdir's --split."""
    if run.images is None:
        if run.convert is not None:
            raise ValueError("--convert applies to --images, --degraded and --masks")
        return workdir.eval_images(nets, run.num_images, run.split), nets.data.name, run.split
    x, _ = inputs.read(run.images, nets.began.image_shape, convert=run.convert)
    return x[:run.num_images], run.images, "own"


def _one_input(run, flag: str) -> None:
    """Refuse --images beside --degraded or --measurements (`flag`): two inputs, one run."""
    if run.images is not None:
        raise ValueError(f"--images and --{flag} are two different inputs: give one")


def cs_methods(nets: workdir.Networks, asked: str | None, m: int,
               solver: SolverConfig) -> list[str]:
    """The compressed-sensing methods to run: those `asked` (comma-separated), each of
    which must be able to run (`--init learned` too), or every one the workdir can run at
    m (the others said)."""
    from gejax.experiments.cs import CS_METHODS, check_methods

    if asked is not None:
        names = asked.split(",")
        check_methods(names)
    else:
        names = [n for n in CS_METHODS if deviation.base(n) not in GE_METHODS
                 or nets.encoder_for(deviation.base(n), m)]
        for name in sorted(set(CS_METHODS) - set(names)):
            print(f"{name} left out: the workdir has no {name} encoder with m={m} outputs")
    check_learned(nets, solver, names, m)
    return names


def cs_measurements(run, nets: workdir.Networks, solver: SolverConfig, where: str) -> None:
    """`evaluate.cs --measurements F.npz`: Lasso-DCT and GA from the user's y = A x, each
    answer a PNG in --out/<method>/, with results.json (scored where F holds x)."""
    _one_input(run, "measurements")
    shape = nets.began.image_shape
    y, a, x = inputs.read_measurements(run.measurements, int(np.prod(shape)))
    names = run.methods.split(",") if run.methods else ["lasso", "ga"]
    other = sorted(set(names) - {"lasso", "ga"})
    if other:
        raise ValueError(f"--measurements runs lasso and ga, not {', '.join(other)}: GE's "
                         "measurements are its encoder's EN(x), not your A x")
    y = y[:run.num_images]
    x = None if x is None else x[:run.num_images].reshape(len(y), *shape)
    out = report.prepare_out(out_dir(run, f"cs_m{a.shape[0]}"))
    print(f"compressed sensing from {run.measurements}: {len(y)} images, m={a.shape[0]}")
    answers, methods = {}, {}
    for name in names:
        t0 = time.perf_counter()
        if name == "lasso":
            x_hat, extra = baselines.lasso_dct(y, a, shape, alpha=run.lasso_alpha), {}
            seconds = time.perf_counter() - t0
        else:
            x_hat, seconds, extra = solve(nets, ga_measure(a), y, solver, solver.reg_ga,
                                          jax.random.split(jax.random.key(solver.seed), 4)[2],
                                          "GA")
        methods[name] = _entry(x_hat, x, seconds, extra)
        answers[name] = (np.clip(x_hat, 0, 1), extra.get("spread"))
    _write(out, answers, [f"{i:05d}" for i in range(len(y))],
           {"experiment": "cs", "measurements": run.measurements, "m": int(a.shape[0]),
            "num_images": len(y), "methods": methods, **report.provenance(solver, where)},
           title=f"compressed sensing, m={a.shape[0]} ({Path(run.measurements).name})",
           truth=x)


def restore_degraded(run, nets: workdir.Networks, task: tasks.Task, solver: SolverConfig,
                     where: str) -> None:
    """`evaluate.restore --degraded PATH`: every method on the user's degraded images, no
    ground truth; each answer (and GE's restart spread, where it has restarts) a PNG in
    --out/<method>/, beside results.json and a figure."""
    from gejax.experiments.restore import restore_each

    _one_input(run, "degraded")
    if run.sweep_sigma is not None:
        raise ValueError("--sweep_sigma degrades clean images itself: use --images, not "
                         "--degraded")
    shape = nets.began.image_shape
    if isinstance(task, tasks.SuperRes):  # the low-resolution images, up-sampled as GE's x_dagger
        low = (shape[0] // task.factor, shape[1] // task.factor, shape[2])
        x_low, names = inputs.read(run.degraded, low, convert=run.convert,
                                   takes=f"superres --factor {task.factor} takes")
        x_dagger = np.asarray(operators.bicubic_upsample(x_low, task.factor))
    else:
        x_dagger, names = inputs.read(run.degraded, shape, convert=run.convert)
    x_dagger, names = x_dagger[:run.num_images], names[:run.num_images]
    masks = None
    if isinstance(task, tasks.Inpaint):
        if run.masks is None:
            raise ValueError("inpaint --degraded needs each image's observed pixels: --masks "
                             "PATH (white = observed)")
        masks, _ = inputs.read(run.masks, (*shape[:2], 1), convert=run.convert)
        if len(masks) < len(x_dagger):
            raise ValueError(f"--masks holds {len(masks)} images for {len(x_dagger)} degraded")
        masks = (masks[:len(x_dagger)] > 0.5).astype(np.float32)
        x_dagger = x_dagger * masks
    out = report.prepare_out(out_dir(run, task.name))
    print(f"{task.name}: restoring {len(x_dagger)} images of {run.degraded}, solver {solver}")
    answers, methods = {"degraded": (x_dagger, None)}, {}

    def done(name, x_hat, seconds, **extra):
        methods[name] = _entry(x_hat, None, seconds, extra)
        answers[name] = (np.clip(x_hat, 0, 1), extra.get("spread"))
        print(f"{name:>21}  {seconds:6.1f}s")

    restore_each(nets, x_dagger, task, solver, masks=masks, keep_observed=run.keep_observed,
                 done=done)
    _write(out, answers, names,
           {"experiment": run.task, "degraded": run.degraded, "num_images": len(x_dagger),
            "task": task.params(shape), "methods": methods, **report.provenance(solver, where)},
           title=f"{task.name} ({Path(run.degraded).name})", truth=None)


def _entry(x_hat, x, seconds: float, extra: dict) -> dict:
    """A method's results.json entry: scored against x where there is one."""
    run = {k: v for k, v in extra.items() if k != "spread"}
    if x is None:
        return {"seconds": float(seconds), **run}
    return report.summarize(x_hat, x, seconds, **run)


def _write(out: Path, answers: dict, names: list[str], results: dict, *, title: str,
           truth) -> None:
    """Each method's answers as PNGs in out/<method>/ (spreads as <name>_spread.png, scaled
    by their maximum, which results.json gives), results.json and answers.png."""
    if not parallel.is_primary():
        return
    for name, (x_hat, spread) in answers.items():
        inputs.write_images(out / name, x_hat, names)
        if spread is not None and float(spread.max()) > 0:
            top = float(spread.max())
            inputs.write_images(out / name, spread / top, names, suffix="_spread")
            results["methods"][name]["spread_png_max"] = top
    shown = slice(0, 8)
    rows = ([("original", truth[shown])] if truth is not None else []) + [
        (name, x_hat[shown]) for name, (x_hat, _) in answers.items()]
    plotting.image_grid(rows, out / "answers.png", title=title)
    checkpoint.write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    print(f"wrote {out}/results.json, answers.png and each method's images in {out}/<method>/")
