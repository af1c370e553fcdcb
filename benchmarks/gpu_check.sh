#!/usr/bin/env bash
# The GPU check: the paper-size 64x64 networks (BEGAN celeba64, GE0), 64 images x 2 restarts
# x 500 Adam steps, in seconds and FLOP/s against a same-run f32 matmul; then the batch and
# memory tables of benchmarks/scaling.py. Under 5 minutes on one recent GPU.
#
#   pip install -e '.[dev]' && pip install -U 'jax[cuda12]'   # JAX with CUDA
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" - <<'PY'
import jax
if jax.default_backend() != "gpu":
    raise SystemExit(f"no GPU backend (JAX sees {jax.devices()}); install JAX with CUDA: "
                     "pip install -U 'jax[cuda12]'")
print("devices:", jax.devices(), "| jax", jax.__version__)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" benchmarks/solver.py --preset celeba64 --images 64 --restarts 2 --steps 500 --repeats 1 \
    --loops scan,chunked
"$PY" benchmarks/scaling.py --preset celeba64 --devices "$("$PY" -c \
    'import jax; print(",".join(str(2**i) for i in range(8) if 2**i <= jax.device_count()))')" \
    --batch_size 16 --batches 16,64,256 --steps 10,100,500
