"""Restoration with GE against classical baselines, the paper's Figures 8-11:

    python -m evaluate.restore --task denoise|deblur|superres|inpaint [--mask block|lines]

Each task's setting is a flag (--sigma, --blur_sigma, --factor, --block_size; default the
paper's). Writes results.json, results.md and the figure to --out (default
results/<task>). `--help` lists every flag (gejax.experiments.restore.RestoreRun).
"""

from gejax import cli
from gejax.experiments import restore

COMMAND = cli.Command("python -m evaluate.restore", restore.evaluate, restore.RestoreRun)

if __name__ == "__main__":
    COMMAND.main()
