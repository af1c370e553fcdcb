"""train.all end to end on the tiny preset (runs, resumes after kill -9, keeps its budget),
the training budget of the loop (`stop`), and the best G that the floor monitor keeps."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from gejax import checkpoint, data, models, recipe, training
from gejax.training import monitor, presets
from gejax.workdir import load_networks
from train import all as train_all

ROOT = Path(__file__).resolve().parents[1]
MODEL = models.BeganConfig(image_size=8, channels=1, filters=4, latent_dim=3, code_dim=6)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise") / "noise.npz"
    images = np.random.default_rng(0).uniform(size=(40, 8, 8, 1)).astype(np.float32)
    np.savez(path, images=images)
    return data.DataConfig(str(path), image_size=8, channels=1)


def _cfg(steps, **kw):
    return training.BeganTrainConfig(**{"steps": steps, "batch_size": 4, "checkpoint_every": 2,
                                        "log_every": 1, "monitor_steps": 0, **kw})


def test_a_stopped_run_keeps_its_last_step_and_resumes_as_if_never_stopped(tmp_path, noise):
    asked = []

    def stop():  # asked before steps 2, 3, 4: stop at 3, which no checkpoint_every keeps
        asked.append(1)
        return len(asked) == 3

    stopped = training.train_began(str(tmp_path / "a"), noise, MODEL, _cfg(6), stop=stop)
    assert int(stopped.g.step) == 3
    assert checkpoint.restore(tmp_path / "a", "began", stopped)[1] == 3
    ledger = training.seconds_ledger(str(tmp_path / "a"))["began"]
    assert [r[0] for r in ledger] == [2, 3] and 0 < ledger[0][1] <= ledger[1][1]
    resumed = training.train_began(str(tmp_path / "a"), noise, MODEL, _cfg(6))
    straight = training.train_began(str(tmp_path / "b"), noise, MODEL, _cfg(6))
    for a, b in zip(_leaves(straight), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    # The seconds go on from the stopped run's, not from 0.
    assert training.trained_seconds(str(tmp_path / "a"), "began") > ledger[1][1]


def test_a_run_that_never_trained_takes_one_step_whatever_its_budget(tmp_path, noise):
    state = training.train_began(str(tmp_path), noise, MODEL, _cfg(6), stop=lambda: True)
    assert int(state.g.step) == 1
    training.load_began(str(tmp_path))  # a network to load


@pytest.mark.parametrize("new,best,want", [
    ([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5], True),     # lower on every image
    ([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.1, 3.9], False),    # within the noise
    ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], False),    # the same
    ([0.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], False),    # one image: not significant
])
def test_a_later_g_is_better_only_beyond_twice_the_paired_standard_error(new, best, want):
    assert monitor.better(np.array(new), np.array(best)) is want


def test_the_best_g_is_kept_and_loaded_not_the_last(tmp_path, noise, monkeypatch):
    """Floors 0.5, 0.3, 0.4 (every image) at steps 2, 4, 6: G of step 4 is loaded."""
    floors = iter([0.5, 0.3, 0.4])

    def fake_floor(g_params, model, held, cfg):
        return np.full(len(held), next(floors)) + np.linspace(0, 1e-3, len(held))

    monkeypatch.setattr(monitor, "monitored_floor", fake_floor)
    cfg = _cfg(6, monitor_steps=3, monitor_every=2, monitor_images=4)
    training.train_began(str(tmp_path), noise, MODEL, cfg)
    history = training.read_history(str(tmp_path))
    assert [r["best"] for r in history] == [2, 4, 4]
    _, g, d = training.load_began(str(tmp_path))
    # Checkpoints 4 and 6 are kept: the loaded G and D are step 4's, not step 6's.
    target = jax.eval_shape(lambda: training.began._began_params(training.began_init(MODEL, cfg)))
    with checkpoint.manager(tmp_path, "began") as mngr:
        assert mngr.all_steps() == [4, 6]
    step4 = _restore_params(tmp_path, 4, target)
    step6 = _restore_params(tmp_path, 6, target)
    for a, b in zip(_leaves({"g": g, "d": d}), _leaves(step4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(step4), _leaves(step6),
                                                         strict=True))


def _restore_params(workdir, step, target):
    import orbax.checkpoint as ocp

    with checkpoint.manager(workdir, "began") as mngr:
        return mngr.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(target)))["params"]


def test_a_resumed_monitor_drops_a_best_kept_past_its_step(tmp_path, noise, monkeypatch):
    floors = iter([0.5, 0.3, 0.2])
    monkeypatch.setattr(monitor, "monitored_floor",
                        lambda g, model, held, cfg: np.full(len(held), next(floors))
                        + np.linspace(0, 1e-3, len(held)))
    cfg = _cfg(4, monitor_steps=3, monitor_every=2, monitor_images=4)
    training.train_began(str(tmp_path), noise, MODEL, cfg)  # best: step 4
    # As if killed after step 2's checkpoint: history and checkpoints past it are gone
    # from the run's point of view, and the best of step 4 with them.
    history = training.read_history(str(tmp_path))
    (tmp_path / training.FLOOR_HISTORY).write_text(json.dumps(history[:1]))
    checkpoint.drop_after(tmp_path, "began", 2)
    training.train_began(str(tmp_path), noise, MODEL, cfg)
    assert [r["best"] for r in training.read_history(str(tmp_path))] == [2, 4]
    with checkpoint.manager(tmp_path, monitor.BEST) as mngr:
        assert mngr.all_steps() == [4]


def test_grey32_is_mnist32_with_a_larger_latent_and_monitor():
    a, b = presets.grey32(), presets.mnist32()
    assert a.model == models.BeganConfig(**{**vars(b.model), "latent_dim": 128})
    assert a.train == training.BeganTrainConfig(**{**vars(b.train), "monitor_images": 256})
    assert recipe.AllRun(workdir="w").preset == "grey32"


def test_stage_ends_split_the_budget_and_leave_the_check_its_share():
    ends = [recipe.stage_end(s, 100.0) for s in recipe.SHARES]
    assert ends == sorted(ends) and 90 <= ends[-1] < 100


def _all_cli(workdir, minutes):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-m", "train.all", "--workdir", str(workdir),
                             "--preset", "tiny", "--minutes", str(minutes),
                             "--check_images", "4"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_train_all_resumes_after_kill_9_and_keeps_its_budget(tmp_path, capsys):
    minutes, w = 1.5, tmp_path / "w"
    proc = _all_cli(w, minutes)
    deadline = time.monotonic() + 300
    # Kill it in the autoencoder's stage, once that has a checkpoint to resume from.
    # (Orbax finishes a save in the background: its folder is named by the step once done.)
    while not ((w / "ae").is_dir() and any(p.name.isdigit() for p in (w / "ae").iterdir())):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads((w / recipe.ALL_FILE).read_text())["done"]
    assert list(done) == ["began"]
    train_all.COMMAND.call(["--workdir", w, "--preset", "tiny", "--minutes", minutes,
                            "--check_images", 4])
    out = capsys.readouterr().out
    assert "BEGAN (G and D): done" in out and "resuming from step" in out
    assert "What to expect" in out and "GE1 / GA" in out
    record = json.loads((w / recipe.ALL_FILE).read_text())
    assert list(record["done"]) == list(recipe.SHARES)
    # The stages stop on the clock; the closing check is estimated, not stopped, so on a
    # loaded machine (a suite running beside other work) it can take longer than its 5%.
    assert 0.9 * 60 * minutes <= record["seconds"] <= 1.25 * 60 * minutes, record
    # Each stage's config says the steps it reached, and the networks load with them.
    config = checkpoint.read_config(w)
    for stage, section in (("began", "began_train"), ("ae", "ae_train"),
                           ("init_ae", "init_ae_train")):
        assert config[section]["steps"] == record["done"][stage]["steps"] >= 1
    nets = load_networks(str(w))
    assert "ge1" in nets.inits
    assert np.isfinite(record["expect"]["ge1_over_ga"])
    # A finished run, rerun, trains nothing and prints the same figures.
    ledger = training.seconds_ledger(str(w))
    train_all.COMMAND.call(["--workdir", w, "--preset", "tiny", "--minutes", minutes])
    assert training.seconds_ledger(str(w)) == ledger
    assert "GE1 / GA" in capsys.readouterr().out
