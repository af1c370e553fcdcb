"""The how-to scripts of examples/ run as docs/guide/ shows them, with tiny settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))


def _run(*command, cwd):
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _pngs(folder: Path, n: int, size: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            folder / f"p{i:02d}.png")
    return folder


def test_restore_my_image(tmp_path):
    _pngs(tmp_path / "noisy", 2, 28)
    out = _run(sys.executable, ROOT / "examples" / "restore_my_image.py", "noisy", "--steps",
               5, "--out", "restored", cwd=tmp_path)
    assert "wrote 2 restored images" in out
    assert sorted(p.name for p in (tmp_path / "restored").glob("*.png")) == ["p00.png",
                                                                           "p01.png"]
    out = _run(sys.executable, ROOT / "examples" / "restore_my_image.py", "--steps", 5,
               cwd=tmp_path)
    assert "dB restored" in out


def test_own_operator(tmp_path):
    out = _run(sys.executable, ROOT / "examples" / "own_operator.py", "--num_images", 2,
               "--steps", 5, cwd=tmp_path)
    assert "restored by GE" in out


def test_train_on_folder_then_read_results(tmp_path):
    _pngs(tmp_path / "pictures", 40, 8)
    _run("bash", ROOT / "examples" / "train_on_folder.sh", "pictures", "mine", 0.4, "tiny",
         "--steps", 3, "--num_images", 2, cwd=tmp_path)
    cs = tmp_path / "mine" / "results" / "cs_m32" / "results.json"
    assert json.loads(cs.read_text())["dataset"] == str(tmp_path / "pictures")
    out = _run(sys.executable, ROOT / "examples" / "read_results.py", cs,
               tmp_path / "mine" / "results" / "denoise" / "results.json", cwd=tmp_path)
    assert "x best classical" in out and "ge1" in out and "bm3d" in out
