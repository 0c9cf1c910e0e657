"""Classification losses: label smoothing, soft-target cross-entropy, knowledge distillation.

Logits are float ``[N, K, d1, ...]`` with the classes on axis 1, as ``F.cross_entropy`` takes
them (``[N, K]`` for a batch, ``[N, K, H, W]`` for per-pixel classification, ``[K]`` for one
sample). Labels are integer class indices of the logits' shape without the class axis
(``[N, d1, ...]``) or soft targets of the logits' shape (rows that are distributions, e.g. the
output of :func:`smooth_labels` or of mixup / RICAP), so the tricks compose. Reductions:
``"mean"`` (over every sample and position), ``"sum"``, ``"none"`` (``[N, d1, ...]``).

Precision: float16 and bfloat16 logits are computed in float32, as ``F.cross_entropy`` does.
The result has the logits' dtype, or float32 under ``torch.autocast`` (autocast runs
``F.cross_entropy`` in float32 and returns float32; a model's bfloat16 logits then give a float32
loss, not one rounded to bfloat16).

Masked classes: a logit of ``-inf`` is a class the model rules out. A class whose target weight
is 0 contributes 0 to the loss (``0·log 0 = 0``), so a masked class that is not a target leaves
the loss and its gradient finite, as with ``F.cross_entropy(logits, class_indices)``. A target
that puts weight on a masked class has an infinite loss (label smoothing puts ``ε/K`` on every
class, so any ``-inf`` logit makes it ``inf``, again as ``F.cross_entropy(...,
label_smoothing=ε)``), with the finite gradient ``softmax(z) - t``.

Checks: shapes, dtypes and hyperparameters always; the label range and the soft targets (finite,
``>= 0``, each summing to 1 within ``4·K·eps`` of their dtype) read the values, so they run in
eager mode only (skipped under ``torch.compile``). Logits are not checked for NaN or inf: ``-inf``
has a meaning (above) and NaN propagates to the loss, as in ``F.cross_entropy``. Inputs are never
modified in place.

The mirror of :mod:`jax_impl.losses`, name for name (jax puts the class axis last).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_impl._checks import check_floating, check_soft_targets, compiling
from twintricks.checks import check_choice, check_int, check_real
from twintricks.tricks import TrickImpl

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
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_LOGITS_LAYOUT = "[N, K, d1, ...] (classes on axis 1) or [K]"


def _class_dim(x: torch.Tensor) -> int:
    """The class axis: 1 for a batch ``[N, K, ...]``, 0 for one sample ``[K]``."""
    return 1 if x.ndim >= 2 else 0


def _check_logits(name: str, logits) -> int:
    """Check ``logits`` and return the number of classes ``K``."""
    check_floating(name, logits)
    if logits.ndim == 0:
        raise ValueError(f"`{name}` must be a tensor {_LOGITS_LAYOUT} of logits, got shape ()")
    return logits.shape[_class_dim(logits)]


def _compute(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the dtype the loss is computed in: float16/bfloat16 widened to float32."""
    return x.float() if x.dtype in _LOW_PRECISION else x


