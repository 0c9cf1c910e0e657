#!/usr/bin/env bash
# Train on the full CIFAR-10 archive in both backends on one GPU, in one call of under ten minutes,
# and record accuracy and time under benchmarks/gpu_train/ (summary.json per backend + results.md).
#
# Usage (from the repository root, on the lent GPU machine):
#   bash benchmarks/gpu_train.sh [ARCHIVE]
# ARCHIVE defaults to the first of shared/data, ../shared/data, /work/shared/data holding
# cifar10-jpeg.tar.gz. EPOCHS, WIDTH, BATCH, LR override the recipe below.
#
# UNTESTED ON A GPU: written in a session that had no device; the CPU path of every command here
# is covered by tests/test_train.py. Record what it prints when it first runs on a device.
set -euo pipefail
cd "$(dirname "$0")/.."

ARCHIVE=${1:-}
if [[ -z "$ARCHIVE" ]]; then
  for cand in shared/data/cifar10-jpeg.tar.gz ../shared/data/cifar10-jpeg.tar.gz /work/shared/data/cifar10-jpeg.tar.gz; do
    [[ -f "$cand" ]] && ARCHIVE=$cand && break
  done
fi
[[ -f "${ARCHIVE:-}" ]] || { echo "gpu_train.sh: cifar10-jpeg.tar.gz not found (pass its path)" >&2; exit 2; }

EPOCHS=${EPOCHS:-12}
WIDTH=${WIDTH:-64}
BATCH=${BATCH:-256}
LR=${LR:-0.1}
OUT=benchmarks/gpu_train
mkdir -p "$OUT"

if ! python -c "import twintricks" 2>/dev/null; then
  python -m pip install -q -e ".[torch,jax]" || python -m pip install -q --no-deps -e .
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt" || true
python - <<'PY' | tee -a "$OUT/device.txt"
import torch, jax
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| jax", jax.__version__, jax.devices())
PY

# decode the archive once into the uint8 cache (both runs then load it in < 1 s)
python -c "import sys, time; from twintricks.datasets import load_cifar10; t = time.time(); d = load_cifar10(sys.argv[1]); print('data', d.train_images.shape, d.test_images.shape, f'{time.time() - t:.1f}s')" "$ARCHIVE"

RECIPE=(--dataset cifar10 --data-dir "$ARCHIVE" --model fastnet --width "$WIDTH" --epochs "$EPOCHS"
        --batch-size "$BATCH" --eval-batch-size 1000 --lr "$LR" --crop-flip --crop-scale 0.35 1
        --label-smoothing 0.1 --no-progress)
for backend in torch jax; do
  echo "=== $backend"
  timeout 270 twintricks train --backend "$backend" "${RECIPE[@]}" --out "$OUT/$backend" 2>&1 | tee "$OUT/$backend.log" || echo "$backend: failed or timed out (exit $?)"
done

python - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = ["| backend | test acc | wall s | images/s | compile s |", "|---|---|---|---|---|"]
for b in ("torch", "jax"):
    f = out / b / "summary.json"
    if f.exists():
        s = json.loads(f.read_text())
        rows.append(f"| {b} | {s['final_test_acc']:.4f} | {s['wall_s']:.1f} | {s['images_per_s']:.0f} | {s['compile_s']:.1f} |")
    else:
        rows.append(f"| {b} | (no result) | | | |")
device = (out / "device.txt").read_text().strip() if (out / "device.txt").exists() else "?"
text = "CIFAR-10 (JPEG archive), fastnet, full training set\n\n" + device + "\n\n" + "\n".join(rows) + "\n"
(out / "results.md").write_text(text)
print(text)
PY
