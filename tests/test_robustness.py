"""What happens when things go wrong: bad input, killed runs, damaged checkpoints, and
whether the same command gives the same numbers twice."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gejax
from evaluate import cs
from gejax import checkpoint, data, metrics, models, operators, parallel, report, training
from gejax.training import monitor

ROOT = Path(__file__).resolve().parents[1]
KEY = jax.random.key(0)
IMG = jnp.zeros((2, 8, 8, 1))

# Library: every public function refuses a bad argument up front, naming it.
LIBRARY = {
    "noise sigma < 0": (lambda: operators.gaussian_noise(IMG, KEY, sigma=-1.0), ValueError,
                        "sigma"),
    "noise key is an int": (lambda: operators.gaussian_noise(IMG, 0), TypeError, "key"),
    "speckle sigma NaN": (lambda: operators.multiplicative_noise(IMG, KEY, sigma=float("nan")),
                          ValueError, "sigma"),
    "blur sigma 0": (lambda: operators.gaussian_blur(IMG, sigma=0.0), ValueError, "sigma"),
    "blur even kernel": (lambda: operators.gaussian_blur(IMG, kernel_size=4), ValueError, "odd"),
    "blur of a vector": (lambda: operators.gaussian_blur(jnp.zeros(5)), ValueError, "image"),
    "downsample factor 0": (lambda: operators.downsample(IMG, 0), ValueError, "factor"),
    "downsample factor float": (lambda: operators.downsample(IMG, 2.0), TypeError, "factor"),
    "downsample not dividing": (lambda: operators.downsample(IMG, 3), ValueError, "divide"),
    "upsample factor 0": (lambda: operators.bicubic_upsample(IMG, 0), ValueError, "factor"),
    "block mask too big": (lambda: operators.block_mask((8, 8, 1), size=9), ValueError, "block"),
    "block mask 2-D shape": (lambda: operators.block_mask((8, 8)), ValueError, "image_shape"),
    "line mask no strokes": (lambda: operators.line_mask(KEY, (8, 8, 1), num_strokes=0),
                             ValueError, "num_strokes"),
    "mask of wrong size": (lambda: operators.apply_mask(IMG, jnp.ones((4, 4, 1))), ValueError,
                           "mask"),
    "matrix m = 0": (lambda: operators.gaussian_matrix(KEY, 0, 64), ValueError, "m must"),
    "matrix for other images": (lambda: operators.gaussian_measure(jnp.ones((3, 10)), IMG),
                                ValueError, r"A must be \(m, 64\)"),
    "adjoint shape mismatch": (lambda: operators.gaussian_measure_adjoint(
        jnp.ones((3, 64)), jnp.ones((2, 4)), (8, 8, 1)), ValueError, "A must be"),
    "GA matrix 1-D": (lambda: gejax.ga_measure(jnp.ones(5)), ValueError, "matrix"),
    "GA matrix with NaN": (lambda: gejax.ga_measure(jnp.full((2, 4), jnp.nan)), ValueError,
                           "NaN"),
    "GE encoder not callable": (lambda: gejax.ge_measure("encoder"), TypeError, "encoder"),
    "metrics of two shapes": (lambda: metrics.psnr(IMG, IMG[:1]), ValueError, "one shape"),
    "unknown dataset": (lambda: data.load(data.DataConfig("cifar"), "train"), ValueError,
                        "unknown dataset"),
    "mesh without devices": (lambda: parallel.batch_mesh([]), ValueError, "device"),
    "train config batch 0": (lambda: training.BeganTrainConfig(batch_size=0).check(),
                             ValueError, "--batch_size"),
    "fake fraction > 1": (lambda: training.AETrainConfig(fake_fraction=1.5).check(),
                          ValueError, "fake_fraction"),
}


@pytest.mark.parametrize("case", sorted(LIBRARY))
def test_library_refuses_bad_input(case):
    call, error, match = LIBRARY[case]
    with pytest.raises(error, match=match):
        call()


# Commands: a user mistake exits 2 with one line on stderr and no traceback.


def _tiny_workdir(root: Path) -> Path:
    images = np.random.default_rng(0).uniform(size=(40, 8, 8, 1)).astype(np.float32)
    np.savez(root / "images.npz", images=images)
    w = root / "w"
    model = models.BeganConfig(image_size=8, channels=1, filters=4, latent_dim=3, code_dim=6)
    training.train_began(str(w), data.DataConfig(str(root / "images.npz"), 8, 1), model,
                         training.BeganTrainConfig(steps=2, batch_size=4, checkpoint_every=2,
                                                   log_every=1))
    return w


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A tiny trained workdir and damaged copies of it."""
    root = tmp_path_factory.mktemp("broken")
    w = _tiny_workdir(root)
    (root / "empty").mkdir()
    (root / "no_images").mkdir()
    (root / "no_images" / "notes.txt").write_text("not an image")
    shutil.copytree(w, root / "bad_json")
    (root / "bad_json" / "config.json").write_text("{oops")
    shutil.copytree(w, root / "other_config")
    config = json.loads((w / "config.json").read_text())
    config["began"]["filters"] = 5
    (root / "other_config" / "config.json").write_text(json.dumps(config))
    shutil.copytree(w, root / "damaged")  # the last G and the best G the monitor kept
    assert (root / "damaged" / monitor.BEST).is_dir()
    for f in (root / "damaged").glob("began*/2/params/**/d/*"):
        f.write_bytes(os.urandom(64))
    (root / "a_file").write_text("")
    return root


