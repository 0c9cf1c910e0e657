"""Batch-mixing augmentations that also mix the targets: mixup and RICAP. Images ``[N, H, W, C]``.

Each trick is a sampler ``sample_<trick>_params(key, ...)`` returning a NamedTuple (field names
identical to :mod:`torch_impl.mixing`), a deterministic kernel ``<trick>(images, targets,
params, ...)`` returning ``(images, soft_targets)``, and a ``random_<trick>(key, ...)`` wrapper
that does both (like dm-pix). Targets are ``[N]`` integer labels (with ``num_classes``) or
``[N, K]`` soft targets, so the tricks compose with label smoothing; the returned targets are
``[N, K]`` soft targets for :func:`jax_impl.losses.soft_target_cross_entropy`.

Kernels use gathers and broadcasting only, with static shapes, so they ``jit`` once per input
shape; the parameter records may be traced. Shape, dtype and hyperparameter checks run at trace
time; value checks on the parameters and labels (ranges) need concrete values and are skipped
under ``jit``/``vmap``. Hyperparameters (``alpha``, ``beta``, ``batch_size``, ``image_size``,
``per_sample``, ``per_image_offsets``) are Python values (static).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jax_impl._checks import check_floating, check_images, check_labels, is_concrete
from twintricks.checks import check_int, check_ndim, check_real, check_same_leading, check_size

__all__ = [
    "MixupParams",
    "sample_mixup_params",
    "mixup",
    "random_mixup",
    "RicapParams",
    "sample_ricap_params",
    "ricap",
    "random_ricap",
]


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


def _check_finite(name: str, value, **interval) -> float:
    """:func:`check_real` that also rejects infinities (a Beta parameter must be finite)."""
    v = check_real(name, value, **interval)
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v!r}")
    return v


def _soft_targets(targets, num_classes) -> jax.Array:
    """``[N]`` integer labels (one-hot, float32, needs ``num_classes``) or ``[N, K]`` soft targets."""
    if not hasattr(targets, "shape") or not hasattr(targets, "dtype"):
        raise TypeError(f"`targets` must be an array, got {type(targets).__name__}")
    check_ndim("targets", targets, (1, 2), "[N] of class indices or [N, K] of soft targets")
    if targets.ndim == 1:
        if num_classes is None:
            raise ValueError("`num_classes` is required when `targets` are integer labels [N]")
        k = check_int("num_classes", num_classes, low=1)
        check_labels("targets", targets, k)
        return jax.nn.one_hot(targets, k, dtype=jnp.float32)
    check_floating("targets", targets)
    if num_classes is not None and targets.shape[1] != check_int("num_classes", num_classes, low=1):
        raise ValueError(f"`targets` must have num_classes={num_classes} columns, got shape {tuple(targets.shape)}")
    return jnp.asarray(targets)


def _check_index(name: str, idx, shape: tuple, high: int) -> None:
    if not hasattr(idx, "shape") or not hasattr(idx, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(idx).__name__}")
    if tuple(idx.shape) != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(idx.shape)}")
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise TypeError(f"`{name}` must have an integer dtype, got {idx.dtype}")
    if is_concrete(idx) and idx.size:
        lo, hi = int(jnp.min(idx)), int(jnp.max(idx))
        if lo < 0 or hi >= high:
            raise ValueError(f"`{name}` must lie in [0, {high}), got values in [{lo}, {hi}]")


# ------------------------------------------------------------------------------------------
# mixup
# ------------------------------------------------------------------------------------------


class MixupParams(NamedTuple):
    """One mixup draw: ``lam`` float32 (``[]`` per batch, or ``[N]`` per sample) and ``perm`` ``[N]``."""

    lam: jax.Array
    perm: jax.Array


def sample_mixup_params(key, batch_size: int, *, alpha: float = 1.0, per_sample: bool = False) -> MixupParams:
    """Draw ``λ ~ Beta(α, α)`` (one per batch, or one per image with ``per_sample``) and a
    uniformly random permutation of the batch.

    ``α = 0`` means no mixing (``λ = 1``), as in the reference code; ``α < 0`` is an error.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n = check_int("batch_size", batch_size, low=1)
    a = _check_finite("alpha", alpha, low=0.0)
    k_lam, k_perm = jax.random.split(key)
    shape = (n,) if per_sample else ()
    lam = jax.random.beta(k_lam, a, a, shape, dtype=jnp.float32) if a > 0 else jnp.ones(shape, jnp.float32)
    return MixupParams(lam, jax.random.permutation(k_perm, n))


