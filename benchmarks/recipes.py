"""G's floor against training time for BEGAN workdirs, the table of docs/notes/prior.md.

    python benchmarks/recipes.py /path/to/workdir [/path/to/another ...]

For each workdir: its recipe (the fields of began_train and began that differ from the
defaults), then the floor history `train.began` recorded (`began_floor.json`: G's floor
on the held-back train images, the averaged G, `monitor_steps` Adam steps, one restart)
against the training seconds. For the newest checkpoint that still has its full state,
it also measures the raw, un-averaged G on the same images with the same settings, so
that the moving average's share of the gain is seen on one run.
"""

from __future__ import annotations

import argparse
import dataclasses

from gejax import checkpoint, data, models, training
from gejax.training import presets


def recipe(workdir: str) -> str:
    """The settings of a workdir's BEGAN that differ from today's defaults."""
    cfg = checkpoint.section(workdir, "began_train", training.BeganTrainConfig)
    model = checkpoint.section(workdir, "began", models.BeganConfig)
    diffs = [f"{f.name}={getattr(c, f.name)}" for c, d in ((cfg, training.BeganTrainConfig()),
                                                           (model, presets.mnist32().model))
             for f in dataclasses.fields(c)
             if getattr(c, f.name) != getattr(d, f.name) and f.name != "steps"]
    return ", ".join(diffs) or "defaults"


def raw_and_average(workdir: str) -> tuple[int, float, float] | None:
    """(step, floor of raw G, floor of averaged G) at the newest full checkpoint."""
    model = checkpoint.section(workdir, "began", models.BeganConfig)
    cfg = checkpoint.section(workdir, "began_train", training.BeganTrainConfig)
    state, step = checkpoint.restore(workdir, "began", training.began_init(model, cfg))
    if state is None:
        return None
    data_cfg = checkpoint.data_section(workdir)
    _, held = training.split_monitor(data.load(data_cfg, "train"), cfg)

    return (step, training.monitored_floor(state.g.params, model, held, cfg),
            training.monitored_floor(state.g_ema, model, held, cfg))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workdirs", nargs="+")
    p.add_argument("--no_raw", action="store_true", help="skip the raw-vs-average check")
    args = p.parse_args()
    for workdir in args.workdirs:
        print(f"\n{workdir}: {recipe(workdir)}\n")
        print("| step | training minutes | floor (held-back train) |\n|---|---|---|")
        for r in training.read_history(workdir):
            print(f"| {r['step']:,} | {r['seconds'] / 60:.1f} | {r['floor']:.5f} |")
        if not args.no_raw and (found := raw_and_average(workdir)) is not None:
            step, raw, ema = found
            print(f"\nstep {step:,}: raw G {raw:.5f}, averaged G {ema:.5f}")


if __name__ == "__main__":
    main()
