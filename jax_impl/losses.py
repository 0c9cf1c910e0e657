"""Classification losses: label smoothing, soft-target cross-entropy, knowledge distillation.

Logits are float ``[..., K]`` with the classes on the **last** axis and any leading axes (``[N, K]``
for a batch, ``[N, H, W, K]`` per pixel, ``[K]`` for one sample), as optax's losses take them;
torch_impl puts the classes on axis 1, as ``F.cross_entropy`` does. Labels are integer class
indices of the logits' shape without the class axis (``[...]``) or soft targets of the logits'
shape (rows that are distributions, e.g. the output of :func:`smooth_labels` or of mixup / RICAP),
so the tricks compose. Reductions: ``"mean"`` (over every leading position), ``"sum"``,
``"none"`` (the leading shape).

Masked classes: a logit of ``-inf`` is a class the model rules out. A class whose target weight
is 0 contributes 0 (``0·log 0 = 0``, as ``optax.safe_softmax_cross_entropy``), so a masked class
that is not a target leaves the loss and its gradient finite, as ``F.cross_entropy`` with class
indices does. A target that puts weight on a masked class has an infinite loss (label smoothing
puts ``ε/K`` on every class, so any ``-inf`` logit makes it ``inf``, as torch's
``label_smoothing``), with the finite gradient ``softmax(z) - t``.

Hyperparameters (``smoothing``, ``temperature``, ``alpha``) may be Python numbers or jax scalars,
traced ones included: ``jax.vmap`` over a smoothing or a temperature sweeps it, as
``optax.smooth_labels`` allows, and under ``jax.jit`` an array argument does not recompile per
value. Python and concrete values are range-checked; **traced values are not** (an out-of-range
traced value gives a meaningless loss, not an error). ``reduction`` is a Python string.

Checks: shapes, dtypes and the hyperparameters at trace time (inside ``jax.jit`` too); the label
range and the soft targets (finite, ``>= 0``, each summing to 1 within ``4·K·eps`` of their dtype)
need concrete values, so they run eagerly and are skipped for tracers. Logits are not checked for
NaN or inf: ``-inf`` has a meaning (above) and NaN propagates to the loss, as in optax.

The mirror of :mod:`torch_impl.losses`, name for name.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_floating, check_not_torch, check_soft_targets, is_concrete
from twintricks.checks import check_choice, check_int, check_real
from twintricks.tricks import TrickImpl

__all__ = [
    "smooth_labels",
    "soft_target_cross_entropy",
    "label_smoothing_cross_entropy",
    "distillation_loss",
    "kd_loss",
]

_REDUCTIONS = ("mean", "sum", "none")
_LOGITS_LAYOUT = "[..., K] (classes on the last axis)"


def _hparam(name: str, value: Any, **interval) -> Any:
    """A scalar hyperparameter: a Python number (returned as a float), or a jax/NumPy scalar
    (returned as it is); checked against ``interval`` unless it is a tracer."""
    if isinstance(value, (bool, str)) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"`{name}` must be a real number or a scalar array, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Real):
        return check_real(name, value, **interval)
    if getattr(value, "shape", ()) != ():
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(value.shape)}")
    if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(value.dtype, jnp.integer):
        raise TypeError(f"`{name}` must have a real dtype, got {value.dtype}")
    if is_concrete(value):
        check_real(name, float(value), **interval)
    return value


def _check_logits(name: str, logits) -> int:
    """Check ``logits`` and return the number of classes ``K``."""
    check_floating(name, logits)
    if logits.ndim == 0:
        raise ValueError(f"`{name}` must be an array {_LOGITS_LAYOUT} of logits, got shape ()")
    return logits.shape[-1]


def _is_index_labels(name: str, labels, logits) -> bool:
    """Check ``labels`` against ``logits``: True for class indices, False for soft targets."""
    check_not_torch(name, labels)
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(labels).__name__}")
    lead = tuple(logits.shape[:-1])
    expected = f"class indices {list(lead)} or soft targets {list(logits.shape)}"
    if labels.ndim == logits.ndim:
        check_floating(name, labels)
        if tuple(labels.shape) == tuple(logits.shape):
            check_soft_targets(name, labels)
            return False
    elif labels.ndim == logits.ndim - 1:
        if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
            raise TypeError(f"`{name}` class indices must have an integer dtype, got {labels.dtype}")
        if tuple(labels.shape) == lead:
            return True
    else:
        raise ValueError(f"`{name}` must be {expected} for `logits` {tuple(logits.shape)}, got shape {tuple(labels.shape)}")
    if labels.ndim and logits.ndim >= 2 and labels.shape[0] != logits.shape[0]:
        raise ValueError(f"batch sizes must match: `logits` {tuple(logits.shape)}, `{name}` {tuple(labels.shape)}")
    raise ValueError(f"`{name}` must be {expected} for `logits` {tuple(logits.shape)}, got shape {tuple(labels.shape)}")


def _check_label_range(name: str, labels, k: int) -> None:
    """Class indices in ``[0, k)``; needs concrete values, so it is skipped for tracers.

    NumPy reads the values: a concrete array closed over by a ``jax.jit`` function is checked
    too (``jnp.min`` would give a tracer there)."""
    if is_concrete(labels) and labels.size:
        values = np.asarray(labels)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"`{name}` must lie in [0, {k}), got values in [{lo}, {hi}]")


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    return loss


def _smooth(t: jax.Array, eps, k: int) -> jax.Array:
    return t * (1.0 - eps) + eps / k


def _xent(logits, targets) -> jax.Array:
    """Per-position ``-Σ_k t_k·log softmax(z)_k`` over the last axis (0·log 0 = 0)."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(targets * jnp.where(targets == 0, 0.0, log_p), axis=-1)


