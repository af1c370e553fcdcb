"""What a workdir holds and loading it: G, the encoders (GE0 = BEGAN's D, GE1 = the conv
autoencoders) and the learned starts, as per-example pure callables; and its images.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gejax import checkpoint, data, models, training
from gejax.training import amortized


def default_workdir() -> str:
    """The pre-trained embedded default shipped inside the package."""
    return str(resources.files("gejax") / "pretrained" / "mnist32")


@dataclasses.dataclass
class Networks:
    """G and the encoders of a workdir, as per-example pure callables."""

    began: models.BeganConfig
    generator: Partial
    # "ge0": BEGAN D's encoder; "ge1": GE1's conv encoder ("ae"); "ge1_<s>": from "ae_<s>"
    encoders: dict[str, Partial]
    data: data.DataConfig
    # task -> (autoencoder name, encoder) of those trained with --corrupt <task>; kept out
    # of `encoders`, which are the paper's clean-image encoders.
    task_encoders: dict[str, tuple[str, Partial]]
    # encoder key of `encoders` -> learned start Q: code -> z (train.init), where trained
    inits: dict[str, Partial] = dataclasses.field(default_factory=dict)

    def encoder_for(self, method: str, m: int) -> Partial | None:
        """The `method` ("ge0" or "ge1") encoder with m outputs, if the workdir has one."""
        name = self._name_for(method, m)
        return None if name is None else self.encoders[name]

    def init_for(self, method: str, m: int) -> Partial | None:
        """The learned start of `encoder_for(method, m)`, if the workdir has one."""
        return self.inits.get(self._name_for(method, m))

    def _name_for(self, method: str, m: int) -> str | None:
        for name in sorted(self.encoders):
            if name.startswith(method) and self.code_dims[name] == m:
                return name
        return None

    @functools.cached_property
    def code_dims(self) -> dict[str, int]:
        x = jax.ShapeDtypeStruct(self.began.image_shape, jnp.float32)
        return {k: jax.eval_shape(e, x).shape[-1] for k, e in self.encoders.items()}


def load_networks(workdir: str) -> Networks:
    if not Path(workdir).is_dir():
        raise ValueError(f"workdir {workdir} does not exist")
    began, g_params, d_params = training.load_began(workdir)
    encoders = {"ge0": models.began_encoder_fn(d_params, began)}
    task_encoders, inits = {}, {}
    for name in checkpoint.autoencoders(workdir):
        ae, ae_params = training.load_ae(workdir, name)
        corrupt = checkpoint.section(workdir, checkpoint.train_section(name),
                                     training.AETrainConfig).corrupt
        if corrupt in ("none", "all"):  # encoders for every task (and for CS)
            method = checkpoint.encoder_method(name)
            encoders[method] = models.ae_encoder_fn(ae_params, ae)
            q = amortized.load_init(workdir, name)
            if q is not None:
                inits[method] = q
        else:  # the first by name, if several were trained for one task
            task_encoders.setdefault(corrupt, (name, models.ae_encoder_fn(ae_params, ae)))
    data_cfg = checkpoint.data_section(workdir)
    return Networks(began, models.generator_fn(g_params, began), encoders, data_cfg,
                    task_encoders, inits)


def eval_images(nets: Networks, num_images: int, split: str = "test") -> np.ndarray:
    """The first `num_images` of a split: "test" to report, "train" to tune lambda & co."""
    if split not in ("test", "train"):
        raise ValueError(f"--split must be 'test' or 'train', got {split!r}")
    images = data.source(nets.data, split)
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if num_images > len(images):
        raise ValueError(f"num_images {num_images} exceeds the {len(images)} {split} images")
    return np.asarray(images[:num_images])  # reads these images only
