"""Batch-mixing augmentations that also mix the targets: mixup, RICAP, CutMix and timm-style
mixup/CutMix switching. Images ``[N, H, W, C]``.

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
``per_sample``, ``per_image_offsets``, timm's switching arguments, ``label_smoothing``) are
Python values (static).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_floating, check_images, check_labels, check_record, is_concrete
from twintricks.checks import check_int, check_ndim, check_real, check_same_leading, check_size
from twintricks.mixing import check_beta_parameter, check_mixup_cutmix_args, minmax_cut_range

__all__ = [
    "MixupParams",
    "sample_mixup_params",
    "mixup",
    "random_mixup",
    "RicapParams",
    "sample_ricap_params",
    "ricap",
    "random_ricap",
    "CutMixParams",
    "sample_cutmix_params",
    "cutmix",
    "random_cutmix",
    "MixupCutmixParams",
    "sample_mixup_cutmix_params",
    "mixup_cutmix",
    "random_mixup_cutmix",
]


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


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
    a = check_beta_parameter("alpha", alpha, allow_zero=True)
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
    check_record("params", params, MixupParams)
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
    b = check_beta_parameter("beta", beta)
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

    Built as one gather with static shapes: jits once per image shape, ``params`` may be traced,
    and a batch split over devices comes back split the same way.

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
    check_record("params", params, RicapParams)
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
    images = jnp.asarray(images)
    patched = images[src, src_i, src_j]  # [N, H, W, C]
    if jax.device_count() > 1:
        # The select always takes the patch (every valid record has perms >= 0) but ties the output
        # to the batch layout of ``images``: on a batch split over devices XLA then splits the
        # gather by output rows, instead of returning a replicated batch. (With one device it
        # would only cost time.)
        patched = jnp.where((perms[0] >= 0)[:, None, None, None], patched, images)

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


# ------------------------------------------------------------------------------------------
# CutMix and timm-style mixup/CutMix switching
# ------------------------------------------------------------------------------------------


def _box_mask(top, left, height, width, image_h: int, image_w: int) -> jax.Array:
    """``[N, H, W]`` bool: True inside image i's box ``[top, top+height) × [left, left+width)``."""
    rows = jnp.arange(image_h, dtype=jnp.int32)
    cols = jnp.arange(image_w, dtype=jnp.int32)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # [N, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # [N, W]
    return in_rows[:, :, None] & in_cols[:, None, :]


@functools.lru_cache(maxsize=64)
def _pixel_shares(pixels: int) -> np.ndarray:
    """``k / pixels`` for ``k = 0..pixels``, float32, each one correctly rounded division.

    XLA turns a division by a constant into a multiplication by its reciprocal (``110·(1/110)``
    is ``0.99999994``); a table looked up by the integer ``k`` keeps the shares exact, and
    bit-identical to torch's float32 division."""
    return np.arange(pixels + 1, dtype=np.float32) / np.float32(pixels)


def _check_boxes(params, n: int, image_h: int, image_w: int):
    """Check the ``top``/``left``/``height``/``width`` ``[N]`` integer fields of a box record; on
    concrete values also that every box (possibly empty) lies inside the image. Returns int32."""
    fields = []
    for name in ("top", "left", "height", "width"):
        t = getattr(params, name)
        _check_index(f"params.{name}", t, (n,), max(image_h, image_w) + 1)
        fields.append(jnp.asarray(t, jnp.int32))
    top, left, height, width = fields
    if n and all(is_concrete(t) for t in fields):
        bad = np.asarray((top + height > image_h) | (left + width > image_w))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`params` box {i} (top={int(top[i])}, left={int(left[i])}, height={int(height[i])}, "
                f"width={int(width[i])}) must lie inside the {image_h}x{image_w} image"
            )
    return top, left, height, width


class CutMixParams(NamedTuple):
    """One CutMix draw (integer arrays ``[N]``): image i receives, inside the box
    ``[top, top+height) × [left, left+width)`` (clipped to the image; empty when ``height`` or
    ``width`` is 0), the pixels of image ``perm[i]``."""

    top: jax.Array
    left: jax.Array
    height: jax.Array
    width: jax.Array
    perm: jax.Array


