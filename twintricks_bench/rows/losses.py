"""The bench rows of label smoothing and distillation: value and gradient of each loss (``ROWS``;
see :mod:`twintricks_bench.rows`)."""

from __future__ import annotations

import functools
import importlib

from twintricks_bench.cases import (
    Case,
    Context,
    NotAvailable,
    Row,
    jax_grad_call,
    need,
    torch_compile,
    torch_grad_call,
)

__all__ = ["ROWS"]


def _label_smoothing(ctx: Context) -> list[Case]:
    eps = 0.1
    t = "label_smoothing"

    def ours_eager():
        f = need("torch_impl", "label_smoothing_cross_entropy")
        return torch_grad_call(ctx, functools.partial(f, smoothing=eps))

    def ours_compile():
        if not ctx.compile_torch:
            raise NotAvailable("skipped (torch.compile off)")
        f = need("torch_impl", "label_smoothing_cross_entropy")
        return torch_grad_call(ctx, torch_compile(functools.partial(f, smoothing=eps)))

    def ours_jax():
        f = need("jax_impl", "label_smoothing_cross_entropy")
        return jax_grad_call(ctx, functools.partial(f, smoothing=eps))

    def torch_ce():
        import torch

        return torch_grad_call(ctx, torch.nn.CrossEntropyLoss(label_smoothing=eps))

    def timm_ls():
        return torch_grad_call(ctx, need("timm.loss", "LabelSmoothingCrossEntropy")(smoothing=eps))

    def optax_ce():
        optax = importlib.import_module("optax")
        import jax

        k = ctx.size.num_classes

        def loss(logits, labels):
            targets = optax.smooth_labels(jax.nn.one_hot(labels, k), eps)
            return optax.softmax_cross_entropy(logits, targets).mean()

        return jax_grad_call(ctx, loss)

    return [
        Case(t, "torch_impl eager", "torch", ours_eager),
        Case(t, "torch_impl compile", "torch", ours_compile),
        Case(t, "jax_impl jit", "jax", ours_jax),
        Case(t, "torch", "torch", torch_ce, note="nn.CrossEntropyLoss(label_smoothing=0.1)"),
        Case(t, "timm", "torch", timm_ls, note="timm LabelSmoothingCrossEntropy(0.1)"),
        Case(t, "optax", "jax", optax_ce, note="optax.smooth_labels + softmax_cross_entropy, jit"),
    ]


def _distillation(ctx: Context) -> list[Case]:
    T, alpha = 4.0, 0.9
    t = "distillation"

    def ours_eager():
        f = need("torch_impl", "kd_loss")
        return torch_grad_call(ctx, functools.partial(f, temperature=T, alpha=alpha), teacher=True)

    def ours_compile():
        if not ctx.compile_torch:
            raise NotAvailable("skipped (torch.compile off)")
        f = need("torch_impl", "kd_loss")
        return torch_grad_call(ctx, torch_compile(functools.partial(f, temperature=T, alpha=alpha)), teacher=True)

    def ours_jax():
        f = need("jax_impl", "kd_loss")
        return jax_grad_call(ctx, functools.partial(f, temperature=T, alpha=alpha), teacher=True)

    def torch_usual():
        import torch.nn.functional as F

        def loss(s, te, y):
            kl = F.kl_div(F.log_softmax(s / T, -1), F.softmax(te / T, -1), reduction="batchmean")
            return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)

        return torch_grad_call(ctx, loss, teacher=True)

    def optax_usual():
        optax = importlib.import_module("optax")
        import jax

        def loss(s, te, y):
            te = jax.lax.stop_gradient(te)
            kl = optax.kl_divergence(jax.nn.log_softmax(s / T), jax.nn.softmax(te / T)).mean()
            ce = optax.softmax_cross_entropy_with_integer_labels(s, y).mean()
            return alpha * T * T * kl + (1 - alpha) * ce

        return jax_grad_call(ctx, loss, teacher=True)

    return [
        Case(t, "torch_impl eager", "torch", ours_eager),
        Case(t, "torch_impl compile", "torch", ours_compile),
        Case(t, "jax_impl jit", "jax", ours_jax),
        Case(t, "torch", "torch", torch_usual, note="F.kl_div(batchmean)·T² + F.cross_entropy, the usual recipe"),
        Case(t, "optax", "jax", optax_usual, note="optax.kl_divergence + softmax_cross_entropy_with_integer_labels, jit"),
    ]


ROWS = [
    Row(
        "label_smoothing",
        "label smoothing",
        "cross-entropy against smoothed one-hot targets (ε = 0.1), value and gradient w.r.t. the "
        "logits [N, K] (K = 10 at CIFAR size, 1000 at ImageNet size).",
        _label_smoothing,
        trick="label_smoothing",
    ),
    Row(
        "distillation",
        "distillation",
        "α·T²·KL(teacher_T ‖ student_T) + (1-α)·CE with T = 4, α = 0.9, value and gradient w.r.t. the "
        "student logits.",
        _distillation,
        trick="distillation",
    ),
]
