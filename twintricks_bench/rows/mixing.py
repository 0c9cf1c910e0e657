"""The bench rows of mixup, RICAP, CutMix and the mixup/CutMix switch (``ROWS``; see
:mod:`twintricks_bench.rows`)."""

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
    torchvision_v2,
)

__all__ = ["ROWS"]


def _mixup(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "mixup"

    def tv_mixup():
        mix = torchvision_v2().MixUp(alpha=1.0, num_classes=k)
        return torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    def timm_mixup():
        Mixup = need("timm.data", "Mixup")
        mix = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, prob=1.0, mode="batch", label_smoothing=0.0, num_classes=k)
        return torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    # timm mixes a float32 batch in place: the eager module does too (inplace=True), like with like;
    # the compiled kernel returns a new batch, as in torch_impl.train
    eager, compiled = ours_torch_module(
        ctx,
        t,
        "Mixup",
        dict(alpha=1.0, num_classes=k, inplace=True),
        with_labels=True,
        dtype="f32",
        compiled_fn=lambda: (
            lambda n, hw, dev: need("torch_impl", "sample_mixup_params")(n, alpha=1.0, device=dev),
            lambda x, y, p: need("torch_impl", "mixup")(x, y, p, num_classes=k),
        ),
    )
    return [
        dataclasses.replace(eager, note="nn.Module wrapper: sample + apply, float32 input, inplace=True (timm mixes in place)"),
        dataclasses.replace(compiled, note="sampler eager, kernel under torch.compile (as in torch_impl.train), float32 input"),
        *ours_jax_random(ctx, t, "random_mixup", dict(alpha=1.0, num_classes=k), with_labels=True),
        Case(t, "torchvision v2 batch", "torch", tv_mixup, note="v2.MixUp on float32 input (it rejects uint8)"),
        Case(t, "timm", "torch", timm_mixup, note="timm Mixup(mode='batch'), in place, float32 input"),
    ]


def _ricap(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "ricap"
    return [
        *ours_torch_module(
            ctx,
            t,
            "RICAP",
            dict(beta=0.3, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_ricap_params")(n, hw, beta=0.3, device=dev),
                lambda x, y, p: need("torch_impl", "ricap")(x, y, p, num_classes=k),
            ),
        ),
        *ours_jax_random(ctx, t, "random_ricap", dict(beta=0.3, num_classes=k), with_labels=True),
    ]


def _cutmix(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "cutmix"

    def tv_cutmix():
        return torch_image_call(ctx, torchvision_v2().CutMix(alpha=1.0, num_classes=k), with_labels=True, dtype="f32")

    def timm_cutmix():
        Mixup = need("timm.data", "Mixup")
        mix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=1.0, mode="batch", label_smoothing=0.0, num_classes=k)
        return torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    return [
        *ours_torch_module(
            ctx,
            t,
            "CutMix",
            dict(alpha=1.0, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_cutmix_params")(n, hw, alpha=1.0, device=dev),
                lambda x, y, p: need("torch_impl", "cutmix")(x, y, p, num_classes=k),
            ),
        ),
        *ours_jax_random(ctx, t, "random_cutmix", dict(alpha=1.0, num_classes=k), with_labels=True),
        Case(t, "torchvision v2 batch", "torch", tv_cutmix, note="v2.CutMix on float32 input (it rejects uint8)"),
        Case(t, "timm", "torch", timm_cutmix, note="timm Mixup(cutmix_alpha=1, mode='batch'), in place, float32 input"),
    ]


def _mixup_cutmix(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "mixup_cutmix"
    kw = dict(mixup_alpha=1.0, cutmix_alpha=1.0)

    def timm_switch():
        Mixup = need("timm.data", "Mixup")
        mix = Mixup(**kw, prob=1.0, switch_prob=0.5, mode="batch", label_smoothing=0.1, num_classes=k)
        return torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    return [
        *ours_torch_module(
            ctx,
            t,
            "MixupCutmix",
            dict(**kw, label_smoothing=0.1, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_mixup_cutmix_params")(n, hw, **kw, device=dev),
                lambda x, y, p: need("torch_impl", "mixup_cutmix")(x, y, p, num_classes=k, label_smoothing=0.1),
            ),
        ),
        *ours_jax_random(ctx, t, "random_mixup_cutmix", dict(**kw, label_smoothing=0.1, num_classes=k), with_labels=True),
        Case(t, "timm", "torch", timm_switch, note="timm Mixup, in place, float32 input"),
    ]


ROWS = [
    Row(
        "mixup",
        "mixup",
        "one λ ~ Beta(1, 1) per batch and a pairing of the images: mixed images and soft targets.",
        _mixup,
        trick="mixup",
    ),
    Row(
        "ricap",
        "RICAP",
        "four-patch RICAP (β = 0.3) with its soft targets; no existing implementation to compare "
        "with.",
        _ricap,
        trick="ricap",
    ),
    Row(
        "cutmix",
        "CutMix",
        "one λ ~ Beta(1, 1) per batch, a box of area ≈ (1-λ)·H·W pasted from the paired image, soft "
        "targets by pixel share (torchvision v2's CutMix job).",
        _cutmix,
        trick="cutmix",
    ),
    Row(
        "mixup_cutmix",
        "mixup/CutMix switch",
        "timm's Mixup(mixup_alpha=1, cutmix_alpha=1, switch_prob=0.5, mode='batch', "
        "label_smoothing=0.1): per batch mixup or CutMix, smoothed soft targets.",
        _mixup_cutmix,
        trick="cutmix",
    ),
]
