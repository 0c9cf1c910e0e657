"""How fast could a fused kernel make a policy? A measurement for issue 24, not library code.

TrivialAugmentWide (nearest) at 224 px, batch 32 uint8, as ONE numba call per batch: each image
runs its drawn op (identity, a warp by precomputed nearest picks, or a pixel op) in one pass of
compiled loops, images in parallel over numba's threads. Its float ops (Brightness, Color,
Contrast, AutoContrast, Sharpness's blend) are written plainly, NOT torchvision's rounding step
for step, and its draws are its own: the outputs are not checked against anything. It times
that call beside ``torch_impl.TrivialAugmentWide`` and torchvision image by image on the same
batch, interleaved round by round, and prints the medians of 15 rounds.

Run: ``pip install numba`` (not a dependency of twintricks), then
``python benchmarks/fused_prototype.py``.
"""
import time

try:
    import numba as nb
except ImportError:
    raise SystemExit("fused_prototype.py needs numba: pip install numba") from None
import numpy as np
import torch
from torchvision.transforms import v2

import torch_impl as T
from torch_impl import _eager, kernels

ID, GEO, BRI, COL, CON, SHA, POS, SOL, AC, EQ = range(10)

@nb.njit(inline="always")
def lut_apply(src, dst, lut):
    for p in range(src.shape[0]):
        dst[p] = lut[src[p]]

@nb.njit(parallel=True)
def fused(img, op, mag, picks, out):
    n, c, hw = img.shape
    for i in nb.prange(n):
        o = op[i]; m = mag[i]
        lut = np.empty(256, np.uint8)
        if o == ID:
            out[i] = img[i]
        elif o == GEO:
            for ch in range(c):
                for p in range(hw):
                    q = picks[i, p]
                    out[i, ch, p] = 0 if q == 0 else img[i, ch, q - 1]
        elif o == BRI or o == POS or o == SOL:
            for v in range(256):
                if o == BRI:
                    f = np.float32(v) * np.float32(1.0 + m)
                    lut[v] = np.uint8(min(max(f, 0.0), 255.0))
                elif o == POS:
                    lut[v] = v & (0xFF << (8 - int(m)) & 0xFF)
                else:
                    lut[v] = 255 - v if v >= m * 255 else v
            for ch in range(c):
                lut_apply(img[i, ch], out[i, ch], lut)
        elif o == EQ or o == AC:
            for ch in range(c):
                hist = np.zeros(256, np.int64)
                for p in range(hw):
                    hist[img[i, ch, p]] += 1
                if o == EQ:
                    top = 255
                    while hist[top] == 0: top -= 1
                    step = (hw - hist[top]) // 255
                    if step == 0:
                        for v in range(256): lut[v] = v
                    else:
                        cum = step // 2
                        for v in range(256):
                            lut[v] = min(cum // step, 255); cum += hist[v]
                else:
                    lo = 0
                    while lo < 255 and hist[lo] == 0: lo += 1
                    hi = 255
                    while hi > 0 and hist[hi] == 0: hi -= 1
                    for v in range(256):
                        if hi == lo: lut[v] = v
                        else: lut[v] = np.uint8(min(max((v - lo) * 255.0 / (hi - lo), 0.0), 255.0))
                lut_apply(img[i, ch], out[i, ch], lut)
        elif o == CON or o == COL:
            r = np.float32(1.0 + m); a = np.float32(-m)
            if o == CON:
                s = 0.0
                for p in range(hw):
                    s += np.floor(np.float32(0.2989) * img[i, 0, p] + np.float32(0.587) * img[i, 1, p] + np.float32(0.114) * img[i, 2, p])
                mean = np.float32(s / hw)
                for v in range(256):
                    lut[v] = np.uint8(min(max(np.float32(v) * r + mean * a, 0.0), 255.0))
                for ch in range(c):
                    lut_apply(img[i, ch], out[i, ch], lut)
            else:
                for p in range(hw):
                    g = np.floor(np.float32(0.2989) * img[i, 0, p] + np.float32(0.587) * img[i, 1, p] + np.float32(0.114) * img[i, 2, p])
                    for ch in range(c):
                        out[i, ch, p] = np.uint8(min(max(np.float32(img[i, ch, p]) * r + g * a, 0.0), 255.0))
        else:  # sharpness
            a = np.float32(-m)
            h = int(np.sqrt(hw)); w = hw // h
            for ch in range(c):
                out[i, ch] = img[i, ch]
                for y in range(1, h - 1):
                    for x in range(1, w - 1):
                        p = y * w + x
                        s = (img[i, ch, p - w - 1] + img[i, ch, p - w] + img[i, ch, p - w + 1] + img[i, ch, p - 1] + 5 * img[i, ch, p]
                             + img[i, ch, p + 1] + img[i, ch, p + w - 1] + img[i, ch, p + w] + img[i, ch, p + w + 1])
                        d = (2 * s + 13) // 26
                        v = np.float32(img[i, ch, p]); f = v + (np.float32(d) - v) * a
                        out[i, ch, p] = np.uint8(min(max(f, 0.0), 255.0))

def main() -> None:
    torch.set_num_threads(2)
    nb.set_num_threads(2)
    n, side = 32, 224
    x = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8)
    xn = x.numpy().reshape(n, 3, side * side)
    rng = np.random.default_rng(0)
    # the nearest picks of 40 rotations in [-30, 30] degrees, from the library's own builder
    zero = torch.zeros(40, dtype=torch.float64)
    mats = kernels.inverse_affine(torch.tensor(rng.uniform(-30, 30, 40)), zero, zero, zero, zero, 0.0, 0.0)
    allpicks = _eager._picks(x[:1].expand(40, 3, side, side), mats).to(torch.int32).numpy()
    ops14 = np.array([ID, GEO, GEO, GEO, GEO, GEO, BRI, COL, CON, SHA, POS, SOL, AC, EQ])  # TA's 14, uniform
    out = np.empty_like(xn)

    def draw():
        op = ops14[rng.integers(0, 14, n)].astype(np.int64)
        mag = rng.uniform(-0.9, 0.9, n).astype(np.float32)
        mag[op == POS] = rng.integers(2, 9, (op == POS).sum())
        mag[op == SOL] = rng.uniform(0, 1, (op == SOL).sum())
        return op, mag, allpicks[rng.integers(0, 40, n)]

    fused(xn, *draw(), out)  # compile
    ours, tv = T.TrivialAugmentWide(), v2.TrivialAugmentWide()
    for _ in range(5):
        ours(x)
    res = {"fused": [], "torch_impl": [], "torchvision/image": []}
    for _ in range(15):
        args = draw()
        t = time.perf_counter()
        fused(xn, *args, out)
        res["fused"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ours(x)
        res["torch_impl"].append(time.perf_counter() - t)
        t = time.perf_counter()
        [tv(im) for im in x]
        res["torchvision/image"].append(time.perf_counter() - t)
    med = {k: sorted(v)[7] for k, v in res.items()}
    tv_s = med["torchvision/image"]
    print(f"torch {torch.__version__}, numba {nb.__version__}, 2 threads, batch {n} uint8 {side}x{side}, "
          "TrivialAugmentWide nearest, medians of 15 interleaved rounds")
    for k, v in med.items():
        print(f"{k:18s} {v * 1e3:7.2f} ms  ({tv_s / v:4.2f}x torchvision image by image)")


if __name__ == "__main__":
    main()
