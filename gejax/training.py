"""Pre-training (paper section 4.1): BEGAN's G and D, then GE1's autoencoder on real + fake.

The steps are pure jitted functions `(state, batch, key) -> (state, metrics)` with the
step's randomness from `fold_in(key, step)` and the batch a pure function of the step,
so a resumed run sees exactly the data and random numbers of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState
from tqdm import tqdm

from gejax import checkpoint, data, models, parallel, plotting, tasks, validate
from gejax.reconstruct import projection_floor


@dataclasses.dataclass(frozen=True)
class BeganTrainConfig:
    """BEGAN's hyper-parameters (Berthelot et al. 2017), tuned for the embedded MNIST.

    The learning rate halves every `lr_halve_every` steps down to `lr_floor`: a floor
    keeps G learning late, which the BEGAN authors found to limit mode collapse.
    On MNIST the paper's gamma 0.5 / lambda_k 0.001 left k_t near 0 for thousands of steps
    and G drew dim strokes that collapsed to "1"s; gamma 1.0 with lambda_k 0.1 gave the most
    varied digits of plain BEGAN, still mostly "1"s (docs/prior.md).

    `pull_away` weighs EBGAN's pulling-away term (Zhao et al. 2017) on D's codes of each
    fake batch, added to G's loss only: BEGAN has no term that rewards G for variety, and
    on MNIST G's cheapest reply to D is a thin "1" for every z. With 0.1 and 12,000 steps
    G's projection error on train digits fell from 0.023 to 0.0065. 0 is BEGAN as
    published; `began_paper()` has the CelebA values.

    `ema_decay` is the moving average of G's parameters that samples, checkpoints and
    reconstruction use (0: none). `monitor_*` set G's floor measured while training
    (`floor_monitor`; `monitor_steps` 0 turns it off). The defaults are the recipe of
    the shipped embedded default (docs/prior.md; pinned by a test).
    """

    steps: int = 10000
    batch_size: int = 32
    learning_rate: float = 3e-4
    lr_halve_every: int = 3000
    lr_floor: float = 5e-5
    gamma: float = 1.0
    lambda_k: float = 0.1
    pull_away: float = 0.1
    ema_decay: float = 0.999
    monitor_images: int = 64
    monitor_steps: int = 200
    monitor_every: int = 1000
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 25


def began_paper() -> BeganTrainConfig:
    """BEGAN's own CelebA settings: gamma 0.5, lambda_k 0.001, lr 1e-4 halved with a floor."""
    return BeganTrainConfig(steps=200_000, batch_size=16, learning_rate=1e-4,
                            lr_halve_every=50_000, lr_floor=2e-5, gamma=0.5, lambda_k=0.001,
                            pull_away=0.0, checkpoint_every=5000, log_every=100)


@dataclasses.dataclass(frozen=True)
class AETrainConfig:
    """GE1's autoencoder: squared-error reconstruction (paper eq. 1) of real and fake images.

    `corrupt` names a restoration task (gejax.tasks.NAMES) to train an encoder for it: a
    `corrupt_fraction` of the inputs is degraded as the task degrades x_dagger, while the
    target stays the clean image, so EN learns to give a degraded image the code of its
    clean original. "all" degrades each picked input by a task drawn at random, for one
    encoder that serves every task; "none" is the paper's GE1.
    """

    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 1e-3
    fake_fraction: float = 0.5
    corrupt: str = "all"
    corrupt_fraction: float = 0.5
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25


@flax.struct.dataclass
class BeganState:
    """Everything a BEGAN run carries: both networks with their optimisers, k_t, and the
    moving average of G's parameters that samples and reconstruction use."""

    g: TrainState
    d: TrainState
    k: jax.Array
    g_ema: Any


