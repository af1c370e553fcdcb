"""Sharding over devices: the same numbers as one device, for the solver and for training.

conftest.py gives this process 4 CPU devices (`jax_num_cpu_devices`), the CPU stand-in
for a multi-GPU host.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gejax
from gejax import checkpoint, data, models, parallel, solver, training

ROOT = Path(__file__).resolve().parents[1]


def test_four_devices_are_visible():
    assert jax.device_count() == 4  # otherwise every test below would pass trivially


@pytest.fixture(scope="module")
def problem(tiny_began):
    key = jax.random.key(0)
    gp = models.Generator(tiny_began).init(key, jnp.zeros((tiny_began.latent_dim,)))
    dp = models.Discriminator(tiny_began).init(key, jnp.zeros(tiny_began.image_shape))
    generator = models.generator_fn(gp, tiny_began)
    measure = gejax.ge_measure(models.began_encoder_fn(dp, tiny_began))
    x = jax.random.uniform(jax.random.key(1), (6,) + tiny_began.image_shape)
    return generator, measure, jax.vmap(measure)(x), tiny_began.latent_dim


@pytest.mark.parametrize("path", ["chunked", "scan"])
@pytest.mark.parametrize("num_images,tol,whiten", [  # 6: padded to 8
    (4, 0.0, False), (6, 0.0, False), (6, 0.05, False), (6, 0.05, True)])
def test_sharded_reconstruct_equals_one_device(problem, path, num_images, tol, whiten,
                                               monkeypatch):
    generator, measure, y, latent_dim = problem
    if path == "scan":  # the GPU/TPU host loop: 10 steps per call (CPU: one)
        monkeypatch.setattr(sys.modules["gejax.reconstruct"], "_schedule",
                            lambda b, r, mesh: (b, solver.CPU_CHUNK))
    kwargs = dict(key=jax.random.key(3), latent_dim=latent_dim, num_restarts=3, steps=32,
                  tol=tol, whiten=whiten)
    one = gejax.reconstruct(generator, measure, y[:num_images], **kwargs)
    mesh = parallel.batch_mesh()
    many = gejax.reconstruct(generator, measure, y[:num_images], mesh=mesh, **kwargs)
    assert many.x_hat.shape == one.x_hat.shape
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("basis", ["dct", "haar"])
def test_sharded_deviation_equals_one_device(problem, basis):
    generator, measure, y, latent_dim = problem
    kwargs = dict(key=jax.random.key(3), latent_dim=latent_dim, num_restarts=2, steps=32,
                  tol=0.05, deviation=gejax.Deviation(1e-3, basis))
    one = gejax.reconstruct(generator, measure, y, **kwargs)
    many = gejax.reconstruct(generator, measure, y, mesh=parallel.batch_mesh(), **kwargs)
    assert np.abs(np.asarray(one.nu)).max() > 0  # the deviation did act
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_sharded_reconstruct_splits_images_over_devices(problem):
    generator, measure, y, latent_dim = problem
    out = gejax.reconstruct(generator, measure, jnp.concatenate([y, y[:2]]), key=jax.random.key(0),
                            latent_dim=latent_dim, steps=2, mesh=parallel.batch_mesh())
    assert out.x_hat.sharding.spec == jax.sharding.PartitionSpec(parallel.BATCH)
    assert len(out.x_hat.addressable_shards) == 4


def test_reconstruct_refuses_a_mesh_without_batch_axis(problem):
    generator, measure, y, latent_dim = problem
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    with pytest.raises(TypeError, match="mesh"):
        gejax.reconstruct(generator, measure, y, key=jax.random.key(0), latent_dim=latent_dim,
                          mesh=mesh)


def test_put_splits_batch_leaves_and_replicates_the_rest():
    mesh = parallel.batch_mesh()
    tree = {"rows": np.arange(8.0), "w": np.ones((3,)), "key": jax.random.key(0)}
    out = parallel.put(tree, mesh, batch=8)
    assert out["rows"].sharding.spec == jax.sharding.PartitionSpec(parallel.BATCH)
    assert out["w"].sharding.is_fully_replicated
    np.testing.assert_array_equal(parallel.to_host(out["rows"]), tree["rows"])
    np.testing.assert_array_equal(jax.random.key_data(out["key"]),
                                  jax.random.key_data(tree["key"]))


def test_initialize_needs_all_three_flags_or_none():
    with pytest.raises(ValueError, match="together"):
        parallel.initialize("localhost:1234", None, None)
    with pytest.raises(ValueError, match="process_id"):
        parallel.initialize("localhost:1234", 2, 5)


def _train(workdir, tiny_began, steps, monkeypatch, devices, batch_size=8):
    mesh = None if devices == 1 else parallel.batch_mesh(jax.devices()[:devices])
    monkeypatch.setattr(parallel, "default_mesh", lambda: mesh)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).uniform(size=(40,) + tiny_began.image_shape)
    np.savez(workdir.parent / "images.npz", images=images.astype(np.float32))
    cfg = training.BeganTrainConfig(steps=steps, batch_size=batch_size, checkpoint_every=2,
                                    log_every=1)
    data_cfg = data.DataConfig(str(workdir.parent / "images.npz"), tiny_began.image_size, 1)
    return training.train_began(str(workdir), data_cfg, tiny_began, cfg)


def test_data_parallel_began_equals_one_device(tmp_path, tiny_began, monkeypatch):
    one = _train(tmp_path / "a" / "w", tiny_began, 3, monkeypatch, devices=1)
    four = _train(tmp_path / "b" / "w", tiny_began, 3, monkeypatch, devices=4)
    leaves = jax.tree_util.tree_leaves(four.g.params)
    assert leaves[0].sharding.is_fully_replicated and len(leaves[0].sharding.device_set) == 4
    for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four),
                    strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_checkpoint_from_four_devices_resumes_on_two(tmp_path, tiny_began, monkeypatch):
    straight = _train(tmp_path / "a" / "w", tiny_began, 4, monkeypatch, devices=1)
    _train(tmp_path / "b" / "w", tiny_began, 2, monkeypatch, devices=4)
    resumed = _train(tmp_path / "b" / "w", tiny_began, 4, monkeypatch, devices=2)
    assert checkpoint.manager(tmp_path / "b" / "w", "began").latest_step() == 4
    for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed),
                    strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_batch_not_divisible_by_devices_is_refused(tmp_path, tiny_began, monkeypatch):
    with pytest.raises(ValueError, match="multiple of the 4 devices"):
        _train(tmp_path / "w", tiny_began, 1, monkeypatch, devices=4, batch_size=6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _processes(n, module, *args):
    """`python -m module args` as n processes of one multi-host run (one CPU device each)."""
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, "-m", module, *map(str, args),
                               "--coordinator_address", f"localhost:{port}",
                               "--num_processes", str(n), "--process_id", str(i)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(n)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]


def _one_process(module, *args):
    out = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_two_hosts_train_and_evaluate_like_one(tmp_path):
    """jax.distributed on localhost: per-host data shards, gloo all-reduce, Orbax saves."""
    images = np.random.default_rng(0).uniform(size=(40, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "images.npz", images=images)
    tiny = ["--dataset", tmp_path / "images.npz", "--image_size", 8, "--filters", 4,
            "--latent_dim", 3, "--code_dim", 6, "--batch_size", 4, "--steps", 4,
            "--checkpoint_every", 2, "--log_every", 1]
    _one_process("train.began", "--workdir", tmp_path / "one", *tiny)
    _processes(2, "train.began", "--workdir", tmp_path / "two", *tiny)
    _, g_one, d_one = training.load_began(str(tmp_path / "one"))
    _, g_two, d_two = training.load_began(str(tmp_path / "two"))
    for a, b in zip(jax.tree_util.tree_leaves((g_one, d_one)),
                    jax.tree_util.tree_leaves((g_two, d_two)), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)

    solve = ["--workdir", tmp_path / "one", "--m", 6, "--methods", "ga,ge0", "--steps", 3,
             "--num_images", 3, "--grid_columns", 3]
    _one_process("evaluate.cs", *solve, "--out", tmp_path / "cs_one")
    _processes(2, "evaluate.cs", *solve, "--out", tmp_path / "cs_two")
    one = json.loads((tmp_path / "cs_one" / "results.json").read_text())
    two = json.loads((tmp_path / "cs_two" / "results.json").read_text())
    assert two["processes"] == 2 and two["devices"] == 2
    for method in ("ga", "ge0"):
        assert two["methods"][method]["mse"] == pytest.approx(one["methods"][method]["mse"],
                                                              rel=1e-4)
