"""Registry entries: losses (label smoothing, soft-target CE, distillation) and mixing (mixup, RICAP).

Each adapter converts a drawn case with :mod:`parity.convert`, looks the kernel up through its
module at call time (so a test can monkeypatch one side), and returns NumPy outputs (images
NHWC). Loss entries also return the gradient with respect to the (student) logits, so gradient
parity is checked on every case, not only values. The jax losses run eagerly, the jax mixing
kernels jitted (see :func:`_jax_call`).
"""

from __future__ import annotations

import functools

import numpy as np

from parity import strategies as S
from parity.convert import images_from_jax, images_from_torch, images_to_jax, images_to_torch, to_jax, to_numpy, to_torch
from parity.registry import Trick

# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def _jax_int(x):
    """Integer arrays go to jax as int32 (jax's default integer width without x64)."""
    return to_jax(np.asarray(x, dtype=np.int32))


def _torch_value_and_grad(fn, x: np.ndarray):
    """``fn(x)`` and the vector-Jacobian product with ones (the gradient of ``fn(x).sum()``)."""
    import torch

    z = to_torch(np.array(x)).requires_grad_(True)
    out = fn(z)
    (grad,) = torch.autograd.grad(out.sum(), z)
    return to_numpy(out), to_numpy(grad)


@functools.lru_cache(maxsize=None)
def _jitted():
    """``jax.jit`` of ``fn(*args, **dict(statics))`` with ``fn`` and ``statics`` static.

    ``fn`` is part of the cache key, so a monkeypatched kernel is traced afresh.
    """
    import jax

    return jax.jit(lambda fn, statics, *args: fn(*args, **dict(statics)), static_argnums=(0, 1))


def _jax_call(fn, *args, **statics):
    """The mixing kernels run jitted (what users run; one compilation per shape instead of one
    per eager op). The losses run eagerly: their hyperparameters are Python floats, static under
    jit, so each drawn value would recompile, while eager op caches are shared across values."""
    return _jitted()(fn, tuple(sorted(statics.items())), *args)


def _jax_value_and_grad(fn, x: np.ndarray, *args, **statics):
    """``fn(x, *args, **statics)`` and the gradient of its sum with respect to ``x`` (eager)."""
    import jax
    import jax.numpy as jnp

    out, vjp = jax.vjp(lambda z: fn(z, *args, **statics), to_jax(x))
    (grad,) = vjp(jnp.ones_like(out))
    return to_numpy(out), to_numpy(grad)


def _labels_torch(labels):
    return to_torch(np.array(labels))


def _labels_jax(labels):
    """Integer labels as int32, float arrays (soft targets, logits) as they are."""
    return _jax_int(labels) if np.asarray(labels).dtype.kind in "iu" else to_jax(labels)


# ------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------


def _smooth_torch(case):
    import torch_impl.losses as L

    return {"targets": to_numpy(L.smooth_labels(_labels_torch(case["labels"]), case["num_classes"], case["smoothing"]))}


def _smooth_jax(case):
    import jax_impl.losses as L

    out = L.smooth_labels(_labels_jax(case["labels"]), case["num_classes"], case["smoothing"])
    return {"targets": to_numpy(out)}


def _loss_runs(fn_name: str, wrt: str, args: tuple = (), statics: tuple = ()):
    """``(run_torch, run_jax)`` for a loss ``fn(case[wrt], *case[args], **case[statics])``
    returning ``{"loss", "grad"}``, the gradient being taken with respect to ``case[wrt]``."""

    def run_torch(case):
        import torch_impl.losses as L

        extra = [to_torch(np.array(case[k])) for k in args]
        kw = {k: case[k] for k in statics}
        loss, grad = _torch_value_and_grad(lambda z: getattr(L, fn_name)(z, *extra, **kw), case[wrt])
        return {"loss": loss, "grad": grad}

    def run_jax(case):
        import jax_impl.losses as L

        extra = [_labels_jax(case[k]) for k in args]
        loss, grad = _jax_value_and_grad(getattr(L, fn_name), case[wrt], *extra, **{k: case[k] for k in statics})
        return {"loss": loss, "grad": grad}

    return run_torch, run_jax


