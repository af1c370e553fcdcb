"""G's floor measured while BEGAN trains: on held-back train images, to the progress
line, TensorBoard and `began_floor.json` in the workdir.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from gejax import checkpoint, models, parallel
from gejax.reconstruct import projection_floor

if TYPE_CHECKING:  # began imports this module
    from gejax.training.began import BeganState, BeganTrainConfig


FLOOR_HISTORY = "began_floor.json"


def split_monitor(images, cfg: BeganTrainConfig) -> tuple:
    """(training images, held-back images (n, H, W, C) array) of `images` (an array or a
    data.Images, whose training part stays unread): the last `monitor_images` train images (at
    most a tenth of them, for small data) are never trained on, so the floor measured on
    them is not flattered by memorisation. None are held back with `monitor_steps` 0 or
    under 10 images, and then nothing is monitored."""
    n = min(cfg.monitor_images, len(images) // 10) if cfg.monitor_steps else 0
    return images[:len(images) - n], np.asarray(images[len(images) - n:])


def read_history(workdir: str) -> list[dict]:
    """The monitor's records [{"step", "floor", "seconds"}, ...] of a workdir ([] if none)."""
    path = Path(workdir, FLOOR_HISTORY)
    return json.loads(path.read_text()) if path.exists() else []


def monitored_floor(g_params, model: models.BeganConfig, held: np.ndarray,
                    cfg: BeganTrainConfig) -> float:
    """Mean floor of G(g_params) on the held-back images with the monitor's settings:
    `monitor_steps` Adam steps, one restart from the fixed key 0."""
    g = models.generator_fn(g_params, model)
    return float(jnp.mean(projection_floor(g, held, key=jax.random.key(0), num_restarts=1,
                                           latent_dim=model.latent_dim,
                                           steps=cfg.monitor_steps)))


def floor_monitor(workdir: str, held: np.ndarray, model: models.BeganConfig,
                  cfg: BeganTrainConfig, start: int):
    """`monitor(state, step) -> {"floor": ...}` for `_loop`: G's floor on the held-back images.

    The floor is `reconstruct.projection_floor` of the averaged G with `monitor_steps` Adam
    steps and one restart (the fixed key 0, so records are comparable across steps): a
    cheaper, slightly higher estimate than the 500 steps x 2 restarts of `evaluate.*`.
    Each record is appended to `began_floor.json` with the training seconds so far (summed
    over resumed runs); records past a resumed step are dropped, as that part is redone.
    """
    history = [r for r in read_history(workdir) if r["step"] <= start]
    offset = history[-1]["seconds"] if history else 0.0
    t0 = time.perf_counter()

    def monitor(state: BeganState, step: int) -> dict[str, float]:
        seconds = offset + time.perf_counter() - t0
        floor = monitored_floor(parallel.local_copy(state.g_ema), model, held, cfg)
        history.append({"step": step, "floor": floor, "seconds": round(seconds, 1)})
        checkpoint.write_text_atomic(Path(workdir, FLOOR_HISTORY), json.dumps(history, indent=1))
        return {"floor": floor}

    return monitor
