"""Cutout (DeVries & Taylor 2017) for ``[N, H, W, C]`` batches: square holes filled with a constant.

Sampling is separate from the kernel: :func:`sample_cutout_params` draws one integer centre per
image and per hole; :func:`cutout` applies them deterministically with masks (no loop over the
batch), so it jits once per shape and vmaps. The mirror of :mod:`torch_impl.erasing`.

Shapes, dtypes and the Python hyperparameters (``length``, ``fill``, ``n_holes``) are checked at
trace time, inside ``jax.jit`` too.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, is_concrete
from twintricks.checks import check_int, check_ndim, check_real, check_size

__all__ = ["CutoutParams", "sample_cutout_params", "cutout", "random_cutout"]


class CutoutParams(NamedTuple):
    """Hole centres: ``cy`` (row) and ``cx`` (column), each ``[N, n_holes]`` integers."""

    cy: jax.Array
    cx: jax.Array


def sample_cutout_params(key: jax.Array, batch_size: int, image_size, *, n_holes: int = 1) -> CutoutParams:
    """Draw ``n_holes`` centres per image, uniform over the whole ``H × W`` grid.

    ``cy ~ U{0, …, H-1}`` and ``cx ~ U{0, …, W-1}`` independently, per image and per hole; the
    centre may lie on the border (as in the reference code), so a hole may be partly outside.

    Args:
        key: a ``jax.random`` key.
        batch_size: N >= 0.
        image_size: ``H`` (square) or ``(H, W)``, both >= 1.
        n_holes: holes per image, >= 0 (0 gives ``[N, 0]`` arrays and a no-op kernel).

    Returns:
        :class:`CutoutParams` of int32 arrays ``[N, n_holes]``.
    """
    n = check_int("batch_size", batch_size, low=0)
    h, w = check_size("image_size", image_size)
    k = check_int("n_holes", n_holes, low=0)
    key_y, key_x = jax.random.split(key)
    cy = jax.random.randint(key_y, (n, k), 0, h, dtype=jnp.int32)
    cx = jax.random.randint(key_x, (n, k), 0, w, dtype=jnp.int32)
    return CutoutParams(cy, cx)


def _check_fill(fill, dtype) -> float:
    fill = check_real("fill", fill)
    if np.dtype(dtype) == np.uint8 and (fill != int(fill) or not 0 <= fill <= 255):
        raise ValueError(f"`fill` must be an integer in [0, 255] for uint8 images, got {fill!r}")
    return fill


def _check_params(images, params) -> None:
    if not isinstance(params, CutoutParams):
        raise TypeError(f"`params` must be a CutoutParams, got {type(params).__name__}")
    for name, t in (("params.cy", params.cy), ("params.cx", params.cx)):
        check_ndim(name, t, 2, "[N, n_holes]")
        if not jnp.issubdtype(t.dtype, jnp.integer):
            raise TypeError(f"`{name}` must have an integer dtype, got {t.dtype}")
    if params.cy.shape != params.cx.shape or params.cy.shape[0] != images.shape[0]:
        raise ValueError(
            f"`params.cy` {tuple(params.cy.shape)} and `params.cx` {tuple(params.cx.shape)} must both be "
            f"[N, n_holes] with N = {images.shape[0]} (the batch of `images`)"
        )
    if params.cy.size and is_concrete(params.cy) and is_concrete(params.cx):
        for name, t, size in (("params.cy", params.cy, images.shape[1]), ("params.cx", params.cx, images.shape[2])):
            lo, hi = int(jnp.min(t)), int(jnp.max(t))
            if lo < 0 or hi >= size:
                raise ValueError(
                    f"`{name}` must lie in [0, {size}) (centres inside the image), got values in [{lo}, {hi}]"
                )


def cutout_mask(params: CutoutParams, height: int, width: int, *, length: int) -> jax.Array:
    """``[N, H, W]`` bool: True inside at least one hole (the geometry of :func:`cutout`)."""
    half = length // 2
    rows = jnp.arange(height, dtype=jnp.int32)
    cols = jnp.arange(width, dtype=jnp.int32)
    cy = params.cy.astype(jnp.int32)[..., None]  # [N, K, 1]
    cx = params.cx.astype(jnp.int32)[..., None]
    in_rows = (rows >= cy - half) & (rows < cy + half)  # [N, K, H]
    in_cols = (cols >= cx - half) & (cols < cx + half)  # [N, K, W]
    return jnp.any(in_rows[..., :, None] & in_cols[..., None, :], axis=1)  # [N, H, W]


def cutout(images: jax.Array, params: CutoutParams, *, length: int, fill: float = 0) -> jax.Array:
    """Fill square holes of side ``length`` with ``fill`` in every channel.

    For image ``n`` and hole ``k`` with centre ``(cy, cx) = (params.cy[n, k], params.cx[n, k])``,
    the hole is rows ``[cy - length//2, cy + length//2)`` × columns
    ``[cx - length//2, cx + length//2)``, clipped to the image. Holes may overlap; pixels outside
    every hole are unchanged. ``n_holes = 0`` (params ``[N, 0]``) returns the images unchanged;
    ``length`` larger than the image is allowed (the box is clipped).

    .. warning::
        An odd ``length`` gives a box of side ``length - 1`` (``2 · (length // 2)``), exactly as
        the reference implementation (``y1 = clip(y - length // 2)``, ``y2 = clip(y + length // 2)``).

    Args:
        images: ``[N, H, W, C]`` uint8 or floating.
        params: :class:`CutoutParams` from :func:`sample_cutout_params` (integer ``[N, n_holes]``,
            centres inside the image: checked on concrete values, not under ``jit``).
        length: side of the holes, >= 0 (static).
        fill: value written into the holes (static); for uint8 an integer in ``[0, 255]``.

    Returns:
        An array with the shape and dtype of ``images``.

    References:
        Terrance DeVries and Graham W. Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout", 2017 (arXiv:1708.04552).
    """
    _, h, w, _ = check_images("images", images)
    length = check_int("length", length, low=0)
    fill = _check_fill(fill, images.dtype)
    _check_params(images, params)
    return _cutout_kernel(images, params, length=length, fill=fill)


@functools.partial(jax.jit, static_argnames=("length", "fill"))
def _cutout_kernel(images: jax.Array, params: CutoutParams, *, length: int, fill: float) -> jax.Array:
    """The computation of :func:`cutout` after its checks (jitted: eager calls compile once per
    shape instead of dispatching op by op; inlined when called under an outer ``jit``)."""
    _, h, w, _ = images.shape
    mask = cutout_mask(params, h, w, length=length)
    return jnp.where(mask[..., None], jnp.asarray(fill, dtype=images.dtype), images)


def random_cutout(key: jax.Array, images: jax.Array, *, n_holes: int = 1, length: int = 16, fill: float = 0) -> jax.Array:
    """Cutout with fresh centres: :func:`sample_cutout_params` then :func:`cutout`.

    ``n_holes``, ``length`` and ``fill`` are static (mark them so under ``jax.jit``).

    References:
        Terrance DeVries and Graham W. Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout", 2017 (arXiv:1708.04552).
    """
    n, h, w, _ = check_images("images", images)
    params = sample_cutout_params(key, n, (h, w), n_holes=n_holes)
    return cutout(images, params, length=length, fill=fill)