def sample_cutmix_params(key, batch_size: int, image_size, *, alpha: float = 1.0, per_sample: bool = False) -> CutMixParams:
    """Draw a CutMix box as torchvision v2's ``CutMix``: ``λ ~ Beta(α, α)``, a centre
    ``(r_y, r_x)`` uniform over the pixels, half-sides ``⌊½·sqrt(1-λ)·H⌋`` and
    ``⌊½·sqrt(1-λ)·W⌋``, the box clipped to the image (so its area is about ``(1-λ)·H·W``).
    One box for the whole batch (torchvision) or one per image with ``per_sample``; the pairing
    is torchvision's ``roll(1)`` (``perm[i] = i - 1 mod N``). The kernel corrects λ to the box
    actually pasted. Computed in float32 (torchvision: float64); int32 fields. Jittable
    (``batch_size``, ``image_size``, ``alpha``, ``per_sample`` static).

    References:
        Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
        Classifiers with Localizable Features", ICCV 2019; torchvision ``transforms.v2.CutMix``.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    a = check_beta_parameter("alpha", alpha)
    return _sample_cutmix(key, n, height, width, a, bool(per_sample))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _sample_cutmix(key, n: int, height: int, width: int, a: float, per_sample: bool) -> CutMixParams:
    """The computation of :func:`sample_cutmix_params` after its checks (jitted: an eager call
    compiles once instead of dispatching op by op)."""
    m = n if per_sample else 1
    k_lam, k_x, k_y = jax.random.split(key, 3)
    lam = jax.random.beta(k_lam, a, a, (m,), dtype=jnp.float32)
    cx = jax.random.randint(k_x, (m,), 0, width, dtype=jnp.int32)
    cy = jax.random.randint(k_y, (m,), 0, height, dtype=jnp.int32)
    r = 0.5 * jnp.sqrt(1.0 - lam)
    half_w = jnp.floor(r * width).astype(jnp.int32)
    half_h = jnp.floor(r * height).astype(jnp.int32)
    x1, x2 = jnp.maximum(cx - half_w, 0), jnp.minimum(cx + half_w, width)
    y1, y2 = jnp.maximum(cy - half_h, 0), jnp.minimum(cy + half_h, height)
    box = [jnp.broadcast_to(v, (n,)) for v in (y1, x1, y2 - y1, x2 - x1)]
    return CutMixParams(*box, perm=(jnp.arange(n, dtype=jnp.int32) - 1) % n)


def cutmix(images, targets, params: CutMixParams, *, num_classes: int | None = None):
    """CutMix kernel: paste image ``perm[i]``'s box into image i; mix the targets by pixel share.

    ``x̃_i = M_i ⊙ x_perm[i] + (1 - M_i) ⊙ x_i`` with ``M_i`` the box of image i, and
    ``t̃_i = λ_i·t_i + (1-λ_i)·t_perm[i]`` with ``λ_i = 1 - height_i·width_i / (H·W)``, the
    share of image i's own pixels (λ corrected to the box actually pasted, as torchvision v2).
    Both weights are correctly rounded float32 divisions of exact integers,
    ``(H·W - area)/(H·W)`` and ``area/(H·W)`` (looked up in a table, see :func:`_pixel_shares`).

    Args:
        images: ``[N, H, W, C]`` uint8 or float; returned in the same dtype (pixels are copied).
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`CutMixParams` (boxes inside the image: checked on concrete values).

    Returns:
        ``(mixed_images, soft_targets)``, soft targets ``[N, K]`` float (float32 for labels).

    .. warning::
       torchvision computes ``λ`` in float64 and rounds each weight to float32 once more; here
       each weight is one float32 division, which can differ from torchvision's by an ulp.

    References:
        Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
        Classifiers with Localizable Features", ICCV 2019; torchvision ``transforms.v2.CutMix``.
    """
    n, height, width, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    check_record("params", params, CutMixParams)
    top, left, bh, bw = _check_boxes(params, n, height, width)
    _check_index("params.perm", params.perm, (n,), n)
    perm = jnp.asarray(params.perm, jnp.int32)
    images = jnp.asarray(images)
    mask = _box_mask(top, left, bh, bw, height, width)
    mixed = jnp.where(mask[..., None], images[perm], images)
    area = bh * bw
    shares = jnp.asarray(_pixel_shares(height * width), soft.dtype)
    own, pasted = shares[height * width - area][:, None], shares[area][:, None]
    return mixed, own * soft + pasted * soft[perm]


def random_cutmix(
    key, images, targets, *, alpha: float = 1.0, num_classes: int | None = None, per_sample: bool = False
):
    """Sample (:func:`sample_cutmix_params`) and apply (:func:`cutmix`): ``(mixed_images, soft_targets)``."""
    n, height, width, _ = check_images("images", images)
    params = sample_cutmix_params(key, n, (height, width), alpha=alpha, per_sample=per_sample)
    return cutmix(images, targets, params, num_classes=num_classes)


class MixupCutmixParams(NamedTuple):
    """One draw of timm-style mixup/CutMix switching, per image (``[N]`` each).

    Fields:
        lam: float32, image i's own share: the mixup weight, or for a CutMix image the share of
            its pixels outside the box (corrected to the box when ``correct_lam``); 1 = unmixed.
        use_cutmix: bool, True where image i gets a pasted box instead of a blend.
        top, left, height, width: int, the box of a CutMix image (empty elsewhere).
        perm: int, image i's partner (timm pairs i with ``N - 1 - i``: ``x.flip(0)``).
    """

    lam: jax.Array
    use_cutmix: jax.Array
    top: jax.Array
    left: jax.Array
    height: jax.Array
    width: jax.Array
    perm: jax.Array


def _expand_to_batch(values, n: int, mode: str):
    """timm's layouts: one draw for the batch, a draw per pair ``(i, N-1-i)``, or per element."""
    if mode == "batch":
        return jnp.broadcast_to(values, (n,))
    if mode == "pair":
        return jnp.concatenate([values, values[::-1]])
    return values


