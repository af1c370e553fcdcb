"""A user's own images, measurements and folders: the commands take them, a workdir
survives relative paths, typos and a second workdir, and a damaged file is found before
the first step."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import gejax
from evaluate import cs, restore
from gejax import data, inputs, models
from train import ae, began, init

TINY = ["--preset", "tiny", "--steps", 2, "--batch_size", 4, "--checkpoint_every", 2]
FEW = ["--steps", 2, "--num_images", 2, "--grid_columns", 2]


def _run(module, *args):
    module.COMMAND.call([str(a) for a in args])


def _pngs(folder: Path, n: int, size: int, mode: str = "L") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size, size) if mode == "L" else (size, size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
            folder / f"im{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder of 8x8 images, and a workdir trained on it through a relative path."""
    root = tmp_path_factory.mktemp("own")
    _pngs(root / "imgs", 40, 8)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        _run(began, "--workdir", "w", "--dataset", "imgs", *TINY)
    finally:
        os.chdir(cwd)
    return root


def test_a_relative_dataset_is_found_from_another_directory(project, tmp_path, monkeypatch):
    stored = json.loads((project / "w" / "config.json").read_text())["data"]["name"]
    assert stored == str(project / "imgs")  # absolute
    monkeypatch.chdir(tmp_path)
    _run(ae, "--workdir", project / "w", "--steps", 2, "--batch_size", 4, "--log_every", 1)
    _run(init, "--workdir", project / "w", "--steps", 2, "--batch_size", 4)


