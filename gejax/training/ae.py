"""GE1's conv autoencoder (paper eq. 1), trained on real images and images from the
workdir's G, optionally with degraded inputs (one encoder for every task).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from gejax import checkpoint, models, parallel, tasks, validate
from gejax.training.began import load_began
from gejax.training.loop import fit
from gejax.training.monitor import held_back


@dataclasses.dataclass(frozen=True)
class AETrainConfig:
    """GE1's autoencoder: squared-error reconstruction (paper eq. 1) of real and fake images.

    `corrupt` names a restoration task (gejax.tasks.NAMES) to train an encoder for it: a
    `corrupt_fraction` of the inputs is degraded as the task degrades x_dagger, while the
    target stays the clean image, so EN learns to give a degraded image the code of its
    clean original. "all" degrades each picked input by a task drawn at random, for one
    encoder that serves every task; "none" is the paper's GE1.

    21,000 steps: on 32 train images (GE1, paper protocol) 3,000 / 15,000 / 21,000 steps
    gave denoise 17.52 / 19.25 / 19.35 dB, deblur 17.24 / 18.37 / 19.54 dB, lines 20.58 /
    20.88 / 21.16 dB, CS m=128 MSE 0.00513 / 0.00476 / 0.00478 (docs/notes/training.md); 30,000
    gave 19.23 / 19.52 / 21.08 dB and 0.00541: no better.
    """

    steps: int = 21000
    batch_size: int = 64
    learning_rate: float = 1e-3
    fake_fraction: float = 0.5
    corrupt: str = "all"
    corrupt_fraction: float = 0.5
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25

    def check(self) -> None:
        """Refuse settings that cannot run, before any data is loaded."""
        validate.config_fields(self, zero_ok=("seed",), positive=("learning_rate",))
        for name in ("fake_fraction", "corrupt_fraction"):
            if not getattr(self, name) <= 1:
                raise ValueError(f"--{name} must be in [0, 1], got {getattr(self, name)}")
        if self.corrupt not in ("none", "all"):
            tasks.get(self.corrupt)  # refuses an unknown task




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
                else tasks.get(cfg.corrupt).degrade(clean, k_corrupt))
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


@checkpoint.one_writer(create=False)  # needs the workdir of train.began
def train_ae(workdir: str, model: models.AEConfig, cfg: AETrainConfig, name: str = "ae",
             stop: Callable[[], bool] | None = None) -> TrainState:
    """Train (or resume) GE1's autoencoder on real images and images from the workdir's G.

    `name` ("ae", or "ae_<suffix>" for more encoders, e.g. one per m for the m sweep) is
    both the checkpoint folder and the config section. It trains on the train images
    that G's floor monitor does not hold back (`held_back`), for `cfg.steps` or until
    `stop()` (train.all's budget).
    """
    cfg.check()
    if not checkpoint.is_autoencoder(name):
        raise ValueError(f"autoencoder name must be 'ae' or 'ae_<suffix>', got {name!r}")
    began, g_params, _ = load_began(workdir)
    if (model.image_size, model.channels) != (began.image_size, began.channels):
        raise ValueError(f"autoencoder images {model.image_shape} must match G's "
                         f"{began.image_shape}")
    if parallel.is_primary():
        checkpoint.write_config(workdir, **{name: model, checkpoint.train_section(name): cfg})
    step_fn = functools.partial(ae_step, g_params=g_params, began=began, cfg=cfg)
    return fit(workdir, name, ae_init(model, cfg), step_fn, held_back(workdir)[0], cfg,
               ("loss", "fake_mse", "real_mse"), stop=stop)


def load_ae(workdir: str, name: str = "ae") -> tuple[models.AEConfig, Any]:
    """(config, params) of GE1's autoencoder from the newest checkpoint of a workdir."""
    return checkpoint.load(workdir, name, models.AEConfig, AETrainConfig,
                           lambda model, cfg: ae_init(model, cfg).params, "train.ae")
