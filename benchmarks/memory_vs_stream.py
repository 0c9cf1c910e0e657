"""In memory vs streamed: training images/s of the same CIFAR-10 images held on the device
(``--dataset cifar10``) and streamed from a JPEG folder at ``--image-size 32``
(``--dataset folder``), fastnet width 32, batch 64, crop + flip; one process, the two trainers in
alternation (two rounds after a warm-up epoch each).

Usage: ``python benchmarks/memory_vs_stream.py torch|jax [WORKERS]`` (``N`` images, default
2048, extracted once from ``../shared/data/cifar10-jpeg.tar.gz`` into ``/tmp/cifarbench/data``).

Measured 2026-12-07 on the shared 2-core CPU (load average ~10, so only the comparison within a
round means anything), workers 0: torch in memory 208, 197 img/s vs streamed 161, 193; jax 119,
160 vs 119, 139. In memory was never slower, so ``digits`` and ``cifar10`` keep the device-resident
path (and on a GPU it has no host work at all, where streaming decodes every image every epoch).
"""
import os
import sys
import time
from pathlib import Path
import numpy as np
from PIL import Image

N = int(os.environ.get("N", "2048"))
root = Path(os.environ.get("DATA", "/tmp/cifarbench/data"))
if not (root / "train").exists():
    from twintricks.datasets import load_cifar10
    ds = load_cifar10(os.environ.get("TWINTRICKS_CIFAR10", Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"))
    for split, x, y, n in (("train", ds.train_images, ds.train_labels, N), ("test", ds.test_images, ds.test_labels, 256)):
        for i in np.random.default_rng(0).permutation(len(y))[:n]:
            d = root / split / ds.classes[y[i]]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(d / f"{i:05d}.jpg", quality=95)
from twintricks.datasets import load_image_folder
from twintricks.recipe import TrainConfig
from twintricks.streaming import open_streamed
backend = sys.argv[1]
workers = int(sys.argv[2]) if len(sys.argv) > 2 else 0
mem = load_image_folder(root)
common = dict(backend=backend, width=32, batch_size=64, epochs=3, crop_flip=True, progress=False, seed=0)
cfg_mem = TrainConfig(dataset="cifar10", **common)
cfg_str = TrainConfig(dataset="folder", data_dir=str(root), image_size=32, workers=workers, **common)
if backend == "torch":
    import torch

    torch.set_num_threads(1)
    from torch_impl.train import Trainer
else:
    from jax_impl.train import Trainer
tm, ts = Trainer(cfg_mem, mem), Trainer(cfg_str, open_streamed(cfg_str))
for t in (tm, ts):
    t.train_epoch(0)  # warm (compile)
res = {"memory": [], "stream": []}
for r in range(2):
    for name, t in (("memory", tm), ("stream", ts)):
        t0 = time.perf_counter(); out = t.train_epoch(r + 1); dt = time.perf_counter() - t0
        res[name].append(t.steps_per_epoch * 64 / dt)
print(backend, f"workers={workers}", {k: [round(v) for v in vs] for k, vs in res.items()})
