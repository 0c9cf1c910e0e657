"""RICAP in JAX: ``sample_ricap_params``, the kernel ``ricap`` and ``random_ricap``. Images
``[N, H, W, C]``; targets ``[N]`` labels (with ``num_classes``) or ``[N, K]`` soft targets, returned
as ``[N, K]`` soft targets.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, check_record, is_concrete
from jax_impl.mixing._common import _check_index, _empty_batch, _soft_targets
from twintricks.checks import check_bool, check_int, check_same_leading, check_size
from twintricks.mixing import check_beta_parameter
from twintricks.tricks import TrickImpl, target_classes

__all__ = ["RicapParams", "sample_ricap_params", "ricap", "random_ricap"]


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
    fields are int32 (int64 in :mod:`torch_impl.mixing._ricap`).

    References:
        Takahashi, Matsubara, Uehara, "RICAP: Random Image Cropping and Patching Data
        Augmentation for Deep CNNs", ACML 2018; extended as "Data Augmentation using Random Image
        Cropping and Patching for Deep CNNs", IEEE TCSVT 2020.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    b = check_beta_parameter("beta", beta)
    per_image_offsets = check_bool("per_image_offsets", per_image_offsets)
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
    if all(is_concrete(x) for x in (sr, sc, top, left)):
        # NumPy: a concrete record closed over inside jit is read, not traced
        r, c, t, lf = (np.asarray(x).astype(np.int64) for x in (sr, sc, top, left))
        if not (0 <= int(r) <= height and 0 <= int(c) <= width):
            raise ValueError(
                f"`params.split_row` must be in [0, {height}] and `params.split_col` in [0, {width}], got {int(r)}, {int(c)}"
            )
        if np.any(t + np.array([r, height - r, r, height - r])[:, None] > height) or np.any(
            lf + np.array([c, c, width - c, width - c])[:, None] > width
        ):
            raise ValueError("`params.top`/`params.left` put a crop outside its source image")
    sr, sc, perms, top, left = (jnp.asarray(x, jnp.int32) for x in (sr, sc, perms, top, left))
    rows, cols = _patch_sizes(sr, sc, height, width)

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
    key, images, targets, *, beta: float = 0.3, num_classes: int | None = None, per_image_offsets: bool = False
):
    """Sample (:func:`sample_ricap_params`) and apply (:func:`ricap`): ``(patched_images, soft_targets)``."""
    n, height, width, _ = check_images("images", images)
    if n == 0:  # an empty batch stays empty, as with torch_impl's module
        return _empty_batch(images, targets, num_classes)
    params = sample_ricap_params(key, n, (height, width), beta=beta, per_image_offsets=per_image_offsets)
    return ricap(images, targets, params, num_classes=num_classes)


# ------------------------------------------------------------------------------------------
# The trainer's entry: collected by jax_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------

TRICK_IMPLS = {
    "ricap": TrickImpl(
        lambda key, n, tr: sample_ricap_params(key, n, tr.image_size, beta=tr.config.ricap),
        lambda x, y, p, tr: ricap(x, y, p, num_classes=target_classes(y, tr)),
    ),
}
