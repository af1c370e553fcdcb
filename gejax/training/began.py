"""BEGAN (Berthelot et al. 2017), the paper's generator (section 4.1): its config, state,
pure step and the run that trains G and D in a workdir.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from gejax import checkpoint, data, models, parallel, plotting, validate
from gejax.training.loop import fit
from gejax.training.monitor import BEST, floor_monitor, split_monitor


@dataclasses.dataclass(frozen=True)
class BeganTrainConfig:
    """BEGAN's hyper-parameters (Berthelot et al. 2017), tuned for the embedded MNIST.

    The learning rate halves every `lr_halve_every` steps down to `lr_floor`: a floor
    keeps G learning late, which the BEGAN authors found to limit mode collapse.
    On MNIST the paper's gamma 0.5 / lambda_k 0.001 left k_t near 0 for thousands of steps
    and G drew dim strokes that collapsed to "1"s; gamma 1.0 with lambda_k 0.1 gave the most
    varied digits of plain BEGAN, still mostly "1"s (docs/notes/prior.md).

    `pull_away` weighs EBGAN's pulling-away term (Zhao et al. 2017) on D's codes of each
    fake batch, added to G's loss only: BEGAN has no term that rewards G for variety, and
    on MNIST G's cheapest reply to D is a thin "1" for every z. With 0.1 and 12,000 steps
    G's projection error on train digits fell from 0.023 to 0.0065. 0 is BEGAN as
    published; `began_paper()` has the CelebA values.

    `ema_decay` is the moving average of G's parameters that samples, checkpoints and
    reconstruction use (0: none). `monitor_*` set G's floor measured while training
    (`floor_monitor`; `monitor_steps` 0 turns it off). The defaults are the recipe of
    the shipped embedded default (docs/notes/prior.md; pinned by a test).
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

    def check(self) -> None:
        """Refuse settings that cannot run, before any data is loaded."""
        validate.config_fields(self, zero_ok=("seed", "monitor_images", "monitor_steps"),
                               positive=("learning_rate",))
        if not self.ema_decay < 1:
            raise ValueError(f"--ema_decay must be in [0, 1), got {self.ema_decay}")


@flax.struct.dataclass
class BeganState:
    """Everything a BEGAN run carries: both networks with their optimisers, k_t, and the
    moving average of G's parameters that samples and reconstruction use."""

    g: TrainState
    d: TrainState
    k: jax.Array
    g_ema: Any


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


@checkpoint.one_writer
def train_began(workdir: str, data_cfg: data.DataConfig, model: models.BeganConfig,
                cfg: BeganTrainConfig, stop: Callable[[], bool] | None = None) -> BeganState:
    """Train (or resume) BEGAN in `workdir` to `cfg.steps`, or until `stop()` (`run_loop`);
    returns the final state.

    G's floor on held-back train images is measured as it trains (`floor_monitor`), and
    the parameters of the best G so far are kept in `began_best/`, which `load_began`
    (every later command) prefers to the last.
    """
    cfg.check()
    images, held = split_monitor(data.source(data_cfg, "train"), cfg)  # refuses bad data
    if parallel.is_primary():
        checkpoint.write_config(workdir, data=data_cfg, began=model, began_train=cfg)

    def keep(state: BeganState, step: int) -> None:
        checkpoint.save_params(workdir, BEST, step, parallel.local_copy(_began_params(state)))

    t0 = time.time()
    state = fit(workdir, "began", began_init(model, cfg),
                functools.partial(began_step, model=model, cfg=cfg), images, cfg,
                ("M", "k", "l_real", "l_fake"), stop, params_of=_began_params,
                on_checkpoint=lambda s, step: save_samples(workdir, s.g_ema, model, step),
                monitor_from=(lambda start: floor_monitor(workdir, held, model, cfg, start,
                                                          keep=keep)) if len(held) else None)
    print(f"BEGAN at step {int(state.g.step)}, {time.time() - t0:.0f}s in this run")
    return state


def _began_params(state: BeganState) -> dict:
    """What sampling and reconstruction load: the averaged G, and D (GE0's encoder)."""
    return {"g": state.g_ema, "d": state.d.params}


def load_began(workdir: str) -> tuple[models.BeganConfig, Any, Any]:
    """(config, G params, D params) of a workdir's BEGAN: the best G the floor monitor
    kept (`began_best/`), else the newest checkpoint (runs without a monitor, and those
    trained before it kept the best, as the shipped default)."""
    model, params = checkpoint.load(
        workdir, "began", models.BeganConfig, BeganTrainConfig,
        lambda model, cfg: _began_params(began_init(model, cfg)), "train.began",
        folders=(BEST, "began"))
    return model, params["g"], params["d"]
