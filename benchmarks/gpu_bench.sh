#!/usr/bin/env bash
# `twintricks bench` on a lent GPU machine, in one call of under ten minutes: every trick and
# the training step, torch_impl (eager, torch.compile), jax_impl (jax.jit) and the existing
# libraries, both frameworks on the GPU. Results go to benchmarks/gpu/ (bench.json, bench.md,
# bench.png, log.txt) and, when the device tool sets $OUT, are copied there to come back.
#
#   bash benchmarks/gpu_bench.sh [DEST]        # DEST defaults to benchmarks/gpu
#   ONLY="autoaugment randaugment trivialaugment augmix autoaugment_bilinear randaugment_bilinear
#         trivialaugment_bilinear augmix_bilinear" SIZE=imagenet bash benchmarks/gpu_bench.sh
#       # the four policies at 224 px only, nearest and bilinear (the reference recipe's
#       # interpolation); goal >= 50x torchvision image by image
#
# Every run includes the bilinear policy rows; ONLY (row names or trick ids) and SIZE
# (cifar|imagenet|both) narrow it, for a device check that must fit a few minutes.
#
# Runs from the source tree (PYTHONPATH), so it needs no install: the GPU image already has
# torch, torchvision, jax with CUDA, flax, optax, timm and matplotlib. The bench's own time
# limit (450 s) stops starting new cases, and `timeout` is the hard stop; figures measured
# before either are written as the run goes.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Let torch and jax share the GPU: jax must not grab 75% of its memory up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
dest=${1:-benchmarks/gpu}
mkdir -p "$dest"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi failed"
  "$PY" -c 'import torch, jax; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| jax", jax.__version__, jax.devices())' 2>&1
} | tee "$dest/log.txt"
only=()
[ -n "${ONLY:-}" ] && only=(--only $ONLY)  # word-split on purpose: row names
timeout 560 "$PY" -m twintricks_cli bench --device cuda --out "$dest" --time-limit 450 --size "${SIZE:-both}" "${only[@]}" 2>&1 \
  | tee -a "$dest/log.txt"
rc=${PIPESTATUS[0]}
echo "bench exit code $rc" | tee -a "$dest/log.txt"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  mkdir -p "$OUT/benchmarks" && cp -r "$dest" "$OUT/benchmarks/"
fi
exit "$rc"
