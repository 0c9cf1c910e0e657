"""A lower bound (the floor) for the batched per-image policies built from torch's own kernels, per
policy and interpolation, next to torchvision image by image and to ours (the CPU targets).

Each image's geometric operation (ShearX/Y, TranslateX/Y, Rotate) must read every pixel through a
per-pixel source position (nearest: one indexed read; bilinear: ``grid_sample``'s four reads and
weights per pixel), and each Equalize must histogram every pixel and then look every pixel up in
the image's table. With each policy's draw probabilities that is, per image on average,
``geometric`` warps and ``equalize`` histogram and lookup passes (AugMix: per chain op, ``W``
chains of 1..3 ops, plus its ``W + 1`` weighted sums). This script times one such pass (a
``torch.gather`` by a rotation's precomputed index, ``grid_sample`` bilinear on the float images
along a rotation's grid, a ``scatter_add_`` histogram, a float multiply-add; with OpenCV
installed, as ours then uses it, also ``calcHist`` and ``LUT`` on every channel plane), over the
whole batch and 4 images a call, the cheapest way counting, and torchvision and ours on the same
batch, in one process (every torch figure before jax's, as ``twintricks bench``
does), and prints per policy: the floor, ours, the floor fraction (floor / ours: 1 is at the
floor) and ours against torchvision image by image. One pass is timed as the median of a few
calls: between runs minutes apart its reading moved up to 2x, so compare floor fractions within a run.

Run: ``python benchmarks/autoaugment_floor.py [threads] [--jax] [--size 224] [--batch 32]``
(default 2 threads, torch only; ``--jax`` adds jax_impl, compile excluded).
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torchvision.transforms import AutoAugmentPolicy, v2

from twintricks.policies import AUGMIX_OPS, GEOMETRIC_OPS, POLICIES, RANDAUGMENT_OPS, TRIVIALAUGMENT_WIDE_OPS


def median_seconds(fn, reps: int = 7) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[reps // 2]


def expected_passes(policy: str) -> tuple[float, float, float]:
    """Per image on average: (geometric warps, Equalizes, weighted sums) the policy performs."""
    if policy in POLICIES:  # AutoAugment: each op of the uniform sub-policy fires with its probability
        subs = POLICIES[policy]
        geo = sum(p for sub in subs for op, p, _ in sub if op in GEOMETRIC_OPS) / len(subs)
        eq = sum(p for sub in subs for op, p, _ in sub if op == "Equalize") / len(subs)
        return geo, eq, 0.0
    if policy == "randaugment":  # 2 ops, uniform over the 14 (Identity included)
        k = len(RANDAUGMENT_OPS)
        return 2 * 5 / k, 2 / k, 0.0
    if policy == "trivialaugment_wide":
        k = len(TRIVIALAUGMENT_WIDE_OPS)
        return 5 / k, 1 / k, 0.0
    k = len(AUGMIX_OPS)  # augmix: 3 chains of 1..3 ops (mean 2), uniform over the 13; 4 weighted sums
    return 6 * 5 / k, 6 / k, 4.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("threads", nargs="?", type=int, default=2)
    ap.add_argument("--jax", action="store_true")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import torch_impl

    n, side = args.batch, args.size
    print(f"torch {torch.__version__}, {args.threads} threads, batch {n} uint8 {side}x{side}")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    flat = x.view(n, 3, side * side)
    # A warp reads its source along rotated rows: each image's positions are a rotation about the
    # centre by an angle in [-30°, 30°] (the policies' Rotate range). Until 2026-12-08 the floor
    # read uniformly random positions; both are printed (two runs that day: the random ones
    # took 0.9-1.16x the rotation's time, within the passes' own spread). The floor is the rotation's.
    angle = (torch.rand(n, generator=g) * 60 - 30) * torch.pi / 180
    theta = torch.stack([torch.stack([angle.cos(), -angle.sin(), torch.zeros(n)], 1),
                         torch.stack([angle.sin(), angle.cos(), torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, [n, 3, side, side], align_corners=False)
    pix = ((grid + 1) * side - 1) / 2  # grid_sample's source pixel (align_corners=False)
    pick = pix.round().clamp(0, side - 1).to(torch.int64)
    index = (pick[..., 1] * side + pick[..., 0]).view(n, 1, side * side).expand(n, 3, side * side)
    random_index = torch.randint(0, side * side, (n, 1, side * side), generator=g).expand(n, 3, side * side)

    def sample(where, images=x):
        return F.grid_sample(images.float(), where, mode="bilinear", padding_mode="zeros",
                             align_corners=False).round_().to(torch.uint8)

    def in_chunks(fn, size: int = 4):
        """One pass, ``size`` images per call, as ours runs on large images (``torch_impl._eager.CHUNK``):
        a whole-batch pass of fresh float32 megabytes page-faults (a 32-image ``grid_sample`` read
        35 ms once, against ours at 15 ms for a whole RandAugment, 2026-12-08), so the floor is the
        cheaper of the two ways."""
        return lambda: [fn(slice(i, i + size)) for i in range(0, n, size)]

    gather_whole = median_seconds(lambda: torch.gather(flat, 2, index))
    gather_chunks = median_seconds(in_chunks(lambda s: torch.gather(flat[s], 2, index[s])))
    gather_random = median_seconds(lambda: torch.gather(flat, 2, random_index))
    random_grid = torch.rand(n, side, side, 2, generator=g) * 2 - 1
    bilinear_whole = median_seconds(lambda: sample(grid))
    bilinear_chunks = median_seconds(in_chunks(lambda s: sample(grid[s], x[s])))
    bilinear_random = median_seconds(lambda: sample(random_grid))
    bins = (flat.to(torch.int64) + 256 * torch.arange(n * 3).view(n, 3, 1)).view(-1)
    ones = torch.ones_like(bins, dtype=torch.int32)
    histogram = median_seconds(lambda: torch.zeros(n * 3 * 256, dtype=torch.int32).scatter_add_(0, bins, ones))
    xf = x.float()
    madd = min(median_seconds(lambda: torch.addcmul(xf, xf, xf)),
               median_seconds(in_chunks(lambda s: torch.addcmul(xf[s], xf[s], xf[s]))))
    gather, bilinear = min(gather_whole, gather_chunks), min(bilinear_whole, bilinear_chunks)
    lookup = gather
    print(f"one pass over the batch: gather {gather_whole * 1e3:.2f} ms (4 images a call: {gather_chunks * 1e3:.2f}), "
          f"bilinear grid_sample {bilinear_whole * 1e3:.2f} ms (4 images a call: {bilinear_chunks * 1e3:.2f}), "
          f"histogram {histogram * 1e3:.2f} ms, multiply-add {madd * 1e3:.2f} ms (the cheaper way) "
          f"(the whole batch at random positions instead of a rotation's: gather {gather_random * 1e3:.2f} ms, "
          f"grid_sample {bilinear_random * 1e3:.2f} ms)")
    try:  # ours counts and looks up with OpenCV when it is installed: the floor uses the cheaper engine
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        planes = x.numpy().reshape(n * 3, side, side)
        table = torch.randint(0, 256, (n * 3, 256), dtype=torch.uint8, generator=g).numpy()
        out = planes.copy()
        cv_histogram = median_seconds(lambda: [cv2.calcHist([p], [0], None, [256], [0, 256]) for p in planes])
        cv_lookup = median_seconds(lambda: [cv2.LUT(p, t, dst=o) for p, t, o in zip(planes, table, out)])
        print(f"OpenCV {cv2.__version__}, one pass over the batch: calcHist {cv_histogram * 1e3:.2f} ms, "
              f"LUT {cv_lookup * 1e3:.2f} ms")
        histogram, lookup = min(histogram, cv_histogram), min(gather, cv_lookup)
    mode = {"nearest": v2.InterpolationMode.NEAREST, "bilinear": v2.InterpolationMode.BILINEAR}
    families = {
        "autoaugment": (lambda i: v2.AutoAugment(AutoAugmentPolicy.IMAGENET, interpolation=mode[i]),
                        lambda i: torch_impl.AutoAugment("imagenet", interpolation=i), "imagenet"),
        "randaugment": (lambda i: v2.RandAugment(interpolation=mode[i]), lambda i: torch_impl.RandAugment(interpolation=i), None),
        "trivialaugment_wide": (lambda i: v2.TrivialAugmentWide(interpolation=mode[i]),
                                lambda i: torch_impl.TrivialAugmentWide(interpolation=i), None),
        "augmix": (lambda i: v2.AugMix(interpolation=mode[i]), lambda i: torch_impl.AugMix(interpolation=i), None),
    }
    # Every torch figure first, then jax's: once jax's runtime has started, torch's CPU timings in
    # the same process read 5-20 % slower (measured for twintricks bench, which orders them so too).
    lines = []
    for family, (tv_make, ours_make, policy) in families.items():
        geo, eq, sums = expected_passes(policy or family)
        for interp in ("nearest", "bilinear"):
            tv, ours = tv_make(interp), ours_make(interp)
            tv_s = median_seconds(lambda: torch.stack([tv(img) for img in x]), reps=max(3, args.reps // 2))
            ours_s = median_seconds(lambda: ours(x), reps=args.reps)
            floor = geo * (gather if interp == "nearest" else bilinear) + eq * (histogram + lookup) + sums * madd
            line = (f"{family:20s} {interp:8s} torchvision/image {tv_s * 1e3:8.1f} ms  floor {floor * 1e3:6.1f} ms "
                    f"({tv_s / floor:5.1f}x tv)  torch_impl {ours_s * 1e3:7.1f} ms ({tv_s / ours_s:4.2f}x tv, "
                    f"floor fraction {floor / ours_s:.2f})")
            lines.append((family, policy, interp, tv_s, floor, line))
    for family, policy, interp, tv_s, floor, line in lines:
        print(line + (_jax(family, policy, interp, x, tv_s, floor, args.reps) if args.jax else ""), flush=True)


def _jax(family, policy, interp, x, tv_s, floor, reps) -> str:
    import jax
    import jax.numpy as jnp

    import jax_impl

    images = jnp.asarray(x.permute(0, 2, 3, 1).numpy())
    kwargs = dict(policy=policy) if policy else {}
    fn = jax.jit(lambda k, im: getattr(jax_impl, f"random_{family}")(k, im, interpolation=interp, **kwargs))
    keys = iter(jax.random.split(jax.random.key(0), 100))
    jax.block_until_ready(fn(next(keys), images))
    s = median_seconds(lambda: jax.block_until_ready(fn(next(keys), images)), reps=reps)
    return f"  jax_impl {s * 1e3:7.1f} ms ({tv_s / s:4.2f}x tv, floor fraction {floor / s:.2f})"


if __name__ == "__main__":
    main()
