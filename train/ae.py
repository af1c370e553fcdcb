"""Pre-train GE1's conv autoencoder on real images and images from the workdir's G:

    python -m train.ae --workdir ckpt [--steps N --code_dim 128 --fake_fraction 0.5]
    python -m train.ae --workdir ckpt --name ae_m64 --code_dim 64   # for the m sweep
    python -m train.ae --workdir ckpt --name ae_denoise --corrupt denoise   # a task encoder

Needs a BEGAN in the same workdir (python -m train.began). Resumes like train.began.
"""

import argparse

from gejax import checkpoint, cli, models, training


def run(args: argparse.Namespace) -> None:
    stored = checkpoint.read_config(args.workdir)
    if args.name in stored:
        model = checkpoint.section(args.workdir, args.name, models.AEConfig)
        train_cfg = cli.override(
            checkpoint.section(args.workdir, f"{args.name}_train", training.AETrainConfig), args)
        asked = cli.override(model, args)
        if asked != model:
            raise ValueError(f"{args.workdir} holds an autoencoder of {model}; it cannot resume "
                             f"as {asked}. Use a new --workdir.")
    else:
        began = checkpoint.section(args.workdir, "began", models.BeganConfig)
        # Built in one go: the defaults alone (depth 4) may not fit G's image size.
        model = models.AEConfig(**{**cli.given(models.AEConfig, args),
                                   "image_size": began.image_size, "channels": began.channels})
        train_cfg = cli.override(training.AETrainConfig(), args)
    training.train_ae(args.workdir, model, train_cfg, name=args.name)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.ae", description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="a workdir holding a trained BEGAN")
    p.add_argument("--name", default="ae",
                   help="'ae' (GE1 of evaluate.cs) or 'ae_<suffix>' for more encoders, e.g. "
                        "one per m for evaluate.cs --sweep")
    cli.add_dataclass_flags(p, training.AETrainConfig)
    cli.add_dataclass_flags(p, models.AEConfig, skip=("image_size", "channels"))
    return p


if __name__ == "__main__":
    cli.main(run, parser())
