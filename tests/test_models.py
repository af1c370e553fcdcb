import math
import re

import jax
import jax.numpy as jnp
import pytest

from gejax import models
from gejax.training import presets


def _convs(params):
    """(name path, kernel shape) of every 3x3 conv kernel, in creation order."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return [(jax.tree_util.keystr(p), leaf.shape) for p, leaf in flat
            if leaf.ndim == 4 and leaf.shape[:2] == (3, 3)]


def _abstract_init(module, shape):
    return jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(shape))


@pytest.mark.parametrize("config,g_convs,d_convs", [
    (presets.celeba64().model, 9, 12),
    (presets.celeba128().model, 11, 15),
    (presets.mnist32().model, 7, 9),
])
def test_began_layer_counts_follow_the_paper(config, g_convs, d_convs):
    g = _abstract_init(models.Generator(config), (config.latent_dim,))
    assert len(_convs(g)) == g_convs
    enc = _abstract_init(models.BeganEncoder(config), config.image_shape)
    convs = _convs(enc)
    assert len(convs) == d_convs
    # The n-th encoder conv has ceil(n/3)*f filters (the paper's GE0 notation).
    order = sorted(convs, key=lambda c: int(re.search(r"Conv_(\d+)", c[0]).group(1)))
    filters = [shape[-1] for _, shape in order]
    assert filters == [math.ceil(n / 3) * config.filters for n in range(1, d_convs + 1)]


def test_generator_and_discriminator_shapes(tiny_began):
    cfg = tiny_began
    key = jax.random.key(0)
    g = models.Generator(cfg)
    gp = g.init(key, jnp.zeros((cfg.latent_dim,)))
    x = g.apply(gp, jnp.ones((5, cfg.latent_dim)))
    assert x.shape == (5, 8, 8, 1) and x.dtype == jnp.float32
    d = models.Discriminator(cfg)
    dp = d.init(key, jnp.zeros(cfg.image_shape))
    assert d.apply(dp, x).shape == x.shape
    assert d.apply(dp, x, method=models.Discriminator.encode).shape == (5, cfg.code_dim)


def test_conv_autoencoder_filters_and_shapes():
    cfg = presets.ae_paper(image_size=64, channels=3, code_dim=128)
    params = _abstract_init(models.ConvEncoder(cfg), cfg.image_shape)
    assert [s[-1] for _, s in _convs(params)] == [16, 32, 48, 64]
    ae = models.ConvAutoencoder(cfg)
    out = jax.eval_shape(lambda: ae.apply(ae.init(jax.random.key(0), jnp.zeros((2, 64, 64, 3))),
                                          jnp.zeros((2, 64, 64, 3))))
    assert out.shape == (2, 64, 64, 3)


def test_pure_callables_match_module_apply(tiny_began, tiny_ae):
    key = jax.random.key(1)
    gp = models.Generator(tiny_began).init(key, jnp.zeros((tiny_began.latent_dim,)))
    z = jax.random.normal(key, (tiny_began.latent_dim,))
    g = models.generator_fn(gp, tiny_began)
    assert jnp.allclose(g(z), models.Generator(tiny_began).apply(gp, z))
    dp = models.Discriminator(tiny_began).init(key, jnp.zeros(tiny_began.image_shape))
    assert models.began_encoder_fn(dp, tiny_began)(g(z)).shape == (tiny_began.code_dim,)
    ap = models.ConvAutoencoder(tiny_ae).init(key, jnp.zeros(tiny_ae.image_shape))
    assert models.ae_encoder_fn(ap, tiny_ae)(g(z)).shape == (tiny_ae.code_dim,)
    # Same function object for the same config: what lets jit reuse compiled programs.
    assert models.generator_fn(gp, tiny_began).func is g.func


@pytest.mark.parametrize("kwargs", [dict(image_size=24), dict(image_size=4), dict(filters=0)])
def test_bad_began_config(kwargs):
    with pytest.raises(ValueError):
        models.BeganConfig(**kwargs)


def test_bad_ae_config():
    with pytest.raises(ValueError, match="divisible"):
        models.AEConfig(image_size=32, depth=6)
