"""The pre-trained embedded default that ships inside the package loads and behaves."""

import jax
import numpy as np

from gejax import data, evaluation, models


def test_shipped_checkpoints_load_and_match_the_presets():
    nets = evaluation.load_networks(evaluation.default_workdir())
    assert nets.began == models.began_mnist32()
    assert nets.data == data.DataConfig()
    assert nets.code_dims == {"ge0": 128, "ge1": 128, "ge1_m32": 32, "ge1_m64": 64,
                              "ge1_m256": 256}
    z = jax.random.normal(jax.random.key(0), (8, nets.began.latent_dim))
    x = np.asarray(jax.vmap(nets.generator)(z))
    assert x.shape == (8, 32, 32, 1) and np.isfinite(x).all()
    # A trained G draws dark backgrounds with bright strokes, not noise.
    assert np.median(x) < 0.1 and x.max() > 0.5


def test_shipped_autoencoder_separates_images():
    """GE1's encoder maps different test digits to clearly different codes."""
    nets = evaluation.load_networks(evaluation.default_workdir())
    x = evaluation.eval_images(nets, 16)
    codes = np.asarray(jax.vmap(nets.encoders["ge1"])(x))
    dists = np.linalg.norm(codes[:, None] - codes[None], axis=-1)
    assert np.all(dists[~np.eye(16, dtype=bool)] > 1e-3)
