"""Train the learned start of a workdir's GE1 encoder (`evaluate.* --init learned`):

    python -m train.init --workdir ckpt [--encoder ae --steps 2000]

Needs G and the autoencoder in the same workdir (train.began, train.ae). Resumes like
train.began. About 5 minutes on a 2-core CPU for the embedded default.
"""

from gejax import cli
from gejax.training import commands

COMMAND = cli.Command("python -m train.init", commands.init, commands.InitRun,
                      commands.init_defaults)

if __name__ == "__main__":
    COMMAND.main()
