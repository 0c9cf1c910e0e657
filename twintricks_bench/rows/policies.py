"""The bench rows of AutoAugment, RandAugment, TrivialAugmentWide, AugMix (``ROWS``; see
:mod:`twintricks_bench.rows`): nearest interpolation (torchvision's default but for AugMix), and a
``<row>_bilinear`` twin of each with bilinear geometric ops (torchvision's reference recipe)."""

from __future__ import annotations

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


def _policy_family_cases(ctx: Context, row: str, module: str, family: str, tv_transform,
                         interpolation: str = "nearest") -> list[Case]:
    """Ours (torch module, torch compile, jax) against torchvision v2's transform image by image
    (the only way it gives each image its own draws) and on the whole batch (one draw for all)."""
    kw = dict(interpolation=interpolation)
    return [
        *ours_torch_module(
            ctx,
            row,
            module,
            kw,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", f"sample_{family}_params")(n, device=dev),
                lambda x, p: need("torch_impl", family)(x, p, **kw),
            ),
        ),
        *ours_jax_random(ctx, row, f"random_{family}", kw),
        Case(
            row,
            "torchvision v2 per image",
            "torch",
            lambda: torch_per_image_call(ctx, tv_transform()),
            note=f"v2.{module} image by image: the only way it gives each image its own draws",
        ),
        Case(
            row,
            "torchvision v2 batch",
            "torch",
            lambda: torch_image_call(ctx, tv_transform()),
            same_job=False,
            note="one draw for the whole batch: a cheaper, different job",
        ),
    ]


def _autoaugment(ctx: Context, interpolation: str = "nearest") -> list[Case]:
    policy = ctx.size.policy
    t = "autoaugment" if interpolation == "nearest" else "autoaugment_bilinear"

    def tv_aa():
        v2 = torchvision_v2()
        from torchvision.transforms import AutoAugmentPolicy

        return v2.AutoAugment(AutoAugmentPolicy(policy), interpolation=v2.InterpolationMode(interpolation))

    return [
        *ours_torch_module(
            ctx,
            t,
            "AutoAugment",
            dict(policy=policy, interpolation=interpolation),
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_autoaugment_params")(n, policy=policy, device=dev),
                lambda x, p: need("torch_impl", "autoaugment")(x, p, policy=policy, interpolation=interpolation),
            ),
        ),
        *ours_jax_random(ctx, t, "random_autoaugment", dict(policy=policy, interpolation=interpolation)),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            lambda: torch_per_image_call(ctx, tv_aa()),
            note="v2.AutoAugment image by image: the only way it gives each image its own draw",
        ),
        Case(
            t,
            "torchvision v2 batch",
            "torch",
            lambda: torch_image_call(ctx, tv_aa()),
            same_job=False,
            note="one sub-policy for the whole batch: a cheaper, different job",
        ),
    ]


def _family_row(row: str, module: str, family: str, interpolation: str):
    def cases(ctx: Context) -> list[Case]:
        def tv_transform():
            v2 = torchvision_v2()
            return getattr(v2, module)(interpolation=v2.InterpolationMode(interpolation))

        name = row if interpolation == "nearest" else f"{row}_bilinear"
        return _policy_family_cases(ctx, name, module, family, tv_transform, interpolation)

    return cases


_FAMILY_ROWS = (
    ("randaugment", "RandAugment", "randaugment", "torchvision v2's defaults (2 ops, bin 9 of 31); each image its own ops and signs."),
    ("trivialaugment", "TrivialAugmentWide", "trivialaugment_wide",
     "torchvision v2's defaults (31 bins); each image its own op, bin and sign."),
    ("augmix", "AugMix", "augmix",
     "torchvision v2's defaults (severity 3, 3 chains of 1..3 ops, α = 1); each image its own chains and weights."),
)


ROWS = [
    Row(
        "autoaugment",
        "AutoAugment",
        "the CIFAR10 policy at CIFAR size, the ImageNet policy at ImageNet size; each image its own "
        "sub-policy; nearest.",
        _autoaugment,
        trick="autoaugment",
    ),
    *(Row(row, title, doc[:-1] + "; nearest.", _family_row(row, title, family, "nearest"), trick=row)
      for row, title, family, doc in _FAMILY_ROWS),
    # The bilinear twins name no recipe trick (``trick=None``), so that ``--only <trick id>`` keeps
    # meaning the trick's default (nearest) row; ask for these by name (``--only randaugment_bilinear``).
    Row(
        "autoaugment_bilinear",
        "AutoAugment bilinear",
        "as AutoAugment, bilinear geometric ops (torchvision's reference recipe).",
        lambda ctx: _autoaugment(ctx, "bilinear"),
    ),
    *(Row(f"{row}_bilinear", f"{title} bilinear", doc[:-1] + "; bilinear (the reference recipe's).",
          _family_row(row, title, family, "bilinear"))
      for row, title, family, doc in _FAMILY_ROWS),
]