def _finish(loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The computed loss in ``F.cross_entropy``'s output dtype for these logits."""
    if logits.dtype in _LOW_PRECISION and not torch.is_autocast_enabled(logits.device.type):
        return loss.to(logits.dtype)
    return loss


def _index_shape(logits: torch.Tensor) -> tuple[int, ...]:
    cd = _class_dim(logits)
    return tuple(logits.shape[:cd] + logits.shape[cd + 1 :])


def _is_index_labels(name: str, labels, logits: torch.Tensor) -> bool:
    """Check ``labels`` against ``logits``: True for class indices, False for soft targets."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(labels).__name__}")
    expected = f"class indices {list(_index_shape(logits))} or soft targets {list(logits.shape)}"
    if labels.ndim == logits.ndim:
        check_floating(name, labels)
        if labels.shape == logits.shape:
            check_soft_targets(name, labels, _class_dim(logits))
            return False
    elif labels.ndim == logits.ndim - 1:
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"`{name}` class indices must have an integer dtype, got {labels.dtype}")
        if tuple(labels.shape) == _index_shape(logits):
            return True
    else:
        raise ValueError(f"`{name}` must be {expected} for `logits` {tuple(logits.shape)}, got shape {tuple(labels.shape)}")
    if labels.ndim and logits.ndim >= 2 and labels.shape[0] != logits.shape[0]:
        raise ValueError(f"batch sizes must match: `logits` {tuple(logits.shape)}, `{name}` {tuple(labels.shape)}")
    raise ValueError(f"`{name}` must be {expected} for `logits` {tuple(logits.shape)}, got shape {tuple(labels.shape)}")


def _check_label_range(name: str, labels: torch.Tensor, k: int, ignore_index: int | None) -> None:
    """Class indices in ``[0, k)`` (or equal to ``ignore_index``); reads values, so eager only."""
    if compiling() or labels.numel() == 0:
        return
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() and (valid.min() < 0 or valid.max() >= k):
        also = "" if ignore_index is None else f" (or equal `ignore_index` = {ignore_index})"
        raise ValueError(f"`{name}` must lie in [0, {k}){also}, got values in [{int(valid.min())}, {int(valid.max())}]")


def _one_hot(labels: torch.Tensor, k: int, dtype: torch.dtype, class_dim: int) -> torch.Tensor:
    """Integer labels as one-hot targets of ``dtype`` with the classes on ``class_dim``."""
    onehot = F.one_hot(labels.long(), k).to(dtype)
    return onehot if onehot.ndim <= 2 else onehot.movedim(-1, class_dim)


def _reduce(loss: torch.Tensor, reduction: str, count=None) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean() if count is None else loss.sum() / count
    if reduction == "sum":
        return loss.sum()
    return loss


def _smooth(t: torch.Tensor, eps: float, k: int) -> torch.Tensor:
    return t * (1.0 - eps) + eps / k


def _xlogy_sum(t: torch.Tensor, log_p: torch.Tensor, dim: int) -> torch.Tensor:
    """``Σ_k t_k·log_p_k`` over ``dim`` where a zero weight contributes 0 even if ``log_p_k = -inf``."""
    return (t * torch.where(t == 0, 0.0, log_p)).sum(dim=dim)


def _xent(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-Σ_k t_k·log softmax(z)_k`` over the class axis (0·log 0 = 0)."""
    cd = _class_dim(logits)
    return -_xlogy_sum(targets, F.log_softmax(logits, dim=cd), cd)


def smooth_labels(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label smoothing: ``(1 - ε)·t + ε/K`` where ``t`` is the one-hot (or soft) target.

    Args:
        labels: integer class indices in ``[0, K)`` of any shape ``[N, d1, ...]``, or float soft
            targets ``[N, K, d1, ...]`` (classes on axis 1; ``[K]`` for one sample).
        num_classes: ``K`` (must equal the soft targets' class axis).
        smoothing: ``ε`` in ``[0, 1]``; 0 returns the one-hot targets.

    Returns:
        ``[N, K, d1, ...]`` targets (classes on axis 1), float32 (torch's default float dtype) for
        integer labels, the labels' dtype for soft targets. Each distribution still sums to 1.

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for
        Computer Vision", CVPR 2016.
    """
    k = check_int("num_classes", num_classes, low=1)
    eps = check_real("smoothing", smoothing, low=0.0, high=1.0)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point():
        if labels.ndim == 0 or labels.shape[_class_dim(labels)] != k:
            raise ValueError(
                f"`labels` soft targets must have {k} classes on axis 1 (axis 0 for one sample), "
                f"got shape {tuple(labels.shape)}"
            )
        return _smooth(labels, eps, k)
    if labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"`labels` class indices must have an integer dtype, got {labels.dtype}")
    _check_label_range("labels", labels, k, None)
    return _smooth(_one_hot(labels, k, torch.get_default_dtype(), 1 if labels.ndim else 0), eps, k)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against soft targets: ``-Σ_k t_k · log softmax(z)_k`` per sample.

    Equals ``F.cross_entropy(logits, targets, reduction=...)`` with probability targets, except
    that a class with target 0 contributes 0 where ``F.cross_entropy`` gives NaN for a ``-inf``
    logit (see the module docstring).

    Args:
        logits: ``[N, K, d1, ...]`` float (classes on axis 1), or ``[K]``.
        targets: float, the shape of ``logits``: distributions over the class axis (finite,
            ``>= 0``, summing to 1 within ``4·K·eps`` of their dtype; checked in eager mode).
        reduction: ``"mean"`` over the samples and positions, ``"sum"``, or ``"none"`` for
            ``[N, d1, ...]``.
    """
    _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    check_floating("targets", targets)
    if targets.shape != logits.shape:
        if targets.ndim and logits.ndim >= 2 and targets.shape[0] != logits.shape[0]:
            raise ValueError(f"batch sizes must match: `logits` {tuple(logits.shape)}, `targets` {tuple(targets.shape)}")
        raise ValueError(f"`targets` must have the shape of `logits` {tuple(logits.shape)}, got shape {tuple(targets.shape)}")
    check_soft_targets("targets", targets, _class_dim(logits))
    loss = _xent(_compute(logits), _compute(targets))
    return _finish(_reduce(loss, reduction), logits)


def label_smoothing_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    smoothing: float = 0.1,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Cross-entropy against smoothed targets: ``CE(z, (1 - ε)·onehot(y) + ε/K)``.

    Equals ``F.cross_entropy(logits, labels, label_smoothing=ε, ignore_index=..., reduction=...)``
    (values and gradients, the masked classes of the module docstring included) for integer
    labels; soft labels (the shape of ``logits``) are smoothed the same way.

    Args:
        logits: ``[N, K, d1, ...]`` float (classes on axis 1), or ``[K]``.
        labels: ``[N, d1, ...]`` integer class indices or soft targets shaped like ``logits``.
        smoothing: ``ε`` in ``[0, 1]``.
        reduction: ``"mean"`` (over the labels that are not ignored), ``"sum"`` or ``"none"``.
        ignore_index: class indices equal to it contribute 0 to the loss and its gradient and are
            not counted by ``"mean"`` (all ignored: NaN, as torch's 0/0). Soft labels ignore it.

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016.
    """
    k = _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    eps = check_real("smoothing", smoothing, low=0.0, high=1.0)
    ignore_index = check_int("ignore_index", ignore_index)
    z = _compute(logits)
    if not _is_index_labels("labels", labels, logits):
        return _finish(_reduce(_xent(z, _smooth(_compute(labels), eps, k)), reduction), logits)
    _check_label_range("labels", labels, k, ignore_index)
    cd = _class_dim(logits)
    keep = labels != ignore_index
    t = _smooth(_one_hot(torch.where(keep, labels, 0), k, z.dtype, cd), eps, k) * keep.unsqueeze(cd).to(z.dtype)
    return _finish(_reduce(_xent(z, t), reduction, keep.sum()), logits)


def _tempered_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """``T²·KL(softmax(teacher/T) ‖ softmax(student/T))`` per sample, in the compute dtype."""
    cd = _class_dim(student_logits)
    log_q = F.log_softmax(_compute(student_logits) / t, dim=cd)
    log_p = F.log_softmax(_compute(teacher_logits.detach()) / t, dim=cd)
    p = log_p.exp()
    # p·(log p - log q) with 0·(...) = 0 where the teacher's p is 0 (masked by both: -inf - -inf)
    absent = p == 0
    return (p * (torch.where(absent, 0.0, log_p) - torch.where(absent, 0.0, log_q))).sum(dim=cd) * (t * t)


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
    ``N·K`` elements; for ``[N, K, d1, ...]`` the positions are summed too, for ``[K]`` N = 1).
    ``"sum"`` sums over the batch; ``"none"`` returns ``[N, d1, ...]``. The ``T²`` factor keeps
    the gradient magnitudes comparable across temperatures. The teacher carries no gradient (it
    is detached). A class the teacher gives probability 0 (a ``-inf`` logit) contributes 0,
    whatever the student's logit; one the teacher keeps and the student masks gives ``inf``.

    Args:
        student_logits, teacher_logits: ``[N, K, d1, ...]`` float (classes on axis 1), same shape.
        temperature: ``T > 0``.

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS DL Workshop 2015.
    """
    return _finish(_distillation(student_logits, teacher_logits, temperature, reduction), student_logits)


def _distillation(student_logits, teacher_logits, temperature, reduction) -> torch.Tensor:
    """:func:`distillation_loss`'s checks and value, in the compute dtype."""
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"`student_logits` {tuple(student_logits.shape)} and `teacher_logits` "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )
    t = check_real("temperature", temperature, low=0.0, low_inclusive=False)
    check_choice("reduction", reduction, ("batchmean", "sum", "none"))
    kl = _tempered_kl(student_logits, teacher_logits, t)
    if reduction == "batchmean":
        return kl.sum() / (kl.shape[0] if kl.ndim else 1)
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

    The cross-entropy is the mean over the samples at temperature 1; ``labels`` are integer
    indices ``[N, d1, ...]`` or soft targets shaped like the logits. The teacher carries no
    gradient. ``α = 1`` is the distillation term alone and ``α = 0`` the cross-entropy alone
    (the other term is not multiplied by 0, so an infinite one cannot make it NaN).

    Args:
        alpha: weight of the distillation term, in ``[0, 1]``.
        temperature: ``T > 0``.

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """
    a = check_real("alpha", alpha, low=0.0, high=1.0)
    distill = _distillation(student_logits, teacher_logits, temperature, "batchmean")
    k = student_logits.shape[_class_dim(student_logits)]
    z = _compute(student_logits)
    if _is_index_labels("labels", labels, student_logits):
        _check_label_range("labels", labels, k, None)
        y = _one_hot(labels, k, z.dtype, _class_dim(student_logits))
    else:
        y = _compute(labels)
    ce = _xent(z, y).mean()
    if a == 1.0:
        return _finish(distill, student_logits)
    if a == 0.0:
        return _finish(ce, student_logits)
    return _finish(a * distill + (1.0 - a) * ce, student_logits)


class LabelSmoothingCrossEntropy(nn.Module):
    """Module form of :func:`label_smoothing_cross_entropy`: ``forward(logits, labels)``."""

    def __init__(self, smoothing: float = 0.1, reduction: str = "mean", *, ignore_index: int = -100):
        super().__init__()
        self.smoothing = check_real("smoothing", smoothing, low=0.0, high=1.0)
        self.reduction = check_choice("reduction", reduction, _REDUCTIONS)
        self.ignore_index = check_int("ignore_index", ignore_index)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return label_smoothing_cross_entropy(
            logits, labels, smoothing=self.smoothing, reduction=self.reduction, ignore_index=self.ignore_index
        )

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}, reduction={self.reduction!r}, ignore_index={self.ignore_index}"


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


# ------------------------------------------------------------------------------------------
# The trainer's entries (label_smoothing, distillation): collected by torch_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------


def _smooth_targets(x, targets, params, trainer):
    if not trainer.soft_targets:  # integer labels: the loss smooths them (label_smoothing_cross_entropy)
        return x, targets
    return x, smooth_labels(targets, trainer.num_classes, trainer.config.label_smoothing)


# Distillation draws and applies nothing: the trainer's loss adds :func:`distillation_loss`
# against its frozen teacher's logits.
TRICK_IMPLS = {
    "label_smoothing": TrickImpl(None, _smooth_targets),
    "distillation": TrickImpl(),
}
