"""How strong the tests are: one-line mistakes in the science, and whether a test fails.

    python benchmarks/mutants.py               # every mutant (about 15-25 minutes on 2 cores)
    python benchmarks/mutants.py --only k_      # the mutants whose name starts with k_

Each mutant is a one-line change that a tired reviewer could miss (a sign, a dropped
term, a wrong default, the wrong array). It is applied to a scratch copy of the working
tree (without .git and .venv), the tests aimed at that module run there with
`pytest -x`, and the mutant is "killed" when they fail. The copy's `gejax` is imported
from its working directory, before the installed one. A mutant that survives is a test
to write. The score is in docs/development.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # file under the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: the test files (and -k) aimed at this code


OPS = ("tests/test_operators.py", "tests/test_reference_operators.py", "tests/test_tasks.py")
# The tests that pin the science, not the whole files: a survivor runs them all.
TRAIN = ("tests/test_training.py", "-k", "by_hand or pull_away or only_real_or_only_fake")
SOLVE = ("tests/test_reconstruct.py", "-k",
         "by_hand or fits_the_transformed or argmin or planted or real_networks")

MUTANTS = (
    # The GE / GA measurements and the solver.
    Mutant("ge_drops_S", "gejax/reconstruct.py", "return encoder(transform(x, *args))",
           "return encoder(x)", SOLVE),
    Mutant("ga_transposed", "gejax/reconstruct.py", "return a @ x.reshape(-1)",
           "return a @ x.T.reshape(-1)", OPS),
    Mutant("objective_no_square", "gejax/solver.py", "return jnp.sum(r**2) + reg * jnp.sum(z1**2)",
           "return jnp.sum(jnp.abs(r)) + reg * jnp.sum(z1**2)", SOLVE),
    Mutant("objective_drops_reg", "gejax/solver.py", "return jnp.sum(r**2) + reg * jnp.sum(z1**2)",
           "return jnp.sum(r**2)", SOLVE),
    Mutant("worst_restart", "gejax/solver.py", "best = jnp.argmin(objective, axis=1)",
           "best = jnp.argmax(objective, axis=1)", SOLVE),
    # Operators.
    Mutant("noise_sigma_squared", "gejax/operators.py",
           "return x + sigma * jax.random.normal(key, x.shape, x.dtype)",
           "return x + sigma**2 * jax.random.normal(key, x.shape, x.dtype)", OPS),
    Mutant("blur_kernel_2sigma", "gejax/operators.py", "return 2 * math.ceil(3 * sigma) + 1",
           "return 2 * math.ceil(2 * sigma) + 1", OPS),
    Mutant("downsample_max", "gejax/operators.py", "return blocks.mean(axis=(-4, -2))",
           "return blocks.max(axis=(-4, -2))", OPS),
    Mutant("downsample_adjoint_unscaled", "gejax/operators.py", "return up / factor**2",
           "return up / factor", OPS),
    Mutant("upsample_bilinear", "gejax/operators.py",
           'method="bicubic")', 'method="bilinear")', OPS),
    Mutant("line_width_doubled", "gejax/operators.py", "dist2 <= (width / 2) ** 2",
           "dist2 <= width ** 2", OPS),
    Mutant("sensing_adjoint_wrong", "gejax/operators.py", "return (y @ a).reshape(",
           "return (y @ a / a.shape[0]).reshape(", OPS),
    # Metrics.
    Mutant("ssim_window_7", "gejax/metrics.py", "filter_size=size)", "filter_size=7)",
           ("tests/test_metrics.py",)),
    Mutant("mse_sum", "gejax/metrics.py", "return jnp.mean((a - b) ** 2, axis=(-3, -2, -1))",
           "return jnp.sum((a - b) ** 2, axis=(-3, -2, -1))", ("tests/test_metrics.py",)),
    # Training losses.
    Mutant("k_not_accumulated", "gejax/training/began.py",
           "k=jnp.clip(state.k + cfg.lambda_k * balance, 0.0, 1.0)",
           "k=jnp.clip(cfg.lambda_k * balance, 0.0, 1.0)", TRAIN),
    Mutant("k_sign", "gejax/training/began.py", "balance = cfg.gamma * l_real - l_fake",
           "balance = l_fake - cfg.gamma * l_real", TRAIN),
    Mutant("d_loss_plus", "gejax/training/began.py", "return l_real - state.k * l_fake, (",
           "return l_real + state.k * l_fake, (", TRAIN),
    Mutant("l1_is_l2", "gejax/training/began.py", "return jnp.mean(jnp.abs(a - b))",
           "return jnp.mean((a - b) ** 2)", TRAIN),
    Mutant("pull_away_keeps_diagonal", "gejax/training/began.py",
           "return (jnp.sum((u @ u.T) ** 2) - n) / (n * (n - 1))",
           "return jnp.sum((u @ u.T) ** 2) / (n * (n - 1))", TRAIN),
    Mutant("ae_loss_vs_inputs", "gejax/training/ae.py",
           "err = jnp.mean((rec - batch) ** 2, axis=(1, 2, 3))",
           "err = jnp.mean((rec - inputs) ** 2, axis=(1, 2, 3))", TRAIN),
    Mutant("ae_split_swapped", "gejax/training/ae.py",
           "for part in (err[:n_fake], err[n_fake:]))",
           "for part in (err[n_fake:], err[:n_fake]))", TRAIN),
    # Tasks and baselines.
    Mutant("deblur_not_scaled", "gejax/tasks.py",
           "else 1.5 * image_size / 32", "else 1.5", OPS),
    Mutant("biharmonic_fills_observed", "gejax/baselines.py",
           "np.broadcast_to(mask[..., 0] == 0,", "np.broadcast_to(mask[..., 0] == 1,",
           ("tests/test_baselines.py", "tests/test_per_image_masks.py")),
)


def run(mutant: Mutant, scratch: Path) -> bool:
    """True when the tests fail on the mutant (killed); pytest's other exits (no test
    selected, a collection error) are the mutant's own mistake and stop the run."""
    target = scratch / mutant.path
    text = (ROOT / mutant.path).read_text()
    if text.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.name}: {mutant.old!r} occurs {text.count(mutant.old)} "
                         f"times in {mutant.path}; update the mutant")
    target.write_text(text.replace(mutant.old, mutant.new))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *mutant.tests], cwd=scratch,
                              capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{mutant.name}: pytest exited {done.returncode}\n"
                             f"{done.stdout[-2000:]}")
        return done.returncode == 1
    finally:
        target.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the mutants whose name starts with this")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if m.name.startswith(args.only)]
    if not chosen:
        raise SystemExit(f"no mutant starts with {args.only!r}")
    killed = 0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "repo"
        shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(
            ".git", ".venv", "results", "__pycache__", "*.egg-info"))
        for m in chosen:
            caught = run(m, scratch)
            killed += caught
            print(f"{'killed  ' if caught else 'SURVIVED'}  {m.name:30s} {m.path}", flush=True)
    print(f"{killed}/{len(chosen)} mutants killed")


if __name__ == "__main__":
    main()
