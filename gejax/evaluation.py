"""The paper's experiments as functions: compressed sensing (Tables 1-2, Figs. 4-6) and
restoration (Figs. 8-11), each returning the results.json dict of DESIGN.md.

Every method sees the same test images, the same sensing matrix and the same seeds; the
GE and GA restarts are chosen by their objective, never by the ground truth.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import tempfile
import time
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial
from tqdm import tqdm

from gejax import (
    amortized,
    baselines,
    checkpoint,
    data,
    metrics,
    models,
    operators,
    parallel,
    tasks,
    training,
    validate,
)
from gejax.reconstruct import ga_measure, ge_measure, projection_floor, reconstruct

PAPER_LASSO_M = 500
# The paper's alpha = 0.1 belongs to its own scaling; in ours ([0, 1] pixels, A / sqrt(m),
# scikit-learn's ||.||^2 / 2m) it zeroes every coefficient. 1e-4 was the best of
# {3e-3, 1e-3, 3e-4, 1e-4} on 16 *train* images at m = 500 (3e-5 was 10% better, 3x slower).
LASSO_ALPHA = 1e-4
CS_METHODS = ("lasso", "lasso_m500", "ga", "ge0", "ge1")


def default_workdir() -> str:
    """The pre-trained embedded default shipped inside the package."""
    return str(resources.files("gejax") / "pretrained" / "mnist32")


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Adam on z from the paper: lr 0.1, 500 steps, 2 random starts.

    `reg_ge` and `reg_ga` are lambda for the two objectives, whose residuals have very
    different scales (m encoder outputs vs m Gaussian projections of H*W*C pixels). The
    defaults were the best of {0, 1e-3, 1e-2, 0.1} and {0.01, 0.1, 1, 10} on 16 *train*
    images of the embedded default at m = 128 (the MSE moved by < 15% over the range).
    Re-checked with the pull-away G (train MSE): GE0 0.0095 at 0 vs 0.0101 at 1e-3, GE1
    equal at both, GA within 2.5% over its range; the defaults were kept.
    """

    steps: int = 500
    restarts: int = 2
    learning_rate: float = 0.1
    reg_ge: float = 1e-3
    reg_ga: float = 1.0
    seed: int = 0
    # Beyond the paper (docs/speed.md): `tol` > 0 stops each image once its objective
    # stops falling (reconstruct's `tol`; 3e-2 chosen on train); `init` "learned" starts
    # restart 0 of GE1 at the workdir's learned start (train.init). `batch_size` images
    # are solved at a time, so memory stays flat in N; it changes no number.
    tol: float = 0.0
    init: str = "random"
    batch_size: int = 64


@dataclasses.dataclass
class Networks:
    """G and the encoders of a workdir, as per-example pure callables."""

    began: models.BeganConfig
    generator: Partial
    # "ge0": BEGAN D's encoder; "ge1": GE1's conv encoder ("ae"); "ge1_<s>": from "ae_<s>"
    encoders: dict[str, Partial]
    data: data.DataConfig
    # task -> (autoencoder name, encoder) of those trained with --corrupt <task>; kept out
    # of `encoders`, which are the paper's clean-image encoders.
    task_encoders: dict[str, tuple[str, Partial]]
    # encoder key of `encoders` -> learned start Q: code -> z (train.init), where trained
    inits: dict[str, Partial] = dataclasses.field(default_factory=dict)

    def encoder_for(self, method: str, m: int) -> Partial | None:
        """The `method` ("ge0" or "ge1") encoder with m outputs, if the workdir has one."""
        name = self._name_for(method, m)
        return None if name is None else self.encoders[name]

    def init_for(self, method: str, m: int) -> Partial | None:
        """The learned start of `encoder_for(method, m)`, if the workdir has one."""
        return self.inits.get(self._name_for(method, m))

    def _name_for(self, method: str, m: int) -> str | None:
        for name in sorted(self.encoders):
            if name.startswith(method) and self.code_dims[name] == m:
                return name
        return None

    @functools.cached_property
    def code_dims(self) -> dict[str, int]:
        x = jax.ShapeDtypeStruct(self.began.image_shape, jnp.float32)
        return {k: jax.eval_shape(e, x).shape[-1] for k, e in self.encoders.items()}