def sample_mixup_cutmix_params(
    key,
    batch_size: int,
    image_size,
    *,
    mixup_alpha: float = 1.0,
    cutmix_alpha: float = 0.0,
    cutmix_minmax=None,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
    correct_lam: bool = True,
) -> MixupCutmixParams:
    """Draw timm ``Mixup``'s parameters (its arguments, names and defaults).

    Per draw (one per batch, per pair ``(i, N-1-i)`` or per element, by ``mode``): mix with
    probability ``prob`` (else ``λ = 1``); when both tricks are on, CutMix with probability
    ``switch_prob``, else mixup; ``λ ~ Beta(cutmix_alpha)`` or ``Beta(mixup_alpha)``. A CutMix
    box is timm's ``rand_bbox``: sides ``⌊H·sqrt(1-λ)⌋``, ``⌊W·sqrt(1-λ)⌋`` around a uniform
    centre, clipped (rows ``[cy - ⌊h/2⌋, cy + ⌈h/2⌉)``); with ``cutmix_minmax`` timm's
    ``rand_bbox_minmax`` (sides uniform in ``[⌊H·min⌋, ⌊H·max⌋)``, the box inside the image). With
    ``correct_lam`` (or ``cutmix_minmax``) a CutMix λ becomes ``1 - box area / (H·W)``.
    Computed in float32 (timm: float64). ``mode="pair"`` needs an even batch. Jittable (all
    arguments but ``key`` static).

    .. warning::
       timm asserts an even batch in every mode; here only ``pair`` needs one (in the other
       modes an odd batch's middle image is paired with itself and stays as it is).

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    args = check_mixup_cutmix_args(mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, correct_lam)
    if args.mode == "pair" and n % 2:
        raise ValueError(f"`batch_size` must be even for mode='pair', got {n}")
    cut_range = None if args.cutmix_minmax is None else minmax_cut_range(args.cutmix_minmax, height, width)
    return _sample_mixup_cutmix(key, n, height, width, args, cut_range)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _sample_mixup_cutmix(key, n: int, height: int, width: int, args, cut_range) -> MixupCutmixParams:
    """The computation of :func:`sample_mixup_cutmix_params` after its checks (jitted)."""
    m = {"batch": 1, "pair": n // 2, "elem": n}[args.mode]
    k_apply, k_switch, k_mix, k_cut, k_h, k_w, k_y, k_x = jax.random.split(key, 8)
    f32, i32 = jnp.float32, jnp.int32
    apply = jax.random.uniform(k_apply, (m,), f32) < args.prob
    if args.mixup_alpha > 0 and args.cutmix_alpha > 0:
        use_cutmix = jax.random.uniform(k_switch, (m,), f32) < args.switch_prob
    else:
        use_cutmix = jnp.full((m,), args.cutmix_alpha > 0)
    lam_mix = jnp.ones((m,), f32)
    if args.mixup_alpha > 0:
        lam_mix = jnp.where(use_cutmix, lam_mix, jax.random.beta(k_mix, args.mixup_alpha, args.mixup_alpha, (m,), f32))
    if args.cutmix_alpha > 0:
        lam_mix = jnp.where(use_cutmix, jax.random.beta(k_cut, args.cutmix_alpha, args.cutmix_alpha, (m,), f32), lam_mix)
    lam = jnp.where(apply, lam_mix, 1.0)
    boxed = use_cutmix & (lam != 1)
    if cut_range is None:
        ratio = jnp.sqrt(1.0 - lam_mix)
        cut_h, cut_w = jnp.floor(height * ratio).astype(i32), jnp.floor(width * ratio).astype(i32)
        cy = jax.random.randint(k_y, (m,), 0, height, dtype=i32)
        cx = jax.random.randint(k_x, (m,), 0, width, dtype=i32)
        y1, y2 = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + (cut_h + 1) // 2, 0, height)
        x1, x2 = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + (cut_w + 1) // 2, 0, width)
    else:
        lo_h, hi_h, lo_w, hi_w = cut_range
        cut_h = jax.random.randint(k_h, (m,), lo_h, hi_h, dtype=i32)
        cut_w = jax.random.randint(k_w, (m,), lo_w, hi_w, dtype=i32)
        y1 = jax.random.randint(k_y, (m,), 0, height - cut_h + 1, dtype=i32)
        x1 = jax.random.randint(k_x, (m,), 0, width - cut_w + 1, dtype=i32)
        y2, x2 = y1 + cut_h, x1 + cut_w
    bh, bw = jnp.where(boxed, y2 - y1, 0), jnp.where(boxed, x2 - x1, 0)
    if args.correct_lam or cut_range is not None:
        lam = jnp.where(boxed, jnp.asarray(_pixel_shares(height * width))[height * width - bh * bw], lam)
    fields = [lam.astype(f32), boxed, jnp.where(boxed, y1, 0), jnp.where(boxed, x1, 0), bh, bw]
    out = [_expand_to_batch(v, n, args.mode) for v in fields]
    return MixupCutmixParams(*out, perm=jnp.arange(n - 1, -1, -1, dtype=i32))


def _smoothed(soft, targets, smoothing: float, k: int):
    """timm's ``mixup_target`` smoothing: labels get ``1 - ε + ε/K`` and ``ε/K`` (written as those
    two values, as timm's ``one_hot``); soft targets ``t·(1-ε) + ε/K``."""
    if smoothing == 0:
        return soft
    off = smoothing / k
    if targets.ndim == 1:
        return jnp.where(soft > 0, jnp.asarray(1.0 - smoothing + off, soft.dtype), jnp.asarray(off, soft.dtype))
    return soft * (1.0 - smoothing) + off