CLI = {
    "unknown dataset": ("train.began", ["--workdir", "{root}/n1", "--dataset", "cifar"],
                        "unknown dataset"),
    "folder without images": ("train.began", ["--workdir", "{root}/n2", "--dataset",
                                              "{root}/no_images"], "no image files"),
    "train steps 0": ("train.began", ["--workdir", "{root}/n3", "--steps", "0"],
                      "--steps must be >= 1"),
    "resume with other networks": ("train.began", ["--workdir", "{root}/w", "--filters", "8"],
                                   "cannot resume"),
    "missing workdir": ("evaluate.cs", ["--workdir", "{root}/nowhere"], "does not exist"),
    "empty workdir": ("evaluate.cs", ["--workdir", "{root}/empty"], "no 'began' config"),
    "corrupt config.json": ("evaluate.cs", ["--workdir", "{root}/bad_json"], "not valid JSON"),
    "checkpoint of another config": ("evaluate.cs", ["--workdir", "{root}/other_config",
                                                     "--m", "6"], "does not match"),
    # In a subprocess: TensorStore's callbacks after a failed read keep reporting for a
    # while, which in-process would leak warnings into later tests.
    "damaged checkpoint": ("evaluate.cs", ["--workdir", "{root}/damaged", "--m", "6"],
                           "cannot be read"),
    "m = 0": ("evaluate.cs", ["--workdir", "{root}/w", "--m", "0"], "m must be in [1, 64]"),
    "m > pixels": ("evaluate.cs", ["--workdir", "{root}/w", "--m", "65"], "m must be in"),
    "sweep with m = 0": ("evaluate.cs", ["--workdir", "{root}/w", "--m", "6", "--sweep", "4,0"],
                         "got 0"),
    "solver steps 0": ("evaluate.cs", ["--workdir", "{root}/w", "--steps", "0"],
                       "--steps must be >= 1"),
    "unwritable --out": ("evaluate.cs", ["--workdir", "{root}/w", "--m", "6", "--out",
                                         "{root}/a_file/out"], "cannot write to --out"),
    "unknown task": ("evaluate.restore", ["--task", "colorize"], "unknown task"),
    "unknown method": ("evaluate.cs", ["--methods", "ge2"], "unknown methods"),
    "autoencoder without BEGAN": ("train.ae", ["--workdir", "{root}/empty"],
                                  "no 'began' config"),
    "bad autoencoder name": ("train.ae", ["--workdir", "{root}/w", "--name", "my-ae",
                                          "--depth", "2"],
                             "name must be"),
    "half the multi-host flags": ("evaluate.cs", ["--num_processes", "2"], "together"),
}


