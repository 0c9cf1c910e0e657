"""Classification losses: label smoothing, soft-target cross-entropy, knowledge distillation.

Logits are float ``[N, K]``. Labels are integer class indices ``[N]`` or soft targets ``[N, K]``
(rows that are distributions, e.g. the output of :func:`smooth_labels` or of mixup / RICAP), so
the tricks compose. Reductions: ``"mean"`` (over the batch), ``"sum"``, ``"none"`` (``[N]``).

Checks: shapes, dtypes and the Python hyperparameters at trace time (inside ``jax.jit`` too); the
label range needs concrete values, so it runs eagerly and is skipped for tracers. ``smoothing``,
``temperature``, ``alpha`` and ``reduction`` are Python values (static under ``jit``).

The mirror of :mod:`torch_impl.losses`, name for name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_impl._checks import check_floating, check_labels
from twintricks.checks import check_choice, check_int, check_ndim, check_real, check_same_leading

__all__ = [
    "smooth_labels",
    "soft_target_cross_entropy",
    "label_smoothing_cross_entropy",
    "distillation_loss",
    "kd_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_logits(name: str, logits) -> tuple[int, int]:
    check_floating(name, logits)
    check_ndim(name, logits, 2, "[N, K] of logits")
    return tuple(logits.shape)


def _targets(name: str, labels, num_classes: int, dtype) -> jax.Array:
    """Integer labels ``[N]`` as one-hot rows of ``dtype``; soft targets ``[N, K]`` as they are."""
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(labels).__name__}")
    check_ndim(name, labels, (1, 2), "[N] of class indices or [N, K] of soft targets")
    if labels.ndim == 1:
        check_labels(name, labels, num_classes)
        return jax.nn.one_hot(labels, num_classes, dtype=dtype)
    check_floating(name, labels)
    if labels.shape[1] != num_classes:
        raise ValueError(f"`{name}` must have {num_classes} classes (columns), got shape {tuple(labels.shape)}")
    return jnp.asarray(labels)


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    return loss


def _smooth(t: jax.Array, eps: float, k: int) -> jax.Array:
    return t * (1.0 - eps) + eps / k


def smooth_labels(labels, num_classes: int, smoothing: float) -> jax.Array:
    """Label smoothing: ``(1 - ε)·t + ε/K`` where ``t`` is the one-hot (or soft) target.

    Same formula as ``optax.smooth_labels(onehot, ε)``.

    Args:
        labels: ``[N]`` integer class indices in ``[0, K)``, or ``[N, K]`` float soft targets.
        num_classes: ``K`` (must equal ``labels.shape[1]`` for soft targets).
        smoothing: ``ε`` in ``[0, 1]`` (a Python float).

    Returns:
        ``[N, K]`` targets, float32 for integer labels, the labels' dtype for soft targets.

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for
        Computer Vision", CVPR 2016.
    """
    k = check_int("num_classes", num_classes, low=1)
    eps = check_real("smoothing", smoothing, low=0.0, high=1.0)
    return _smooth(_targets("labels", labels, k, jnp.float32), eps, k)


def soft_target_cross_entropy(logits, targets, *, reduction: str = "mean") -> jax.Array:
    """Cross-entropy against soft targets: ``-Σ_k t_k · log softmax(z)_k`` per sample.

    Per sample this is ``optax.softmax_cross_entropy(logits, targets)``.

    Args:
        logits: ``[N, K]`` float.
        targets: ``[N, K]`` float rows (distributions; not checked to sum to 1).
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``[N]``.
    """
    n, k = _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    check_floating("targets", targets)
    check_ndim("targets", targets, 2, "[N, K] of soft targets")
    check_same_leading(["logits", "targets"], [logits, targets])
    if targets.shape[1] != k:
        raise ValueError(f"`targets` must have {k} columns like `logits`, got shape {tuple(targets.shape)}")
    loss = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return _reduce(loss, reduction)


def label_smoothing_cross_entropy(logits, labels, *, smoothing: float = 0.1, reduction: str = "mean") -> jax.Array:
    """Cross-entropy against smoothed targets: ``CE(z, (1 - ε)·onehot(y) + ε/K)``.

    Equals ``optax.softmax_cross_entropy(logits, optax.smooth_labels(onehot, ε))`` reduced, and
    torch's ``CrossEntropyLoss(label_smoothing=ε)``; soft ``[N, K]`` labels are smoothed the
    same way.

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


def distillation_loss(student_logits, teacher_logits, *, temperature: float, reduction: str = "batchmean") -> jax.Array:
    """Hinton's distillation term: ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, batch-averaged.

    ``KL(p ‖ q) = Σ_k p_k (log p_k - log q_k)`` per sample, summed over classes and divided by
    ``N`` (``"batchmean"``; not the mean over the ``N·K`` elements). ``"sum"`` sums over the
    batch; ``"none"`` returns ``[N]``. The ``T²`` factor keeps the gradient magnitudes
    comparable across temperatures. The teacher carries no gradient (``stop_gradient``).

    Args:
        student_logits, teacher_logits: ``[N, K]`` float, same shape.
        temperature: ``T > 0`` (a Python float).

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
    log_q = jax.nn.log_softmax(student_logits / t, axis=-1)
    log_p = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / t, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1) * (t * t)
    if reduction == "batchmean":
        return jnp.sum(kl) / kl.shape[0]
    return jnp.sum(kl) if reduction == "sum" else kl


def kd_loss(student_logits, teacher_logits, labels, *, temperature: float = 4.0, alpha: float = 0.9) -> jax.Array:
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
