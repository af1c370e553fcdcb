"""Pre-training (paper section 4.1): BEGAN's G and D, then GE1's autoencoder on real + fake.

    began.py    BEGAN's config, state, step and `train_began`
    ae.py       GE1's autoencoder: config, step, `train_ae`
    amortized.py  the learned start Q (train.init)
    monitor.py  G's floor on held-back images while BEGAN trains
    loop.py     the loop all of them share (steps, devices, logs, checkpoints, resume)
    presets.py  every preset's configs
    commands.py the train.* commands' settings and glue

The steps are pure jitted functions `(state, batch, key) -> (state, metrics)`.
"""

from gejax.training.ae import (
    AETrainConfig,
    ae_init,
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
from gejax.training.loop import (
    SECONDS_FILE,
    DivergedError,
    batch_indices,
    fit,
    run_loop,
    seconds_ledger,
    trained_seconds,
)
from gejax.training.monitor import FLOOR_HISTORY, held_back, read_history, split_monitor

__all__ = ["FLOOR_HISTORY", "SECONDS_FILE", "AETrainConfig", "BeganState", "BeganTrainConfig",
           "DivergedError", "ae_init", "ae_step", "batch_indices", "began_init",
           "began_step", "ema_update", "fit", "held_back", "load_ae", "load_began",
           "mixed_batch", "pull_away", "read_history", "run_loop", "seconds_ledger",
           "split_monitor", "train_ae", "train_began", "trained_seconds"]
