"""Train the learned start of a workdir's GE1 encoder (`evaluate.* --init learned`):

    python -m train.init --workdir ckpt [--encoder ae --steps 2000]

Needs G and the autoencoder in the same workdir (train.began, train.ae). Resumes like
train.began. About 3 minutes on a 2-core CPU for the embedded default.
"""

import argparse

from gejax import amortized, checkpoint, cli


def run(args: argparse.Namespace) -> None:
    name = amortized.name_for(args.encoder)
    stored = (checkpoint.section(args.workdir, f"{name}_train", amortized.InitTrainConfig)
              if name in checkpoint.read_config(args.workdir) else amortized.InitTrainConfig())
    amortized.train_init(args.workdir, cli.override(stored, args), encoder=args.encoder)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.init", description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="a workdir holding G and the autoencoder")
    p.add_argument("--encoder", default="ae", help="the autoencoder whose codes Q reads")
    cli.add_dataclass_flags(p, amortized.InitTrainConfig)
    return p


if __name__ == "__main__":
    cli.main(run, parser())