def load_networks(workdir: str) -> Networks:
    if not Path(workdir).is_dir():
        raise ValueError(f"workdir {workdir} does not exist")
    began, g_params, d_params = training.load_began(workdir)
    encoders = {"ge0": models.began_encoder_fn(d_params, began)}
    task_encoders, inits = {}, {}
    for name in training.ae_names(workdir):
        ae, ae_params = training.load_ae(workdir, name)
        corrupt = checkpoint.section(workdir, f"{name}_train", training.AETrainConfig).corrupt
        if corrupt in ("none", "all"):  # encoders for every task (and for CS)
            encoders["ge1" + name[2:]] = models.ae_encoder_fn(ae_params, ae)
            q = amortized.load_init(workdir, name)
            if q is not None:
                inits["ge1" + name[2:]] = q
        else:  # the first by name, if several were trained for one task
            task_encoders.setdefault(corrupt, (name, models.ae_encoder_fn(ae_params, ae)))
    data_cfg = checkpoint.section(workdir, "data", data.DataConfig)
    return Networks(began, models.generator_fn(g_params, began), encoders, data_cfg,
                    task_encoders, inits)


def check_m(m: int, image_shape: tuple[int, ...]) -> None:
    """Compressed sensing takes 1 to H*W*C measurements."""
    n_pixels = int(np.prod(image_shape))
    if not 0 < m <= n_pixels:
        raise ValueError(f"m must be in [1, {n_pixels}] (the number of pixels), got {m}")


def check_methods(methods) -> None:
    """Refuse compressed-sensing methods other than CS_METHODS."""
    unknown = set(methods) - set(CS_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}: use {', '.join(CS_METHODS)}")


def check_solver(solver: SolverConfig) -> None:
    """Refuse solver settings that cannot run, before any work is done."""
    validate.integer(solver.steps, "--steps", 1)
    validate.integer(solver.restarts, "--restarts", 1)
    validate.number(solver.learning_rate, "--learning_rate", positive=True)
    validate.number(solver.reg_ge, "--reg_ge")
    validate.number(solver.reg_ga, "--reg_ga")
    validate.number(solver.tol, "--tol")
    validate.integer(solver.batch_size, "--batch_size", 1)
    if solver.init not in ("random", "learned"):
        raise ValueError(f"--init must be 'random' or 'learned', got {solver.init!r}")


