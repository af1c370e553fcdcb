"""The commands end to end on a tiny 16x16 workdir: train.began, train.ae, evaluate.*."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from evaluate import cs, restore
from gejax import experiments, report, tasks
from gejax.experiments.solve import FAST_LEARNED
from gejax.reconstruct import ge_measure
from gejax.workdir import eval_images, load_networks
from train import ae, began
from train import init as train_init

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--filters", "4", "--latent_dim", "3", "--code_dim", "6", "--image_size", "16",
        "--batch_size", "4", "--checkpoint_every", "2", "--log_every", "1"]
SOLVER = ["--steps", "3", "--restarts", "2", "--num_images", "3", "--grid_columns", "3"]


def _cli(module, *args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _run(module, *args):
    module.COMMAND.call(list(args))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmd")
    rng = np.random.default_rng(0)
    np.savez(tmp / "tiny.npz", images=rng.uniform(size=(60, 16, 16, 1)).astype(np.float32))
    w = tmp / "w"
    first = _cli("train.began", "--workdir", w, "--dataset", tmp / "tiny.npz", "--steps", "2",
                 *TINY)
    assert first.returncode == 0, first.stderr
    again = _cli("train.began", "--workdir", w, "--steps", "4")
    assert again.returncode == 0, again.stderr
    assert "resuming from step 2" in again.stdout
    for name, m, corrupt in (("ae", 6, "none"), ("ae_m4", 4, "none"),
                             ("ae_denoise", 6, "denoise")):
        _run(ae, "--workdir", w, "--name", name, "--steps", 2, "--depth", 2, "--filters", 2,
             "--code_dim", m, "--batch_size", 4, "--log_every", 1, "--corrupt", corrupt)
    return w


def test_began_workdir_from_before_pull_away_resumes_as_plain_began(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", images=rng.uniform(size=(8, 16, 16, 1)).astype(np.float32))
    w = tmp_path / "w"
    _run(began, "--workdir", w, "--dataset", tmp_path / "tiny.npz", "--steps", 1,
         "--pull_away", 0.0, *TINY)
    config = json.loads((w / "config.json").read_text())
    del config["began_train"]["pull_away"]  # as written by gejax before the term existed
    (w / "config.json").write_text(json.dumps(config))
    _run(began, "--workdir", w, "--steps", 2)
    assert json.loads((w / "config.json").read_text())["began_train"]["pull_away"] == 0.0


def _check_schema(results, experiment, methods):
    assert results["experiment"] == experiment
    assert results["image_shape"] == [16, 16, 1] and results["num_images"] == 3
    assert set(methods) <= set(results["methods"])
    for r in results["methods"].values():
        for key in ("mse", "mse_std", "psnr", "ssim", "seconds"):
            assert isinstance(r[key], float), (key, r)
        assert 0 <= r["mse"] <= 1 and r["ssim"] <= 1
    assert "jax" in results["versions"] and results["seed"] == 0


def test_cs_writes_every_output(workdir, tmp_path):
    out = tmp_path / "cs"
    _run(cs, "--workdir", workdir, "--m", 6, "--out", out, "--fake_vs_real", *SOLVER)
    results = json.loads((out / "results.json").read_text())
    _check_schema(results, "cs", ["lasso", "lasso_m500", "ga", "ge0", "ge1"])
    assert results["m"] == 6 and results["methods"]["lasso_m500"]["m"] == 256
    assert results["methods"]["ga"]["m"] == 6
    assert results["fake_vs_real"]["ratio"] > 0
    assert 0 <= results["g_floor"]["mse"] <= 1
    assert (out / "figure4.png").stat().st_size > 1000
    assert "| ge1 |" in (out / "results.md").read_text()
    # Lasso recovers: below the MSE of the zero image at m = 6 (measured 0.17 against
    # 0.34), and far below that of the best constant image from all 256 measurements
    # (0.009 against 0.085). A Lasso that returns zeros, or the mean, fails.
    x = eval_images(load_networks(str(workdir)), 3)
    zero, constant = float(np.mean(x**2)), float(np.mean(np.var(x, axis=(1, 2, 3))))
    methods = results["methods"]
    assert methods["lasso"]["mse"] < 0.75 * zero, (methods["lasso"]["mse"], zero)
    assert methods["lasso_m500"]["mse"] < 0.3 * constant, (methods["lasso_m500"]["mse"],
                                                           constant)


def test_cs_with_measurement_noise_and_its_sweep(workdir, tmp_path):
    out = tmp_path / "noisy"
    _run(cs, "--workdir", workdir, "--m", 6, "--out", out, "--methods", "lasso,ga,ge1",
         "--noise_sigma", 0.1, "--sweep_noise", "0,0.5", *SOLVER)
    results = json.loads((out / "results.json").read_text())
    assert results["noise_sigma"] == 0.1
    sweep = results["noise_sweep"]
    assert set(sweep) == {"lasso", "ga", "ge1"} and sweep["ga"]["noise_sigma"] == [0.0, 0.5]
    # The sweep's noiseless point is the plain run's numbers; its noisy one differs.
    plain = tmp_path / "plain"
    _run(cs, "--workdir", workdir, "--m", 6, "--out", plain, "--methods", "lasso,ga,ge1",
         *SOLVER)
    plain_mse = json.loads((plain / "results.json").read_text())["methods"]["ga"]["mse"]
    assert sweep["ga"]["mse"][0] == plain_mse != sweep["ga"]["mse"][1]
    assert (out / "noise.png").stat().st_size > 1000
    assert "MSE vs measurement noise" in (out / "results.md").read_text()


def test_cs_reports_how_well_the_restart_spread_finds_the_error(workdir, tmp_path):
    out = tmp_path / "unsure"
    _run(cs, "--workdir", workdir, "--m", 6, "--out", out, "--methods", "lasso,ge1",
         "--uncertainty", *SOLVER)
    results = json.loads((out / "results.json").read_text())
    corr = results["methods"]["ge1"]["spread_error_corr"]
    assert -1 <= corr["pixels"] <= 1 and -1 <= corr["images"] <= 1
    assert "spread_error_corr" not in results["methods"]["lasso"]  # no restarts
    assert (out / "uncertainty.png").stat().st_size > 1000


def test_spread_error_correlation_by_hand():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 5, 5, 1))
    x_hat = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1)
    error = np.abs(x_hat - x)
    r = report.summarize(x_hat, x, 0.0, spread=2 * error)  # a spread that is the error
    assert r["spread_error_corr"]["pixels"] == pytest.approx(1.0)
    assert r["spread_error_corr"]["images"] == pytest.approx(1.0)
    assert report.summarize(x_hat, x, 0.0, spread=np.zeros_like(x))["spread_error_corr"] == {
        "pixels": None, "images": None}


def test_noise_is_seeded_and_of_the_asked_size():
    y = np.zeros((4000,), np.float32)
    key = jax.random.key(3)
    e = experiments.noisy(y, 0.1, key)
    np.testing.assert_array_equal(e, experiments.noisy(y, 0.1, key))
    assert abs(float(np.std(e)) - 0.1) < 0.005 and abs(float(np.mean(e))) < 0.01
    assert experiments.noisy(y, 0.0, key) is y


def test_restore_with_a_noise_level_and_its_sweep(workdir, tmp_path):
    out = tmp_path / "denoise"
    _run(restore, "--workdir", workdir, "--task", "denoise", "--sigma", 0.1, "--sweep_sigma",
         "0.1,0.3", "--out", out, *SOLVER)
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == {"sigma": 0.1}
    sweep = results["sweep_sigma"]
    assert sweep["bm3d"]["sigma"] == [0.1, 0.3]
    assert sweep["degraded"]["psnr"][0] > sweep["degraded"]["psnr"][1] + 5  # 3x the noise
    assert sweep["ge1"]["psnr"][0] == results["methods"]["ge1"]["psnr"]
    assert (out / "sweep_sigma.png").stat().st_size > 1000


def test_learned_start_is_trained_and_used_by_ge1_only(workdir, tmp_path):
    _run(train_init, "--workdir", workdir, "--steps", 2, "--batch_size", 4, "--log_every", 1)
    nets = load_networks(str(workdir))
    assert set(nets.inits) == {"ge1"}  # the learned start of "ae", not of ae_m4
    assert nets.inits["ge1"](np.zeros((2, 6), np.float32)).shape == (2, 3)
    _run(cs, "--workdir", workdir, "--m", 6, "--out", tmp_path, "--methods", "ga,ge0,ge1",
         "--init", "learned", "--tol", 0.5, *SOLVER)
    methods = json.loads((tmp_path / "results.json").read_text())["methods"]
    assert methods["ge1"]["init"] == "learned"
    assert methods["ga"]["init"] == methods["ge0"]["init"] == "random"
    assert methods["ge1"]["restarts"] == 2  # --restarts adds random starts to the learned one
    assert "| learned |" in (tmp_path / "results.md").read_text()
    # Without --restarts, the learned start alone; random starts stay the paper's two. The
    # learned start is the default where there is one, and random is not an error without.
    measure = ge_measure(nets.encoders["ge1"])
    y = np.asarray(jax.vmap(measure)(eval_images(nets, 2)))
    for settings, learned, used in (({}, nets.inits["ge1"], ("learned", 1)),
                                    ({}, None, ("random", 2)),
                                    ({"init": "random"}, nets.inits["ge1"], ("random", 2))):
        _, _, run = experiments.solve(nets, measure, y, experiments.SolverConfig(
            steps=2, **settings), 1e-3, jax.random.key(0), "GE1", learned=learned)
        assert (run["init"], run["restarts"], run["steps"]) == (*used, 2)
    # Without --steps: the paper's 500 per random start, and its 2 x 500 restart-steps in
    # one run for a learned start alone; whitened Adam and an early stop from a learned start.
    learned, default = nets.inits["ge1"], experiments.SolverConfig()
    fast = default.options(1e-3, learned)
    assert (fast.steps, fast.num_restarts, fast.init) == (1000, 1, learned)
    assert (fast.tol, fast.whiten) == FAST_LEARNED["cs"] and fast.tol > 0
    restoring = default.options(1e-3, learned, "restore")
    assert (restoring.tol, restoring.whiten) == FAST_LEARNED["restore"] and restoring.tol > 0
    rand = default.options(1.0)  # random starts run every step, as the paper's
    assert (rand.steps, rand.num_restarts, rand.tol, rand.whiten, rand.init) == (
        500, 2, 0.0, False, None)
    assert experiments.SolverConfig(restarts=2).options(1e-3, learned).steps == 500
    # The paper's protocol: 2 random starts x 500 steps, every step, whatever is learned.
    paper = experiments.SolverConfig(protocol="paper").options(1e-3, learned)
    assert (paper.steps, paper.num_restarts, paper.tol, paper.whiten, paper.init) == (
        500, 2, 0.0, False, None)
    # A flag overrides the protocol's setting.
    assert not experiments.SolverConfig(whiten=False).options(1e-3, learned).whiten
    assert experiments.SolverConfig(tol=0.0).options(1e-3, learned).tol == 0.0
    with pytest.raises(ValueError, match="--protocol paper"):
        experiments.check_solver(experiments.SolverConfig(protocol="paper", init="learned"))


def test_evaluation_in_batches_equals_one_batch(workdir):
    nets = load_networks(str(workdir))
    x = eval_images(nets, 5)
    solver = experiments.SolverConfig(steps=4, batch_size=64)
    one, one_images = experiments.run_cs(nets, x, m=6, solver=solver, methods=("ga", "ge1"),
                                        log=lambda s: None)
    small = experiments.SolverConfig(steps=4, batch_size=2)
    parts, part_images = experiments.run_cs(nets, x, m=6, solver=small, methods=("ga", "ge1"),
                                           log=lambda s: None)
    for name in ("ga", "ge1"):
        np.testing.assert_allclose(part_images[name], one_images[name], atol=1e-5)
        assert parts[name]["mse"] == pytest.approx(one[name]["mse"], rel=1e-4)
    floors = [experiments.g_floor(nets, x, s)["mse"] for s in (solver, small)]
    assert floors[1] == pytest.approx(floors[0], rel=1e-4)


def test_cs_sweep_over_m(workdir, tmp_path):
    _run(cs, "--workdir", workdir, "--m", 6, "--out", tmp_path, "--methods", "ga",
         "--sweep", "4,6,8", *SOLVER)
    sweep = json.loads((tmp_path / "results.json").read_text())["sweep"]
    assert sweep["ga"]["m"] == [4, 6, 8] and sweep["lasso"]["m"] == [4, 6, 8]
    assert sweep["ge1"]["m"] == [4, 6]  # GE1 encoders exist for m = 4 (ae_m4) and 6 (ae)
    assert (tmp_path / "figure6.png").exists() and (tmp_path / "figure5.png").exists()


@pytest.mark.parametrize("task,mask,baseline", [("denoise", "block", "bm3d"),
                                                ("deblur", "block", "wiener"),
                                                ("superres", "block", "bicubic"),
                                                ("inpaint", "lines", "biharmonic")])
def test_restore_writes_every_output(workdir, tmp_path, task, mask, baseline):
    _run(restore, "--workdir", workdir, "--task", task, "--mask", mask, "--out", tmp_path,
         *SOLVER)
    results = json.loads((tmp_path / "results.json").read_text())
    _check_schema(results, task, ["degraded", baseline, "ge0", "ge1"])
    assert 0 <= results["g_floor"]["mse"] <= 1
    # Baselines that do their job on these noise images, against the degraded input
    # (measured: bm3d 0.077 against 0.089, biharmonic 0.023 against 0.066); the bicubic
    # baseline is x_dagger itself. A baseline that returns zeros (0.34) fails.
    methods = results["methods"]
    if baseline in ("bm3d", "biharmonic"):
        bound = {"bm3d": 1.0, "biharmonic": 0.6}[baseline] * methods["degraded"]["mse"]
        assert methods[baseline]["mse"] < bound, (methods[baseline]["mse"], bound)
    if baseline == "bicubic":
        assert methods["bicubic"]["mse"] == methods["degraded"]["mse"]
    assert "G's floor" in (tmp_path / "results.md").read_text()
    if task == "deblur":
        assert "blind_richardson_lucy" in results["methods"]
    # The workdir's denoising encoder serves denoising only.
    if task == "denoise":
        assert results["methods"]["ge1_task"]["encoder"] == "ae_denoise"
    else:
        assert "ge1_task" not in results["methods"]
    assert list(tmp_path.glob("figure*.png"))


@pytest.mark.parametrize("task", ["inpaint_block", "inpaint_lines"])
def test_inpainting_keeps_the_observed_pixels_only_when_asked(workdir, task):
    nets = load_networks(str(workdir))
    x = eval_images(nets, 2)
    solver = experiments.SolverConfig(steps=2, restarts=1)
    kept, kept_images, params = experiments.run_restore(nets, x, task=task, solver=solver,
                                                       log=lambda *a: None)
    paper, paper_images, _ = experiments.run_restore(nets, x, task=task, solver=solver,
                                                    keep_observed=False, log=lambda *a: None)
    # The tiny images are uniform noise, so x_dagger = M x is 0 exactly under the mask.
    observed = params["degraded_input"] != 0
    assert params["keep_observed"] and observed.any()
    # Lines: each image its own mask (evaluate.restore draws one per image); block: one hole.
    assert np.array_equal(observed[0], observed[1]) == (task == "inpaint_block")
    for name in ("ge0", "ge1"):
        kept_x, g_x = kept_images[name], paper_images[name]
        np.testing.assert_allclose(kept_x[observed], x[observed], atol=1e-6)
        assert not np.allclose(g_x[observed], x[observed], atol=1e-3)
        np.testing.assert_allclose(kept_x[~observed], g_x[~observed])
    assert kept["biharmonic"]["mse"] == paper["biharmonic"]["mse"]


def test_deblur_preconditions_what_ge_encodes_and_nothing_else(workdir):
    nets = load_networks(str(workdir))
    x = eval_images(nets, 2)
    solver = experiments.SolverConfig(steps=2, restarts=1)
    (plain, plain_images, plain_params), (pre, pre_images, pre_params) = (
        experiments.run_restore(nets, x, task=tasks.get("deblur", precondition=p),
                                solver=solver, log=lambda *a: None) for p in (0.0, 1.0))
    assert (plain_params["precondition"], pre_params["precondition"]) == (0.0, 1.0)
    np.testing.assert_array_equal(plain_params["degraded_input"], pre_params["degraded_input"])
    for name in ("degraded", "wiener", "blind_richardson_lucy"):
        np.testing.assert_array_equal(plain_images[name], pre_images[name])
    for name in ("ge0", "ge1"):
        assert not np.allclose(plain_images[name], pre_images[name], atol=1e-4), name


def test_task_encoders_stay_out_of_compressed_sensing(workdir):
    nets = load_networks(str(workdir))
    assert sorted(nets.encoders) == ["ge0", "ge1", "ge1_m4"]
    assert list(nets.task_encoders) == ["denoise"]


@pytest.mark.parametrize("module,args,message", [
    ("evaluate.cs", ["--workdir", "/nonexistent"], "does not exist"),
    ("evaluate.restore", ["--task", "colorize"], "unknown task"),
    ("train.ae", ["--workdir", "/nonexistent/w"], "no 'began' config"),
    ("train.init", ["--workdir", "/nonexistent/w"], "no autoencoder 'ae'"),
    ("evaluate.cs", ["--init", "warm"], "--init must be"),
    ("evaluate.cs", ["--tol", "-1"], "--tol must be"),
    ("evaluate.restore", ["--task", "denoise", "--batch_size", "0"], "--batch_size must be"),
    ("evaluate.restore", ["--task", "denoise", "--sigma", "-1"], "--sigma must be"),
    ("evaluate.restore", ["--task", "superres", "--factor", "3"], "--factor 3 must divide"),
    ("evaluate.restore", ["--task", "deblur", "--sweep_sigma", "0.1"], "applies to --task denoise"),
    ("evaluate.cs", ["--noise_sigma", "-0.5"], "--noise_sigma must be"),
])
def test_user_mistakes_exit_with_one_line(module, args, message):
    done = _cli(module, *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not Path("/nonexistent").exists()  # a refused command makes no workdir


ENTRY_POINTS = {"train.began": began, "train.ae": ae, "train.init": train_init,
                "evaluate.cs": cs, "evaluate.restore": restore}
# What each command requires, and one of its flags with a type.
REQUIRED = {"train.began": ["--workdir", "{w}"], "train.ae": ["--workdir", "{w}"],
            "train.init": ["--workdir", "{w}"], "evaluate.cs": [],
            "evaluate.restore": ["--task", "denoise"]}
TYPED_FLAG = {"train.began": "--steps", "train.ae": "--steps", "train.init": "--steps",
              "evaluate.cs": "--m", "evaluate.restore": "--num_images"}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_has_help_and_refuses_unknown_flags_and_bad_values(name, workdir,
                                                                             capsys):
    command = ENTRY_POINTS[name].COMMAND
    with pytest.raises(SystemExit) as done:
        command.call(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert f"python -m {name}" in shown and TYPED_FLAG[name] in shown and "--debug" in shown
    for wrong in (["--bogus", "1"], [TYPED_FLAG[name], "abc"]):
        with pytest.raises(SystemExit) as done:
            command.call([a.format(w=workdir) for a in REQUIRED[name]] + wrong)
        assert done.value.code == 2, wrong
        assert wrong[0] in capsys.readouterr().err


def test_deviation_rows_tune_mu_on_held_back_train_images_once(workdir, tmp_path):
    """ga_dev and ge1_dev: mu and basis chosen on the train images BEGAN held back, saved in
    the workdir (chosen again only under other solver settings), and reported."""
    (Path(workdir) / "deviation.json").unlink(missing_ok=True)
    args = ["--workdir", workdir, "--m", 6, "--methods", "ga,ga_dev,ge1,ge1_dev", *SOLVER]
    _run(cs, *args, "--out", tmp_path / "a")
    saved = json.loads((Path(workdir) / "deviation.json").read_text())
    assert set(saved) == {"cs_m6/ga", "cs_m6/ge1"}
    for record in saved.values():
        assert record["images"].startswith("train, held back")
        grid = record["grid"]
        assert len(grid) == 1 + 2 * 6 and grid[0][:2] == [None, None]
        mu, basis, best, se = min(grid, key=lambda row: row[2])
        won = grid[0][2] - best > 2 * se  # significantly below no deviation
        assert [record["mu"], record["basis"]] == ([mu, basis] if won else [None, None])
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["deviation"]["ga_dev"] == saved["cs_m6/ga"]
    for name, method in (("ga_dev", "ga"), ("ge1_dev", "ge1")):
        row, mu = results["methods"][name], saved[f"cs_m6/{method}"]["mu"]
        assert row["mu"] == mu and (mu is None) == (row["mse"] == results["methods"][method]["mse"])
    # A second run reads the choice; other solver settings choose again.
    (Path(workdir) / "deviation.json").write_text(json.dumps(
        {k: {**v, "mu": 7.0, "basis": "haar"} for k, v in saved.items()}))
    _run(cs, *args, "--out", tmp_path / "b")
    again = json.loads((tmp_path / "b" / "results.json").read_text())["methods"]
    assert again["ga_dev"]["mu"] == 7.0 and again["ga_dev"]["basis"] == "haar"
    _run(cs, *args, "--steps", 4, "--out", tmp_path / "c")
    assert json.loads((Path(workdir) / "deviation.json").read_text())["cs_m6/ga"]["mu"] != 7.0


def test_restore_reports_ge1_with_a_deviation(workdir, tmp_path):
    _run(restore, "--workdir", workdir, "--task", "inpaint", "--out", tmp_path, *SOLVER)
    results = json.loads((tmp_path / "results.json").read_text())
    record = results["deviation"]
    assert "ge1_dev" in results["methods"] and record["images"].startswith("train")
    assert results["methods"]["ge1_dev"].get("mu") == record["mu"]
    saved = json.loads((Path(workdir) / "deviation.json").read_text())
    assert saved["inpaint_block/ge1"] == record
