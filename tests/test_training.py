import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gejax import checkpoint, data, models, training
from gejax.training import presets

MODEL = models.BeganConfig(image_size=8, channels=1, filters=4, latent_dim=3, code_dim=6)


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.uniform(size=(40, 8, 8, 1)).astype(np.float32))
    return data.DataConfig(str(path), image_size=8, channels=1)


def _cfg(steps):
    return training.BeganTrainConfig(steps=steps, batch_size=4, checkpoint_every=2, log_every=1,
                                     monitor_steps=3)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_began_trains_and_checkpoint_round_trip_is_exact(tmp_path, npz):
    state = training.train_began(str(tmp_path), npz, MODEL, _cfg(3))
    assert int(state.g.step) == 3
    restored, step = checkpoint.restore(tmp_path, "began", training.began_init(MODEL, _cfg(3)))
    assert step == 3
    for a, b in zip(_leaves(state), _leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "samples" / "began_0000003.png").exists()
    assert checkpoint.section(tmp_path, "began", models.BeganConfig) == MODEL


def test_resume_matches_an_uninterrupted_run(tmp_path, npz, capsys):
    straight = training.train_began(str(tmp_path / "a"), npz, MODEL, _cfg(4))
    training.train_began(str(tmp_path / "b"), npz, MODEL, _cfg(2))
    resumed = training.train_began(str(tmp_path / "b"), npz, MODEL, _cfg(4))
    assert "resuming from step 2" in capsys.readouterr().out
    for a, b in zip(_leaves(straight), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    # The moving average is part of what resumes, and it is not G's raw parameters.
    for a, b in zip(_leaves(straight.g_ema), _leaves(resumed.g_ema), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(_leaves(resumed.g_ema)[0], _leaves(resumed.g.params)[0])


def _l1(a, b):
    return jnp.mean(jnp.abs(a - b))


def _pull_away_np(h):
    """EBGAN's PT by its definition: mean over ordered pairs i != j of cos^2(h_i, h_j)."""
    h = np.asarray(h, np.float64)
    n = len(h)
    cos2 = [(h[i] @ h[j] / np.linalg.norm(h[i]) / np.linalg.norm(h[j])) ** 2
            for i in range(n) for j in range(n) if i != j]
    return float(np.mean(cos2))


def _pull_away_jnp(h):
    u = h / jnp.linalg.norm(h, axis=-1, keepdims=True)
    c2 = (u @ u.T) ** 2
    return (jnp.sum(c2) - jnp.trace(c2)) / (h.shape[0] * (h.shape[0] - 1))


@pytest.mark.parametrize("lambda_k", [0.1, 100.0])  # 100: k_{t+1} leaves [0, 1] and is clipped
def test_began_step_by_hand_from_a_nonzero_k(lambda_k):
    """D's and G's losses, k's update and M recomputed from the networks' outputs.

    k starts at 0.3, so an update that forgets k_t (k = clip(lambda_k * balance)) is caught,
    and gamma 0.5 so that a balance without gamma is too. The step is the second of the run,
    so Adam's update follows the gradient's size, not only its sign: the parameters after the
    step are those of Adam fed the gradients of the losses written here.
    """
    preset = presets.tiny()
    model = preset.model
    cfg = dataclasses.replace(preset.train, gamma=0.5, lambda_k=lambda_k, pull_away=0.5)
    step = jax.jit(functools.partial(training.began_step, model=model, cfg=cfg))
    rng = np.random.default_rng(1)
    real = rng.uniform(size=(4, 8, 8, 1)).astype(np.float32)
    state, _ = step(training.began_init(model, cfg), real, jax.random.key(7))
    state = state.replace(k=jnp.float32(0.3))
    real = rng.uniform(size=(4, 8, 8, 1)).astype(np.float32)
    key = jax.random.key(0)
    new, metrics = step(state, real, key)

    g, d = models.Generator(model), models.Discriminator(model)
    z = jax.random.normal(key, (4, model.latent_dim))
    fake = np.asarray(g.apply(state.g.params, z))
    rec_real = np.asarray(d.apply(state.d.params, real))
    h_fake, rec_fake = (np.asarray(a) for a in d.apply(state.d.params, fake,
                                                       method="encode_decode"))
    l_real = np.mean(np.abs(rec_real - real))
    l_fake = np.mean(np.abs(rec_fake - fake))
    pt = _pull_away_np(h_fake)
    balance = 0.5 * l_real - l_fake
    k_new = np.clip(0.3 + lambda_k * balance, 0, 1)
    np.testing.assert_allclose(metrics["l_real"], l_real, rtol=1e-5)
    np.testing.assert_allclose(metrics["l_fake"], l_fake, rtol=1e-5)
    np.testing.assert_allclose(metrics["d_loss"], l_real - 0.3 * l_fake, rtol=1e-5)
    np.testing.assert_allclose(metrics["pull_away"], pt, rtol=1e-4)
    np.testing.assert_allclose(metrics["g_loss"], l_fake + 0.5 * pt, rtol=1e-5)
    np.testing.assert_allclose(metrics["M"], l_real + abs(balance), rtol=1e-5)
    np.testing.assert_allclose(metrics["k"], 0.3)  # the k this step used
    np.testing.assert_allclose(new.k, k_new, rtol=1e-5, atol=1e-7)
    if lambda_k > 1:
        assert float(new.k) in (0.0, 1.0)
    else:
        assert 0 < k_new < 1 and abs(k_new - 0.3) > 1e-3  # neither clipped nor unchanged

    def d_loss(d_params):
        return (_l1(d.apply(d_params, real), real)
                - 0.3 * _l1(d.apply(d_params, fake), fake))

    def g_loss(g_params):
        x = g.apply(g_params, z)
        h, rec = d.apply(state.d.params, x, method="encode_decode")  # D before its update
        return _l1(rec, x) + 0.5 * _pull_away_jnp(h)

    for net, loss, updated in ((state.d, d_loss, new.d), (state.g, g_loss, new.g)):
        expected = net.apply_gradients(grads=jax.grad(loss)(net.params))
        for before, want, got in zip(_leaves(net.params), _leaves(expected.params),
                                     _leaves(updated.params), strict=True):
            np.testing.assert_allclose(got - before, want - before, rtol=2e-3, atol=1e-8)


def test_pull_away_is_zero_for_orthogonal_codes_and_one_for_equal_codes():
    np.testing.assert_allclose(training.pull_away(np.eye(4, 6, dtype=np.float32)), 0, atol=1e-6)
    np.testing.assert_allclose(training.pull_away(np.ones((4, 6), np.float32) * 3), 1, rtol=1e-5)
    np.testing.assert_allclose(  # pairs at cosine 0, 0.6 and 0.8
        training.pull_away(np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)),
        (0.6**2 + 0.8**2) / 3, rtol=1e-5)
    # Opposite codes are as alike as equal ones (cos^2 = 1); one code has no pair.
    np.testing.assert_allclose(training.pull_away(np.array([[1, 2], [-2, -4]], np.float32)), 1,
                               rtol=1e-5)
    assert float(training.pull_away(np.ones((1, 6), np.float32))) == 0.0
    codes = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    np.testing.assert_allclose(training.pull_away(codes), _pull_away_np(codes), rtol=1e-5)
    np.testing.assert_allclose(training.pull_away(codes * [[1], [2], [3], [4], [5]]),
                               _pull_away_np(codes), rtol=1e-5)  # scale-free


def test_pull_away_moves_only_the_generator():
    real = np.random.default_rng(1).uniform(size=(4, 8, 8, 1)).astype(np.float32)

    def step(weight):
        cfg = dataclasses.replace(_cfg(1), pull_away=weight)
        return training.began_step(training.began_init(MODEL, cfg), real, jax.random.key(0),
                                   model=MODEL, cfg=cfg)[0]

    plain, pulled = step(0.0), step(1.0)
    for a, b in zip(_leaves(plain.d), _leaves(pulled.d), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b)
               for a, b in zip(_leaves(plain.g), _leaves(pulled.g), strict=True))


