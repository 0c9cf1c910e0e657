"""Registry entries: losses (label smoothing, soft-target CE, distillation).

Each adapter converts a drawn case with :mod:`parity.convert`, looks the kernel up through its
module at call time (so a test can monkeypatch one side), and returns NumPy outputs. Every entry
also returns the gradient with respect to the (student) logits, so gradient parity is checked on
every case, not only values. The jax losses run eagerly (see :func:`parity.tricks.common.jax_call`).
"""

from __future__ import annotations

import numpy as np

from parity import strategies as S
from parity.convert import to_numpy, to_torch
from parity.compare import Check
from parity.tricks.common import jax_value_and_grad, labels_jax, labels_torch, torch_value_and_grad

# ------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------


def _smooth_torch(case):
    import torch_impl.losses as L

    return {"targets": to_numpy(L.smooth_labels(labels_torch(case["labels"]), case["num_classes"], case["smoothing"]))}


def _smooth_jax(case):
    import jax_impl.losses as L

    out = L.smooth_labels(labels_jax(case["labels"]), case["num_classes"], case["smoothing"])
    return {"targets": to_numpy(out)}


def _loss_runs(fn_name: str, wrt: str, args: tuple = (), statics: tuple = ()):
    """``(run_torch, run_jax)`` for a loss ``fn(case[wrt], *case[args], **case[statics])``
    returning ``{"loss", "grad"}``, the gradient being taken with respect to ``case[wrt]``."""

    def run_torch(case):
        import torch_impl.losses as L

        extra = [to_torch(np.array(case[k])) for k in args]
        kw = {k: case[k] for k in statics}
        loss, grad = torch_value_and_grad(lambda z: getattr(L, fn_name)(z, *extra, **kw), case[wrt])
        return {"loss": loss, "grad": grad}

    def run_jax(case):
        import jax_impl.losses as L

        extra = [labels_jax(case[k]) for k in args]
        loss, grad = jax_value_and_grad(getattr(L, fn_name), case[wrt], *extra, **{k: case[k] for k in statics})
        return {"loss": loss, "grad": grad}

    return run_torch, run_jax


_soft_ce_torch, _soft_ce_jax = _loss_runs("soft_target_cross_entropy", "logits", ("targets",), ("reduction",))
_ls_ce_torch, _ls_ce_jax = _loss_runs("label_smoothing_cross_entropy", "logits", ("labels",), ("smoothing", "reduction"))
_distill_torch, _distill_jax = _loss_runs("distillation_loss", "student_logits", ("teacher_logits",), ("temperature",))
_kd_torch, _kd_jax = _loss_runs("kd_loss", "student_logits", ("teacher_logits", "labels"), ("temperature", "alpha"))


# ------------------------------------------------------------------------------------------
# Edge cases and entries
# ------------------------------------------------------------------------------------------

_EDGE_LOGITS = np.array([[30.0, -30.0, 0.0], [-30.0, -30.0, 30.0]], np.float32)
_EDGE_LABELS = np.array([1, 2], np.int64)
# Masked classes: a -inf logit in each row, never on the label (a finite loss and gradient, as
# F.cross_entropy with class indices); with smoothing > 0 the loss is inf, the gradient finite.
_MASKED_LOGITS = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, -3.0], [0.0, 4.0, -np.inf]], np.float32)
_MASKED_LABELS = np.array([0, 1, 1], np.int64)
_MASKED_SOFT = np.array([[0.7, 0.0, 0.3], [0.0, 0.5, 0.5], [0.25, 0.75, 0.0]], np.float32)
# The teacher masks what the student masks, plus one class the student keeps.
_MASKED_TEACHER = np.array([[1.0, -np.inf, -np.inf], [-np.inf, 0.0, 2.0], [1.0, 1.0, -np.inf]], np.float32)


# The masked-class examples put -inf logits in: torch's own losses return +inf where a smoothed or
# soft target puts mass on a masked class, and the gradients there hold infinities too.
_MASKED_INF = "masked classes (-inf logits): the loss is +inf where a target puts mass on one, as in torch's own losses"

