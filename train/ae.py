"""Pre-train GE1's conv autoencoder on real images and images from the workdir's G:

    python -m train.ae --workdir ckpt [--steps N --code_dim 128 --fake_fraction 0.5]
    python -m train.ae --workdir ckpt --name ae_m64 --code_dim 64   # for the m sweep
    python -m train.ae --workdir ckpt --name ae_denoise --corrupt denoise   # a task encoder

Needs a BEGAN in the same workdir (python -m train.began). Resumes like train.began.
"""

from gejax import cli
from gejax.training import commands

COMMAND = cli.Command("python -m train.ae", commands.ae, commands.AERun, commands.ae_defaults)

if __name__ == "__main__":
    COMMAND.main()
