"""The bench rows of random resized crop + flip (``ROWS``; see :mod:`twintricks_bench.rows`)."""

from __future__ import annotations

from twintricks_bench.cases import (
    Case,
    Context,
    Row,
    need,
    ours_jax_random,
    ours_torch_module,
    torch_per_image_call,
    torchvision_v2,
)

__all__ = ["ROWS"]


def _crop_flip(ctx: Context) -> list[Case]:
    s = ctx.size
    t = "crop_flip"

    def tv_per_image():
        v2 = torchvision_v2()
        tr = v2.Compose([v2.RandomResizedCrop((s.height, s.width), antialias=False), v2.RandomHorizontalFlip()])
        return torch_per_image_call(ctx, tr)

    return [
        *ours_torch_module(
            ctx,
            t,
            "RandomResizedCropFlip",
            dict(size=(s.height, s.width)),
            compiled_fn=lambda: (
                lambda n, hw, dev: (
                    need("torch_impl", "sample_resized_crop_params")(n, hw, device=dev),
                    need("torch_impl", "sample_flip_params")(n, device=dev),
                ),
                lambda x, p: need("torch_impl", "resized_crop")(x, p[0], size=(s.height, s.width), flip=p[1]),
            ),
        ),
        *ours_jax_random(ctx, t, "random_resized_crop_flip", dict(size=(s.height, s.width))),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            tv_per_image,
            note="v2.RandomResizedCrop(antialias=False) + RandomHorizontalFlip image by image",
        ),
    ]


ROWS = [
    Row(
        "crop_flip",
        "resized crop + flip",
        "a RandomResizedCrop box per image resized back to the input size (bilinear, no "
        "antialiasing), then a random horizontal flip.",
        _crop_flip,
        trick="crop_flip",
    ),
]
