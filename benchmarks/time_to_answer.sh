#!/usr/bin/env bash
# Issue 15's time to an answer: GE1 from its learned start (whitened Adam) with early stop
# against the paper's protocol, in CS (m = 128) and denoising, each command twice, one process each,
# in the order learned / paper / learned / paper, from an empty compilation cache (so the
# first run of each compiles and the second loads). Prints quality, the `seconds` of GE1
# in results.json and the ratios, cold and warm. About 12 minutes on 2 CPU cores.
#
#     bash benchmarks/time_to_answer.sh [tol]      # tol: default 0.6
set -euo pipefail
cd "$(dirname "$0")/.."
tol="${1:-0.6}"
out="$(mktemp -d)"
export JAX_COMPILATION_CACHE_DIR="$out/xla"
for run in 1 2; do
  for init in learned random; do
    flags=$([ "$init" = learned ] && echo "--init learned --tol $tol" || echo "--protocol paper")
    # shellcheck disable=SC2086
    python -m evaluate.cs --m 128 --methods ge1 $flags --out "$out/cs_${init}_$run" \
      > /dev/null 2>&1
    # shellcheck disable=SC2086
    python -m evaluate.restore --task denoise $flags --out "$out/denoise_${init}_$run" \
      > /dev/null 2>&1
  done
done
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for exp, metric in (("cs", "mse"), ("denoise", "psnr")):
    r = {(init, run): json.load(open(f"{out}/{exp}_{init}_{run}/results.json"))["methods"]["ge1"]
         for init in ("learned", "random") for run in (1, 2)}
    for run, label in ((1, "cold"), (2, "warm")):
        a, b = r["learned", run], r["random", run]
        print(f"{exp:8s} {label}: learned {metric} {a[metric]:.5g} in {a['seconds']:.1f} s "
              f"({a['steps_run']:.0f} steps), paper {b[metric]:.5g} in {b['seconds']:.1f} s: "
              f"1/{b['seconds'] / a['seconds']:.1f}")
PY
