"""A lower bound for batched per-image AutoAugment built from torch's own kernels, against 10×
torchvision applying ``AutoAugment`` image by image (the CPU target).

Each image's geometric operation (ShearX/Y, TranslateX/Y, Rotate) must read every pixel through a
per-pixel source index, and each Equalize must histogram every pixel and then look every pixel up
in the image's table. With the policy's probabilities that is ``geometric + 2·equalize`` full
passes of indexed reads or writes per image, on average. This script times one such pass over the
whole batch (``torch.gather`` by a precomputed index, and a ``scatter_add_`` histogram) and
torchvision image by image, in one process, and prints the budget that 10× leaves next to that
floor. Run: ``python benchmarks/autoaugment_floor.py [threads]`` (default 2).
"""

import sys
import time

import torch
from torchvision.transforms import AutoAugmentPolicy, v2

from twintricks.policies import GEOMETRIC_OPS, POLICIES


def median_seconds(fn, reps: int = 15) -> float:
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[reps // 2]


def expected_passes(policy: str) -> float:
    """Indexed full passes per image: 1 per geometric op, 2 per Equalize (histogram + lookup)."""
    subs = POLICIES[policy]
    total = 0.0
    for sub in subs:
        for op, prob, _ in sub:
            total += prob * (1 if op in GEOMETRIC_OPS else 2 if op == "Equalize" else 0)
    return total / len(subs)


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} threads")
    for size, n, side, policy, tv_policy in (
        ("cifar", 256, 32, "cifar10", AutoAugmentPolicy.CIFAR10),
        ("imagenet", 32, 224, "imagenet", AutoAugmentPolicy.IMAGENET),
    ):
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
        augment = v2.AutoAugment(tv_policy)
        tv = median_seconds(lambda: torch.stack([augment(img) for img in x]), reps=7)
        flat = x.view(n, 3, side * side)
        index = torch.randint(0, side * side, (n, 1, side * side), generator=g).expand(n, 3, side * side)
        gather = median_seconds(lambda: torch.gather(flat, 2, index))
        bins = (flat.to(torch.int64) + 256 * torch.arange(n * 3).view(n, 3, 1)).view(-1)
        ones = torch.ones_like(bins, dtype=torch.int32)
        histogram = median_seconds(lambda: torch.zeros(n * 3 * 256, dtype=torch.int32).scatter_add_(0, bins, ones))
        copy = median_seconds(lambda: x.clone())
        passes = expected_passes(policy)
        floor = passes * min(gather, histogram)
        budget = tv / 10
        print(
            f"{size}: torchvision image by image {n / tv:.0f} images/s -> 10x leaves {budget * 1e3:.2f} ms per batch "
            f"of {n}; one indexed pass over the batch: gather {gather * 1e3:.2f} ms, histogram "
            f"{histogram * 1e3:.2f} ms (a plain copy: {copy * 1e3:.3f} ms); {passes:.2f} indexed passes per "
            f"image on average -> floor {floor * 1e3:.2f} ms ({'above' if floor > budget else 'below'} the budget)"
        )


if __name__ == "__main__":
    main()
