"""The settings and the one function behind each of train.began, train.ae and train.init.

A run stores its configs in the workdir on the first call; a rerun resumes with them, so
a workdir's stored configs are the defaults of its flags (`*_defaults`). A flag may change
how a run trains (e.g. a larger --steps continues a finished run), never its networks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import tyro

from gejax import checkpoint, data, models
from gejax.training import amortized, presets
from gejax.training.ae import AETrainConfig, train_ae
from gejax.training.began import BeganTrainConfig, train_began


@dataclasses.dataclass(frozen=True)
class BeganRun:
    """Pre-train BEGAN's G and D. Rerunning the same command resumes from the newest
    checkpoint; a larger --steps continues a finished run."""

    workdir: str
    """checkpoints, config, samples, TensorBoard"""
    preset: str = "mnist32"
    """networks, data and training of a new run: mnist32 (the embedded default), celeba64,
    celeba128 (the paper's) or tiny (tests)"""
    dataset: str | None = None
    """'mnist', 'tfds:<name>', a folder of images or an .npz; None: the preset's"""
    tfds_dir: str | None = None
    """TFDS data_dir"""
    skip_damaged: bool = False
    """leave a folder's unreadable image files out (one warning line) instead of refusing
    them before the first step"""
    train: BeganTrainConfig = BeganTrainConfig()
    model: models.BeganConfig = presets.mnist32().model


def began_defaults(peeked: dict) -> BeganRun:
    """A new run: the preset's configs; a resumed one: the configs stored in the workdir."""
    workdir, preset = peeked["workdir"], peeked["preset"] or "mnist32"
    if preset not in presets.BEGAN:
        raise ValueError(f"unknown --preset {preset!r}: use one of {', '.join(presets.BEGAN)}")
    stored = checkpoint.read_config(workdir) if workdir is not None else {}
    if "began" in stored:
        train = checkpoint.section(workdir, "began_train", BeganTrainConfig)
        if "pull_away" not in stored["began_train"]:  # written before the term existed
            train = dataclasses.replace(train, pull_away=0.0)
        model = checkpoint.section(workdir, "began", models.BeganConfig)
    else:
        chosen = presets.BEGAN[preset]()
        train, model = chosen.train, chosen.model
    return BeganRun(workdir=tyro.MISSING if workdir is None else workdir, preset=preset,
                    train=train, model=model)


def same_data(workdir: str, dataset: str | None, tfds_dir: str | None,
              skip_damaged: bool) -> data.DataConfig:
    """The data config of a workdir that has one; data flags that differ from it (a
    workdir trains on one data set) are refused, as they would be ignored."""
    stored = checkpoint.data_section(workdir)
    given = {"dataset": (dataset and data.locate(dataset), stored.name), "tfds_dir": (tfds_dir,
             stored.tfds_dir), "skip_damaged": (skip_damaged or None, stored.skip_damaged)}
    for flag, (value, kept) in given.items():
        if value is not None and value != kept:
            raise ValueError(f"{workdir} trains on --{flag} {kept}, not {value}: leave the "
                             "flag out to resume it, or use a new --workdir for other data")
    return stored


def began(run: BeganRun, stop: Callable[[], bool] | None = None) -> None:
    """`python -m train.began`: train (or resume) BEGAN in run.workdir (for at most
    until `stop()`, train.all's budget)."""
    if "began" in checkpoint.read_config(run.workdir):
        model = checkpoint.section(run.workdir, "began", models.BeganConfig)
        if run.model != model:
            raise ValueError(f"{run.workdir} holds a BEGAN of {model}; it cannot resume as "
                             f"{run.model}. Use a new --workdir.")
        data_cfg = same_data(run.workdir, run.dataset, run.tfds_dir, run.skip_damaged)
    else:
        data_cfg = presets.BEGAN[run.preset]().data
        data_cfg = dataclasses.replace(
            data_cfg, name=data.locate(run.dataset or data_cfg.name), tfds_dir=run.tfds_dir,
            image_size=run.model.image_size, channels=run.model.channels,
            skip_damaged=run.skip_damaged)
    train_began(run.workdir, data_cfg, run.model, run.train, stop=stop)


@dataclasses.dataclass(frozen=True)
class AERun:
    """Pre-train GE1's conv autoencoder on real images and images from the workdir's G
    (python -m train.began first). Resumes like train.began."""

    workdir: str
    """a workdir holding a trained BEGAN"""
    name: str = "ae"
    """'ae' (GE1 of evaluate.*) or 'ae_<suffix>' for more encoders, e.g. ae_m64 for the m
    sweep or ae_denoise with --corrupt denoise"""
    train: AETrainConfig = AETrainConfig()
    model: models.AEConfig = models.AEConfig()


def ae_defaults(peeked: dict) -> AERun:
    """A new autoencoder: GE1 sized for the workdir's G; a resumed one: as stored."""
    workdir, name = peeked["workdir"], peeked["name"] or "ae"
    if workdir is None:
        return AERun(workdir=tyro.MISSING, name=name)
    if name in checkpoint.read_config(workdir):
        return AERun(workdir, name,
                     checkpoint.section(workdir, checkpoint.train_section(name), AETrainConfig),
                     checkpoint.section(workdir, name, models.AEConfig))
    g = checkpoint.section(workdir, "began", models.BeganConfig)
    return AERun(workdir, name, AETrainConfig(), presets.ae(g.image_size, g.channels))


def ae(run: AERun, stop: Callable[[], bool] | None = None) -> None:
    """`python -m train.ae`: train (or resume) autoencoder run.name in run.workdir."""
    if run.name in checkpoint.read_config(run.workdir):
        model = checkpoint.section(run.workdir, run.name, models.AEConfig)
        if run.model != model:
            raise ValueError(f"{run.workdir} holds an autoencoder of {model}; it cannot resume "
                             f"as {run.model}. Use a new --workdir.")
    train_ae(run.workdir, run.model, run.train, name=run.name, stop=stop)


@dataclasses.dataclass(frozen=True)
class InitRun:
    """Train the learned start of a workdir's GE1 encoder (`evaluate.* --init learned`);
    needs G and the autoencoder (train.began, train.ae). Resumes like train.began."""

    workdir: str
    """a workdir holding G and the autoencoder"""
    encoder: str = "ae"
    """the autoencoder whose codes Q reads"""
    train: amortized.InitTrainConfig = amortized.InitTrainConfig()


def init_defaults(peeked: dict) -> InitRun:
    workdir, encoder = peeked["workdir"], peeked["encoder"] or "ae"
    name = checkpoint.init_part(encoder)
    if workdir is not None and name in checkpoint.read_config(workdir):
        return InitRun(workdir, encoder,
                       checkpoint.section(workdir, checkpoint.train_section(name),
                                          amortized.InitTrainConfig))
    return InitRun(tyro.MISSING if workdir is None else workdir, encoder, presets.init())


def init(run: InitRun, stop: Callable[[], bool] | None = None) -> None:
    """`python -m train.init`: train (or resume) Q for run.encoder in run.workdir."""
    amortized.train_init(run.workdir, run.train, encoder=run.encoder, stop=stop)
