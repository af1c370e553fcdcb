"""Every preset in one place: functions returning frozen configs, each with the command
that uses it and what it costs on a 2-core CPU.

The config dataclasses themselves live beside the code that reads them (models.BeganConfig,
training.BeganTrainConfig, data.DataConfig, ...); their defaults are the embedded default's
recipe. `python -m train.began --preset NAME` picks one of BEGAN.
"""

from __future__ import annotations

import dataclasses

from gejax import data, models
from gejax.training import amortized
from gejax.training.began import BeganTrainConfig


@dataclasses.dataclass(frozen=True)
class BeganPreset:
    """What `train.began --preset` sets: the networks, the data and the training."""

    model: models.BeganConfig
    data: data.DataConfig
    train: BeganTrainConfig


def mnist32() -> BeganPreset:
    """The embedded default, shipped in gejax/pretrained/mnist32.

        python -m train.began --workdir ckpt

    32x32 MNIST, f 16, z 64, m 128 (GE0's m is the paper's 128); 10,000 steps take
    ~50 min alone on 2 CPU cores. G's floor on test digits: README's results section.
    """
    return BeganPreset(models.BeganConfig(image_size=32, channels=1, filters=16, latent_dim=64,
                                          code_dim=128),
                       data.DataConfig("mnist", 32, 1), BeganTrainConfig())


def grey32() -> BeganPreset:
    """train.all's recipe for your own grey images at 32x32: mnist32 with z = 128.

        python -m train.all --workdir W --dataset D --minutes 60

    On Fashion-MNIST's train split (monitor: 64 held-back images) z = 128 put G's floor
    25% under z = 64 after the same 2,000 steps (0.0092 against 0.0123), at the same
    seconds per step (docs/notes/training.md, "One command for your data"). G's floor is
    monitored on 256 held-back images, where the paired standard error between two
    checkpoints is 0.00013, a third of what 64 images give: the best G is a real one.
    """
    base = mnist32()
    return BeganPreset(dataclasses.replace(base.model, latent_dim=128), base.data,
                       dataclasses.replace(base.train, monitor_images=256))


def began_paper() -> BeganTrainConfig:
    """BEGAN's own CelebA settings: gamma 0.5, lambda_k 0.001, lr 1e-4 halved with a floor."""
    return BeganTrainConfig(steps=200_000, batch_size=16, learning_rate=1e-4,
                                     lr_halve_every=50_000, lr_floor=2e-5, gamma=0.5,
                                     lambda_k=0.001, pull_away=0.0, checkpoint_every=5000,
                                     log_every=100)


def celeba64() -> BeganPreset:
    """The paper's 64x64x3 CelebA networks: z 128, GE0(d=12, f=64, m=128).

        python -m train.began --workdir celeba --preset celeba64 [--tfds_dir DIR]

    Needs CelebA through tensorflow-datasets. 200,000 steps: days on a CPU, a GPU's job.
    """
    return BeganPreset(models.BeganConfig(image_size=64, channels=3, filters=64, latent_dim=128,
                                          code_dim=128),
                       data.DataConfig("tfds:celeb_a", 64, 3), began_paper())


def celeba128() -> BeganPreset:
    """The paper's 128x128x3 CelebA networks: z 64, GE0(d=15, f=64, m=64).

        python -m train.began --workdir celeba128 --preset celeba128

    As celeba64, about 4x the cost per step.
    """
    return BeganPreset(models.BeganConfig(image_size=128, channels=3, filters=64, latent_dim=64,
                                          code_dim=64),
                       data.DataConfig("tfds:celeb_a", 128, 3), began_paper())


def tiny() -> BeganPreset:
    """8x8 digits, networks of a few hundred parameters, 4 steps: for tests and smoke runs.

        python -m train.began --workdir /tmp/w --preset tiny
        python -m train.all --workdir /tmp/w --preset tiny --minutes 2

    A few seconds, most of it compiling. G's floor is monitored on 8 held-back images
    with 5 Adam steps, so that train.all has images to check on.
    """
    return BeganPreset(models.BeganConfig(image_size=8, channels=1, filters=4, latent_dim=3,
                                          code_dim=6),
                       data.DataConfig("mnist", 8, 1),
                       BeganTrainConfig(steps=4, batch_size=4, checkpoint_every=2,
                                                 log_every=1, monitor_images=8, monitor_steps=5,
                                                 monitor_every=2))


BEGAN = {"mnist32": mnist32, "grey32": grey32, "celeba64": celeba64, "celeba128": celeba128,
         "tiny": tiny}


def ae(image_size: int, channels: int) -> models.AEConfig:
    """GE1(d=4, f=32, m=128) for G's images, d smaller where the image is (8x8: d=3).

        python -m train.ae --workdir ckpt      # 21,000 steps, ~75 min alone on 2 cores

    The shipped GE1; its training (AETrainConfig's defaults: real, G-made and degraded
    inputs, one encoder for every task) is in docs/notes/prior.md.
    """
    depth = min(4, (image_size & -image_size).bit_length() - 1)  # 2**depth divides the side
    # m 128, or half the pixels of images too small for 128 measurements to be "few".
    code_dim = min(models.AEConfig.code_dim, image_size * image_size * channels // 2)
    return models.AEConfig(image_size=image_size, channels=channels, depth=max(depth, 1),
                           code_dim=code_dim)


def ae_paper(image_size: int = 64, channels: int = 3, code_dim: int = 128) -> models.AEConfig:
    """The paper's GE1(d=4, f=16, m).

        python -m train.ae --workdir celeba --filters 16
    """
    return models.AEConfig(image_size=image_size, channels=channels, depth=4, filters=16,
                           code_dim=code_dim)


def init() -> amortized.InitTrainConfig:
    """GE1's learned start Q (`evaluate.* --init learned`).

        python -m train.init --workdir ckpt    # 2,000 steps, ~5 min on 2 cores
    """
    return amortized.InitTrainConfig()