def mixup(images, targets, params: MixupParams, *, num_classes: int | None = None):
    """mixup kernel: ``x̃ = λ·x + (1-λ)·x[perm]``, ``t̃ = λ·t + (1-λ)·t[perm]``.

    Args:
        images: ``[N, H, W, C]`` uint8 or float.
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`MixupParams`; ``lam`` ``[]`` or ``[N]`` (per-sample mode).

    Returns:
        ``(mixed_images, soft_targets)``: images of the input dtype (uint8 is blended in float32
        and rounded half to even), targets ``[N, K]`` float (float32 for integer labels). With
        these targets ``CE(z, t̃) = λ·CE(z, y_a) + (1-λ)·CE(z, y_b)``, the reference's loss.

    .. warning::
       The reference code mixes float tensors only. For uint8 images the blend is computed in
       float32 and rounded half to even, so the result is quantised; and since a compiler may
       fuse ``λ·x + (1-λ)·x'`` into one multiply-add (one rounding instead of two), a value
       within an ulp of a .5 tie can round to a level one apart from :mod:`torch_impl.mixing`.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n, _, _, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    if not isinstance(params, MixupParams):
        raise TypeError(f"`params` must be a MixupParams, got {type(params).__name__}")
    lam, perm = params
    if not hasattr(lam, "dtype") or not jnp.issubdtype(lam.dtype, jnp.floating):
        raise TypeError("`params.lam` must be a floating array")
    if tuple(lam.shape) not in ((), (n,)):
        raise ValueError(f"`params.lam` must have shape () or ({n},), got {tuple(lam.shape)}")
    if is_concrete(lam) and not bool(jnp.all((lam >= 0) & (lam <= 1))):  # NaN fails both
        raise ValueError(f"`params.lam` must lie in [0, 1], got {lam.tolist()}")
    _check_index("params.perm", perm, (n,), n)

    images = jnp.asarray(images)
    uint8 = images.dtype == jnp.uint8
    work = images.astype(jnp.float32) if uint8 else images
    lam_x = lam.astype(work.dtype).reshape(-1, 1, 1, 1) if lam.ndim else lam.astype(work.dtype)
    mixed = lam_x * work + (1 - lam_x) * work[perm]
    if uint8:
        mixed = jnp.clip(jnp.round(mixed), 0, 255).astype(jnp.uint8)
    lam_t = lam.astype(soft.dtype).reshape(-1, 1) if lam.ndim else lam.astype(soft.dtype)
    return mixed, lam_t * soft + (1 - lam_t) * soft[perm]


def random_mixup(key, images, targets, *, alpha: float = 1.0, num_classes: int | None = None, per_sample: bool = False):
    """Sample (:func:`sample_mixup_params`) and apply (:func:`mixup`) in one call."""
    n, _, _, _ = check_images("images", images)
    params = sample_mixup_params(key, n, alpha=alpha, per_sample=per_sample)
    return mixup(images, targets, params, num_classes=num_classes)


# ------------------------------------------------------------------------------------------
# RICAP
# ------------------------------------------------------------------------------------------


class RicapParams(NamedTuple):
    """One RICAP draw (integer arrays).

    The boundary splits the output image into four patches ``k = 0..3``: top-left, bottom-left,
    top-right, bottom-right, of ``rows_k = [split_row, H-split_row, split_row, H-split_row]`` by
    ``cols_k = [split_col, split_col, W-split_col, W-split_col]`` pixels. The reference code calls
    the two boundary values ``w`` (= ``split_row``, although it counts ROWS, along H) and ``h``
    (= ``split_col``, although it counts COLUMNS, along W), from ``I_x, I_y = input.size()[2:]``
    on an NCHW batch.

    Fields:
        split_row: ``[]`` rows of the top patches (the reference's ``w``), in ``[0, H]``.
        split_col: ``[]`` columns of the left patches (the reference's ``h``), in ``[0, W]``.
        perms: ``[4, N]`` patch k of output image i comes from source image ``perms[k, i]``.
        top: ``[4, N]`` row offset of patch k's crop in its source image, in ``[0, H - rows_k]``.
        left: ``[4, N]`` column offset, in ``[0, W - cols_k]``. In the reference mode ``top`` and
            ``left`` are the same for the whole batch (one offset per patch).
    """

    split_row: jax.Array
    split_col: jax.Array
    perms: jax.Array
    top: jax.Array
    left: jax.Array


def _patch_sizes(split_row, split_col, height: int, width: int):
    """``rows_k``, ``cols_k`` of the four patches (k: TL, BL, TR, BR)."""
    rows = jnp.stack([split_row, height - split_row, split_row, height - split_row])
    cols = jnp.stack([split_col, split_col, width - split_col, width - split_col])
    return rows, cols


def sample_ricap_params(key, batch_size: int, image_size, *, beta: float = 0.3, per_image_offsets: bool = False) -> RicapParams:
    """Draw a RICAP boundary, four permutations and the crop offsets.

    ``split_row = round(H·Beta(β, β))``, ``split_col = round(W·Beta(β, β))``, rounded half to
    even like ``np.round`` in the reference; four independent uniform permutations of the batch;
    for each patch k a crop offset uniform in ``[0, H - rows_k] × [0, W - cols_k]`` — one per patch
    for the whole batch as in the reference code (default), or one per image and patch with
    ``per_image_offsets=True``. Jittable (``batch_size``, ``image_size`` static); integer
    fields are int32 (int64 in :mod:`torch_impl.mixing`).

    References:
        Takahashi, Matsubara, Uehara, "RICAP: Random Image Cropping and Patching Data
        Augmentation for Deep CNNs", ACML 2018; extended as "Data Augmentation using Random Image
        Cropping and Patching for Deep CNNs", IEEE TCSVT 2020.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    b = _check_finite("beta", beta, low=0.0, low_inclusive=False)
    k_beta, k_perm, k_top, k_left = jax.random.split(key, 4)
    bw, bh = jax.random.beta(k_beta, b, b, (2,), dtype=jnp.float32)
    split_row = jnp.round(height * bw).astype(jnp.int32)
    split_col = jnp.round(width * bh).astype(jnp.int32)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_perm, 4))
    rows, cols = _patch_sizes(split_row, split_col, height, width)
    m = n if per_image_offsets else 1
    top = jax.random.randint(k_top, (4, m), 0, (height - rows + 1)[:, None], dtype=jnp.int32)
    left = jax.random.randint(k_left, (4, m), 0, (width - cols + 1)[:, None], dtype=jnp.int32)
    return RicapParams(split_row, split_col, perms.astype(jnp.int32), jnp.broadcast_to(top, (4, n)), jnp.broadcast_to(left, (4, n)))