_soft_ce_torch, _soft_ce_jax = _loss_runs("soft_target_cross_entropy", "logits", ("targets",), ("reduction",))
_ls_ce_torch, _ls_ce_jax = _loss_runs("label_smoothing_cross_entropy", "logits", ("labels",), ("smoothing", "reduction"))
_distill_torch, _distill_jax = _loss_runs("distillation_loss", "student_logits", ("teacher_logits",), ("temperature",))
_kd_torch, _kd_jax = _loss_runs("kd_loss", "student_logits", ("teacher_logits", "labels"), ("temperature", "alpha"))


# ------------------------------------------------------------------------------------------
# Mixing
# ------------------------------------------------------------------------------------------


def _mixup_torch(case):
    import torch_impl.mixing as M

    p = case["params"]
    params = M.MixupParams(lam=to_torch(np.array(p["lam"])), perm=to_torch(np.array(p["perm"])))
    images, targets = M.mixup(
        images_to_torch(case["images"]), _labels_torch(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_torch(images), "targets": to_numpy(targets)}


def _mixup_jax(case):
    import jax_impl.mixing as M

    p = case["params"]
    params = M.MixupParams(lam=to_jax(p["lam"]), perm=_jax_int(p["perm"]))
    images, targets = _jax_call(
        M.mixup, images_to_jax(case["images"]), _labels_jax(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_jax(images), "targets": to_numpy(targets)}


def _ricap_torch(case):
    import torch_impl.mixing as M

    params = M.RicapParams(**{k: to_torch(np.array(v)) for k, v in case["params"].items()})
    images, targets = M.ricap(
        images_to_torch(case["images"]), _labels_torch(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_torch(images), "targets": to_numpy(targets)}


def _ricap_jax(case):
    import jax_impl.mixing as M

    params = M.RicapParams(**{k: _jax_int(v) for k, v in case["params"].items()})
    images, targets = _jax_call(
        M.ricap, images_to_jax(case["images"]), _labels_jax(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_jax(images), "targets": to_numpy(targets)}


def _images_only(run):
    return lambda case: {"images": run(case)["images"]}


def _targets_only(run):
    return lambda case: {"targets": run(case)["targets"]}


# ------------------------------------------------------------------------------------------
# Hand-picked edge cases
# ------------------------------------------------------------------------------------------

_EDGE_LOGITS = np.array([[30.0, -30.0, 0.0], [-30.0, -30.0, 30.0]], np.float32)
_EDGE_LABELS = np.array([1, 2], np.int64)


def _ricap_edge(w, h, dtype=np.uint8):
    rng = np.random.default_rng(0)
    n, height, width = 3, 5, 4
    images = (rng.integers(0, 256, (n, height, width, 2)) if dtype == np.uint8 else rng.random((n, height, width, 2)))
    rows, cols = [w, height - w, w, height - w], [h, h, width - h, width - h]
    return dict(
        images=images.astype(dtype),
        targets=np.array([0, 1, 2], np.int64),
        num_classes=3,
        params=dict(
            w=np.asarray(w, np.int64),
            h=np.asarray(h, np.int64),
            perms=np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]], np.int64),
            top=np.repeat(np.array([[height - r] for r in rows], np.int64), n, axis=1),
            left=np.repeat(np.array([[width - c] for c in cols], np.int64), n, axis=1),
        ),
    )


_RICAP_EDGES = (_ricap_edge(0, 0), _ricap_edge(5, 4), _ricap_edge(0, 4), _ricap_edge(2, 1, np.float32))

_MIXUP_EDGE = dict(
    images=np.array([[[[0]], [[255]]], [[[255]], [[0]]]], np.uint8).reshape(2, 2, 1, 1),
    targets=np.array([0, 1], np.int64),
    num_classes=2,
    params=dict(lam=np.asarray(0.5, np.float32), perm=np.array([1, 0], np.int64)),
)

# ------------------------------------------------------------------------------------------
# Entries
# ------------------------------------------------------------------------------------------

_LSE_REASON = (
    "float32 log-softmax: the frameworks shift by the max and sum the exponentials in their own "
    "order, a few ulps of the largest term (|CE| up to ~60 for logits of ±30, summed over <= 8 "
    "samples); gradients softmax - t are in [-1, 1]"
)

TRICKS = [
    Trick(
        name="smooth_labels",
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
    Trick(
        name="soft_target_cross_entropy",
        group="losses",
        cases=lambda: S.soft_target_cases(),
        run_torch=_soft_ce_torch,
        run_jax=_soft_ce_jax,
        atol=2e-5,
        rtol=1e-5,
        reason=_LSE_REASON,
    ),
    Trick(
        name="label_smoothing_cross_entropy",
        group="losses",
        cases=lambda: S.label_smoothing_cases(),
        run_torch=_ls_ce_torch,
        run_jax=_ls_ce_jax,
        atol=2e-5,
        rtol=1e-5,
        reason=_LSE_REASON,
        examples=(
            dict(logits=_EDGE_LOGITS, labels=_EDGE_LABELS, num_classes=3, smoothing=0.0, reduction="none"),
            dict(logits=_EDGE_LOGITS, labels=_EDGE_LABELS, num_classes=3, smoothing=1.0, reduction="sum"),
        ),
    ),
    Trick(
        name="distillation_loss",
        group="losses",
        cases=lambda: S.distillation_cases(),
        run_torch=_distill_torch,
        run_jax=_distill_jax,
        atol=1e-4,
        rtol=1e-5,
        reason="float32 log-softmax differences of both tempered distributions (ulps of |log p| <= 60), "
        "then scaled by T² <= 100; gradients T·(q - p)/N <= 10 in magnitude",
        examples=(
            dict(
                student_logits=_EDGE_LOGITS,
                teacher_logits=_EDGE_LOGITS.copy(),
                labels=_EDGE_LABELS,
                temperature=1.0,
                alpha=0.9,
            ),
        ),
    ),
    Trick(
        name="kd_loss",
        group="losses",
        cases=lambda: S.distillation_cases(),
        run_torch=_kd_torch,
        run_jax=_kd_jax,
        atol=1e-4,
        rtol=1e-5,
        reason="sum of the distillation term (float32 log-softmax, scaled by T² <= 100) and a float32 "
        "cross-entropy; see distillation_loss",
    ),
    Trick(
        name="mixup",
        group="mixing",
        cases=lambda: S.mixup_cases(dtype=np.float32),
        run_torch=_mixup_torch,
        run_jax=_mixup_jax,
        atol=2.5e-7,
        rtol=0.0,
        reason="λ·x + (1-λ)·x' in float32 (images and targets in [0, 1]): XLA may fuse the "
        "multiply-add, one rounding instead of two, 1 ulp",
    ),
    Trick(
        name="mixup_uint8",
        group="mixing",
        cases=lambda: S.mixup_cases(dtype=np.uint8),
        run_torch=_images_only(_mixup_torch),
        run_jax=_images_only(_mixup_jax),
        atol=1.0,
        rtol=0.0,
        reason="uint8 images are blended in float32 and rounded half to even; a fused multiply-add "
        "(1 ulp) next to a .5 tie can round to the neighbouring level. The targets are checked "
        "tightly by the entry mixup",
        examples=(_MIXUP_EDGE,),
    ),
    Trick(
        name="ricap",
        group="mixing",
        cases=lambda: S.ricap_cases(),
        run_torch=_images_only(_ricap_torch),
        run_jax=_images_only(_ricap_jax),
        atol=0.0,
        rtol=0.0,
        reason="pure gather of pixels (uint8 and float32): the patched images must be bit-identical",
        examples=_RICAP_EDGES,
    ),
    Trick(
        name="ricap_targets",
        group="mixing",
        cases=lambda: S.ricap_cases(),
        run_torch=_targets_only(_ricap_torch),
        run_jax=_targets_only(_ricap_jax),
        atol=2.5e-7,
        rtol=0.0,
        reason="Σ_k W_k·t[perm_k] in float32 (the same order in both): XLA may fuse multiply-adds, "
        "an ulp or two of values <= 1",
        examples=_RICAP_EDGES,
    ),
]
