"""Registry entries: mixing (mixup, RICAP, CutMix, timm-style mixup/CutMix switching), the
tricks that blend images and make soft targets.

Each adapter converts a drawn case with :mod:`parity.convert`, calls the kernel looked up at call
time through its module, jitted in jax (:func:`parity.tricks.common.jax_call`), and returns NumPy
outputs (images NHWC).
"""

from __future__ import annotations

import numpy as np

from parity import strategies as S
from parity.convert import images_from_jax, images_from_torch, images_to_jax, images_to_torch, to_jax, to_numpy, to_torch
from parity.compare import Check
from parity.tricks.common import jax_call, jax_int, labels_jax, labels_torch, torch_params

__all__ = ["CHECKS"]

# ------------------------------------------------------------------------------------------
# Mixing
# ------------------------------------------------------------------------------------------


def _mixup_torch(case):
    import torch_impl.mixing as M

    p = case["params"]
    params = M.MixupParams(lam=to_torch(np.array(p["lam"])), perm=to_torch(np.array(p["perm"])))
    images, targets = M.mixup(
        images_to_torch(case["images"]), labels_torch(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_torch(images), "targets": to_numpy(targets)}


def _mixup_jax(case):
    import jax_impl.mixing as M

    p = case["params"]
    params = M.MixupParams(lam=to_jax(p["lam"]), perm=jax_int(p["perm"]))
    images, targets = jax_call(
        M.mixup, images_to_jax(case["images"]), labels_jax(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_jax(images), "targets": to_numpy(targets)}


def _ricap_torch(case):
    import torch_impl.mixing as M

    params = M.RicapParams(**{k: to_torch(np.array(v)) for k, v in case["params"].items()})
    images, targets = M.ricap(
        images_to_torch(case["images"]), labels_torch(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_torch(images), "targets": to_numpy(targets)}


def _ricap_jax(case):
    import jax_impl.mixing as M

    params = M.RicapParams(**{k: jax_int(v) for k, v in case["params"].items()})
    images, targets = jax_call(
        M.ricap, images_to_jax(case["images"]), labels_jax(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_jax(images), "targets": to_numpy(targets)}


def _cutmix_torch(case):
    import torch_impl.mixing as M

    images, targets = M.cutmix(
        images_to_torch(case["images"]), labels_torch(case["targets"]), torch_params(M.CutMixParams, case["params"]),
        num_classes=case["num_classes"],
    )
    return {"images": images_from_torch(images), "targets": to_numpy(targets)}


def _cutmix_jax(case):
    import jax_impl.mixing as M

    params = M.CutMixParams(**{k: jax_int(v) for k, v in case["params"].items()})
    images, targets = jax_call(
        M.cutmix, images_to_jax(case["images"]), labels_jax(case["targets"]), params, num_classes=case["num_classes"]
    )
    return {"images": images_from_jax(images), "targets": to_numpy(targets)}


def _mixup_cutmix_torch(case):
    import torch_impl.mixing as M

    images, targets = M.mixup_cutmix(
        images_to_torch(case["images"]),
        labels_torch(case["targets"]),
        torch_params(M.MixupCutmixParams, case["params"]),
        num_classes=case["num_classes"],
        label_smoothing=case["label_smoothing"],
    )
    return {"images": images_from_torch(images), "targets": to_numpy(targets)}


def _mixup_cutmix_jax(case):
    import jax_impl.mixing as M

    p = case["params"]
    params = M.MixupCutmixParams(
        **{k: to_jax(np.asarray(v)) if k in ("lam", "use_cutmix") else jax_int(v) for k, v in p.items()}
    )
    images, targets = jax_call(
        M.mixup_cutmix,
        images_to_jax(case["images"]),
        labels_jax(case["targets"]),
        params,
        num_classes=case["num_classes"],
        label_smoothing=case["label_smoothing"],
    )
    return {"images": images_from_jax(images), "targets": to_numpy(targets)}


def _cutmix_edge(top, left, height, width, dtype=np.uint8):
    """A 3-image 5x4 batch with one box per image (empty, whole image, a corner)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 5, 4, 2)) if dtype == np.uint8 else rng.random((3, 5, 4, 2))
    box = dict(top=top, left=left, height=height, width=width)
    return dict(
        images=images.astype(dtype),
        targets=np.array([0, 1, 2], np.int64),
        num_classes=3,
        params={**{k: np.asarray(v, np.int64) for k, v in box.items()}, "perm": np.array([2, 0, 1], np.int64)},
    )


_CUTMIX_EDGES = (
    _cutmix_edge([0, 0, 4], [0, 0, 3], [0, 5, 1], [4, 4, 1]),  # empty box, whole image, last pixel
    _cutmix_edge([1, 2, 0], [1, 0, 2], [3, 3, 5], [2, 4, 2], np.float32),
)

_MIXUP_CUTMIX_EDGE = dict(
    images=np.array([[[[0]], [[255]]], [[[255]], [[1]]]], np.uint8).reshape(2, 2, 1, 1),
    targets=np.array([0, 1], np.int64),
    num_classes=2,
    params=dict(
        lam=np.array([0.5, 1.0], np.float32),
        use_cutmix=np.array([False, True]),
        top=np.array([0, 0], np.int64),
        left=np.array([0, 0], np.int64),
        height=np.array([0, 2], np.int64),
        width=np.array([0, 1], np.int64),
        perm=np.array([1, 0], np.int64),
    ),
    label_smoothing=0.1,
)


def _images_only(run):
    return lambda case: {"images": run(case)["images"]}


def _targets_only(run):
    return lambda case: {"targets": run(case)["targets"]}


def _ricap_edge(split_row, split_col, dtype=np.uint8):
    rng = np.random.default_rng(0)
    n, height, width = 3, 5, 4
    images = (rng.integers(0, 256, (n, height, width, 2)) if dtype == np.uint8 else rng.random((n, height, width, 2)))
    rows = [split_row, height - split_row, split_row, height - split_row]
    cols = [split_col, split_col, width - split_col, width - split_col]
    return dict(
        images=images.astype(dtype),
        targets=np.array([0, 1, 2], np.int64),
        num_classes=3,
        params=dict(
            split_row=np.asarray(split_row, np.int64),
            split_col=np.asarray(split_col, np.int64),
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

CHECKS = [
    Check(
        name="mixup",
        trick="mixup",
        group="mixing",
        cases=lambda: S.mixup_cases(dtype=np.float32),
        run_torch=_mixup_torch,
        run_jax=_mixup_jax,
        atol=2.5e-7,
        rtol=0.0,
        reason="λ·x + (1-λ)·x' in float32 (images and targets in [0, 1]): XLA may fuse the "
        "multiply-add, one rounding instead of two, 1 ulp",
    ),
    Check(
        name="mixup_uint8",
        trick="mixup",
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
    Check(
        name="ricap",
        trick="ricap",
        group="mixing",
        cases=lambda: S.ricap_cases(),
        run_torch=_images_only(_ricap_torch),
        run_jax=_images_only(_ricap_jax),
        atol=0.0,
        rtol=0.0,
        reason="pure gather of pixels (uint8 and float32): the patched images must be bit-identical",
        examples=_RICAP_EDGES,
    ),
    Check(
        name="ricap_targets",
        trick="ricap",
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
    Check(
        name="cutmix",
        trick="cutmix",
        group="mixing",
        cases=lambda: S.cutmix_cases(),
        run_torch=_images_only(_cutmix_torch),
        run_jax=_images_only(_cutmix_jax),
        atol=0.0,
        rtol=0.0,
        reason="the pasted box is a select between two images' pixels (uint8 and float32): bit-identical",
        examples=_CUTMIX_EDGES,
    ),
    Check(
        name="cutmix_targets",
        trick="cutmix",
        group="mixing",
        cases=lambda: S.cutmix_cases(),
        run_torch=_targets_only(_cutmix_torch),
        run_jax=_targets_only(_cutmix_jax),
        atol=2.5e-7,
        rtol=0.0,
        reason="the pixel shares are the same correctly rounded float32 divisions in both; "
        "own·t + pasted·t' in float32: XLA may fuse the multiply-add, an ulp of values <= 1",
        examples=_CUTMIX_EDGES,
    ),
    Check(
        name="mixup_cutmix",
        trick="cutmix",
        group="mixing",
        cases=lambda: S.mixup_cutmix_cases(dtype=np.float32),
        run_torch=_mixup_cutmix_torch,
        run_jax=_mixup_cutmix_jax,
        atol=2.5e-7,
        rtol=0.0,
        reason="pasted boxes are exact; the blends x·λ + x'·(1-λ) and the smoothed targets are "
        "float32 multiply-adds of values in [0, 1] that XLA may fuse (one rounding instead of two)",
    ),
    Check(
        name="mixup_cutmix_uint8",
        trick="cutmix",
        group="mixing",
        cases=lambda: S.mixup_cutmix_cases(dtype=np.uint8),
        run_torch=_images_only(_mixup_cutmix_torch),
        run_jax=_images_only(_mixup_cutmix_jax),
        atol=1.0,
        rtol=0.0,
        reason="uint8 blends are computed in float32 and rounded half to even; a fused multiply-add "
        "(1 ulp) next to a .5 tie can round to the neighbouring level. Pasted boxes are exact; the "
        "targets are checked tightly by the entry mixup_cutmix",
        examples=(_MIXUP_CUTMIX_EDGE,),
    ),
]