def test_batches_are_a_pure_function_of_the_step():
    a = training.batch_indices(7, 40, 4, seed=0)
    np.testing.assert_array_equal(a, training.batch_indices(7, 40, 4, seed=0))
    epoch = np.concatenate([training.batch_indices(s, 40, 4, 0) for s in range(10)])
    assert sorted(epoch) == list(range(40))  # every example once per epoch


def test_autoencoder_trains_on_real_and_fake(tmp_path, npz):
    training.train_began(str(tmp_path), npz, MODEL, _cfg(2))
    ae = models.AEConfig(image_size=8, channels=1, depth=2, filters=2, code_dim=6)
    cfg = training.AETrainConfig(steps=3, batch_size=4, checkpoint_every=3, log_every=1)
    state = training.train_ae(str(tmp_path), ae, cfg)
    model, params = training.load_ae(str(tmp_path))
    assert model == ae
    for a, b in zip(_leaves(state.params), _leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


def _ae_step(corrupt="none", corrupt_fraction=0.5, fake_fraction=0.5):
    ae = models.AEConfig(image_size=8, channels=1, depth=2, filters=2, code_dim=6)
    cfg = training.AETrainConfig(batch_size=4, corrupt=corrupt, corrupt_fraction=corrupt_fraction,
                                 fake_fraction=fake_fraction)
    g_params = models.Generator(MODEL).init(jax.random.key(0), jnp.zeros((1, 3)))
    real = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
    state, metrics = training.ae_step(training.ae_init(ae, cfg), real, jax.random.key(2),
                                      g_params=g_params, began=MODEL, cfg=cfg)
    return _leaves(state.params), {k: float(v) for k, v in metrics.items()}


@pytest.mark.parametrize("fake_fraction", [0.0, 1.0])
def test_autoencoder_step_on_only_real_or_only_fake_images(fake_fraction):
    """A part with no images reports 0, not the NaN of an empty mean; the other is the loss."""
    _, metrics = _ae_step(fake_fraction=fake_fraction)
    present, empty = ("fake_mse", "real_mse") if fake_fraction else ("real_mse", "fake_mse")
    assert metrics[empty] == 0.0 and metrics["loss"] > 0, metrics
    assert metrics[present] == pytest.approx(metrics["loss"], rel=1e-6)


def test_corrupted_inputs_change_the_step_and_nothing_else():
    plain, plain_metrics = _ae_step()
    # No input picked for corruption: the very step of the paper's GE1 (same z, same batch).
    unpicked, unpicked_metrics = _ae_step("denoise", 0.0)
    assert unpicked_metrics["loss"] == plain_metrics["loss"]
    for a, b in zip(plain, unpicked, strict=True):
        np.testing.assert_array_equal(a, b)
    _, noisy_metrics = _ae_step("denoise", 1.0)
    assert noisy_metrics["loss"] != plain_metrics["loss"]


def test_autoencoder_loss_by_hand_is_against_the_clean_images():
    """GE1's loss (paper eq. 1) recomputed: the first quarter of the batch is G(z) with z from
    the step's key, the rest the real images after them; every input is noisy (fraction 1),
    yet the squared error is taken against the clean images, and split into fake and real."""
    ae = models.AEConfig(image_size=8, channels=1, depth=2, filters=2, code_dim=6)
    cfg = training.AETrainConfig(batch_size=8, corrupt="denoise", corrupt_fraction=1.0,
                                 fake_fraction=0.25)
    g_params = models.Generator(MODEL).init(jax.random.key(0), jnp.zeros((1, 3)))
    real = np.random.default_rng(2).uniform(size=(8, 8, 8, 1)).astype(np.float32)
    key = jax.random.key(2)
    state = training.ae_init(ae, cfg)
    new, metrics = training.ae_step(state, real, key, g_params=g_params, began=MODEL, cfg=cfg)

    fake = models.Generator(MODEL).apply(g_params, jax.random.normal(key, (2, 3)))
    clean = np.concatenate([np.asarray(fake), real[2:]])
    got_clean, inputs, n_fake = training.mixed_batch(
        real, g_params, MODEL, cfg, key, *jax.random.split(jax.random.fold_in(key, 1)))
    assert n_fake == 2
    np.testing.assert_allclose(got_clean, clean, rtol=1e-6)
    noise = np.asarray(inputs) - clean  # denoise's sigma 0.4 on every image
    assert abs(noise.std() - 0.4) < 0.04 and abs(noise.mean()) < 0.04

    net = models.ConvAutoencoder(ae)

    def per_image(params, target):
        return jnp.mean((net.apply(params, inputs) - target) ** 2, axis=(1, 2, 3))

    err = np.asarray(per_image(state.params, clean))
    np.testing.assert_allclose(metrics["loss"], err.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["fake_mse"], err[:2].mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["real_mse"], err[2:].mean(), rtol=1e-5)
    against_inputs = float(per_image(state.params, inputs).mean())
    assert abs(against_inputs - err.mean()) > 0.1 * err.mean()  # the check can tell them apart
    grads = jax.grad(lambda p: jnp.mean(per_image(p, clean)))(state.params)
    for a, b in zip(_leaves(new.params), _leaves(state.apply_gradients(grads=grads).params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("field,value,message", [("corrupt", "colorize", "unknown task"),
                                                 ("corrupt_fraction", 1.5, "in \\[0, 1\\]")])
def test_autoencoder_refuses_bad_corruption(field, value, message):
    with pytest.raises(ValueError, match=message):
        training.AETrainConfig(**{field: value}).check()


def test_autoencoder_needs_a_began(tmp_path):
    with pytest.raises(ValueError, match="began"):
        training.train_ae(str(tmp_path), models.AEConfig(image_size=8, depth=2),
                          training.AETrainConfig(steps=1))


def test_params_only_checkpoint_loads_for_evaluation_but_cannot_resume(tmp_path, npz):
    import shutil

    state = training.train_began(str(tmp_path), npz, MODEL, _cfg(2))
    shutil.rmtree(tmp_path / "began" / "2" / "state")  # what the shipped default keeps
    _, g_params, d_params = training.load_began(str(tmp_path))
    for a, b in zip(_leaves(state.g_ema), _leaves(g_params), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="cannot resume"):
        training.train_began(str(tmp_path), npz, MODEL, _cfg(4))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("log_every,checkpoint_every,match", [
    (1, 2, "non-finite loss at step 4"),  # caught by the loss of the step after the bad update
    (4, 1, "non-finite parameters after step 3"),  # caught before a checkpoint is written
])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, npz, log_every,
                                                              checkpoint_every, match):
    training.train_began(str(tmp_path), npz, MODEL, _cfg(2))
    # 1e39 passes the config check (a finite float) but is inf in float32: the first
    # update makes the parameters non-finite.
    bad = training.BeganTrainConfig(steps=6, batch_size=4, checkpoint_every=checkpoint_every,
                                    log_every=log_every, learning_rate=1e39)
    with pytest.raises(training.DivergedError, match=match):
        training.train_began(str(tmp_path), npz, MODEL, bad)
    _, step = checkpoint.restore(tmp_path, "began", training.began_init(MODEL, bad))
    assert step == 2


def test_ema_of_constant_parameters_is_those_parameters():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
    for step in (0, 10, 10_000):
        out = training.ema_update(params, params, step, 0.999)
        for a, b in zip(_leaves(out), _leaves(params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_ema_decay_by_hand_with_its_warm_up():
    old, new = {"w": jnp.zeros(2)}, {"w": jnp.ones(2)}
    # Late: the configured decay, 0.9 of the old average.
    np.testing.assert_allclose(training.ema_update(old, new, 1000, 0.9)["w"], 0.1, rtol=1e-6)
    # Update 0: (1 + 0) / (10 + 0) = 0.1 < 0.9, so the average is mostly the new value.
    np.testing.assert_allclose(training.ema_update(old, new, 0, 0.9)["w"], 0.9, rtol=1e-6)
    # Decay 0: no averaging at all.
    np.testing.assert_allclose(training.ema_update(old, new, 1000, 0.0)["w"], 1.0, rtol=1e-6)


def test_began_step_averages_the_updated_generator():
    cfg = dataclasses.replace(_cfg(1), ema_decay=0.5)
    state = training.began_init(MODEL, cfg)
    state = state.replace(g=state.g.replace(step=100))  # past the warm-up: rate 0.5
    real = np.random.default_rng(1).uniform(size=(4, 8, 8, 1)).astype(np.float32)
    new, _ = training.began_step(state, real, jax.random.key(0), model=MODEL, cfg=cfg)
    for ema, old, now in zip(_leaves(new.g_ema), _leaves(state.g_ema), _leaves(new.g.params),
                             strict=True):
        np.testing.assert_allclose(ema, 0.5 * old + 0.5 * now, rtol=1e-5, atol=1e-7)


def test_samples_and_checkpointed_generator_are_the_average(tmp_path, npz):
    state = training.train_began(str(tmp_path), npz, MODEL, _cfg(3))
    _, g, d = training.load_began(str(tmp_path))
    for a, b in zip(_leaves(g), _leaves(state.g_ema), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(d), _leaves(state.d.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_monitor_holds_back_train_images():
    images = np.arange(200, dtype=np.float32).reshape(200, 1, 1, 1)
    train, held = training.split_monitor(images, training.BeganTrainConfig(monitor_images=16))
    assert len(train) == 184 and len(held) == 16
    assert set(train.ravel()).isdisjoint(held.ravel())
    _, held = training.split_monitor(images, training.BeganTrainConfig(monitor_images=64))
    assert len(held) == 20  # at most a tenth of small data
    train, held = training.split_monitor(images, training.BeganTrainConfig(monitor_steps=0))
    assert len(train) == 200 and len(held) == 0


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Bright Gaussian blobs: a toy data set that a tiny G learns in a few dozen steps."""
    yy, xx = np.mgrid[:8, :8]
    blob = np.exp(-((yy - 3.5) ** 2 + (xx - 3.5) ** 2) / 6.0)[..., None]
    scale = np.random.default_rng(0).uniform(0.6, 1.0, (40, 1, 1, 1))
    path = tmp_path_factory.mktemp("blobs") / "blobs.npz"
    np.savez(path, images=(blob[None] * scale).astype(np.float32))
    return data.DataConfig(str(path), image_size=8, channels=1)


def _monitored(steps):
    return training.BeganTrainConfig(steps=steps, batch_size=4, checkpoint_every=20,
                                     log_every=10, learning_rate=3e-3, ema_decay=0.9,
                                     monitor_images=8, monitor_steps=30, monitor_every=20)


def test_monitor_writes_a_floor_history_that_falls_as_g_learns(tmp_path, blobs):
    training.train_began(str(tmp_path), blobs, MODEL, _monitored(60))
    history = training.read_history(str(tmp_path))
    assert [r["step"] for r in history] == [20, 40, 60]
    floors = [r["floor"] for r in history]
    assert floors[-1] < 0.8 * floors[0], floors
    seconds = [r["seconds"] for r in history]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert (tmp_path / "tb" / "began").is_dir()


def test_resumed_monitor_redoes_the_records_past_the_checkpoint(tmp_path, blobs):
    straight = tmp_path / "a"
    training.train_began(str(straight), blobs, MODEL, _monitored(40))
    resumed = tmp_path / "b"
    training.train_began(str(resumed), blobs, MODEL, _monitored(20))
    stale = training.read_history(str(resumed)) + [{"step": 30, "floor": 9.0, "seconds": 1e6}]
    (resumed / training.FLOOR_HISTORY).write_text(json.dumps(stale))  # as if killed after
    training.train_began(str(resumed), blobs, MODEL, _monitored(40))
    a, b = training.read_history(str(straight)), training.read_history(str(resumed))
    assert [r["step"] for r in b] == [20, 40]
    np.testing.assert_allclose([r["floor"] for r in b], [r["floor"] for r in a], rtol=1e-6)
    assert b[1]["seconds"] > b[0]["seconds"] and b[1]["seconds"] < 1e6
