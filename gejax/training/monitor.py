"""G's floor measured while BEGAN trains, on held-back train images: to the progress line,
TensorBoard and `began_floor.json` in the workdir; and the best G so far kept apart
(`began_best/`), which every later command loads instead of the last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

from gejax import checkpoint, data, models, parallel
from gejax.reconstruct import projection_floor

if TYPE_CHECKING:  # began imports this module
    from gejax.training.began import BeganState, BeganTrainConfig


FLOOR_HISTORY = "began_floor.json"
BEST = "began_best"
# A later G replaces the best only when its floor is lower by more than this many paired
# standard errors (over the held-back images), so that "best" is a real difference and
# not the monitor's noise.
BEST_MARGIN_SE = 2.0


def split_monitor(images, cfg: BeganTrainConfig) -> tuple:
    """(training images, held-back images (n, H, W, C) array) of `images` (an array or a
    data.Images, whose training part stays unread): the last `monitor_images` train images (at
    most a tenth of them, for small data) are never trained on, so the floor measured on
    them is not flattered by memorisation. None are held back with `monitor_steps` 0 or
    under 10 images, and then nothing is monitored."""
    n = min(cfg.monitor_images, len(images) // 10) if cfg.monitor_steps else 0
    return images[:len(images) - n], np.asarray(images[len(images) - n:])


def held_back(workdir: str) -> tuple:
    """(train images, held-back images) of a workdir's data, split as its BEGAN run split
    them (`split_monitor`): GE1's autoencoder and the learned start train on the first
    part too, so the held-back images are unseen by every network (train.all's check)."""
    from gejax.training.began import BeganTrainConfig

    cfg = checkpoint.section(workdir, "began_train", BeganTrainConfig)
    return split_monitor(data.source(checkpoint.data_section(workdir),
                                     "train"), cfg)


def read_history(workdir: str) -> list[dict]:
    """The monitor's records of a workdir ([] if none): [{"step", "floor" (mean over the
    held-back images), "se" (its standard error), "seconds", "best" (the step of the best G
    so far), "per_image"}, ...]."""
    path = Path(workdir, FLOOR_HISTORY)
    return json.loads(path.read_text()) if path.exists() else []


def monitored_floor(g_params, model: models.BeganConfig, held: np.ndarray,
                    cfg: BeganTrainConfig) -> np.ndarray:
    """Per-image floors (n,) of G(g_params) on the held-back images with the monitor's
    settings: `monitor_steps` Adam steps, one restart from the fixed key 0 (the same
    starts at every step, so two G's differ by G alone)."""
    g = models.generator_fn(g_params, model)
    return np.asarray(projection_floor(g, held, key=jax.random.key(0), num_restarts=1,
                                       latent_dim=model.latent_dim, steps=cfg.monitor_steps))


def better(new: np.ndarray, best: np.ndarray, margin_se: float = BEST_MARGIN_SE) -> bool:
    """Whether per-image floors `new` beat `best` (same images, (n,)) by more than
    `margin_se` standard errors of the mean paired difference."""
    d = np.asarray(new, np.float64) - np.asarray(best, np.float64)
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
    return bool(d.mean() < -margin_se * se)


def floor_monitor(workdir: str, held: np.ndarray, model: models.BeganConfig,
                  cfg: BeganTrainConfig, start: int, keep: Callable[[BeganState, int], None]):
    """`monitor(state, step) -> {"floor": ...}` for `run_loop`: G's floor on the held-back
    images, and `keep(state, step)` called whenever G is the best so far (`better`).

    The floor is `reconstruct.projection_floor` of the averaged G with `monitor_steps` Adam
    steps and one restart (the fixed key 0, so records are comparable across steps): a
    cheaper, slightly higher estimate than the 500 steps x 2 restarts of `evaluate.*`.
    Each record is appended to `began_floor.json` with the training seconds so far (summed
    over resumed runs); records past a resumed step are dropped, as that part is redone,
    and so is a best G kept past it.
    """
    history = [r for r in read_history(workdir) if r["step"] <= start]
    offset = history[-1]["seconds"] if history else 0.0
    best = next((r for r in history if r["step"] == history[-1].get("best")), None) \
        if history else None
    checkpoint.drop_after(workdir, BEST, best["step"] if best else 0)
    t0 = time.perf_counter()

    def monitor(state: BeganState, step: int) -> dict[str, float]:
        nonlocal best
        seconds = offset + time.perf_counter() - t0
        per_image = monitored_floor(parallel.local_copy(state.g_ema), model, held, cfg)
        record = {"step": step, "floor": float(per_image.mean()),
                  "se": float(per_image.std(ddof=1) / np.sqrt(len(per_image)))
                  if len(per_image) > 1 else 0.0,
                  "seconds": round(seconds, 1)}
        if best is None or better(per_image, np.asarray(best["per_image"])):
            keep(state, step)  # before the record that names it, so a kill leaves no gap
            best = record
        record["best"] = best["step"]
        record["per_image"] = [round(float(v), 7) for v in per_image]
        history.append(record)
        text = "[\n" + ",\n".join(json.dumps(r) for r in history) + "\n]\n"  # a line each
        checkpoint.write_text_atomic(Path(workdir, FLOOR_HISTORY), text)
        return {"floor": record["floor"], "best_floor": best["floor"]}

    return monitor