def mixup_cutmix(images, targets, params: MixupCutmixParams, *, num_classes: int | None = None, label_smoothing: float = 0.0):
    """Kernel of timm-style mixup/CutMix switching, image by image.

    With ``j = perm[i]`` and ``λ = lam[i]``: a CutMix image takes image j's pixels inside its box
    (``where``, pixels copied); a mixup image is ``x_i·λ + x_j·(1-λ)`` (uint8: blended in float32
    and rounded half to even, as timm's ``FastCollateMixup``); targets, smoothed first as timm's
    ``mixup_target``, are ``t_i·λ + t_j·(1-λ)``.

    Args:
        images: ``[N, H, W, C]`` uint8 or float; returned in the same dtype.
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`MixupCutmixParams` (value checks on concrete values only).
        label_smoothing: ``ε`` in ``[0, 1]`` (static; timm ``Mixup``'s default is 0.1; 0 here).

    Returns:
        ``(mixed_images, soft_targets)``, soft targets ``[N, K]`` float (float32 for labels).

    .. warning::
       timm's per-batch mode computes ``1 - λ`` in float64 and rounds it to float32; here
       ``1 - λ`` is computed in float32 from the float32 ``λ`` of the record (as timm's per-pair
       and per-element modes do), so per-batch results can differ from timm's by an ulp; XLA
       may also fuse the blend's multiply-add (one rounding instead of two).

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """
    n, height, width, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    eps = check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)
    check_record("params", params, MixupCutmixParams)
    lam, use_cutmix = params.lam, params.use_cutmix
    if not hasattr(lam, "dtype") or not jnp.issubdtype(lam.dtype, jnp.floating) or tuple(lam.shape) != (n,):
        raise TypeError(f"`params.lam` must be a floating array of shape ({n},)")
    if is_concrete(lam) and not bool(jnp.all((lam >= 0) & (lam <= 1))):  # NaN fails both
        raise ValueError(f"`params.lam` must lie in [0, 1], got {lam.tolist()}")
    if not hasattr(use_cutmix, "dtype") or use_cutmix.dtype != jnp.bool_ or tuple(use_cutmix.shape) != (n,):
        raise TypeError(f"`params.use_cutmix` must be a bool array of shape ({n},)")
    top, left, bh, bw = _check_boxes(params, n, height, width)
    _check_index("params.perm", params.perm, (n,), n)
    perm = jnp.asarray(params.perm, jnp.int32)

    images = jnp.asarray(images)
    src = images[perm]
    pasted = jnp.where(_box_mask(top, left, bh, bw, height, width)[..., None], src, images)
    uint8 = images.dtype == jnp.uint8
    work, src_w = (images.astype(jnp.float32), src.astype(jnp.float32)) if uint8 else (images, src)
    lam_x = lam.astype(work.dtype).reshape(-1, 1, 1, 1)
    blended = work * lam_x + src_w * (1 - lam_x)
    if uint8:
        blended = jnp.clip(jnp.round(blended), 0, 255).astype(jnp.uint8)
    mixed = jnp.where(use_cutmix.reshape(-1, 1, 1, 1), pasted, blended)
    soft = _smoothed(soft, targets, eps, soft.shape[1])
    lam_t = lam.astype(soft.dtype)[:, None]
    return mixed, soft * lam_t + soft[perm] * (1 - lam_t)


def random_mixup_cutmix(
    key,
    images,
    targets,
    *,
    mixup_alpha: float = 1.0,
    cutmix_alpha: float = 0.0,
    cutmix_minmax=None,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
    correct_lam: bool = True,
    label_smoothing: float = 0.1,
    num_classes: int = 1000,
):
    """Sample (:func:`sample_mixup_cutmix_params`) and apply (:func:`mixup_cutmix`) with timm
    ``Mixup``'s arguments and defaults: ``(mixed_images, soft_targets)``. All but ``key``,
    ``images`` and ``targets`` are static."""
    n, height, width, _ = check_images("images", images)
    params = sample_mixup_cutmix_params(
        key,
        n,
        (height, width),
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        cutmix_minmax=cutmix_minmax,
        prob=prob,
        switch_prob=switch_prob,
        mode=mode,
        correct_lam=correct_lam,
    )
    return mixup_cutmix(images, targets, params, num_classes=num_classes, label_smoothing=label_smoothing)
