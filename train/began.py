"""Pre-train BEGAN's G and D: python -m train.began --workdir ckpt [--steps N ...]

Rerunning the same command resumes from the newest checkpoint; a larger --steps continues
a finished run. The model and data configs are stored in the workdir on the first run
and are fixed from then on.
"""

import argparse
import dataclasses

from gejax import checkpoint, cli, data, models, training

# preset -> (networks, data, training defaults)
PRESETS = {
    "mnist32": (models.began_mnist32, data.DataConfig("mnist", 32, 1),
                training.BeganTrainConfig),
    "celeba64": (models.began_celeba64, data.DataConfig("tfds:celeb_a", 64, 3),
                 training.began_paper),
    "celeba128": (models.began_celeba128, data.DataConfig("tfds:celeb_a", 128, 3),
                  training.began_paper),
}


def run(args: argparse.Namespace) -> None:
    stored = checkpoint.read_config(args.workdir)
    if "began" in stored:  # resuming: the networks and data are those of the first run
        model = checkpoint.section(args.workdir, "began", models.BeganConfig)
        data_cfg = checkpoint.section(args.workdir, "data", data.DataConfig)
        train_cfg = checkpoint.section(args.workdir, "began_train", training.BeganTrainConfig)
        if "pull_away" not in stored["began_train"]:  # written before the term existed
            train_cfg = dataclasses.replace(train_cfg, pull_away=0.0)
        train_cfg = cli.override(train_cfg, args)
        asked = cli.override(model, args)
        if asked != model:
            raise ValueError(f"{args.workdir} holds a BEGAN of {model}; it cannot resume as "
                             f"{asked}. Use a new --workdir.")
    else:
        make_model, data_cfg, make_train = PRESETS[args.preset]
        train_cfg = cli.override(make_train(), args)
        if args.dataset:
            data_cfg = data.DataConfig(args.dataset, data_cfg.image_size, data_cfg.channels,
                                       args.tfds_dir)
        model = cli.override(make_model(), args)
        data_cfg = dataclasses.replace(data_cfg, image_size=model.image_size,
                                       channels=model.channels)
    training.train_began(args.workdir, data_cfg, model, train_cfg)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.began", description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="checkpoints, config, samples, TensorBoard")
    p.add_argument("--preset", choices=sorted(PRESETS), default="mnist32",
                   help="networks and data of the paper (celeba*) or the embedded default")
    p.add_argument("--dataset", default=None,
                   help="'mnist', 'tfds:<name>', a folder of images or an .npz (default: preset)")
    p.add_argument("--tfds_dir", default=None, help="TFDS data_dir")
    cli.add_dataclass_flags(p, training.BeganTrainConfig)
    cli.add_dataclass_flags(p, models.BeganConfig)
    return p


if __name__ == "__main__":
    cli.main(run, parser())
