"""Read what evaluate.* wrote: each results.json given, one line per method, with its
ratio to G's floor (how close to the best any G(z) could do) and to the best classical
baseline of the same run (below 1: GE or GA wins).

    python examples/read_results.py results/cs_m128/results.json mine/results/denoise/results.json

docs/guide/results.md lists every field of results.json.
"""

import argparse
import json


def describe(results: dict) -> list[str]:
    """One line per scored method of a results.json (`results`)."""
    methods = {k: v for k, v in results["methods"].items() if "mse" in v}
    floor = results.get("g_floor", {}).get("mse")
    # The classical methods are those without a solver start (GE and GA have one).
    classical = [v["mse"] for k, v in methods.items() if "init" not in v and k != "degraded"]
    best = min(classical) if classical else None
    lines = [f"{results['experiment']} on {results.get('num_images')} images of "
             f"{results.get('dataset', results.get('measurements'))}"
             + (f", G's floor {floor:.5f}" if floor else "")]
    for name, r in methods.items():
        to_floor = f"  {r['mse'] / floor:5.2f}x floor" if floor else ""
        to_best = f"  {r['mse'] / best:5.2f}x best classical" if best else ""
        lines.append(f"  {name:>22}  MSE {r['mse']:.5f}  PSNR {r['psnr']:5.2f} dB"
                     f"{to_floor}{to_best}")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="results.json files")
    for path in p.parse_args(argv).files:
        with open(path) as f:
            print("\n".join(describe(json.load(f))))


if __name__ == "__main__":
    main()
