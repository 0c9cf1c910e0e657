"""Classification losses: label smoothing, soft-target cross-entropy, knowledge distillation.

Logits are float ``[N, K]``. Labels are integer class indices ``[N]`` or soft targets ``[N, K]``
(rows that are distributions, e.g. the output of :func:`smooth_labels` or of mixup / RICAP), so
the tricks compose. Reductions: ``"mean"`` (over the batch), ``"sum"``, ``"none"`` (``[N]``).

Checks: shapes, dtypes and hyperparameters always; the label range reads the values, so it runs
in eager mode only (it is skipped under ``torch.compile``). Inputs are never modified in place.

The mirror of :mod:`jax_impl.losses`, name for name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_impl._checks import check_floating, check_labels
from twintricks.checks import check_choice, check_int, check_ndim, check_real, check_same_leading

__all__ = [
    "smooth_labels",
    "soft_target_cross_entropy",
    "label_smoothing_cross_entropy",
    "distillation_loss",
    "kd_loss",
    "LabelSmoothingCrossEntropy",
    "SoftTargetCrossEntropy",
    "DistillationLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_logits(name: str, logits) -> tuple[int, int]:
    check_floating(name, logits)
    check_ndim(name, logits, 2, "[N, K] of logits")
    return tuple(logits.shape)


def _targets(name: str, labels, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer labels ``[N]`` as one-hot rows of ``dtype``; soft targets ``[N, K]`` as they are."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(labels).__name__}")
    check_ndim(name, labels, (1, 2), "[N] of class indices or [N, K] of soft targets")
    if labels.ndim == 1:
        check_labels(name, labels, num_classes)
        return F.one_hot(labels.long(), num_classes).to(dtype)
    check_floating(name, labels)
    if labels.shape[1] != num_classes:
        raise ValueError(f"`{name}` must have {num_classes} classes (columns), got shape {tuple(labels.shape)}")
    return labels


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _smooth(t: torch.Tensor, eps: float, k: int) -> torch.Tensor:
    return t * (1.0 - eps) + eps / k


def smooth_labels(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label smoothing: ``(1 - ε)·t + ε/K`` where ``t`` is the one-hot (or soft) target.

    Args:
        labels: ``[N]`` integer class indices in ``[0, K)``, or ``[N, K]`` float soft targets.
        num_classes: ``K`` (must equal ``labels.shape[1]`` for soft targets).
        smoothing: ``ε`` in ``[0, 1]``; 0 returns the one-hot targets.

    Returns:
        ``[N, K]`` targets, float32 (torch's default float dtype) for integer labels, the labels'
        dtype for soft targets. Each row still sums to 1.

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for
        Computer Vision", CVPR 2016.
    """
    k = check_int("num_classes", num_classes, low=1)
    eps = check_real("smoothing", smoothing, low=0.0, high=1.0)
    t = _targets("labels", labels, k, torch.get_default_dtype())
    return _smooth(t, eps, k)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against soft targets: ``-Σ_k t_k · log softmax(z)_k`` per sample.

    Args:
        logits: ``[N, K]`` float.
        targets: ``[N, K]`` float rows (distributions; not checked to sum to 1).
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``[N]``.

    With one-hot targets this is the ordinary cross-entropy (``F.cross_entropy``).
    """
    n, k = _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    check_floating("targets", targets)
    check_ndim("targets", targets, 2, "[N, K] of soft targets")
    check_same_leading(["logits", "targets"], [logits, targets])
    if targets.shape[1] != k:
        raise ValueError(f"`targets` must have {k} columns like `logits`, got shape {tuple(targets.shape)}")
    loss = -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return _reduce(loss, reduction)


def label_smoothing_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, *, smoothing: float = 0.1, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy against smoothed targets: ``CE(z, (1 - ε)·onehot(y) + ε/K)``.

    Equals ``torch.nn.CrossEntropyLoss(label_smoothing=ε, reduction=...)`` (values and
    gradients) for integer labels; soft ``[N, K]`` labels are smoothed the same way.

    Args:
        logits: ``[N, K]`` float.
        labels: ``[N]`` integer class indices or ``[N, K]`` soft targets.
        smoothing: ``ε`` in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016.
    """
    n, k = _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    eps = check_real("smoothing", smoothing, low=0.0, high=1.0)
    t = _targets("labels", labels, k, logits.dtype)
    check_same_leading(["logits", "labels"], [logits, t])
    return soft_target_cross_entropy(logits, _smooth(t, eps, k), reduction=reduction)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """Hinton's distillation term: ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, batch-averaged.

    ``KL(p ‖ q) = Σ_k p_k (log p_k - log q_k)`` per sample, summed over classes and divided by
    ``N`` (``"batchmean"``, as ``F.kl_div(..., reduction="batchmean")``; not the mean over the
    ``N·K`` elements). ``"sum"`` sums over the batch; ``"none"`` returns ``[N]``. The ``T²``
    factor keeps the gradient magnitudes comparable across temperatures. The teacher carries no
    gradient (it is detached).

    Args:
        student_logits, teacher_logits: ``[N, K]`` float, same shape.
        temperature: ``T > 0``.

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS DL Workshop 2015.
    """
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"`student_logits` {tuple(student_logits.shape)} and `teacher_logits` "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )
    t = check_real("temperature", temperature, low=0.0, low_inclusive=False)
    check_choice("reduction", reduction, ("batchmean", "sum", "none"))
    log_q = F.log_softmax(student_logits / t, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach() / t, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1) * (t * t)
    if reduction == "batchmean":
        return kl.sum() / kl.shape[0]
    return kl.sum() if reduction == "sum" else kl


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Knowledge-distillation loss: ``α·distillation_loss(s, t, T) + (1 - α)·CE(s, y)``.

    The cross-entropy is the mean over the batch at temperature 1; ``labels`` are ``[N]``
    integer indices or ``[N, K]`` soft targets. The teacher carries no gradient.

    Args:
        alpha: weight of the distillation term, in ``[0, 1]``.
        temperature: ``T > 0``.

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """
    a = check_real("alpha", alpha, low=0.0, high=1.0)
    distill = distillation_loss(student_logits, teacher_logits, temperature=temperature)
    k = student_logits.shape[1]
    y = _targets("labels", labels, k, student_logits.dtype)
    check_same_leading(["student_logits", "labels"], [student_logits, y])
    ce = soft_target_cross_entropy(student_logits, y)
    return a * distill + (1.0 - a) * ce


class LabelSmoothingCrossEntropy(nn.Module):
    """Module form of :func:`label_smoothing_cross_entropy`: ``forward(logits, labels)``."""

    def __init__(self, smoothing: float = 0.1, reduction: str = "mean"):
        super().__init__()
        self.smoothing = check_real("smoothing", smoothing, low=0.0, high=1.0)
        self.reduction = check_choice("reduction", reduction, _REDUCTIONS)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return label_smoothing_cross_entropy(logits, labels, smoothing=self.smoothing, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}, reduction={self.reduction!r}"


class SoftTargetCrossEntropy(nn.Module):
    """Module form of :func:`soft_target_cross_entropy`: ``forward(logits, targets)``."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_choice("reduction", reduction, _REDUCTIONS)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return soft_target_cross_entropy(logits, targets, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class DistillationLoss(nn.Module):
    """Module form of :func:`kd_loss`: ``forward(student_logits, teacher_logits, labels)``.

    ``alpha=1`` gives the pure distillation term (the labels are then only validated).
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        self.temperature = check_real("temperature", temperature, low=0.0, low_inclusive=False)
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0)

    def forward(self, student_logits, teacher_logits, labels) -> torch.Tensor:
        return kd_loss(student_logits, teacher_logits, labels, temperature=self.temperature, alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}"
