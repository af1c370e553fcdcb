"""Compressed sensing, the paper's Table 1, Table 2 and Figure 4:

    python -m evaluate.cs --m 128 [--workdir ckpt --num_images 64 --out DIR]

Recovers the first N test images from m measurements with Lasso-DCT (at m and at the
paper's m=500), GA (Bora et al.'s CSGM with the same G) and GE0/GE1, and writes
results.json, results.md and figure4.png into --out. With no --workdir it uses the
pre-trained embedded default (MNIST 32x32) shipped with gejax.
"""

import argparse
import dataclasses
from pathlib import Path

from gejax import cli, evaluation, plotting

ROWS = (("original", None), ("Lasso (m=500)", "lasso_m500"), ("Lasso", "lasso"), ("GA", "ga"),
        ("GE0", "ge0"), ("GE1", "ge1"))


def run(args: argparse.Namespace) -> None:
    workdir = args.workdir or evaluation.default_workdir()
    solver = cli.override(evaluation.SolverConfig(), args)
    if args.reg is not None:
        solver = dataclasses.replace(solver, reg_ge=args.reg, reg_ga=args.reg)
    evaluation.check_solver(solver)
    nets = evaluation.load_networks(workdir)
    x = evaluation.eval_images(nets, args.num_images, args.split)
    ms = [int(v) for v in args.sweep.split(",")] if args.sweep else []
    for m in [args.m, *ms]:
        evaluation.check_m(m, x.shape[1:])
    methods = args.methods.split(",")
    evaluation.check_methods(methods)
    # After the checks, so that a mistyped flag leaves no empty results/cs_m<m> behind.
    out_dir = evaluation.prepare_out(args.out or f"results/cs_m{args.m}")
    print(f"compressed sensing: {len(x)} {args.split} images {x.shape[1:]} of "
          f"{nets.data.name}, m={args.m}, solver {solver}")
    methods, recon = evaluation.run_cs(nets, x, m=args.m, solver=solver,
                                       methods=methods,
                                       lasso_alpha=args.lasso_alpha)
    results = evaluation.cs_results(nets, workdir, x, args.m, solver, methods)
    results["split"] = args.split
    results["g_floor"] = evaluation.g_floor(nets, x, solver)
    print(f"G's floor on these images, min_z ||G(z) - x||^2: {results['g_floor']['mse']:.5f}")
    if args.fake_vs_real:
        table2 = evaluation.run_fake_vs_real(nets, x, m=args.m, solver=solver)
        results["fake_vs_real"] = table2
        print(f"Table 2 ({table2['encoder']}): fake MSE {table2['fake']['mse']:.5f}, real MSE "
              f"{table2['real']['mse']:.5f}, ratio {table2['ratio']:.3f}")

    sweep = None
    if ms:
        sweep, sweep_recon = evaluation.run_sweep(nets, x, ms=ms, solver=solver,
                                                  lasso_alpha=args.lasso_alpha)
        results["sweep"] = sweep

    def figures(out: Path):
        if sweep is not None:
            plotting.curves({k: (v["m"], v["mse"]) for k, v in sweep.items()},
                            out / "figure6.png",
                            errors={k: v["mse_std"] for k, v in sweep.items()},
                            xlabel="measurements m", ylabel="MSE per pixel ([0, 1] scale)",
                            title=f"MSE vs m, {len(x)} {args.split} images")
            shown = slice(0, min(args.grid_columns, len(x)))
            rows = [("original", x[shown])] + [
                (f"GE1 m={m}", sweep_recon[m]["ge1"][shown]) for m in ms if "ge1" in sweep_recon[m]]
            plotting.image_grid(rows, out / "figure5.png", title="GE1 with increasing m")
        shown = slice(0, min(args.grid_columns, len(x)))
        rows = [(label, x[shown] if key is None else recon[key][shown])
                for label, key in ROWS if key is None or key in recon]
        plotting.image_grid(rows, out / "figure4.png",
                            title=f"compressed sensing, m={args.m} ({nets.data.name})")

    table = evaluation.markdown_table(results, title=f"Compressed sensing, m={args.m}, "
                                      f"{len(x)} test images of {nets.data.name}")
    if "fake_vs_real" in results:
        t2 = results["fake_vs_real"]
        table += (f"\nTable 2 ({t2['encoder']}): MSE on G-made images {t2['fake']['mse']:.5f}, "
                  f"on real images {t2['real']['mse']:.5f}, ratio {t2['ratio']:.3f}\n")
    evaluation.write_outputs(out_dir, results, table, figures)
    print(table)
    print(f"wrote {out_dir}/results.json, results.md, figure4.png"
          + (", figure5.png, figure6.png" if sweep is not None else ""))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluate.cs", description=__doc__.split("\n")[0])
    p.add_argument("--m", type=int, default=128, help="number of measurements")
    p.add_argument("--workdir", default=None, help="trained checkpoints (default: shipped)")
    p.add_argument("--split", default="test", choices=("test", "train"),
                   help="report on test; tune hyper-parameters on train")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--out", default=None, help="output folder (default results/cs_m<m>)")
    p.add_argument("--methods", default="lasso,lasso_m500,ga,ge0,ge1")
    p.add_argument("--lasso_alpha", type=float, default=evaluation.LASSO_ALPHA,
                   help="l1 weight of Lasso-DCT (chosen on the train split)")
    p.add_argument("--reg", type=float, default=None, help="lambda for GE and GA alike")
    p.add_argument("--sweep", default=None,
                   help="comma-separated m values for Figs. 5-6, e.g. 16,32,64,128,256 "
                        "(GE1 needs an encoder per m: train.ae --name ae_m64 --code_dim 64)")
    p.add_argument("--fake_vs_real", action="store_true", help="also run the paper's Table 2")
    p.add_argument("--grid_columns", type=int, default=8)
    cli.add_dataclass_flags(p, evaluation.SolverConfig)
    return p


if __name__ == "__main__":
    cli.main(run, parser())