_LSE_REASON = (
    "float32 log-softmax: the frameworks shift by the max and sum the exponentials in their own "
    "order, a few ulps of the largest term (|CE| up to ~60 for logits of ±30, summed over <= 8 "
    "samples); gradients softmax - t are in [-1, 1]"
)

CHECKS = [
    Check(
        name="smooth_labels",
        trick="label_smoothing",
        group="losses",
        cases=lambda: S.label_smoothing_cases(),
        run_torch=_smooth_torch,
        run_jax=_smooth_jax,
        atol=2.5e-7,
        rtol=0.0,
        reason="(1-ε)·t + ε/K in float32: XLA may fuse the multiply-add (one rounding instead of two), "
        "at most 1 ulp of values <= 1",
        examples=(dict(logits=_EDGE_LOGITS, labels=_EDGE_LABELS, num_classes=3, smoothing=1.0, reduction="mean"),),
    ),
    Check(
        name="soft_target_cross_entropy",
        group="losses",
        cases=lambda: S.soft_target_cases(),
        run_torch=_soft_ce_torch,
        run_jax=_soft_ce_jax,
        atol=2e-5,
        rtol=1e-5,
        reason=_LSE_REASON,
        allow_nan=_MASKED_INF,
        examples=(dict(logits=_MASKED_LOGITS, targets=_MASKED_SOFT, reduction="none"),),
    ),
    Check(
        name="label_smoothing_cross_entropy",
        trick="label_smoothing",
        group="losses",
        cases=lambda: S.label_smoothing_cases(),
        run_torch=_ls_ce_torch,
        run_jax=_ls_ce_jax,
        atol=2e-5,
        rtol=1e-5,
        reason=_LSE_REASON,
        allow_nan=_MASKED_INF,
        examples=(
            dict(logits=_EDGE_LOGITS, labels=_EDGE_LABELS, num_classes=3, smoothing=0.0, reduction="none"),
            dict(logits=_EDGE_LOGITS, labels=_EDGE_LABELS, num_classes=3, smoothing=1.0, reduction="sum"),
            dict(logits=_MASKED_LOGITS, labels=_MASKED_LABELS, num_classes=3, smoothing=0.0, reduction="none"),
            dict(logits=_MASKED_LOGITS, labels=_MASKED_SOFT, num_classes=3, smoothing=0.0, reduction="mean"),
            dict(logits=_MASKED_LOGITS, labels=_MASKED_LABELS, num_classes=3, smoothing=0.1, reduction="none"),
        ),
    ),
    Check(
        name="distillation_loss",
        trick="distillation",
        group="losses",
        cases=lambda: S.distillation_cases(),
        run_torch=_distill_torch,
        run_jax=_distill_jax,
        atol=1e-4,
        rtol=1e-5,
        reason="float32 log-softmax differences of both tempered distributions (ulps of |log p| <= 60), "
        "then scaled by T² <= 100; gradients T·(q - p)/N <= 10 in magnitude",
        allow_nan=_MASKED_INF,
        examples=(
            dict(
                student_logits=_EDGE_LOGITS,
                teacher_logits=_EDGE_LOGITS.copy(),
                labels=_EDGE_LABELS,
                temperature=1.0,
                alpha=0.9,
            ),
            dict(
                student_logits=_MASKED_LOGITS,
                teacher_logits=_MASKED_TEACHER,
                labels=_MASKED_LABELS,
                temperature=2.0,
                alpha=0.9,
            ),
        ),
    ),
    Check(
        name="kd_loss",
        trick="distillation",
        group="losses",
        cases=lambda: S.distillation_cases(),
        run_torch=_kd_torch,
        run_jax=_kd_jax,
        atol=1e-4,
        rtol=1e-5,
        reason="sum of the distillation term (float32 log-softmax, scaled by T² <= 100) and a float32 "
        "cross-entropy; see distillation_loss",
        allow_nan=_MASKED_INF,
        examples=(
            dict(
                student_logits=_MASKED_LOGITS,
                teacher_logits=_MASKED_TEACHER,
                labels=_MASKED_SOFT,
                temperature=4.0,
                alpha=0.5,
            ),
        ),
    ),
]
