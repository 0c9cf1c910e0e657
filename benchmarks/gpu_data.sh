#!/usr/bin/env bash
# The data-pipeline benchmark on a lent GPU machine (16 cores), in one call of under ten minutes:
# a synthetic ImageNet-like folder (10k JPEGs), its packed copy, then benchmarks/data_bench.py
# with every core as a loader worker — ours (folder, packed), torchvision's reference loader and
# the decode limit — and RandAugment in the loader's workers vs on the GPU after the loader.
# Results go to benchmarks/gpu-data/ (log.txt, rounds.jsonl) and, when the device tool sets
# $OUT, are copied there to come back.
#
#   bash benchmarks/gpu_data.sh [DEST]        # DEST defaults to benchmarks/gpu-data
#
# The GPU image has torch, torchvision and jax but NOT grain or array_record (nor their pure
# dependencies). Carry them as wheels for its Python (3.12), downloaded here first:
#
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#       -d .gpu-wheels grain array-record
#
# (~21 MB: grain, array_record and their pure dependencies; measured 2026-12-07). Left untracked in
# the work tree, the folder travels with it to the device machine (or name it in the device call's
# carry list if it is git-ignored); this script installs it with --no-index before anything else.
# Never commit it.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
dest=${1:-benchmarks/gpu-data}
data=${DATA:-/tmp/imnet10k}
mkdir -p "$dest"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || echo "nvidia-smi failed"
  nproc
  if ! "$PY" -c 'import grain, array_record' 2>/dev/null; then
    if [ -d .gpu-wheels ]; then
      "$PY" -m pip install --quiet --no-index --find-links .gpu-wheels grain array-record 2>&1 | tail -3
    else
      echo "grain/array_record missing and no .gpu-wheels folder carried: see the header of this script"; exit 2
    fi
  fi
  "$PY" -c 'import grain, torch; print("grain ok; torch", torch.__version__, "cuda", torch.cuda.is_available())'
} 2>&1 | tee "$dest/log.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2
run() { echo "+ $*" | tee -a "$dest/log.txt"; "$@" 2>&1 | grep -v '^WARNING' | tee -a "$dest/log.txt"; }
[ -d "$data" ] || run timeout 150 "$PY" benchmarks/make_imagenet_like.py "$data" --images 10000
[ -d "$data-packed" ] || run timeout 60 "$PY" -m twintricks_cli data pack "$data" "$data-packed"
run timeout 240 "$PY" benchmarks/data_bench.py "$data" --packed "$data-packed" --modes ours,packed,torchvision,decode \
  --batch 256 --batches 8 --rounds 3 --profile --json "$dest/rounds.jsonl"
run timeout 120 "$PY" benchmarks/data_bench.py "$data" --modes randaugment-workers,randaugment-caller \
  --batch 256 --batches 6 --rounds 2 --device cuda --json "$dest/rounds.jsonl"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  mkdir -p "$OUT/benchmarks" && cp -r "$dest" "$OUT/benchmarks/"
fi