def smooth_labels(labels, num_classes: int, smoothing) -> jax.Array:
    """Label smoothing: ``(1 - ε)·t + ε/K`` where ``t`` is the one-hot (or soft) target.

    Same formula as ``optax.smooth_labels(onehot, ε)``.

    Args:
        labels: integer class indices in ``[0, K)`` of any shape ``[...]``, or float soft targets
            ``[..., K]``.
        num_classes: ``K`` (must equal the soft targets' last axis).
        smoothing: ``ε`` in ``[0, 1]``: a Python float or a jax scalar (traceable; range-checked
            only when concrete).

    Returns:
        ``[..., K]`` targets, float32 for integer labels, the labels' dtype for soft targets.

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for
        Computer Vision", CVPR 2016.
    """
    k = check_int("num_classes", num_classes, low=1)
    eps = _hparam("smoothing", smoothing, low=0.0, high=1.0)
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        raise TypeError(f"`labels` must be an array, got {type(labels).__name__}")
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if labels.ndim == 0 or labels.shape[-1] != k:
            raise ValueError(f"`labels` soft targets must have {k} classes on the last axis, got shape {tuple(labels.shape)}")
        return _smooth(jnp.asarray(labels), eps, k)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
        raise TypeError(f"`labels` class indices must have an integer dtype, got {labels.dtype}")
    _check_label_range("labels", labels, k)
    return _smooth(jax.nn.one_hot(labels, k, dtype=jnp.float32), eps, k)


def soft_target_cross_entropy(logits, targets, *, reduction: str = "mean") -> jax.Array:
    """Cross-entropy against soft targets: ``-Σ_k t_k · log softmax(z)_k`` per position.

    Per position this is ``optax.safe_softmax_cross_entropy(logits, targets)`` (and
    ``optax.softmax_cross_entropy`` where no logit is ``-inf``).

    Args:
        logits: ``[..., K]`` float.
        targets: float, the shape of ``logits``: distributions over the last axis (finite,
            ``>= 0``, summing to 1 within ``4·K·eps`` of their dtype; checked on concrete values).
        reduction: ``"mean"`` over the leading positions, ``"sum"``, or ``"none"`` for ``[...]``.
    """
    _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    check_floating("targets", targets)
    if tuple(targets.shape) != tuple(logits.shape):
        if targets.ndim and logits.ndim >= 2 and targets.shape[0] != logits.shape[0]:
            raise ValueError(f"batch sizes must match: `logits` {tuple(logits.shape)}, `targets` {tuple(targets.shape)}")
        raise ValueError(f"`targets` must have the shape of `logits` {tuple(logits.shape)}, got shape {tuple(targets.shape)}")
    check_soft_targets("targets", targets)
    return _reduce(_xent(logits, targets), reduction)


