"""A learned start for the solver: a small network Q, trained once per workdir and encoder,
that maps GE's measurement y = EN(x) (or EN(x_dagger)) straight to a latent z with G(z)
close to x. `evaluate.* --init learned` starts one restart of every image at Q(y), so
Adam begins near the answer instead of at a random z (amortized inference, as an
encoder-initialised GAN inversion does).

Q is trained on what the solver sees: real and G-made images, half of them degraded by a
random restoration task as `train.ae --corrupt all` does, with the loss
||G(Q(EN(input))) - clean||^2 in image space, G and EN frozen.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState
from jax.tree_util import Partial

from gejax import checkpoint, models, parallel
from gejax.training.ae import AETrainConfig, load_ae, mixed_batch
from gejax.training.began import load_began
from gejax.training.loop import fit
from gejax.training.monitor import held_back


@dataclasses.dataclass(frozen=True)
class InitConfig:
    """Q: an MLP code (code_dim) -> z (latent_dim) with `depth` hidden layers of `width`."""

    code_dim: int
    latent_dim: int
    width: int = 512
    depth: int = 2


@dataclasses.dataclass(frozen=True)
class InitTrainConfig(AETrainConfig):
    """Adam on ||G(Q(EN(input))) - clean||^2; inputs as train.ae's (`mixed_batch`)."""

    steps: int = 2000


class LatentHead(nn.Module):
    config: InitConfig

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        """y (..., code_dim) -> z (..., latent_dim)."""
        # Codes come at the scale their encoder learned (rms ~8 for the shipped GE1), and
        # noisy ones at another: normalise each code before the MLP.
        h = nn.LayerNorm()(y)
        for _ in range(self.config.depth):
            h = nn.elu(nn.Dense(self.config.width)(h))
        return nn.Dense(self.config.latent_dim)(h)


def init_state(model: InitConfig, cfg: InitTrainConfig) -> TrainState:
    head = LatentHead(model)
    params = head.init(jax.random.key(cfg.seed), jnp.zeros((1, model.code_dim)))
    return TrainState.create(apply_fn=head.apply, params=params,
                             tx=optax.adam(cfg.learning_rate))


def init_step(state: TrainState, real: jax.Array, key: jax.Array, *, g_params, en_params,
              began: models.BeganConfig, ae: models.AEConfig, cfg: InitTrainConfig
              ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step on `mixed_batch` (N, H, W, C): real, G-made, partly degraded."""
    generator = models.Generator(began)
    clean, inputs, _ = mixed_batch(real, g_params, began, cfg,
                                            *jax.random.split(key, 3))
    y = models.ae_encoder_fn(en_params, ae)(inputs)

    def loss(params):
        x_hat = generator.apply(g_params, state.apply_fn(params, y))
        return jnp.mean((x_hat - clean) ** 2)

    value, grads = jax.value_and_grad(loss)(state.params)
    return state.apply_gradients(grads=grads), {"loss": value}


@checkpoint.one_writer(create=False)  # needs the workdir of train.began
def train_init(workdir: str, cfg: InitTrainConfig, encoder: str = "ae",
               stop: Callable[[], bool] | None = None) -> TrainState:
    """Train (or resume) the learned start of autoencoder `encoder` in a trained workdir, on
    the train images that G's floor monitor holds back from none (`held_back`),
    for `cfg.steps` or until `stop()`."""
    cfg.check()
    if encoder not in checkpoint.autoencoders(workdir):
        raise ValueError(f"{workdir} has no autoencoder {encoder!r} (it has "
                         f"{checkpoint.autoencoders(workdir) or 'none'}); run python -m "
                         "train.ae first")
    began, g_params, _ = load_began(workdir)
    ae, ae_params = load_ae(workdir, encoder)
    model = InitConfig(code_dim=ae.code_dim, latent_dim=began.latent_dim)
    name = checkpoint.init_part(encoder)
    if parallel.is_primary():
        checkpoint.write_config(workdir, **{name: model, checkpoint.train_section(name): cfg})
    images, _ = held_back(workdir)
    step_fn = functools.partial(init_step, g_params=g_params, en_params=ae_params, began=began,
                                ae=ae, cfg=cfg)
    return fit(workdir, name, init_state(model, cfg), step_fn, images, cfg, ("loss",),
                        stop=stop)


def load_init(workdir: str, encoder: str = "ae") -> Partial | None:
    """Q of autoencoder `encoder` as a pure callable y (..., code_dim) -> z, or None if the
    workdir has no learned start for it."""
    name = checkpoint.init_part(encoder)
    if name not in checkpoint.read_config(workdir):
        return None
    model, params = checkpoint.load(workdir, name, InitConfig, InitTrainConfig,
                                    lambda model, cfg: init_state(model, cfg).params,
                                    f"train.init --encoder {encoder}")
    return Partial(_head_apply(model), params)


@functools.cache
def _head_apply(model: InitConfig) -> Any:
    head = LatentHead(model)

    def apply(params, y):
        return head.apply(params, y)

    return apply