def prepare_out(path: str | Path) -> Path:
    """Create the output folder and make sure files can be written there, up front."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to --out {path}: {e.strerror or e}") from e
    return path


def summarize(x_hat: np.ndarray, x: np.ndarray, seconds: float, **extra) -> dict:
    """The per-method entry of results.json: metrics averaged over images, on [0, 1]."""
    x_hat = np.clip(np.asarray(x_hat), 0, 1)
    mse = np.asarray(metrics.mse(x_hat, x))
    return {"mse": float(mse.mean()), "mse_std": float(mse.std()),
            "psnr": float(np.mean(metrics.psnr(x_hat, x))),
            "ssim": float(np.mean(metrics.ssim(x_hat, x))), "seconds": float(seconds), **extra}


def batched(fn: Callable, x, batch_size: int):
    """jax.vmap(fn) over the leading axis of x, `batch_size` rows at a time, as NumPy."""
    return np.concatenate([np.asarray(jax.vmap(fn)(jnp.asarray(x[i:i + batch_size])))
                           for i in range(0, len(x), batch_size)])


def _solve(nets: Networks, measure, y, solver: SolverConfig, reg: float, key, desc: str,
           learned=None) -> tuple[np.ndarray, float, dict]:
    """reconstruct on all devices, `solver.batch_size` images at a time, with a progress bar.

    The random starts of all N images are drawn at once from `key` (as one batch of N
    would draw them), so the batch size changes no number. `learned` (Q: y -> z) sets
    restart 0 of every image when `solver.init` is "learned".

    Returns (x_hat (N, H, W, C), seconds, {"init", "steps_run"}).
    """
    t0 = time.perf_counter()
    n, size = len(y), solver.batch_size
    z0 = jax.random.normal(key, (n, solver.restarts, nets.began.latent_dim), jnp.float32)
    use_learned = solver.init == "learned" and learned is not None
    if use_learned:
        z0 = z0.at[:, 0].set(batched(learned, y, size))
    x_hat, steps_run = [], []
    with tqdm(total=solver.steps * -(-n // size), desc=desc, unit="step", leave=False,
              disable=not parallel.is_primary()) as bar:
        for i in range(0, n, size):
            out = reconstruct(nets.generator, measure, y[i:i + size], key=key,
                              latent_dim=nets.began.latent_dim, num_restarts=solver.restarts,
                              steps=solver.steps, learning_rate=solver.learning_rate, reg=reg,
                              init=z0[i:i + size], tol=solver.tol, progress=bar.update,
                              mesh=parallel.default_mesh())
            x_hat.append(parallel.to_host(out.x_hat))
            steps_run.append(parallel.to_host(out.steps_run))
            bar.update(solver.steps * (i // size + 1) - bar.n)  # steps an early stop skipped
    steps_run = np.concatenate(steps_run)
    return np.concatenate(x_hat), time.perf_counter() - t0, {
        "init": "learned" if use_learned else "random",
        "steps_run": float(steps_run.mean())}


def provenance(solver: SolverConfig, workdir: str) -> dict:
    versions = {p: metadata.version(p) for p in ("gejax", "jax", "flax", "optax")}
    return {"workdir": str(workdir), "solver": dataclasses.asdict(solver),
            "versions": versions, "python": platform.python_version(),
            "backend": jax.default_backend(), "devices": jax.device_count(),
            "processes": jax.process_count()}


def eval_images(nets: Networks, num_images: int, split: str = "test") -> np.ndarray:
    """The first `num_images` of a split: "test" to report, "train" to tune lambda & co."""
    images = data.load(nets.data, split)
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if num_images > len(images):
        raise ValueError(f"num_images {num_images} exceeds the {len(images)} {split} images")
    return images[:num_images]


def run_cs(nets: Networks, x: np.ndarray, *, m: int, solver: SolverConfig,
           lasso_alpha: float = LASSO_ALPHA,
           methods=CS_METHODS, log=print) -> tuple[dict, dict]:
    """Compressed sensing of x (N, H, W, C) from m measurements by every method.

    Returns (results dict of DESIGN.md, {method: reconstructions}).
    """
    check_methods(methods)
    check_m(m, x.shape[1:])
    n_pixels = int(np.prod(x.shape[1:]))
    validate.number(lasso_alpha, "lasso_alpha", positive=True)
    key = jax.random.key(solver.seed)
    k_a, k_a500, k_ga, k_ge = jax.random.split(key, 4)
    a = np.asarray(operators.gaussian_matrix(k_a, m, n_pixels))
    results, images = {}, {}

    def record(name, x_hat, seconds, m_used, **extra):
        results[name] = summarize(x_hat, x, seconds, m=m_used, **extra)
        images[name] = np.clip(x_hat, 0, 1)
        r = results[name]
        log(f"{name:>11}  m={m_used:<4} MSE {r['mse']:.5f} +- {r['mse_std']:.5f}  "
            f"PSNR {r['psnr']:5.2f}  SSIM {r['ssim']:.3f}  {seconds:6.1f}s")

    for name in methods:
        if name.startswith("lasso"):
            m_used = min(PAPER_LASSO_M, n_pixels) if name == "lasso_m500" else m
            a_used = a if m_used == m else np.asarray(
                operators.gaussian_matrix(k_a500, m_used, n_pixels))
            t0 = time.perf_counter()
            y = x.reshape(len(x), -1) @ a_used.T
            x_hat = baselines.lasso_dct(y, a_used, x.shape[1:], alpha=lasso_alpha)
            record(name, x_hat, time.perf_counter() - t0, m_used, alpha=lasso_alpha)
        elif name == "ga":
            measure = ga_measure(a)
            y = batched(measure, x, solver.batch_size)
            x_hat, seconds, run = _solve(nets, measure, y, solver, solver.reg_ga, k_ga, "GA")
            record(name, x_hat, seconds, m, **run)
        else:
            encoder = nets.encoder_for(name, m)
            if encoder is None:
                log(f"{name:>11}  skipped: no {name} encoder with m={m} outputs in the workdir")
                continue
            measure = ge_measure(encoder)
            y = batched(measure, x, solver.batch_size)
            x_hat, seconds, run = _solve(nets, measure, y, solver, solver.reg_ge, k_ge,
                                         name.upper(), learned=nets.init_for(name, m))
            record(name, x_hat, seconds, m, **run)
    return results, images


def run_sweep(nets: Networks, x: np.ndarray, *, ms: list[int], solver: SolverConfig,
              lasso_alpha: float = LASSO_ALPHA, log=print) -> tuple[dict, dict]:
    """Figs. 5-6: Lasso, GA and GE1 (where the workdir has a GE1 with m outputs) per m.

    Returns ({method: {"m": [...], "mse": [...], "mse_std": [...], ...}},
             {m: {method: reconstructions}}).
    """
    for m in ms:  # all of them before the first solve, not after an hour
        check_m(m, x.shape[1:])
    curves: dict[str, dict[str, list]] = {}
    images = {}
    for m in ms:
        log(f"m = {m}")
        methods, recon = run_cs(nets, x, m=m, solver=solver, lasso_alpha=lasso_alpha,
                                methods=("lasso", "ga", "ge1"), log=log)
        images[m] = recon
        for name, r in methods.items():
            curve = curves.setdefault(name, {k: [] for k in ("m", "mse", "mse_std", "psnr",
                                                             "ssim")})
            for k in curve:
                curve[k].append(r[k])
    return curves, images


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
        x_hat, seconds, run = _solve(nets, measure, y, solver, solver.reg_ge,
                                     jax.random.fold_in(key, 7), f"{method} {name}",
                                     learned=nets.init_for(method, m))
        out[name] = summarize(x_hat, x, seconds, **run)
    out["ratio"] = out["fake"]["mse"] / out["real"]["mse"]
    return out


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
    z0 = jax.random.normal(key, (n, solver.restarts, nets.began.latent_dim), jnp.float32)
    mse = []
    with tqdm(total=solver.steps * -(-n // size), desc="G's floor", unit="step", leave=False,
              disable=not parallel.is_primary()) as bar:
        for i in range(0, n, size):
            mse.append(np.asarray(projection_floor(
                nets.generator, x[i:i + size], key=key, latent_dim=nets.began.latent_dim,
                num_restarts=solver.restarts, steps=solver.steps, init=z0[i:i + size],
                learning_rate=solver.learning_rate, progress=bar.update,
                mesh=parallel.default_mesh())))
    mse = np.concatenate(mse)
    return {"mse": float(mse.mean()), "mse_std": float(mse.std()),
            "seconds": time.perf_counter() - t0}


def write_outputs(out_dir: str | Path, results: dict, table: str,
                  figures: Callable[[Path], None]) -> None:
    """results.json, results.md and the figures, each written atomically (by process 0)."""
    if not parallel.is_primary():
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures(out_dir)
    checkpoint.write_text_atomic(out_dir / "results.md", table)
    checkpoint.write_text_atomic(out_dir / "results.json", json.dumps(results, indent=2))


def markdown_table(results: dict, *, title: str) -> str:
    lines = [f"# {title}", "",
             "| method | m | MSE (mean +- std) | PSNR (dB) | SSIM | seconds | solver steps "
             "(mean) | start |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["methods"].items():
        steps = f"{r['steps_run']:.0f}" if "steps_run" in r else ""
        lines.append(f"| {name} | {r.get('m', '')} | {r['mse']:.5f} +- {r['mse_std']:.5f} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['seconds']:.1f} | {steps} | "
                     f"{r.get('init', '')} |")
    if "g_floor" in results:
        f = results["g_floor"]
        lines += ["", f"G's floor on these images, min_z ||G(z) - x||^2 (no method returning "
                      f"G(z) can do better): MSE {f['mse']:.5f} +- {f['mse_std']:.5f}"]
    return "\n".join(lines) + "\n"


def cs_results(nets: Networks, workdir: str, x: np.ndarray, m: int, solver: SolverConfig,
               methods: dict) -> dict:
    return {"experiment": "cs", "dataset": nets.data.name, "image_shape": list(x.shape[1:]),
            "num_images": len(x), "m": m, "seed": solver.seed, "methods": methods,
            **provenance(solver, workdir)}


def classical_baselines(task: str, params: dict) -> dict[str, Callable]:
    """The classical methods a user would reach for: name -> x_dagger -> x_hat."""
    tasks.check_name(task)
    if task == "denoise":
        return {"bm3d": functools.partial(baselines.bm3d_denoise, sigma=params["sigma"])}
    if task == "deblur":
        size = operators.default_blur_kernel_size(params["blur_sigma"])
        delta = np.zeros((size, size, 1), np.float32)
        delta[size // 2, size // 2] = 1
        kernel = np.asarray(operators.gaussian_blur(delta, sigma=params["blur_sigma"]))[..., 0]
        # Blind RL gets only the kernel's size, GE nothing; 100 iterations were the best of
        # {10, 30, 100} on 16 train images (19.97 dB; 30 gave 19.86).
        return {"wiener": functools.partial(baselines.wiener_deconvolve, kernel=kernel),
                "richardson_lucy": functools.partial(baselines.richardson_lucy_deconvolve,
                                                     kernel=kernel),
                "blind_richardson_lucy": functools.partial(
                    baselines.blind_richardson_lucy_deconvolve, kernel_size=size, num_iter=100)}
    if task == "superres":
        return {"bicubic": lambda x_dagger: np.clip(x_dagger, 0, 1)}
    return {"biharmonic": functools.partial(baselines.biharmonic_inpaint,
                                            mask=np.asarray(params["mask_array"]))}


def run_restore(nets: Networks, x: np.ndarray, *, task: str, solver: SolverConfig,
                keep_observed: bool = True, log=print) -> tuple[dict, dict, dict]:
    """Restore degraded copies of x with GE (eq. 5/6) and the classical baselines.

    `task` is one of gejax.tasks.NAMES. GE runs with each encoder the workdir has: GE0,
    GE1 and, as "ge1_task", an encoder trained on this task's degradation
    (train.ae --corrupt <task>) if there is one. In inpainting, `keep_observed` returns
    M x_dagger + (1 - M) G(z*), the pixels GE was given kept as they are (as biharmonic
    inpainting and Yeh et al. 2017 do); False returns G(z*), the paper's output.

    Returns (methods dict of results.json, {method: images}, task parameters).
    """
    key = jax.random.key(solver.seed)
    k_degrade, k_solve = jax.random.split(key)
    s, params = tasks.operator(task, x.shape[1:], k_degrade)
    x_dagger = np.asarray(tasks.degrade(task, jnp.asarray(x), k_degrade))
    mask = params.get("mask_array")
    if mask is not None:
        mask = np.asarray(mask)
        params["keep_observed"] = keep_observed
    results, images = {}, {}

    def record(name, x_hat, seconds, **extra):
        results[name] = summarize(x_hat, x, seconds, **extra)
        images[name] = np.clip(x_hat, 0, 1)
        r = results[name]
        log(f"{name:>21}  MSE {r['mse']:.5f} +- {r['mse_std']:.5f}  PSNR {r['psnr']:5.2f}  "
            f"SSIM {r['ssim']:.3f}  {seconds:6.1f}s")

    record("degraded", x_dagger, 0.0)
    for name, baseline in classical_baselines(task, params).items():
        t0 = time.perf_counter()
        x_hat = baseline(x_dagger)
        record(name, x_hat, time.perf_counter() - t0)
    ge = {"ge0": nets.encoders.get("ge0"), "ge1": nets.encoders.get("ge1")}
    task_ae, ge["ge1_task"] = nets.task_encoders.get(task, (None, None))
    for name, encoder in ge.items():
        if encoder is None:
            continue
        measure = ge_measure(encoder, s)
        y = batched(encoder, x_dagger, solver.batch_size)  # EN(x_dagger), paper eq. 6
        x_hat, seconds, run = _solve(nets, measure, y, solver, solver.reg_ge, k_solve,
                                     name.upper(), learned=nets.inits.get(name))
        if mask is not None and keep_observed:
            x_hat = mask * x_dagger + (1 - mask) * x_hat
        extra = {"encoder": task_ae} if name == "ge1_task" else {}
        record(name, x_hat, seconds, **run, **extra)
    params = {k: v for k, v in params.items() if k != "mask_array"}
    return results, images, {"degraded_input": x_dagger, **params}
