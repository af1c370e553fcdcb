#!/usr/bin/env bash
# Train GE on your own folder of images, then evaluate it on its test split and restore
# your own noisy images with it.
#
#   bash examples/train_on_folder.sh FOLDER WORKDIR [MINUTES] [PRESET] [evaluate flags...]
#   bash examples/train_on_folder.sh ~/pictures/digits mine 60
#
# FOLDER may be relative: the workdir stores it absolute, so later commands run from
# anywhere. A damaged file is named before the first step (--skip_damaged leaves such
# files out). MINUTES is the whole budget (train.all); rerunning resumes. PRESET:
# grey32 (32x32 grey, the default), mnist32, celeba64 (64x64 RGB: give it days on a CPU,
# hours on a GPU), tiny (8x8, for tests).
set -euo pipefail
folder=${1:?usage: train_on_folder.sh FOLDER WORKDIR [MINUTES] [PRESET]}
work=${2:?usage: train_on_folder.sh FOLDER WORKDIR [MINUTES] [PRESET]}
minutes=${3:-60}
preset=${4:-grey32}
shift $(( $# < 4 ? $# : 4 ))

python -m train.all --workdir "$work" --dataset "$folder" --minutes "$minutes" --preset "$preset"
# GE1's m is its encoder's code length, stored in the workdir's config.json.
m=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['ae']['code_dim'])" \
    "$work/config.json")
python -m evaluate.cs --workdir "$work" --m "$m" "$@"         # -> $work/results/cs_m$m/
python -m evaluate.restore --workdir "$work" --task denoise "$@"  # -> $work/results/denoise/
echo "results: $work/results/cs_m$m/results.md, $work/results/denoise/results.md"