def label_smoothing_cross_entropy(logits, labels, *, smoothing=0.1, reduction: str = "mean") -> jax.Array:
    """Cross-entropy against smoothed targets: ``CE(z, (1 - ε)·onehot(y) + ε/K)``.

    Equals ``optax.softmax_cross_entropy(logits, optax.smooth_labels(onehot, ε))`` reduced, and
    torch's ``CrossEntropyLoss(label_smoothing=ε)`` (class axis moved last); soft labels (the
    shape of ``logits``) are smoothed the same way.

    Args:
        logits: ``[..., K]`` float.
        labels: ``[...]`` integer class indices or ``[..., K]`` soft targets.
        smoothing: ``ε`` in ``[0, 1]``: a Python float or a jax scalar (traceable: ``jax.vmap``
            over an array of ``ε`` sweeps it; range-checked only when concrete).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    .. warning:: There is no ``ignore_index`` (torch_impl's follows ``F.cross_entropy``): mask
       with ``reduction="none"`` and a weighted mean, as with optax's losses.

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016.
    """
    k = _check_logits("logits", logits)
    check_choice("reduction", reduction, _REDUCTIONS)
    eps = _hparam("smoothing", smoothing, low=0.0, high=1.0)
    if _is_index_labels("labels", labels, logits):
        _check_label_range("labels", labels, k)
        t = jax.nn.one_hot(labels, k, dtype=logits.dtype)
    else:
        t = jnp.asarray(labels)
    return _reduce(_xent(logits, _smooth(t, eps, k)), reduction)


def _distillation(student_logits, teacher_logits, temperature, reduction) -> jax.Array:
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    if tuple(student_logits.shape) != tuple(teacher_logits.shape):
        raise ValueError(
            f"`student_logits` {tuple(student_logits.shape)} and `teacher_logits` "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )
    t = _hparam("temperature", temperature, low=0.0, low_inclusive=False)
    check_choice("reduction", reduction, ("batchmean", "sum", "none"))
    log_q = jax.nn.log_softmax(student_logits / t, axis=-1)
    log_p = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / t, axis=-1)
    p = jnp.exp(log_p)
    # p·(log p - log q) with 0·(...) = 0 where the teacher's p is 0 (masked by both: -inf - -inf)
    absent = p == 0
    kl = jnp.sum(p * (jnp.where(absent, 0.0, log_p) - jnp.where(absent, 0.0, log_q)), axis=-1) * (t * t)
    if reduction == "batchmean":
        return jnp.sum(kl) / (kl.shape[0] if kl.ndim else 1)
    return jnp.sum(kl) if reduction == "sum" else kl


def distillation_loss(student_logits, teacher_logits, *, temperature, reduction: str = "batchmean") -> jax.Array:
    """Hinton's distillation term: ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, batch-averaged.

    ``KL(p ‖ q) = Σ_k p_k (log p_k - log q_k)`` per position, summed over classes and divided by
    the size of the first axis ``N`` (``"batchmean"``; not the mean over the ``N·K`` elements;
    further leading axes are summed, and ``[K]`` has N = 1). ``"sum"`` sums over the batch;
    ``"none"`` returns the leading shape. The ``T²`` factor keeps the gradient magnitudes
    comparable across temperatures. The teacher carries no gradient (``stop_gradient``). A
    class the teacher gives probability 0 (a ``-inf`` logit) contributes 0, whatever the
    student's logit; one the teacher keeps and the student masks gives ``inf``.

    Args:
        student_logits, teacher_logits: ``[..., K]`` float, same shape.
        temperature: ``T > 0``: a Python float or a jax scalar (traceable; range-checked only
            when concrete).

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS DL Workshop 2015.
    """
    return _distillation(student_logits, teacher_logits, temperature, reduction)


def kd_loss(student_logits, teacher_logits, labels, *, temperature=4.0, alpha=0.9) -> jax.Array:
    """Knowledge-distillation loss: ``α·distillation_loss(s, t, T) + (1 - α)·CE(s, y)``.

    The cross-entropy is the mean over the leading positions at temperature 1; ``labels`` are
    integer indices ``[...]`` or soft targets ``[..., K]``. The teacher carries no gradient.
    ``α = 1`` is the distillation term alone and ``α = 0`` the cross-entropy alone (the other
    term is not multiplied by 0, so an infinite one cannot make it NaN).

    Args:
        alpha: weight of the distillation term, in ``[0, 1]`` (Python float or jax scalar,
            traceable; range-checked only when concrete).
        temperature: ``T > 0`` (likewise).

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """
    a = _hparam("alpha", alpha, low=0.0, high=1.0)
    distill = _distillation(student_logits, teacher_logits, temperature, "batchmean")
    k = student_logits.shape[-1]
    if _is_index_labels("labels", labels, student_logits):
        _check_label_range("labels", labels, k)
        y = jax.nn.one_hot(labels, k, dtype=student_logits.dtype)
    else:
        y = jnp.asarray(labels)
    ce = jnp.mean(_xent(student_logits, y))
    mixed = a * distill + (1.0 - a) * ce
    return jnp.where(a == 1, distill, jnp.where(a == 0, ce, mixed))


# ------------------------------------------------------------------------------------------
# The trainer's entries (label_smoothing, distillation): collected by jax_impl.train (twintricks.tricks.collect_impls)
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
