#!/usr/bin/env bash
# Streamed training on a lent GPU machine, in one call of under ten minutes: a ResNet-50 at 224 px
# on a synthetic ImageNet-like folder (4,000 JPEGs of 200-640 px, packed), in both backends, then
# the mid-epoch kill and --resume check on the GPU (torch: pinned memory + non_blocking copies;
# jax: device_put with the batch sharding — the paths the CPU tests cannot reach).
# Results go to benchmarks/gpu-stream/ (log.txt, summary.json per run) and, when the device tool
# sets $OUT, are copied there to come back.
#
#   bash benchmarks/gpu_stream_train.sh [DEST]        # DEST defaults to benchmarks/gpu-stream
#
# The GPU image lacks grain and array_record: carry them as wheels, as benchmarks/gpu_data.sh's
# header says (a .gpu-wheels folder in the work tree; never committed).
#
# UNTESTED ON A GPU: written in a session that had no device; every command's CPU path is covered
# by tests/test_train.py and tests/test_readme_train.py. Record what it prints when it first runs.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
dest=${1:-benchmarks/gpu-stream}
data=${DATA:-/tmp/imnet4k}
# overrides (a CPU dry run of the script: IMAGES=200 CLASSES=4 MODEL=fastnet SIZE=32 BATCH=8 SAVE=3 ...)
images=${IMAGES:-4000}; classes=${CLASSES:-100}; model=${MODEL:-resnet50}; size=${SIZE:-224}; batch=${BATCH:-128}; save=${SAVE:-10}
mkdir -p "$dest"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || echo "nvidia-smi failed"
  nproc
  if ! "$PY" -c 'import grain, array_record' 2>/dev/null; then
    if [ -d .gpu-wheels ]; then
      "$PY" -m pip install --quiet --no-index --find-links .gpu-wheels grain array-record 2>&1 | tail -3
    else
      echo "grain/array_record missing and no .gpu-wheels folder carried: see benchmarks/gpu_data.sh"; exit 2
    fi
  fi
} 2>&1 | tee "$dest/log.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2
run() { echo "+ $*" | tee -a "$dest/log.txt"; "$@" 2>&1 | grep -v '^WARNING' | tee -a "$dest/log.txt"; }
[ -d "$data" ] || run timeout 90 "$PY" benchmarks/make_imagenet_like.py "$data" --images "$images" --classes "$classes"
[ -d "$data-packed" ] || run timeout 60 "$PY" -m twintricks_cli data pack "$data" "$data-packed"
# 3,800 training images / batch 128 = 29 steps per epoch, 2 epochs
recipe=(--dataset packed --data-dir "$data-packed" --model "$model" --image-size "$size" --crop-flip --crop-scale 0.08 1
        --batch-size "$batch" --eval-batch-size "$((2 * batch))" --epochs 2 --lr 0.1 --label-smoothing 0.1 --no-progress)
for backend in torch jax; do
  run timeout 200 "$PY" -m twintricks_cli train --backend "$backend" "${recipe[@]}" --out "$dest/$backend"
done
# kill -9 in the middle of epoch 2 (after a --save-every checkpoint), then --resume: the final
# weights must equal an uninterrupted run's (compared below, per backend; GPU kernels may not be
# deterministic run to run, so the check prints the largest difference instead of asserting 0)
for backend in torch; do
  cut="$dest/$backend-cut"
  ( "$PY" -m twintricks_cli train --backend "$backend" "${recipe[@]}" --save-every "$save" --out "$cut" \
      >> "$dest/log.txt" 2>&1 & pid=$!
    while [ ! -f "$cut/checkpoint.ckpt" ] || ! "$PY" -c "import sys; from twintricks.checkpoint import load_checkpoint as l; c = l(sys.argv[1]); sys.exit(0 if c['epoch'] == 1 and c['step_in_epoch'] > 0 else 1)" "$cut/checkpoint.ckpt" 2>/dev/null; do
      kill -0 $pid 2>/dev/null || break; sleep 1
    done
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; echo "killed $backend run" | tee -a "$dest/log.txt" )
  run timeout 200 "$PY" -m twintricks_cli train --backend "$backend" "${recipe[@]}" --save-every "$save" --out "$cut" --resume
  run "$PY" - "$dest/$backend/checkpoint.ckpt" "$cut/checkpoint.ckpt" <<'PY'
import sys
import numpy as np
from twintricks.checkpoint import load_checkpoint
a, b = (load_checkpoint(p) for p in sys.argv[1:3])
def flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}{k}/") if isinstance(v, dict) else {prefix + k: v})
    return out
fa, fb = flat(a["model"]), flat(b["model"])
diff = max(float(np.abs(np.asarray(fa[k], np.float64) - np.asarray(fb[k], np.float64)).max()) for k in fa)
print(f"resumed vs uninterrupted: step {a['step']} vs {b['step']}, largest weight difference {diff:.3g}")
PY
done
"$PY" - "$dest" <<'PY' | tee -a "$dest/log.txt"
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for b in ("torch", "jax"):
    f = out / b / "summary.json"
    if f.exists():
        s = json.loads(f.read_text())
        print(f"{b}: {s['images_per_s']:.0f} img/s, compile {s['compile_s']:.1f}s, test acc {s['final_test_acc']:.4f}, {s['device']}")
    else:
        print(f"{b}: no result")
PY
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  mkdir -p "$OUT/benchmarks" && cp -r "$dest" "$OUT/benchmarks/"
fi
