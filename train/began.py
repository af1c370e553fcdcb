"""Pre-train BEGAN's G and D: python -m train.began --workdir ckpt [--steps N ...]

Rerunning the same command resumes from the newest checkpoint; a larger --steps continues
a finished run. The model and data configs are stored in the workdir on the first run
and are fixed from then on. `--help` lists every flag (gejax.training.commands.BeganRun).
"""

from gejax import cli
from gejax.training import commands

COMMAND = cli.Command("python -m train.began", commands.began, commands.BeganRun,
                      commands.began_defaults)

if __name__ == "__main__":
    COMMAND.main()
