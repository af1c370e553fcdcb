"""Pre-training (paper section 4.1): BEGAN's G and D, then GE1's autoencoder on real + fake.

    began.py    BEGAN's config, state, step and `train_began`
    ae.py       GE1's autoencoder: config, step, `train_ae`
    monitor.py  G's floor on held-back images while BEGAN trains
    loop.py     the loop all of them share (steps, devices, logs, checkpoints, resume)

The steps are pure jitted functions `(state, batch, key) -> (state, metrics)`.
"""

from gejax.training.ae import (
    AETrainConfig,
    ae_init,
    ae_names,
    ae_step,
    load_ae,
    mixed_batch,
    train_ae,
)
from gejax.training.began import (
    BeganState,
    BeganTrainConfig,
    began_init,
    began_step,
    ema_update,
    load_began,
    pull_away,
    train_began,
)
from gejax.training.loop import DivergedError, batch_indices, fit, run_loop
from gejax.training.monitor import FLOOR_HISTORY, read_history, split_monitor

__all__ = ["AETrainConfig", "BeganState", "BeganTrainConfig", "DivergedError", "FLOOR_HISTORY",
           "ae_init", "ae_names", "ae_step", "batch_indices", "began_init", "began_step",
           "ema_update", "fit", "load_ae", "load_began", "mixed_batch", "pull_away",
           "read_history", "run_loop", "split_monitor", "train_ae", "train_began"]