def test_a_workdir_stored_with_a_relative_path_still_resumes(project, tmp_path, monkeypatch):
    old = tmp_path / "old"
    (old / "w").mkdir(parents=True)
    (old / "imgs").symlink_to(project / "imgs")
    config = json.loads((project / "w" / "config.json").read_text())
    config["data"]["name"] = "imgs"  # as written before paths were made absolute
    (old / "w" / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    assert data.locate("imgs", near=old / "w") == str(old / "imgs")


def test_a_mistyped_dataset_leaves_nothing_and_the_corrected_command_runs(tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    _pngs(tmp_path / "imgs", 20, 8)
    with pytest.raises(ValueError, match="unknown dataset"):
        _run(began, "--workdir", "w", "--dataset", "imsg", *TINY)
    assert not (tmp_path / "w").exists()
    _run(began, "--workdir", "w", "--dataset", "imgs", *TINY)
    assert (tmp_path / "w" / "began").is_dir()


def test_another_dataset_on_a_trained_workdir_is_refused(project, tmp_path):
    _pngs(tmp_path / "other", 20, 8)
    with pytest.raises(ValueError, match="trains on --dataset .* use a new --workdir"):
        _run(began, "--workdir", project / "w", "--dataset", tmp_path / "other", "--steps", 4)
    _run(began, "--workdir", project / "w", "--dataset", project / "imgs", "--steps", 2)


def test_damaged_files_are_named_before_the_first_step(tmp_path, capsys):
    folder = _pngs(tmp_path / "imgs", 30, 8)
    (folder / "im004.png").write_bytes(b"not a png")
    (folder / "im017.png").write_bytes((folder / "im016.png").read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=r"2 of the 30 .*im004\.png.*im017\.png.*--skip_damaged"):
        _run(began, "--workdir", tmp_path / "w", "--dataset", folder, *TINY)
    assert not (tmp_path / "w").exists()
    _run(began, "--workdir", tmp_path / "w", "--dataset", folder, "--skip_damaged", *TINY)
    warned = [line for line in capsys.readouterr().out.splitlines() if "left out" in line]
    assert len(warned) == 1 and "2 damaged" in warned[0]
    stored = data.DataConfig(**json.loads((tmp_path / "w" / "config.json").read_text())["data"])
    assert stored.skip_damaged and len(data.source(stored, "train")) == 25  # 28 files, 90%
    _run(began, "--workdir", tmp_path / "w", "--steps", 4)  # resumes with the same files


def test_read_refuses_another_shape_unless_asked_and_says_each_conversion(tmp_path):
    _pngs(tmp_path / "grey", 3, 6)
    _pngs(tmp_path / "rgb", 2, 10, mode="RGB")
    with pytest.raises(ValueError, match=r"im000 is 6x6 grey, the networks take 8x8 grey"):
        inputs.read(str(tmp_path / "grey"), (8, 8, 1))
    said = []
    x, names = inputs.read(str(tmp_path / "grey"), (8, 8, 1), convert="pad", log=said.append)
    assert x.shape == (3, 8, 8, 1) and names == ["im000", "im001", "im002"]
    assert np.all(x[:, 0] == 0) and said == [f"{tmp_path / 'grey'}: 6x6 images zero-padded to 8x8"]
    said.clear()
    x, _ = inputs.read(str(tmp_path / "rgb" / "im001.png"), (8, 8, 1), convert="resize",
                       log=said.append)
    assert x.shape == (1, 8, 8, 1) and len(said) == 2  # the colour and the size, a line each
    with pytest.raises(ValueError, match="--convert must be"):
        inputs.read(str(tmp_path / "grey"), (8, 8, 1), convert="stretch")


def test_written_answers_read_back(tmp_path):
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    inputs.write_images(tmp_path, x, ["a", "b"])
    back, names = inputs.read(str(tmp_path), (8, 8, 1))
    assert names == ["a", "b"] and np.abs(back - x).max() <= 0.5 / 255 + 1e-6


def test_an_image_of_another_shape_through_the_library_names_both(tiny_began):
    params = models.Discriminator(tiny_began).init(jax.random.key(0),
                                                   jnp.zeros(tiny_began.image_shape))
    measure = gejax.ge_measure(models.began_encoder_fn(params, tiny_began))
    for shape in ((6, 6, 1), (8, 8, 3)):
        with pytest.raises(ValueError, match=rf"\(8, 8, 1\), got \({shape[0]}, {shape[1]}"):
            jax.vmap(measure)(jnp.zeros((2, *shape)))


@pytest.fixture(scope="module")
def trained(project, tmp_path_factory):
    """The project's workdir with its autoencoder and learned start, and a second workdir
    without them."""
    _run(ae, "--workdir", project / "w", "--steps", 2, "--batch_size", 4, "--log_every", 1)
    _run(init, "--workdir", project / "w", "--steps", 2, "--batch_size", 4)
    bare = tmp_path_factory.mktemp("bare") / "w"
    _run(began, "--workdir", bare, "--dataset", project / "imgs", *TINY)
    return project / "w", bare


def test_two_workdirs_keep_their_own_results(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for w in trained:
        _run(cs, "--workdir", w, "--m", 6, *FEW)
    for w in trained:
        results = json.loads((w / "results" / "cs_m6" / "results.json").read_text())
        assert results["workdir"] == str(w)
    assert not (tmp_path / "results").exists()


def test_a_method_or_start_that_cannot_run_is_an_error(trained, tmp_path):
    full, bare = trained
    with pytest.raises(ValueError, match="ge1 needs an encoder with m=6"):
        _run(cs, "--workdir", bare, "--m", 6, "--methods", "ga,ge1", "--out", tmp_path, *FEW)
    with pytest.raises(ValueError, match="--init learned: .* no learned start"):
        _run(restore, "--task", "denoise", "--workdir", bare, "--init", "learned", "--out",
             tmp_path, *FEW)


def test_own_images_are_scored_and_own_degraded_images_restored(trained, tmp_path):
    full, _ = trained
    own = _pngs(tmp_path / "mine", 3, 6)
    _run(cs, "--workdir", full, "--m", 32, "--images", own, "--convert", "pad",  # GE1's m
         "--out", tmp_path / "cs", *FEW)
    results = json.loads((tmp_path / "cs" / "results.json").read_text())
    assert results["dataset"] == str(own) and results["split"] == "own"
    assert results["num_images"] == 2 and "ge1" in results["methods"]

    noisy = _pngs(tmp_path / "noisy", 3, 8)
    _run(restore, "--task", "denoise", "--workdir", full, "--degraded", noisy, "--out",
         tmp_path / "dn", "--restarts", 2, *FEW)
    results = json.loads((tmp_path / "dn" / "results.json").read_text())
    assert set(results["methods"]) == {"bm3d", "ge0", "ge1"}
    assert "mse" not in results["methods"]["ge1"]  # nothing to score against
    for method in ("degraded", "bm3d", "ge0", "ge1"):
        assert (tmp_path / "dn" / method / "names.txt").read_text().split() == ["im000", "im001"]
        assert (tmp_path / "dn" / method / "im001.png").exists()
    assert (tmp_path / "dn" / "ge1" / "im001_spread.png").exists()

    low = _pngs(tmp_path / "low", 2, 2)  # superres by 4 of 8x8 images: 2x2 inputs
    _run(restore, "--task", "superres", "--workdir", full, "--degraded", low, "--out",
         tmp_path / "sr", *FEW)
    assert (tmp_path / "sr" / "ge1" / "im001.png").exists()
    with pytest.raises(ValueError, match="two different inputs"):
        _run(restore, "--task", "denoise", "--workdir", full, "--degraded", noisy, "--images",
             own, *FEW)
    with pytest.raises(ValueError, match="--masks"):
        _run(restore, "--task", "inpaint", "--workdir", full, "--degraded", noisy, *FEW)


def test_own_measurements_reconstruct_with_lasso_and_ga(trained, tmp_path):
    full, _ = trained
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 8, 8, 1)).astype(np.float32)
    a = rng.normal(size=(10, 64)).astype(np.float32)
    np.savez(tmp_path / "m.npz", y=x.reshape(2, -1) @ a.T, A=a, x=x)
    _run(cs, "--workdir", full, "--measurements", tmp_path / "m.npz", "--out", tmp_path / "o",
         *FEW)
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["m"] == 10 and set(results["methods"]) == {"lasso", "ga"}
    assert 0 < results["methods"]["ga"]["mse"] < 1
    assert (tmp_path / "o" / "ga" / "00001.png").exists()
    with pytest.raises(ValueError, match="not ge1"):
        _run(cs, "--workdir", full, "--measurements", tmp_path / "m.npz", "--methods", "ge1")
    np.savez(tmp_path / "bad.npz", y=np.ones((2, 10)), A=np.ones((10, 50)))
    with pytest.raises(ValueError, match=r"A must be \(m, 64\)"):
        _run(cs, "--workdir", full, "--measurements", tmp_path / "bad.npz")


def test_the_shipped_default_restores_your_files_and_refuses_another_size(tmp_path):
    mine = _pngs(tmp_path / "mine", 2, 28)  # MNIST's own size; the default takes 32x32
    with pytest.raises(ValueError, match=r"im000 is 28x28 grey, the networks take 32x32 grey"
                                         r".*--convert"):
        _run(restore, "--task", "denoise", "--degraded", mine, "--out", tmp_path / "o", *FEW)
    assert not (tmp_path / "o").exists()
    _run(restore, "--task", "denoise", "--degraded", mine, "--convert", "pad", "--out",
         tmp_path / "o", *FEW)
    for method in ("degraded", "bm3d", "ge0", "ge1"):
        with Image.open(tmp_path / "o" / method / "im001.png") as im:
            assert im.size == (32, 32) and im.mode == "L"
