"""Data-pipeline benchmark: twintricks' streaming loader against torchvision's reference loader.

Measures, on an image folder (``benchmarks/make_imagenet_like.py``), with the same number of
worker processes for every pipeline:

* ``ours``: ``twintricks.data.Loader`` — decode + RandomResizedCrop(224) from the original +
  flip → uint8 batches (``--kind folder`` or, with ``--packed DIR``, the packed copy);
* ``torchvision``: ``ImageFolder`` + ``v2.RandomResizedCrop(224, antialias=True)`` +
  ``v2.RandomHorizontalFlip()`` + ``v2.PILToTensor()`` + ``DataLoader`` (shuffled, same batch);
* ``decode``: decode-only of the same files through grain with the same workers (read + Pillow
  decode to RGB, nothing kept): the decode limit;
* ``randaugment``: ours plus torch_impl's RandAugment on each batch, once in the loader's
  workers (``batch_transform``) and once in the calling process after the loader (what a CPU-only
  trainer would do "on the device").

Images/s are steady-state (from the first batch to the last, so worker start-up is reported
separately as the time to the first batch). Rounds alternate between pipelines and the table
gives each pipeline's median round and the ratios of medians, because this machine is shared
and noisy. Peak memory is the process tree's summed PSS, sampled every 50 ms; it includes what
the benchmark process itself has imported so far (torch, once a torch mode has run), so compare
memory across modes with one mode per run. ``--profile``
adds an in-process breakdown of where one image's time goes.

    python benchmarks/make_imagenet_like.py /tmp/imnet10k --images 10000
    python benchmarks/data_bench.py /tmp/imnet10k --workers 2 --rounds 3 --batches 8
    twintricks data pack /tmp/imnet10k /tmp/imnet10k-packed
    python benchmarks/data_bench.py /tmp/imnet10k --packed /tmp/imnet10k-packed --modes ours,packed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

import numpy as np

MODES = ("ours", "packed", "torchvision", "decode", "randaugment-workers", "randaugment-caller")


class PeakRSS:
    """Peak memory (bytes) of this process plus all its children, sampled in a thread: the sum of
    their PSS (proportional set size: a page shared by k processes counts 1/k in each — forked
    workers share their parent's pages, so summing RSS would count those pages once per worker),
    RSS where PSS cannot be read."""

    def __init__(self, every: float = 0.05):
        import psutil

        self._me, self._every, self.peak, self._stop = psutil.Process(), every, 0, threading.Event()

    def _total(self) -> int:
        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                total += getattr(p.memory_full_info(), "pss", None) or p.memory_info().rss
            except Exception:  # a child that just ended
                pass
        return total

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            self._stop.wait(self._every)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _timed(batches, n: int, size_of) -> dict:
    t0 = time.perf_counter()
    first = next(batches)
    t1 = time.perf_counter()
    images = 0
    for _ in range(n):
        images += size_of(next(batches))
    t2 = time.perf_counter()
    del first
    return {"first_batch_s": t1 - t0, "images_per_s": images / (t2 - t1)}


class TorchRandAugment:
    """torch_impl's RandAugment(2, 9) on a uint8 batch, drawn from (seed, epoch, step): as a
    loader ``batch_transform`` (in the workers, CPU, one thread each) or after the loader on
    ``device`` (the batch is moved there and left there, as a trainer would)."""

    def __init__(self, device: str = "cpu", threads: int | None = 1):
        self.device, self.threads = device, threads

    def __call__(self, batch, seed, epoch, step):
        import torch

        from torch_impl import RandAugment

        if self.threads:
            torch.set_num_threads(self.threads)
        g = torch.Generator(device=self.device).manual_seed((seed * 1_000_003 + epoch * 10_007 + step) % (1 << 62))
        x = torch.from_numpy(batch.images).to(self.device).permute(0, 3, 1, 2)
        out = RandAugment(generator=g)(x)
        if self.device == "cpu":
            return batch._replace(images=out.permute(0, 2, 3, 1).contiguous().numpy())
        torch.cuda.synchronize()
        return batch


def _decode_only(source):
    """grain map: read + decode one image, keep nothing (the decode limit)."""

    class Decode:
        def __call__(self, i):
            from twintricks.data.decode import decode_rgb

            data, _ = source.read(i)
            im = decode_rgb(data, "x")
            return np.int64(im.width * im.height)

    return Decode()


def run_mode(mode: str, a, epoch: int) -> dict:
    from twintricks.data import Loader, open_source

    if mode in ("ours", "packed", "randaugment-workers", "randaugment-caller"):
        kind, path = ("packed", a.packed) if mode == "packed" else ("folder", a.folder)
        source = open_source(kind, path, split="train", on_bad_image="skip")
        transform = TorchRandAugment() if mode == "randaugment-workers" else None
        loader = Loader(source, train=True, batch_size=a.batch, image_size=a.image_size, seed=0, workers=a.workers,
                        on_bad_image="skip", batch_transform=transform)
        it = loader.iterator(epoch)
        if mode == "randaugment-caller":
            after = TorchRandAugment(a.device, threads=None)  # the caller keeps its threads
            it = (after(b, 0, epoch, k) for k, b in enumerate(it))
        try:
            return _timed(iter(it), a.batches, lambda b: len(b.images))
        finally:
            loader.close()
    if mode == "torchvision":
        import torch
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import v2

        t = v2.Compose([v2.RandomResizedCrop(a.image_size, antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()])
        ds = ImageFolder(os.path.join(a.folder, "train"), transform=t)
        g = torch.Generator().manual_seed(epoch)
        dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, generator=g,
                                         drop_last=True)
        return _timed(iter(dl), a.batches, lambda b: len(b[0]))
    if mode == "decode":
        import grain

        from twintricks.data.pipeline import _grain

        _grain()
        source = open_source("folder", a.folder, split="train", on_bad_image="skip")
        order = np.random.default_rng(epoch).permutation(len(source))
        ds = grain.MapDataset.source(order).map(_decode_only(source)).batch(a.batch, drop_remainder=True)
        it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1 if a.workers else 0, prefetch_buffer_size=1))
        if a.workers:
            it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=a.workers))
        it = iter(it_ds)
        try:
            return _timed(it, a.batches, len)
        finally:
            it.close() if hasattr(it, "close") else None
    raise SystemExit(f"data_bench: unknown mode {mode!r} (one of {', '.join(MODES)})")


def profile(a, n: int = 300) -> dict:
    """Where one image's time goes, in this process: read, decode, crop + resize + flip, key draws."""
    from twintricks.data import open_source
    from twintricks.data.decode import decode_rgb
    from twintricks.data.transforms import CROP, FLIP, image_rng, train_crop

    source = open_source("folder", a.folder, split="train", on_bad_image="skip")
    idx = np.random.default_rng(1).permutation(len(source))[:n]
    t = dict.fromkeys(("read", "decode", "draws", "crop_resize_flip"), 0.0)
    for g in idx:
        t0 = time.perf_counter()
        data, _ = source.read(int(g))
        t1 = time.perf_counter()
        try:
            im = decode_rgb(data, "x")
        except ValueError:
            continue
        t2 = time.perf_counter()
        rc, rf = image_rng(0, 0, int(g), CROP), image_rng(0, 0, int(g), FLIP)
        t3 = time.perf_counter()
        train_crop(im, rc, rf, a.image_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p=0.5)
        t4 = time.perf_counter()
        for k, d in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            t[k] += d
    total = sum(t.values())
    return {k: {"ms_per_image": 1e3 * v / n, "share": v / total} for k, v in t.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="an image folder (FOLDER/train/<class>/...)")
    p.add_argument("--packed", help="its packed copy (twintricks data pack), for the 'packed' mode")
    p.add_argument("--modes", default="ours,torchvision,decode", help=f"comma-separated, of {','.join(MODES)}")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batches", type=int, default=8, help="timed batches per round (after the first)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu", help="where randaugment-caller runs RandAugment (cpu, cuda)")
    p.add_argument("--profile", action="store_true", help="also print where one image's time goes")
    p.add_argument("--json", help="write every round's record to this file (JSON lines)")
    a = p.parse_args(argv)
    modes = a.modes.split(",")
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"data_bench: --modes: unknown mode {m!r} (one of {', '.join(MODES)})")
    if "packed" in modes and not a.packed:
        raise SystemExit("data_bench: the 'packed' mode needs --packed DIR (make it with twintricks data pack)")
    rows = []
    for r in range(a.rounds):
        for m in modes:  # alternate: each round runs every mode once
            with PeakRSS() as rss:
                rec = run_mode(m, a, epoch=r)
            rec.update(mode=m, round=r, peak_pss_mb=rss.peak / 2**20, workers=a.workers, batch=a.batch)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    if a.json:
        with open(a.json, "a") as f:
            for rec in rows:
                f.write(json.dumps(rec) + "\n")
    med = {m: statistics.median(r["images_per_s"] for r in rows if r["mode"] == m) for m in modes}
    print(f"\n{'mode':22s} {'images/s (median)':>18s} {'first batch s':>14s} {'peak PSS MB':>12s}")
    for m in modes:
        mine = [r for r in rows if r["mode"] == m]
        print(f"{m:22s} {med[m]:18.1f} {statistics.median(r['first_batch_s'] for r in mine):14.2f} "
              f"{max(r['peak_pss_mb'] for r in mine):12.0f}")
    if "ours" in med:
        for m in modes:
            if m != "ours":
                print(f"ours / {m}: {med['ours'] / med[m]:.2f}")
    if a.profile:
        print(json.dumps(profile(a), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
