"""The bench rows of AutoAugment, RandAugment, TrivialAugmentWide, AugMix (``ROWS``; see
:mod:`twintricks_bench.rows`)."""

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


def _policy_family_cases(ctx: Context, row: str, module: str, family: str, tv_transform) -> list[Case]:
    """Ours (torch module, torch compile, jax) against torchvision v2's transform image by image
    (the only way it gives each image its own draws) and on the whole batch (one draw for all)."""
    return [
        *ours_torch_module(
            ctx,
            row,
            module,
            {},
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", f"sample_{family}_params")(n, device=dev),
                lambda x, p: need("torch_impl", family)(x, p),
            ),
        ),
        *ours_jax_random(ctx, row, f"random_{family}", {}),
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


def _autoaugment(ctx: Context) -> list[Case]:
    policy = ctx.size.policy
    t = "autoaugment"

    def tv_aa():
        v2 = torchvision_v2()
        from torchvision.transforms import AutoAugmentPolicy

        return v2.AutoAugment(AutoAugmentPolicy(policy))

    return [
        *ours_torch_module(
            ctx,
            t,
            "AutoAugment",
            dict(policy=policy),
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_autoaugment_params")(n, policy=policy, device=dev),
                lambda x, p: need("torch_impl", "autoaugment")(x, p, policy=policy),
            ),
        ),
        *ours_jax_random(ctx, t, "random_autoaugment", dict(policy=policy)),
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


def _randaugment(ctx: Context) -> list[Case]:
    return _policy_family_cases(ctx, "randaugment", "RandAugment", "randaugment", lambda: torchvision_v2().RandAugment())


def _trivialaugment_wide(ctx: Context) -> list[Case]:
    return _policy_family_cases(
        ctx, "trivialaugment", "TrivialAugmentWide", "trivialaugment_wide", lambda: torchvision_v2().TrivialAugmentWide()
    )


def _augmix(ctx: Context) -> list[Case]:
    def tv_augmix():
        v2 = torchvision_v2()
        return v2.AugMix(interpolation=v2.InterpolationMode.NEAREST)

    return _policy_family_cases(ctx, "augmix", "AugMix", "augmix", tv_augmix)


ROWS = [
    Row(
        "autoaugment",
        "AutoAugment",
        "the CIFAR10 policy at CIFAR size, the ImageNet policy at ImageNet size; each image its own "
        "sub-policy.",
        _autoaugment,
        trick="autoaugment",
    ),
    Row(
        "randaugment",
        "RandAugment",
        "torchvision v2's defaults (2 ops, bin 9 of 31); each image its own ops and signs.",
        _randaugment,
        trick="randaugment",
    ),
    Row(
        "trivialaugment",
        "TrivialAugmentWide",
        "torchvision v2's defaults (31 bins); each image its own op, bin and sign.",
        _trivialaugment_wide,
        trick="trivialaugment",
    ),
    Row(
        "augmix",
        "AugMix",
        "torchvision v2's defaults (severity 3, 3 chains of 1..3 ops, α = 1) with nearest "
        "interpolation; each image its own chains and weights.",
        _augmix,
        trick="augmix",
    ),
]