def ricap(images, targets, params: RicapParams, *, num_classes: int | None = None):
    """RICAP kernel: patch four crops into each image and mix the targets by area.

    Output pixel ``(i, j)`` of image ``n`` lies in patch ``k = [i >= split_row] + 2·[j >= split_col]`` (c0
    top-left, c1 bottom-left, c2 top-right, c3 bottom-right, as the reference's
    ``cat(cat(c0, c1, H), cat(c2, c3, H), W)``) and equals source image ``perms[k, n]`` at row
    ``top[k, n] + i - [i >= split_row]·split_row`` and column
    ``left[k, n] + j - [j >= split_col]·split_col``. Soft targets:
    ``Σ_k W_k·t[perms[k]]`` with ``W_k = rows_k·cols_k / (H·W)``. Degenerate boundaries (``split_row``
    or ``split_col`` at 0 or at the full size) give zero-area patches with zero weight.

    Built as one gather with static shapes: jits once per image shape, ``params`` may be traced.

    Args:
        images: ``[N, H, W, C]`` uint8 or float; returned in the same dtype (pixels are copied).
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`RicapParams` (its docstring maps the fields to the reference's ``w``/``h``).

    .. warning::
       The reference code's ``w`` counts rows and its ``h`` columns (it reads
       ``I_x, I_y = input.size()[2:]`` from an NCHW batch); here they are ``split_row`` and
       ``split_col``. The per-image offset mode (``per_image_offsets`` in the sampler) is an extension; the
       reference draws one offset per patch for the whole batch.

    Returns:
        ``(patched_images, soft_targets)``, soft targets ``[N, K]`` float.

    References:
        Takahashi, Matsubara, Uehara, "RICAP: Random Image Cropping and Patching Data
        Augmentation for Deep CNNs", ACML 2018; extended as "Data Augmentation using Random Image
        Cropping and Patching for Deep CNNs", IEEE TCSVT 2020.
    """
    n, height, width, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    if not isinstance(params, RicapParams):
        raise TypeError(f"`params` must be a RicapParams, got {type(params).__name__}")
    sr, sc, perms, top, left = params
    for name, v in (("params.split_row", sr), ("params.split_col", sc)):
        if not hasattr(v, "dtype") or v.ndim != 0 or not jnp.issubdtype(v.dtype, jnp.integer):
            raise TypeError(f"`{name}` must be a 0-d integer array")
    _check_index("params.perms", perms, (4, n), n)
    _check_index("params.top", top, (4, n), height + 1)
    _check_index("params.left", left, (4, n), width + 1)
    sr, sc, perms, top, left = (jnp.asarray(x, jnp.int32) for x in (sr, sc, perms, top, left))
    rows, cols = _patch_sizes(sr, sc, height, width)
    if all(is_concrete(x) for x in (sr, sc, top, left)):
        if not (0 <= int(sr) <= height and 0 <= int(sc) <= width):
            raise ValueError(
                f"`params.split_row` must be in [0, {height}] and `params.split_col` in [0, {width}], got {int(sr)}, {int(sc)}"
            )
        if bool(jnp.any(top + rows[:, None] > height)) or bool(jnp.any(left + cols[:, None] > width)):
            raise ValueError("`params.top`/`params.left` put a crop outside its source image")

    i = jnp.arange(height)[:, None]  # [H, 1]
    j = jnp.arange(width)[None, :]  # [1, W]
    below, right = i >= sr, j >= sc
    k = below.astype(jnp.int32) + 2 * right.astype(jnp.int32)  # [H, W] patch index
    di = i - below * sr  # row inside the patch
    dj = j - right * sc  # column inside the patch
    src = perms.T[:, k]  # [N, H, W]
    src_i = top.T[:, k] + di
    src_j = left.T[:, k] + dj
    patched = jnp.asarray(images)[src, src_i, src_j]  # [N, H, W, C]

    weights = (rows * cols).astype(soft.dtype) / (height * width)  # [4]
    parts = soft[perms] * weights[:, None, None]  # [4, N, K]
    mixed = ((parts[0] + parts[1]) + parts[2]) + parts[3]
    return patched, mixed


def random_ricap(
    key, images, labels, *, beta: float = 0.3, num_classes: int | None = None, per_image_offsets: bool = False
):
    """Sample (:func:`sample_ricap_params`) and apply (:func:`ricap`): ``(patched_images, soft_targets)``."""
    n, height, width, _ = check_images("images", images)
    params = sample_ricap_params(key, n, (height, width), beta=beta, per_image_offsets=per_image_offsets)
    return ricap(images, labels, params, num_classes=num_classes)
