#!/usr/bin/env bash
# Scaling from 1 to N GPUs of one machine, both backends: the same CIFAR-10 recipe (global batch
# BATCH) with torch DDP (torchrun --nproc_per_node=n) and jax (--devices n), n = 1, 2, 4, ... N.
# Writes benchmarks/multi_gpu/<backend>-<n>/summary.json and benchmarks/multi_gpu/results.md
# (images/s, speed-up over one GPU, final accuracy, which should agree across n up to rounding).
#
# Usage (from the repository root, on a machine with several GPUs):
#   bash benchmarks/multi_gpu.sh [ARCHIVE]
# ARCHIVE: cifar10-jpeg.tar.gz or a cifar-10-batches-py folder (default: the first found under
# shared/data, ../shared/data, /work/shared/data). GPUS (default: all torch sees), EPOCHS, WIDTH,
# BATCH, LR override the recipe below.
#
# UNTESTED ON SEVERAL GPUS: written on a CPU-only machine, where the same commands run with gloo
# and host devices (tests/test_distributed.py). Record what it prints when it first runs.
set -euo pipefail
cd "$(dirname "$0")/.."

ARCHIVE=${1:-}
if [[ -z "$ARCHIVE" ]]; then
  for cand in shared/data/cifar10-jpeg.tar.gz ../shared/data/cifar10-jpeg.tar.gz /work/shared/data/cifar10-jpeg.tar.gz; do
    [[ -e "$cand" ]] && ARCHIVE=$cand && break
  done
fi
[[ -e "${ARCHIVE:-}" ]] || { echo "multi_gpu.sh: cifar10-jpeg.tar.gz not found (pass its path)" >&2; exit 2; }

GPUS=${GPUS:-$(python -c "import torch; print(torch.cuda.device_count())")}
[[ "$GPUS" -ge 2 ]] || { echo "multi_gpu.sh: needs at least 2 GPUs, torch sees $GPUS" >&2; exit 2; }
EPOCHS=${EPOCHS:-4}
WIDTH=${WIDTH:-64}
BATCH=${BATCH:-512}
LR=${LR:-0.2}
OUT=benchmarks/multi_gpu
mkdir -p "$OUT"
COMMON=(--dataset cifar10 --data-dir "$ARCHIVE" --epochs "$EPOCHS" --width "$WIDTH" --batch-size "$BATCH" --lr "$LR"
        --crop-flip --cutout 8 --label-smoothing 0.1 --no-progress)

counts=()
n=1
while [[ $n -le $GPUS ]]; do counts+=("$n"); n=$((n * 2)); done
[[ " ${counts[*]} " == *" $GPUS "* ]] || counts+=("$GPUS")

for n in "${counts[@]}"; do
  echo "== torch, $n GPU(s)"
  torchrun --standalone --nproc_per_node="$n" -m twintricks_cli train --backend torch "${COMMON[@]}" --out "$OUT/torch-$n"
  echo "== jax, $n GPU(s)"
  python -m twintricks_cli train --backend jax --devices "$n" "${COMMON[@]}" --out "$OUT/jax-$n"
done

python - "$OUT" "${counts[@]}" <<'PY'
import json, sys
from pathlib import Path

out, counts = Path(sys.argv[1]), [int(c) for c in sys.argv[2:]]
rows = ["| backend | GPUs | world_size | images/s | speed-up | final test acc | final train loss |", "|---|---|---|---|---|---|---|"]
for backend in ("torch", "jax"):
    base = None
    for n in counts:
        s = json.loads((out / f"{backend}-{n}" / "summary.json").read_text())
        base = base or s["images_per_s"]
        rows.append(f"| {backend} | {n} | {s['world_size']} | {s['images_per_s']:.0f} | {s['images_per_s'] / base:.2f}x | "
                    f"{s['final_test_acc']:.4f} | {s['final_train_loss']:.4f} |")
(out / "results.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
