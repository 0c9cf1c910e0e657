"""Make a synthetic ImageNet-like image folder for the data-pipeline benchmarks.

JPEGs of random sizes (each side uniform in 200..640 px, so random aspect), quality 90, in
``OUT/train/<class>/`` and ``OUT/test/<class>/``; ``--odd`` of them in other formats and modes
(greyscale JPEG, CMYK JPEG, RGBA PNG, palette PNG with transparency, 16-bit PNG) and
``--corrupt`` of them truncated JPEGs (for ``--on-bad-image skip`` runs).

Made fast: a few hundred photo-like base images (smooth colour fields at three scales plus
noise — what JPEG and resampling cost on photographs, unlike pure noise) are drawn once, and each
output image is a random crop of one, resized and re-encoded. Deterministic for a seed.

    python benchmarks/make_imagenet_like.py /tmp/imnet10k --images 10000
    python benchmarks/make_imagenet_like.py /tmp/imnet100k --images 100000 --jobs 2
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

BASES = 64
BASE_SIDE = 720
_BASES: dict = {}  # per process: the base images drawn so far


def base_image(seed: int) -> Image.Image:
    rng = np.random.default_rng([seed, 1])
    acc = np.zeros((BASE_SIDE, BASE_SIDE, 3))
    for cells, amp in ((6, 1.0), (24, 0.5), (96, 0.25)):
        small = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
        acc += amp * np.asarray(small.resize((BASE_SIDE, BASE_SIDE), Image.BICUBIC), float)
    arr = np.clip(acc / 1.75 + rng.normal(0, 5, acc.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr).filter(ImageFilter.GaussianBlur(0.6))


def encode(im: Image.Image, kind: str) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if kind == "grey":
        im.convert("L").save(buf, "JPEG", quality=90)
    elif kind == "cmyk":
        im.convert("CMYK").save(buf, "JPEG", quality=90)
    elif kind == "rgba":
        im.convert("RGBA").save(buf, "PNG", compress_level=1)
        return buf.getvalue(), ".png"
    elif kind == "palette":
        im.convert("P", palette=Image.ADAPTIVE, colors=64).save(buf, "PNG", transparency=0, compress_level=1)
        return buf.getvalue(), ".png"
    elif kind == "png16":
        Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257)).save(buf, "PNG", compress_level=1)
        return buf.getvalue(), ".png"
    else:
        im.save(buf, "JPEG", quality=90)
    return buf.getvalue(), ".jpg"


def make_chunk(args) -> int:
    out, first, count, seed, classes, test_every, odd_every, corrupt_every, sides = args
    for i in range(first, first + count):
        rng = np.random.default_rng([seed, i])
        b = int(rng.integers(BASES))
        if (seed, b) not in _BASES:
            _BASES[seed, b] = base_image(seed * 1000 + b)
        w, h = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        cw, ch = min(BASE_SIDE, int(w * rng.uniform(0.8, 1.2))), min(BASE_SIDE, int(h * rng.uniform(0.8, 1.2)))
        x, y = int(rng.integers(0, BASE_SIDE - cw + 1)), int(rng.integers(0, BASE_SIDE - ch + 1))
        im = _BASES[seed, b].crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)
        kind = "jpeg"
        if odd_every and i % odd_every == odd_every // 2:
            kind = ("grey", "cmyk", "rgba", "palette", "png16")[(i // odd_every) % 5]
        data, ext = encode(im, kind)
        if corrupt_every and i % corrupt_every == corrupt_every // 3:
            data, ext = data[: len(data) // 2], ".jpg"
        split = "test" if test_every and (i // classes) % test_every == 0 else "train"
        folder = Path(out) / split / f"class{i % classes:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:07d}{ext}").write_bytes(data)
    return count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the folder to make (OUT/train, OUT/test)")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--test-every", type=int, default=20, help="every N-th image of a class goes to test/ (default 20: 5%%)")
    p.add_argument("--odd", type=int, default=0, metavar="N", help="images in other formats and modes (default 0)")
    p.add_argument("--corrupt", type=int, default=0, metavar="N", help="truncated JPEGs (default 0)")
    p.add_argument("--sides", type=int, nargs=2, default=(200, 640), metavar=("MIN", "MAX"),
                   help="each side uniform in MIN..MAX px (default 200 640; small sides make big index tests cheap)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    if a.images < 1 or a.classes < 1 or a.jobs < 1:
        raise SystemExit("make_imagenet_like: --images, --classes and --jobs must be >= 1")
    if not 8 <= a.sides[0] <= a.sides[1] <= BASE_SIDE:
        raise SystemExit(f"make_imagenet_like: --sides must satisfy 8 <= MIN <= MAX <= {BASE_SIDE}")
    if Path(a.out).exists() and any(Path(a.out).iterdir()):
        raise SystemExit(f"make_imagenet_like: {a.out} exists and is not empty")
    odd_every = a.images // a.odd if a.odd else 0
    corrupt_every = a.images // a.corrupt if a.corrupt else 0
    chunk = max(1, min(2000, a.images // (4 * a.jobs) or 1))
    tasks = [(a.out, s, min(chunk, a.images - s), a.seed, a.classes, a.test_every, odd_every, corrupt_every, a.sides)
             for s in range(0, a.images, chunk)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        done = 0
        for n in pool.map(make_chunk, tasks):
            done += n
            print(f"\r{done}/{a.images} images", end="", file=sys.stderr, flush=True)
    print(f"\n{a.images} images in {time.perf_counter() - t0:.1f} s -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
