"""The pre-trained embedded default that ships inside the package loads and behaves."""

import jax
import numpy as np

from gejax import amortized, checkpoint, data, models, presets, tasks, training
from gejax.reconstruct import projection_floor
from gejax.workdir import default_workdir, eval_images, load_networks


def test_shipped_checkpoints_load_and_match_the_presets():
    nets = load_networks(default_workdir())
    assert nets.began == presets.mnist32().model
    assert nets.data == data.DataConfig()
    assert nets.code_dims == {"ge0": 128, "ge1": 128, "ge1_m32": 32, "ge1_m64": 64,
                              "ge1_m256": 256}
    assert nets.task_encoders == {}  # one encoder serves every task
    z = jax.random.normal(jax.random.key(0), (8, nets.began.latent_dim))
    x = np.asarray(jax.vmap(nets.generator)(z))
    assert x.shape == (8, 32, 32, 1) and np.isfinite(x).all()


def test_defaults_are_the_recipe_of_the_shipped_model():
    """The README's commands with no flags rebuild what the package ships."""
    workdir = default_workdir()
    preset = presets.mnist32()
    assert checkpoint.section(workdir, "began", models.BeganConfig) == preset.model
    assert checkpoint.section(workdir, "data", data.DataConfig) == preset.data
    assert checkpoint.section(workdir, "began_train", training.BeganTrainConfig) == preset.train
    assert preset.train == training.BeganTrainConfig()
    # GE1, and the m sweep's encoders with the README's --steps 1500.
    for name, code_dim, steps in (("ae", 128, training.AETrainConfig().steps),
                                  ("ae_m32", 32, 1500), ("ae_m64", 64, 1500),
                                  ("ae_m256", 256, 1500)):
        assert checkpoint.section(workdir, f"{name}_train", training.AETrainConfig) == \
            training.AETrainConfig(steps=steps), name
        assert checkpoint.section(workdir, name, models.AEConfig) == models.AEConfig(
            image_size=32, channels=1, code_dim=code_dim), name
    # GE1's learned start, as python -m train.init builds it.
    assert checkpoint.section(workdir, "init_ae_train", amortized.InitTrainConfig) == \
        amortized.InitTrainConfig()
    assert checkpoint.section(workdir, "init_ae", amortized.InitConfig) == amortized.InitConfig(
        code_dim=128, latent_dim=64)


def test_shipped_generator_is_far_closer_to_test_digits_than_an_untrained_one():
    nets = load_networks(default_workdir())
    x = eval_images(nets, 16)
    untrained = models.generator_fn(
        training.began_init(nets.began, training.BeganTrainConfig()).g_ema, nets.began)

    def floor(generator):
        return float(projection_floor(generator, x, key=jax.random.key(0), num_restarts=1,
                                      latent_dim=nets.began.latent_dim, steps=200).mean())

    shipped = floor(nets.generator)
    # Measured: 0.0041 against 0.030 untrained. The G shipped before (z = 32, no moving
    # average) was at ~0.007 with these settings on train digits it had seen.
    assert shipped < 0.0055, shipped
    assert floor(untrained) > 4 * shipped


def test_shipped_autoencoder_separates_images():
    """GE1's encoder maps different test digits to clearly different codes."""
    nets = load_networks(default_workdir())
    x = eval_images(nets, 16)
    codes = np.asarray(jax.vmap(nets.encoders["ge1"])(x))
    dists = np.linalg.norm(codes[:, None] - codes[None], axis=-1)
    assert np.all(dists[~np.eye(16, dtype=bool)] > 1e-3)


def _code_shift(encoder, x, x_dagger):
    """Mean ||EN(x_dagger) - EN(x)|| over mean ||EN(x_i) - EN(x_j)||: how far degrading a
    digit moves its code, in units of the distance between two different digits."""
    clean, degraded = (np.asarray(jax.vmap(encoder)(v)) for v in (x, x_dagger))
    between = np.linalg.norm(clean[:, None] - clean[None], axis=-1)
    return np.linalg.norm(degraded - clean, axis=-1).mean() / between[between > 0].mean()


BOUND = {"denoise": 0.45, "deblur": 0.4, "superres": 0.48, "inpaint_block": 0.62,
         "inpaint_lines": 0.45}


def test_shipped_encoder_gives_a_degraded_digit_nearly_the_code_of_its_original():
    # What training on degraded inputs (train.ae --corrupt all) is for: EN(x_dagger) close
    # to EN(x) in every task. D's encoder (GE0) has only seen clean and G-made digits.
    # A 15x15 hole takes away most of a 32x32 digit, so there the code cannot come all the
    # way back. Measured (GE1 / GE0): denoise 0.37 / 1.20, deblur 0.31 / 0.48, superres
    # 0.40 / 0.60, block 0.53 / 0.77, lines 0.36 / 0.55.
    nets = load_networks(default_workdir())
    x = eval_images(nets, 16)
    for task in tasks.NAMES:
        x_dagger = tasks.get(task).degrade(x, jax.random.key(0))
        shift = _code_shift(nets.encoders["ge1"], x, x_dagger)
        assert shift < BOUND[task], (task, shift)
        assert shift < _code_shift(nets.encoders["ge0"], x, x_dagger), task


def test_shipped_learned_start_lands_near_the_image():
    """G(Q(EN(x))) is far closer to a test digit than G of a random z, or of an untrained Q,
    for clean and for degraded inputs (Q was trained on both)."""
    nets = load_networks(default_workdir())
    x = eval_images(nets, 16)
    q, en, g = nets.inits["ge1"], nets.encoders["ge1"], nets.generator
    untrained = amortized.load_init(default_workdir())
    untrained = type(untrained)(untrained.func, amortized.init_state(
        amortized.InitConfig(code_dim=128, latent_dim=64), amortized.InitTrainConfig()).params)

    def mse(z):
        return float(np.mean((np.asarray(jax.vmap(g)(z)) - x) ** 2))

    random = mse(jax.random.normal(jax.random.key(0), (16, nets.began.latent_dim)))
    for x_in in (x, tasks.get("denoise").degrade(x, jax.random.key(1))):
        codes = jax.vmap(en)(x_in)
        learned = mse(jax.vmap(q)(codes))
        # Measured: 0.010 (clean) and 0.017 (noisy) against 0.10 for random z or untrained Q.
        assert learned < 0.02 and learned < random / 4, (learned, random)
        assert learned < mse(jax.vmap(untrained)(codes)) / 3
