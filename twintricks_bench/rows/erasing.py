"""The bench rows of Cutout and random erasing (``ROWS``; see :mod:`twintricks_bench.rows`)."""

from __future__ import annotations

import dataclasses

from twintricks_bench.cases import (
    Case,
    Context,
    Row,
    need,
    ours_jax_random,
    ours_torch_module,
    torch_image_call,
    torch_per_image_call,
    torchvision_v2,
)

__all__ = ["ROWS"]


def _cutout(ctx: Context) -> list[Case]:
    s = ctx.size
    length = s.height // 2
    area = (length / s.height) * (length / s.width)
    t = "cutout"

    def erasing():
        return torchvision_v2().RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=0)

    return [
        *ours_torch_module(
            ctx,
            t,
            "Cutout",
            dict(n_holes=1, length=length, fill=0),
            compiled_fn=lambda: (
            lambda n, hw, dev: need("torch_impl", "sample_cutout_params")(n, hw, n_holes=1, device=dev),
                lambda x, p: need("torch_impl", "cutout")(x, p, length=length, fill=0),
            ),
        ),
        *ours_jax_random(ctx, t, "random_cutout", dict(n_holes=1, length=length, fill=0)),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            lambda: torch_per_image_call(ctx, erasing()),
            note="v2.RandomErasing(p=1, square of area 1/4) image by image",
        ),
        Case(
            t,
            "torchvision v2 batch",
            "torch",
            lambda: torch_image_call(ctx, erasing()),
            same_job=False,
            note="one hole shared by the whole batch: a cheaper, different job",
        ),
    ]


def _random_erasing(ctx: Context) -> list[Case]:
    kw = dict(p=1.0, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0)
    t = "random_erasing"

    def timm_erasing():
        RandomErasing = need("timm.data.random_erasing", "RandomErasing")
        re = RandomErasing(probability=1.0, min_area=0.02, max_area=0.33, min_aspect=0.3, max_aspect=3.3,
                           mode="const", device=ctx.torch_device)
        return torch_image_call(ctx, re)

    # timm erases in place: the eager module does too (inplace=True), like with like; the compiled
    # kernel returns a new batch, as in torch_impl.train
    eager, compiled = ours_torch_module(
        ctx,
        t,
        "RandomErasing",
        dict(kw, inplace=True),
        compiled_fn=lambda: (
            lambda n, hw, dev: need("torch_impl", "sample_random_erasing_params")(n, hw, 3, **kw, device=dev),
            lambda x, p: need("torch_impl", "erase")(x, p),
        ),
    )
    return [
        dataclasses.replace(eager, note="nn.Module wrapper: sample + apply, inplace=True (timm erases in place)"),
        compiled,
        *ours_jax_random(ctx, t, "random_erasing", kw),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            lambda: torch_per_image_call(ctx, torchvision_v2().RandomErasing(**kw)),
            note="v2.RandomErasing image by image: the only way it gives each image its own box",
        ),
        Case(t, "timm", "torch", timm_erasing, note="timm RandomErasing(mode='const') on the batch: a box per image, in place"),
    ]


ROWS = [
    Row(
        "cutout",
        "cutout",
        "one square hole of side H/2 per image, each image its own position.",
        _cutout,
        trick="cutout",
    ),
    Row(
        "random_erasing",
        "random erasing",
        "one box per image (p = 1), area 2-33% of the image, aspect 0.3-3.3, fill 0; each image its "
        "own box.",
        _random_erasing,
        trick="random_erasing",
    ),
]
