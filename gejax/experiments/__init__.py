"""The paper's experiments, each a function from settings to results.json (its schema:
docs/guide/results.md):

    solve.py    the solver's settings, batched solves with progress, G's floor
    cs.py       compressed sensing: Table 1, Figure 4 (`python -m evaluate.cs`)
    sweeps.py   compressed sensing over m, noise, and fake vs real: Table 2, Figures 5-6
    deviation.py  the rows with sparse deviations (ga_dev, ge1_dev) and their tuned mu
    restore.py  restoration: Figures 8-11 (`python -m evaluate.restore`)
    own.py      your images and measurements (`--images`, `--degraded`, `--measurements`)

Every method sees the same images, operators and seeds; GE and GA restarts are chosen by
their objective, never by the ground truth.
"""

from gejax.experiments.cs import (
    CS_METHODS,
    LASSO_ALPHA,
    CsRun,
    noisy,
    run_cs,
)
from gejax.experiments.restore import RestoreRun, run_restore
from gejax.experiments.solve import SolverConfig, batched, check_solver, g_floor, solve
from gejax.experiments.sweeps import run_fake_vs_real, run_sweep

__all__ = ["CS_METHODS", "LASSO_ALPHA", "CsRun", "RestoreRun", "SolverConfig", "batched",
           "check_solver", "g_floor", "noisy", "run_cs", "run_fake_vs_real", "run_restore",
           "run_sweep", "solve"]