def check_config(cfg: BeganTrainConfig | AETrainConfig) -> None:
    """Refuse training settings that cannot run, before any data is loaded."""
    for f in dataclasses.fields(cfg):
        value, flag = getattr(cfg, f.name), f"--{f.name}"
        if f.name in ("seed", "monitor_images", "monitor_steps"):  # 0: none / no monitor
            validate.integer(value, flag, 0)
        elif f.name == "corrupt":
            if value not in ("none", "all"):
                tasks.check_name(value)
        elif f.type in (int, "int"):
            validate.integer(value, flag, 1)
        else:
            validate.number(value, flag, positive=f.name == "learning_rate")
    if isinstance(cfg, BeganTrainConfig) and not cfg.ema_decay < 1:
        raise ValueError(f"--ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if isinstance(cfg, AETrainConfig):
        for name in ("fake_fraction", "corrupt_fraction"):
            if not getattr(cfg, name) <= 1:
                raise ValueError(f"--{name} must be in [0, 1], got {getattr(cfg, name)}")


def _adam(cfg) -> optax.GradientTransformation:
    schedule = optax.exponential_decay(cfg.learning_rate, cfg.lr_halve_every, 0.5,
                                       staircase=True, end_value=cfg.lr_floor)
    return optax.adam(schedule, b1=0.5, b2=0.999)


def began_init(model: models.BeganConfig, cfg: BeganTrainConfig) -> BeganState:
    kg, kd = jax.random.split(jax.random.key(cfg.seed))
    g, d = models.Generator(model), models.Discriminator(model)
    g_params = g.init(kg, jnp.zeros((1, model.latent_dim)))
    d_params = d.init(kd, jnp.zeros((1,) + model.image_shape))
    tx = _adam(cfg)
    return BeganState(g=TrainState.create(apply_fn=g.apply, params=g_params, tx=tx),
                      d=TrainState.create(apply_fn=d.apply, params=d_params, tx=tx),
                      k=jnp.zeros((), jnp.float32),
                      # A copy: the train step donates the state, and a buffer shared by
                      # two of its leaves cannot be donated twice.
                      g_ema=jax.tree_util.tree_map(jnp.copy, g_params))


def _l1(a, b):
    return jnp.mean(jnp.abs(a - b))


def pull_away(h: jax.Array) -> jax.Array:
    """EBGAN's pulling-away term of codes h (N, k): mean squared cosine of distinct pairs."""
    n = h.shape[0]
    if n < 2:  # no pairs to pull apart
        return jnp.zeros((), h.dtype)
    u = h / (jnp.linalg.norm(h, axis=-1, keepdims=True) + 1e-8)
    return (jnp.sum((u @ u.T) ** 2) - n) / (n * (n - 1))


def ema_update(ema, params, step: jax.Array, decay: float):
    """One step of the exponential moving average of `params` after update number `step`.

    The decay is min(decay, (1 + step) / (10 + step)) (TensorFlow's ExponentialMovingAverage
    with num_updates): early averages forget the random initialisation quickly instead of
    dragging it along for ~1 / (1 - decay) steps. decay 0 gives `params` themselves.
    """
    step = jnp.asarray(step, jnp.float32)
    rate = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return optax.incremental_update(params, ema, step_size=1.0 - rate)


def began_step(state: BeganState, real: jax.Array, key: jax.Array, *, model: models.BeganConfig,
               cfg: BeganTrainConfig) -> tuple[BeganState, dict[str, jax.Array]]:
    """One BEGAN update of D and G from the same z.

    L(v) = |D(v) - v|_1; D minimises L(x) - k_t L(G(z)); G minimises
    L(G(z)) + pull_away * PT(D's codes of G(z));
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1);
    M = L(x) + |gamma L(x) - L(G(z))| is BEGAN's convergence measure. G's moving average
    (`ema_update`) follows the updated G.
    """
    z = jax.random.normal(key, (real.shape[0], model.latent_dim))
    # One forward pass of G serves both losses; vjp carries G's gradient back from G(z).
    fake, g_vjp = jax.vjp(lambda g_params: state.g.apply_fn(g_params, z), state.g.params)

    def d_loss(d_params):
        l_real = _l1(state.d.apply_fn(d_params, real), real)
        l_fake = _l1(state.d.apply_fn(d_params, fake), fake)
        return l_real - state.k * l_fake, (l_real, l_fake)

    def g_loss(x):
        h, rec = state.d.apply_fn(state.d.params, x, method="encode_decode")
        variety = pull_away(h)
        return _l1(rec, x) + cfg.pull_away * variety, variety

    (d_total, (l_real, l_fake)), d_grads = jax.value_and_grad(d_loss, has_aux=True)(state.d.params)
    (g_total, variety), grad_fake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    (g_grads,) = g_vjp(grad_fake)
    balance = cfg.gamma * l_real - l_fake
    g = state.g.apply_gradients(grads=g_grads)
    new = BeganState(g=g, d=state.d.apply_gradients(grads=d_grads),
                     k=jnp.clip(state.k + cfg.lambda_k * balance, 0.0, 1.0),
                     g_ema=ema_update(state.g_ema, g.params, state.g.step, cfg.ema_decay))
    metrics = {"d_loss": d_total, "g_loss": g_total, "l_real": l_real, "l_fake": l_fake,
               "k": state.k, "M": l_real + jnp.abs(balance), "pull_away": variety}
    return new, metrics


def batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices of the batch of `step`: a fresh seeded permutation of the data every epoch."""
    per_epoch = max(1, num_examples // batch_size)
    epoch, i = divmod(step, per_epoch)
    order = np.random.default_rng((seed, epoch)).permutation(num_examples)
    if num_examples < batch_size:  # tiny test data: draw with replacement
        return np.resize(order, batch_size)
    return order[i * batch_size:(i + 1) * batch_size]


def _all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


def run_loop(*, name: str, workdir: str, state, step_fn, images: np.ndarray, cfg,
             on_checkpoint, params_of, postfix_keys: tuple[str, ...], start: int,
             monitor=None) -> Any:
    """The shared loop: jitted steps, progress bar, TensorBoard, atomic Orbax checkpoints.

    With several devices the batch is split over all of them (data parallel, parameters
    replicated; `jax.jit` inserts the gradient all-reduce), and with several hosts each
    process loads only its share of every batch. Process 0 alone logs and writes samples.
    `monitor(state, step)`, if given, runs on process 0 every `cfg.monitor_every` steps
    and at the end; the scalars it returns go to TensorBoard and the progress line.
    """
    from tensorboardX import SummaryWriter

    def train_step(state, batch, step):
        # The key is made inside the program from the step: nothing host-specific is passed.
        return step_fn(state, batch, jax.random.fold_in(jax.random.key(cfg.seed), step))

    jitted = jax.jit(train_step, donate_argnums=0)
    mesh = parallel.default_mesh()
    if mesh is not None:
        parallel.check_divisible(cfg.batch_size, mesh, "batch_size")
        state = parallel.put(state, mesh)
    primary = parallel.is_primary()
    writer = SummaryWriter(str(Path(workdir, "tb", name))) if primary else None
    mngr = checkpoint.manager(workdir, name)
    bar = tqdm(total=cfg.steps, initial=start, desc=name, unit="step", dynamic_ncols=True,
               disable=not primary)
    shown: dict[str, str] = {}
    try:
        for step in range(start, cfg.steps):
            rows = batch_indices(step, len(images), cfg.batch_size, cfg.seed)
            if mesh is None:
                batch = images[rows]
            else:
                batch = parallel.shard_process_local(
                    images[rows[parallel.process_rows(len(rows))]], mesh)
            state, metrics = jitted(state, batch, np.int32(step))
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                values = {k: float(v) for k, v in metrics.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise DivergedError(
                        f"{name}: non-finite loss at step {done} ({values}); the last good "
                        f"checkpoint in {Path(workdir, name)} is kept")
                if writer is not None:
                    for k, v in values.items():
                        writer.add_scalar(f"{name}/{k}", v, done)
                shown.update({k: f"{values[k]:.4f}" for k in postfix_keys})
                bar.set_postfix(shown)
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                # A step's loss is computed before its update, so NaN parameters can
                # precede the first NaN loss: never let them into a checkpoint.
                if not _all_finite(params_of(state)):
                    raise DivergedError(
                        f"{name}: non-finite parameters after step {done}; the last good "
                        f"checkpoint in {Path(workdir, name)} is kept")
                checkpoint.save(mngr, done, state, params_of(state))
                if primary:
                    on_checkpoint(state, done)
            if monitor is not None and primary and (done % cfg.monitor_every == 0
                                                    or done == cfg.steps):
                for k, v in monitor(state, done).items():
                    writer.add_scalar(f"{name}/{k}", v, done)
                    shown[k] = f"{v:.5f}"
                bar.set_postfix(shown)
        mngr.wait_until_finished()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        mngr.close()
    return state


def fixed_latents(model: models.BeganConfig, n: int = 64) -> jax.Array:
    """The z of the sample grids: the same at every checkpoint, so progress is visible."""
    return jax.random.normal(jax.random.key(1234), (n, model.latent_dim))


def save_samples(workdir: str, g_params, model: models.BeganConfig, step: int) -> Path:
    samples = models.Generator(model).apply(parallel.local_copy(g_params), fixed_latents(model))
    path = Path(workdir, "samples", f"began_{step:07d}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = np.asarray(samples)
    plotting.image_grid([("", images[r * 8:(r + 1) * 8]) for r in range(len(images) // 8)], path,
                        title=f"G(z), fixed z, step {step}")
    return path


FLOOR_HISTORY = "began_floor.json"


def split_monitor(images: np.ndarray, cfg: BeganTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training images, held-back images): the last `monitor_images` train images (at
    most a tenth of them, for small data) are never trained on, so the floor measured on
    them is not flattered by memorisation. None are held back with `monitor_steps` 0 or
    under 10 images, and then nothing is monitored."""
    n = min(cfg.monitor_images, len(images) // 10) if cfg.monitor_steps else 0
    return images[:len(images) - n], images[len(images) - n:]


def read_history(workdir: str) -> list[dict]:
    """The monitor's records [{"step", "floor", "seconds"}, ...] of a workdir ([] if none)."""
    path = Path(workdir, FLOOR_HISTORY)
    return json.loads(path.read_text()) if path.exists() else []


def monitored_floor(g_params, model: models.BeganConfig, held: np.ndarray,
                    cfg: BeganTrainConfig) -> float:
    """Mean floor of G(g_params) on the held-back images with the monitor's settings:
    `monitor_steps` Adam steps, one restart from the fixed key 0."""
    g = models.generator_fn(g_params, model)
    return float(jnp.mean(projection_floor(g, held, key=jax.random.key(0), num_restarts=1,
                                           latent_dim=model.latent_dim,
                                           steps=cfg.monitor_steps)))


def floor_monitor(workdir: str, held: np.ndarray, model: models.BeganConfig,
                  cfg: BeganTrainConfig, start: int):
    """`monitor(state, step) -> {"floor": ...}` for `_loop`: G's floor on the held-back images.

    The floor is `reconstruct.projection_floor` of the averaged G with `monitor_steps` Adam
    steps and one restart (the fixed key 0, so records are comparable across steps): a
    cheaper, slightly higher estimate than the 500 steps x 2 restarts of `evaluate.*`.
    Each record is appended to `began_floor.json` with the training seconds so far (summed
    over resumed runs); records past a resumed step are dropped, as that part is redone.
    """
    history = [r for r in read_history(workdir) if r["step"] <= start]
    offset = history[-1]["seconds"] if history else 0.0
    t0 = time.perf_counter()

    def monitor(state: BeganState, step: int) -> dict[str, float]:
        seconds = offset + time.perf_counter() - t0
        floor = monitored_floor(parallel.local_copy(state.g_ema), model, held, cfg)
        history.append({"step": step, "floor": floor, "seconds": round(seconds, 1)})
        checkpoint.write_text_atomic(Path(workdir, FLOOR_HISTORY), json.dumps(history, indent=1))
        return {"floor": floor}

    return monitor


def train_began(workdir: str, data_cfg: data.DataConfig, model: models.BeganConfig,
                cfg: BeganTrainConfig) -> BeganState:
    """Train (or resume) BEGAN in `workdir`; returns the final state.

    G's floor on held-back train images is measured as it trains (`floor_monitor`).
    """
    check_config(cfg)
    if parallel.is_primary():
        checkpoint.write_config(workdir, data=data_cfg, began=model, began_train=cfg)
    images, held = split_monitor(data.load(data_cfg, "train"), cfg)
    state = began_init(model, cfg)
    restored, start = checkpoint.restore(workdir, "began", state)
    if restored is not None:
        state = restored
        print(f"resuming from step {start}")
    if start >= cfg.steps:
        print(f"already trained to step {start} >= --steps {cfg.steps}; nothing to do")
        return state
    step_fn = functools.partial(began_step, model=model, cfg=cfg)
    t0 = time.time()
    state = run_loop(name="began", workdir=workdir, state=state, step_fn=step_fn, images=images,
                  cfg=cfg, start=start, postfix_keys=("M", "k", "l_real", "l_fake"),
                  params_of=_began_params,
                  on_checkpoint=lambda s, step: save_samples(workdir, s.g_ema, model, step),
                  monitor=floor_monitor(workdir, held, model, cfg, start) if len(held) else None)
    print(f"trained BEGAN steps {start}..{cfg.steps} in {time.time() - t0:.0f}s")
    return state


def _began_params(state: BeganState) -> dict:
    """What sampling and reconstruction load: the averaged G, and D (GE0's encoder)."""
    return {"g": state.g_ema, "d": state.d.params}


def load_began(workdir: str) -> tuple[models.BeganConfig, Any, Any]:
    """(config, G params, D params) from the newest BEGAN checkpoint of a workdir."""
    model = checkpoint.section(workdir, "began", models.BeganConfig)
    cfg = checkpoint.section(workdir, "began_train", BeganTrainConfig)
    target = jax.eval_shape(lambda: _began_params(began_init(model, cfg)))
    params, _ = checkpoint.restore(workdir, "began", target, item="params")
    if params is None:
        raise ValueError(f"{workdir} has no BEGAN checkpoint; run python -m train.began "
                         f"--workdir {workdir}")
    return model, params["g"], params["d"]


# GE1's conv autoencoder.


def ae_init(model: models.AEConfig, cfg: AETrainConfig) -> TrainState:
    ae = models.ConvAutoencoder(model)
    params = ae.init(jax.random.key(cfg.seed), jnp.zeros((1,) + model.image_shape))
    return TrainState.create(apply_fn=ae.apply, params=params,
                             tx=optax.adam(cfg.learning_rate))


def mixed_batch(real: jax.Array, g_params, began: models.BeganConfig, cfg: AETrainConfig,
                k_z: jax.Array, k_pick: jax.Array, k_corrupt: jax.Array
                ) -> tuple[jax.Array, jax.Array, int]:
    """What train.ae and train.init learn from: (clean, inputs, n_fake), each (N, H, W, C).

    The first `fake_fraction` of the batch is replaced by G(z) (paper sec. 3; unclipped:
    the solver feeds EN exactly what G makes). With `cfg.corrupt`, each input is degraded
    with probability `corrupt_fraction`; `clean` is the target.
    """
    n_fake = int(round(cfg.fake_fraction * real.shape[0]))
    fake = models.Generator(began).apply(g_params, jax.random.normal(k_z, (n_fake,
                                                                           began.latent_dim)))
    clean = jnp.concatenate([fake, real[n_fake:]], axis=0)
    if cfg.corrupt == "none":
        return clean, clean, n_fake
    picked = jax.random.bernoulli(k_pick, cfg.corrupt_fraction, (clean.shape[0], 1, 1, 1))
    degraded = (tasks.degrade_any(clean, k_corrupt) if cfg.corrupt == "all"
                else tasks.degrade(cfg.corrupt, clean, k_corrupt))
    return clean, jnp.where(picked, degraded, clean), n_fake


def ae_step(state: TrainState, real: jax.Array, key: jax.Array, *, g_params,
            began: models.BeganConfig, cfg: AETrainConfig
            ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One reconstruction step on `mixed_batch` (real, G-made, optionally degraded inputs)."""
    # Corruption keys of their own, so that z, and the paper's GE1, are as without --corrupt.
    batch, inputs, n_fake = mixed_batch(real, g_params, began, cfg, key,
                                        *jax.random.split(jax.random.fold_in(key, 1)))

    def loss(params):
        rec = state.apply_fn(params, inputs)
        err = jnp.mean((rec - batch) ** 2, axis=(1, 2, 3))
        # A part with no images (fake_fraction 0 or 1) reports 0, not the NaN of an empty mean.
        return jnp.mean(err), tuple(jnp.mean(part) if part.size else 0.0
                                    for part in (err[:n_fake], err[n_fake:]))

    (value, (fake_mse, real_mse)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), {"loss": value, "fake_mse": fake_mse,
                                                "real_mse": real_mse}


def fit(workdir: str, name: str, state: TrainState, step_fn, images: np.ndarray, cfg,
        postfix_keys: tuple[str, ...]) -> TrainState:
    """Resume `state` from the newest checkpoint `name` of the workdir, then train it to
    `cfg.steps` with `run_loop` (train.ae and train.init)."""
    restored, start = checkpoint.restore(workdir, name, state)
    if restored is not None:
        state = restored
        print(f"resuming from step {start}")
    if start >= cfg.steps:
        print(f"already trained to step {start} >= --steps {cfg.steps}; nothing to do")
        return state
    return run_loop(name=name, workdir=workdir, state=state, step_fn=step_fn, images=images,
                    cfg=cfg, start=start, postfix_keys=postfix_keys,
                    params_of=lambda s: s.params, on_checkpoint=lambda s, step: None)


def train_ae(workdir: str, model: models.AEConfig, cfg: AETrainConfig, name: str = "ae"
             ) -> TrainState:
    """Train (or resume) GE1's autoencoder on real images and images from the workdir's G.

    `name` ("ae", or "ae_<suffix>" for more encoders, e.g. one per m for the m sweep) is
    both the checkpoint folder and the config section.
    """
    check_config(cfg)
    if name != "ae" and not (name.startswith("ae_") and name[3:].isidentifier()):
        raise ValueError(f"autoencoder name must be 'ae' or 'ae_<suffix>', got {name!r}")
    data_cfg = checkpoint.section(workdir, "data", data.DataConfig)
    began, g_params, _ = load_began(workdir)
    if (model.image_size, model.channels) != (began.image_size, began.channels):
        raise ValueError(f"autoencoder images {model.image_shape} must match G's "
                         f"{began.image_shape}")
    if parallel.is_primary():
        checkpoint.write_config(workdir, **{name: model, f"{name}_train": cfg})
    step_fn = functools.partial(ae_step, g_params=g_params, began=began, cfg=cfg)
    return fit(workdir, name, ae_init(model, cfg), step_fn, data.load(data_cfg, "train"), cfg,
               ("loss", "fake_mse", "real_mse"))


def ae_names(workdir: str) -> list[str]:
    """Names of the autoencoders trained in a workdir ("ae", "ae_m64", ...)."""
    config = checkpoint.read_config(workdir)
    return sorted(k for k in config if k.startswith("ae") and f"{k}_train" in config)


def load_ae(workdir: str, name: str = "ae") -> tuple[models.AEConfig, Any]:
    """(config, params) of GE1's autoencoder from the newest checkpoint of a workdir."""
    model = checkpoint.section(workdir, name, models.AEConfig)
    cfg = checkpoint.section(workdir, f"{name}_train", AETrainConfig)
    target = jax.eval_shape(lambda: ae_init(model, cfg).params)
    params, _ = checkpoint.restore(workdir, name, target, item="params")
    if params is None:
        raise ValueError(f"{workdir} has no autoencoder checkpoint; run python -m train.ae "
                         f"--workdir {workdir}")
    return model, params
