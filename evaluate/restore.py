"""Restoration with GE against classical baselines, the paper's Figures 8-11:

    python -m evaluate.restore --task denoise|deblur|superres|inpaint [--mask block|lines]

denoise: Gaussian noise sigma 0.4, vs BM3D. deblur: Gaussian blur, vs Wiener and
Richardson-Lucy deconvolution with the true kernel and blind Richardson-Lucy given only
its size (GE0 and GE1 are blind; ge1_task's encoder was trained on this blur). superres: 4x
down-sampling, the bicubic up-sampling is both the baseline and GE's x_dagger.
inpaint: a centre block (30x30 at 64x64) or hand-drawn-like lines, vs biharmonic
inpainting; GE's output keeps the observed pixels (--no-keep_observed: G(z*), as the
paper). GE solves z* = argmin ||EN(S G(z)) - EN(x_dagger)||^2 + lambda ||z||^2
with GE0, GE1 and, as "ge1_task", an encoder trained for the task if the workdir has
one (python -m train.ae --name ae_denoise --corrupt denoise; the task names are
gejax.tasks.NAMES). Writes results.json, results.md and a figure to --out (default
results/<task>).
"""

import argparse
import dataclasses
from pathlib import Path

from gejax import cli, evaluation, plotting

FIGURE = {"denoise": "figure8", "deblur": "figure9", "superres": "figure10",
          "inpaint": "figure11"}


def run(args: argparse.Namespace) -> None:
    if args.task not in FIGURE:
        raise ValueError(f"unknown task {args.task!r}: use one of {', '.join(FIGURE)}")
    workdir = args.workdir or evaluation.default_workdir()
    solver = cli.override(evaluation.SolverConfig(), args)
    if args.reg is not None:
        solver = dataclasses.replace(solver, reg_ge=args.reg)
    evaluation.check_solver(solver)
    name = args.task if args.task != "inpaint" else f"inpaint_{args.mask}"
    out_dir = evaluation.prepare_out(args.out or f"results/{name}")
    nets = evaluation.load_networks(workdir)
    x = evaluation.eval_images(nets, args.num_images, args.split)
    print(f"{name}: {len(x)} {args.split} images {x.shape[1:]} of {nets.data.name}, "
          f"solver {solver}")
    methods, recon, params = evaluation.run_restore(nets, x, task=name, solver=solver,
                                                    keep_observed=args.keep_observed)
    x_dagger = params.pop("degraded_input")
    results = {"experiment": args.task, "dataset": nets.data.name,
               "image_shape": list(x.shape[1:]), "num_images": len(x), "split": args.split,
               "seed": solver.seed,
               "task": params, "methods": methods,
               "g_floor": evaluation.g_floor(nets, x, solver),
               **evaluation.provenance(solver, workdir)}

    def figures(out: Path):
        shown = slice(0, min(args.grid_columns, len(x)))
        rows = [("original", x[shown]), ("degraded", x_dagger[shown])]
        rows += [(k, v[shown]) for k, v in recon.items() if k != "degraded"]
        plotting.image_grid(rows, out / f"{FIGURE[args.task]}.png",
                            title=f"{name} ({nets.data.name})")

    table = evaluation.markdown_table(results, title=f"{name}, {len(x)} test images of "
                                      f"{nets.data.name}")
    evaluation.write_outputs(out_dir, results, table, figures)
    print(table)
    print(f"wrote {out_dir}/results.json, results.md, {FIGURE[args.task]}.png")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluate.restore",
                                description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, help="denoise, deblur, superres or inpaint")
    p.add_argument("--mask", default="block", choices=("block", "lines"), help="inpaint mask")
    p.add_argument("--keep_observed", default=True, action=argparse.BooleanOptionalAction,
                   help="inpaint: keep the observed pixels in GE's output, M x_dagger + "
                   "(1 - M) G(z*); --no-keep_observed gives G(z*), the paper's output")
    p.add_argument("--workdir", default=None, help="trained checkpoints (default: shipped)")
    p.add_argument("--split", default="test", choices=("test", "train"),
                   help="report on test; tune hyper-parameters on train")
    p.add_argument("--num_images", type=int, default=32)
    p.add_argument("--out", default=None, help="output folder (default results/<task>)")
    p.add_argument("--reg", type=float, default=None, help="lambda for GE")
    p.add_argument("--grid_columns", type=int, default=8)
    cli.add_dataclass_flags(p, evaluation.SolverConfig, skip=("reg_ga",))
    return p


if __name__ == "__main__":
    cli.main(run, parser())
