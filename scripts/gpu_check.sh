#!/usr/bin/env bash
# On the GPU machine, from the repository root: install the carried wheels and this
# repository into /tmp/site (nothing can be downloaded there), then run the GPU check.
#   bash scripts/gpu_check.sh "$OUT"        # extra arguments go to gpu_check.py
set -uo pipefail
out="${1:?usage: scripts/gpu_check.sh OUT [gpu_check.py options]}"; shift
site=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .gpu-carry/wheels/*.whl || exit 2
# The project itself, so its plugins register through their entry points.
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target "$site" . || exit 2
export PYTHONPATH="$site" PYTHONUNBUFFERED=1 BENCH_OFFLINE=1
export BENCH_DATA_DIR="${BENCH_DATA_DIR:-$PWD/.gpu-carry/datasets}"
exec python3 scripts/gpu_check.py --out "$out" "$@"
