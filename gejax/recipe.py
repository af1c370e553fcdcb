"""`python -m train.all`: a user's images to G, GE1's encoder and its learned start in one
command and one time budget, then what to expect of them.

The budget (`--minutes`, wall-clock) is split over the stages by SHARES: BEGAN, then GE1's
autoencoder, then the learned start, each training until its share of the budget is spent
(`run_loop`'s stop), and what is left for the closing check. Each stage's end is a
fixed fraction of the budget, so whatever a stage overran by (loading, a last step, its
checkpoint) comes out of the next one. The time spent is kept in the workdir (`all.json`
at each stage's end, `train_seconds.json` at each checkpoint), so a killed run, rerun with
the same command, resumes in the stage where it stopped, with the budget it had left.
A finished stage records the steps it reached as its `--steps` in config.json, so the
workdir describes what was trained, and the stage commands (train.began, train.ae,
train.init) can continue any stage with a larger --steps.

The closing check (`expectations`) uses train images that no network was trained on
(`training.held_back`): G's floor, and GE1 from its learned start against GA (Bora et
al.'s CSGM, the paper's protocol) at GE1's m, a few seconds for 16 images.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from gejax import checkpoint, training, validate, workdir
from gejax.experiments.cs import run_cs
from gejax.experiments.solve import SolverConfig, g_floor
from gejax.training import commands, presets

# Shares of the budget, measured on Fashion-MNIST's and MNIST's train splits
# (docs/notes/training.md, "One command"): G's floor falls fastest early and is near its
# plateau by half the budget; the encoder gains little after its third; the learned start
# converges in minutes.
SHARES = {"began": 0.50, "ae": 0.33, "init_ae": 0.12}
# The rest, 5%, is the closing check's (and what the last stage overran by).
STEP_CAP = 10**9  # a stage's --steps while it trains: its budget stops it
ALL_FILE = "all.json"
LABELS = {"began": "BEGAN (G and D)", "ae": "GE1's autoencoder", "init_ae": "GE1's learned start"}


@dataclasses.dataclass(frozen=True)
class AllRun:
    """Train BEGAN, GE1's autoencoder and its learned start on your images within one time
    budget, then print what to expect. Rerunning the same command resumes where it stopped."""

    workdir: str
    """where the networks go (checkpoints, config, samples, TensorBoard)"""
    minutes: float = 60.0
    """wall-clock budget of the whole command, the closing check included"""
    dataset: str | None = None
    """'mnist', 'tfds:<name>', a folder of images or an .npz; None: the preset's"""
    preset: str = "grey32"
    """networks and image size of a new workdir: grey32 (32x32 grey, z 128), mnist32 (the
    embedded default's, z 64), celeba64 / celeba128 (RGB, the paper's), tiny (tests)"""
    tfds_dir: str | None = None
    """TFDS data_dir"""
    skip_damaged: bool = False
    """leave a folder's unreadable image files out instead of refusing them"""
    check_images: int = 16
    """held-back train images of the closing check"""

    def check(self) -> None:
        validate.number(self.minutes, "--minutes", positive=True)
        validate.integer(self.check_images, "--check_images", 1)
        if self.preset not in presets.BEGAN:
            raise ValueError(f"unknown --preset {self.preset!r}: use one of "
                             f"{', '.join(presets.BEGAN)}")


def stage_end(stage: str, total: float) -> float:
    """Seconds into the budget `total` by which `stage` must be done."""
    names = list(SHARES)
    return total * sum(SHARES[n] for n in names[:names.index(stage) + 1])


def _spent(work: str) -> dict:
    path = Path(work, ALL_FILE)
    return json.loads(path.read_text()) if path.exists() else {"done": {}, "seconds": 0.0}


def _finish(work: str, stage: str, section: str, record: dict, seconds: float) -> None:
    """Mark `stage` done at `seconds` into the budget, its config's steps the reached step."""
    step = training.seconds_ledger(work).get(stage, [[0, 0.0]])[-1][0]
    config = checkpoint.read_config(work)
    config[section]["steps"] = step
    checkpoint.write_config(work, **{section: config[section]})
    record["done"][stage] = {"steps": step, "seconds": round(seconds, 1)}
    record["seconds"] = round(seconds, 1)
    checkpoint.write_text_atomic(Path(work, ALL_FILE), json.dumps(record, indent=1))