@pytest.fixture(scope="module")
def cli_cwd(tmp_path_factory):
    """Where the refused commands run, to see what they leave behind."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def cli_runs(broken, cli_cwd):
    """Every command of CLI at once (they are independent; this keeps the suite short)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    few = ["--num_images", "2"]  # the tiny workdir has 4 test images
    procs = {case: subprocess.Popen(
        [sys.executable, "-m", module, *(a.format(root=broken) for a in args),
         *(few if module == "evaluate.cs" else [])], cwd=cli_cwd,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for case, (module, args, _) in CLI.items()}
    return {case: (p.wait(timeout=300), p.stderr.read()) for case, p in procs.items()}


@pytest.mark.parametrize("case", sorted(CLI))
def test_command_refuses_with_one_line(cli_runs, case):
    code, stderr = cli_runs[case]
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and CLI[case][2] in errors[0], stderr
    assert "Traceback" not in stderr
    if case == "damaged checkpoint":
        assert "move it aside" in errors[0]


def test_refused_commands_leave_no_output_folder(cli_runs, cli_cwd):
    assert not (cli_cwd / "results").exists(), list((cli_cwd / "results").iterdir())


# Interrupted and damaged runs.


def _train_cmd(workdir, data_file, steps):
    return [sys.executable, "-m", "train.began", "--workdir", str(workdir), "--dataset",
            str(data_file), "--image_size", "8", "--filters", "4", "--latent_dim", "3",
            "--code_dim", "6", "--batch_size", "4", "--steps", str(steps),
            "--checkpoint_every", "25", "--log_every", "25"]


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    images = np.random.default_rng(1).uniform(size=(40, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "images.npz", images=images)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    steps = 300
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed, tmp_path / "images.npz", steps), cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.isdigit() for p in (killed / "began").glob("*")):
            break  # the first checkpoint exists: the run is now saving and training
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)  # the OS releases its lock on the workdir
    proc.wait()
    latest = checkpoint.manager(killed, "began").latest_step()
    assert latest is not None and latest < steps

    again = subprocess.run(_train_cmd(killed, tmp_path / "images.npz", steps), cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming from step {latest}" in again.stdout
    straight = subprocess.run(_train_cmd(tmp_path / "straight", tmp_path / "images.npz", steps),
                              cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert straight.returncode == 0
    _, g_killed, d_killed = training.load_began(str(killed))
    _, g_straight, d_straight = training.load_began(str(tmp_path / "straight"))
    for a, b in zip(jax.tree_util.tree_leaves((g_killed, d_killed)),
                    jax.tree_util.tree_leaves((g_straight, d_straight)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    w = _tiny_workdir(tmp_path)
    # What Orbax leaves when killed mid-save: a temporary folder that was never renamed.
    partial = w / "began" / "10.orbax-checkpoint-tmp-1234567"
    (partial / "params").mkdir(parents=True)
    (partial / "params" / "garbage").write_bytes(os.urandom(32))
    model, g, _ = training.load_began(str(w))
    assert checkpoint.manager(w, "began").latest_step() == 2
    assert jax.tree_util.tree_leaves(g)[0].shape


def test_interrupted_evaluation_leaves_no_results_json(tmp_path):
    def figures(out):
        raise KeyboardInterrupt  # the user presses Ctrl-C while figures are drawn

    with pytest.raises(KeyboardInterrupt):
        report.write_outputs(tmp_path, {"methods": {}}, "table", figures)
    assert not (tmp_path / "results.json").exists()


# Reproducibility.


def _cs(workdir, out, seed):
    cs.COMMAND.call(["--workdir", workdir, "--m", "6", "--num_images", "3", "--steps", "4",
                     "--methods", "lasso,ga,ge0", "--out", out, "--seed", seed])
    results = json.loads((out / "results.json").read_text())
    return {name: {k: v for k, v in r.items() if k != "seconds"}
            for name, r in results["methods"].items()}, results


def test_same_seed_same_numbers_other_seed_other_numbers(broken, tmp_path):
    first, results = _cs(broken / "w", tmp_path / "a", seed=0)
    assert first == _cs(broken / "w", tmp_path / "b", seed=0)[0]
    assert first["ga"]["mse"] != _cs(broken / "w", tmp_path / "c", seed=1)[0]["ga"]["mse"]
    assert results["seed"] == 0 and results["solver"]["seed"] == 0
    assert {"jax", "flax", "optax", "gejax"} <= set(results["versions"])


def test_one_writer_per_workdir(tmp_path):
    """A second run on a busy workdir exits 2 in one line; the first finishes intact."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    w = tmp_path / "w"
    cmd = [sys.executable, "-m", "train.began", "--workdir", str(w), "--preset", "tiny",
           "--steps", "3000", "--checkpoint_every", "1000", "--log_every", "100"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    lock = w / checkpoint.LOCK_FILE
    deadline = time.time() + 240
    while time.time() < deadline and not (lock.exists() and "process" in lock.read_text()):
        time.sleep(0.05)
    assert "process" in lock.read_text(), "the first run never took the workdir's lock"
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert first.poll() is None, "the first run ended before the second started"
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "is busy" in errors[0] and "Traceback" not in second.stderr
    assert checkpoint.manager(w, "began").latest_step() == 3000
    training.load_began(str(w))


def test_the_writer_lock_is_per_workdir_and_released_on_exit(tmp_path):
    with checkpoint.exclusive(tmp_path / "a"):
        with pytest.raises(ValueError, match="is busy: process"):
            with checkpoint.exclusive(tmp_path / "a"):
                pass
        with checkpoint.exclusive(tmp_path / "b"):  # another workdir is free
            pass
    with checkpoint.exclusive(tmp_path / "a"):  # released
        pass
