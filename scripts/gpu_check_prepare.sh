#!/usr/bin/env bash
# Gather what the offline GPU machine lacks into .gpu-carry/ (git-ignored), on a machine
# with PyPI: the data files (statically binarized MNIST, PTB) and wheels of the packages its image does not hold.
# Then pass carry=[".gpu-carry"] to the device call (docs/gpu-check.md).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${BENCH_DATA_DIR:-../shared/datasets}"
[ -d "$data/ptb" ] || data=shared/datasets
for d in binarized_mnist ptb; do
    [ -d "$data/$d" ] || { echo "error: $data/$d not found (set BENCH_DATA_DIR)" >&2; exit 2; }
done
rm -rf .gpu-carry
mkdir -p .gpu-carry/datasets .gpu-carry/wheels
cp -r "$data/binarized_mnist" "$data/ptb" .gpu-carry/datasets/
# The GPU image (KINDS.md) has torch, numpy, scipy, scikit-learn, pyarrow, pandas, click,
# rich, pluggy, matplotlib, fsspec, xxhash, huggingface-hub; these it lacks (Python 3.12).
# polars 1.33 is one 40 MB wheel; from 1.34 on a 54 MB runtime wheel comes with it, which with
# the data would pass the 64 MiB the device tool carries (the leaderboard code runs on both).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    -d .gpu-carry/wheels \
    polars==1.33.1 platformdirs datasets dill multiprocess
du -sh .gpu-carry/* | sed 's/^/carry: /'