def _run_stage(run: AllRun, stage: str) -> None:
    """Train one stage with its budget, or leave it if it was done."""
    work, total = run.workdir, run.minutes * 60
    record = _spent(work)
    if stage in record["done"]:
        d = record["done"][stage]
        print(f"{LABELS[stage]}: done ({d['steps']} steps, at {d['seconds'] / 60:.1f} min)")
        return
    # Seconds into the budget: the previous stages', this stage's before a kill (its
    # checkpoints' training seconds) and this run's, loading included.
    before, t0 = training.trained_seconds(work, stage), time.perf_counter()

    def spent() -> float:
        return record["seconds"] + before + time.perf_counter() - t0

    def stop() -> bool:
        return spent() >= stage_end(stage, total)

    print(f"{LABELS[stage]}: until {stage_end(stage, total) / 60:.1f} of {run.minutes:g} min")
    if stage == "began":
        d = commands.began_defaults({"workdir": work, "preset": run.preset})
        commands.began(dataclasses.replace(
            d, dataset=run.dataset, tfds_dir=run.tfds_dir, skip_damaged=run.skip_damaged,
            train=dataclasses.replace(d.train, steps=STEP_CAP)), stop=stop)
        section = "began_train"
    elif stage == "ae":
        d = commands.ae_defaults({"workdir": work, "name": "ae"})
        commands.ae(dataclasses.replace(d, train=dataclasses.replace(d.train, steps=STEP_CAP)),
                    stop=stop)
        section = "ae_train"
    else:
        d = commands.init_defaults({"workdir": work, "encoder": "ae"})
        commands.init(dataclasses.replace(d, train=dataclasses.replace(d.train, steps=STEP_CAP)),
                      stop=stop)
        section = checkpoint.train_section(checkpoint.init_part("ae"))
    _finish(work, stage, section, record, spent())


def expectations(work: str, num_images: int = 16) -> dict:
    """What a workdir's networks give on `num_images` held-back train images (N <= the
    monitor's): G's floor (the paper's protocol of 2 random starts x 500 steps), and
    compressed sensing at GE1's m by GE1 (the default protocol: learned start, whitened
    Adam, early stop) and GA (CSGM, the paper's protocol). Per-pixel MSEs on [0, 1]."""
    nets = workdir.load_networks(work)
    _, held = training.held_back(work)
    if len(held) == 0:
        raise ValueError(f"{work} holds back no train images (monitor_steps 0): nothing to "
                         "check on")
    x = held[:num_images]
    m = nets.code_dims["ge1"]
    solver = SolverConfig()  # random starts (G's floor, GA) run the paper's protocol in it
    floor = g_floor(nets, x, solver)
    quiet = dict(m=m, methods=(), log=lambda line: None)
    ga, _ = run_cs(nets, x, solver=solver, **{**quiet, "methods": ("ga",)})
    ge1, _ = run_cs(nets, x, solver=solver, **{**quiet, "methods": ("ge1",)})
    return {"num_images": len(x), "m": m, "g_floor": floor["mse"], "ge1": ge1["ge1"]["mse"],
            "ga": ga["ga"]["mse"], "ge1_over_floor": ge1["ge1"]["mse"] / floor["mse"],
            "ge1_over_ga": ge1["ge1"]["mse"] / ga["ga"]["mse"],
            "seconds": floor["seconds"] + ga["ga"]["seconds"] + ge1["ge1"]["seconds"]}


def summary(e: dict, work: str) -> str:
    """The closing check as the lines train.all prints."""
    return "\n".join([
        f"What to expect ({e['num_images']} held-back train images, compressed sensing at "
        f"m = {e['m']}; MSE per pixel on [0, 1]):",
        f"  G's floor            {e['g_floor']:.5f}   no answer G(z) can do better",
        f"  GE1, learned start   {e['ge1']:.5f}   {e['ge1_over_floor']:.2f}x the floor",
        f"  GA (CSGM)            {e['ga']:.5f}   GE1 / GA = {e['ge1_over_ga']:.2f}",
        f"On the test split: python -m evaluate.cs --m {e['m']} --workdir {work}, "
        f"python -m evaluate.restore --task denoise --workdir {work}, ..."])


def train_all(run: AllRun) -> dict:
    """`python -m train.all`: every stage within `run.minutes`, then `expectations`,
    printed and written to `all.json`. Returns the check's figures."""
    run.check()
    if "data" in checkpoint.read_config(run.workdir):  # before a done stage is skipped
        commands.same_data(run.workdir, run.dataset, run.tfds_dir, run.skip_damaged)
    for stage in SHARES:
        _run_stage(run, stage)
    record, t0 = _spent(run.workdir), time.perf_counter()
    if "expect" not in record:  # a rerun after the end prints the same figures
        record["expect"] = expectations(run.workdir, run.check_images)
        record["seconds"] = round(record["seconds"] + time.perf_counter() - t0, 1)
        checkpoint.write_text_atomic(Path(run.workdir, ALL_FILE), json.dumps(record, indent=1))
    print(f"train.all: {record['seconds'] / 60:.1f} of {run.minutes:g} min spent")
    print(summary(record["expect"], run.workdir))
    return record["expect"]
