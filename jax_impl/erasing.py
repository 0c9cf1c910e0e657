"""Erasing for ``[N, H, W, C]`` batches: Cutout (DeVries & Taylor 2017), square holes filled with a
constant, and random erasing (Zhong et al. 2020), boxes of random area and aspect filled with a
constant, a random colour or noise.

Sampling is separate from the kernel: :func:`sample_cutout_params` draws one integer centre per
image and per hole; :func:`cutout` applies them deterministically with masks (no loop over the
batch), so it jits once per shape and vmaps. :func:`sample_random_erasing_params` / :func:`erase`
split random erasing the same way (the kernel is named ``erase``, torchvision's name for it,
because ``random_erasing`` is the ``random_<trick>(key, ...)`` wrapper). The mirror of
:mod:`torch_impl.erasing`.

Shapes, dtypes and the Python hyperparameters (``length``, ``fill``, ``n_holes``, ``p``, ``scale``,
...) are checked at trace time, inside ``jax.jit`` too. Random erasing's ``p`` may also be traced
(``jit``, ``vmap``, a schedule): a traced ``p`` must be a real scalar and is used unchecked (outside
[0, 1] it acts as 0 or 1). Value checks on the parameter records run on concrete values (eager,
or arrays closed over inside ``jit``) and are skipped for traced ones.

NaN and inf: float images are not checked for them (a check would read every pixel of every
batch); the kernels propagate them as torchvision's ``erase`` does: a non-finite pixel outside a
hole or box stays as it is, one inside is overwritten by the fill. The same in both backends.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, check_record, hyperparameter, is_concrete
from twintricks.checks import check_int, check_ndim, check_real, check_size
from twintricks.erasing import check_random_erasing_args
from twintricks.tricks import TrickImpl

__all__ = [
    "CutoutParams",
    "sample_cutout_params",
    "cutout",
    "random_cutout",
    "RandomErasingParams",
    "sample_random_erasing_params",
    "erase",
    "random_erasing",
]


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
    check_record("params", params, CutoutParams)
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
            lo, hi = int(np.min(np.asarray(t))), int(np.max(np.asarray(t)))  # NumPy: read, not traced under jit
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


# ------------------------------------------------------------------------------------------
# RandomErasing
# ------------------------------------------------------------------------------------------

N_ATTEMPTS = 10  # torchvision's and timm's attempts per box


class RandomErasingParams(NamedTuple):
    """One random-erasing draw for a batch, with up to K boxes per image.

    Fields:
        top, left, height, width: ``[N, K]`` integers, box k of image n (``height`` or
            ``width`` 0: no box).
        fill: ``[N, H, W, C]`` float, the value each pixel takes if a box covers it (a
            constant, a box's colour, or noise: the fill's randomness lives here).
    """

    top: jax.Array
    left: jax.Array
    height: jax.Array
    width: jax.Array
    fill: jax.Array


def _erasing_box_masks(top, left, height, width, image_h: int, image_w: int) -> jax.Array:
    """``[N, K, H, W]`` bool: True inside box k of image n."""
    rows = jnp.arange(image_h, dtype=jnp.int32)
    cols = jnp.arange(image_w, dtype=jnp.int32)
    in_rows = (rows >= top[..., None]) & (rows < (top + height)[..., None])  # [N, K, H]
    in_cols = (cols >= left[..., None]) & (cols < (left + width)[..., None])  # [N, K, W]
    return in_rows[..., :, None] & in_cols[..., None, :]


def sample_random_erasing_params(
    key: jax.Array,
    batch_size: int,
    image_size,
    channels: int,
    *,
    p: float = 0.5,
    scale=(0.02, 0.33),
    ratio=(0.3, 3.3),
    value=0.0,
    mode: str | None = None,
    min_count: int = 1,
    max_count: int | None = None,
) -> RandomErasingParams:
    """Draw random-erasing boxes and fills per image, torchvision v2's ``RandomErasing`` with
    timm's modes and box counts.

    Each image is erased with probability ``p`` (``U < p``), with ``count ~ U{min_count, …,
    max_count}`` boxes. Each box (10 attempts, the first that fits is kept, else no box):
    area ``a = H·W·U(scale)/count``, aspect ``r = exp(U(log ratio))``, ``h = round(sqrt(a·r))``,
    ``w = round(sqrt(a/r))`` (round half to even), kept if ``h < H`` and ``w < W``, at
    ``top ~ U{0, …, H-h}``, ``left ~ U{0, …, W-w}``. Fill (``mode``): ``"const"`` the ``value``
    (one, or one per channel); ``"rand"`` one standard-normal colour per box and channel (a later
    box paints over an earlier one, as timm); ``"pixel"`` (``value="random"``) standard-normal
    noise per pixel and channel. All arguments but ``key`` and ``p`` (which may be traced) are static.

    .. warning::
       torchvision's ``RandomErasing`` draws one box for a whole batch; this draws one per image
       (as timm does for batches). All 10 attempts are drawn up front (static shapes), so the
       stream differs from the references', not the distribution (tested against torchvision).

    Returns:
        :class:`RandomErasingParams`: int32 boxes ``[N, max_count]``, float32 ``fill``
        ``[N, H, W, C]``.

    References:
        Zhong, Zheng, Kang, Li, Yang, "Random Erasing Data Augmentation", AAAI 2020;
        torchvision ``transforms.v2.RandomErasing``; timm ``timm.data.RandomErasing``.
    """
    n = check_int("batch_size", batch_size, low=0)
    height, width = check_size("image_size", image_size)
    c = check_int("channels", channels, low=1)
    p, p_checked = hyperparameter("p", p, functools.partial(check_real, low=0.0, high=1.0), 0.5)  # may be traced
    args = check_random_erasing_args(p_checked, scale, ratio, value, mode, min_count, max_count)
    if len(args.value) not in (1, c):
        raise ValueError(f"`value` must have 1 or {c} (channels) entries, got {len(args.value)}")
    # p goes in as an array: it may be traced, and a new value does not recompile
    return _sample_random_erasing(key, jnp.float32(p) if isinstance(p, float) else p, n, height, width, c, args._replace(p=None))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _sample_random_erasing(key, p, n: int, height: int, width: int, c: int, args) -> RandomErasingParams:
    """The computation of :func:`sample_random_erasing_params` after its checks (jitted: an
    eager call compiles once instead of dispatching op by op); ``p`` a float32 scalar."""
    k = args.max_count
    f32, i32 = jnp.float32, jnp.int32
    k_apply, k_count, k_area, k_aspect, k_top, k_left, k_fill = jax.random.split(key, 7)
    apply = jax.random.uniform(k_apply, (n,), f32) < p
    count = jax.random.randint(k_count, (n,), args.min_count, args.max_count + 1, dtype=i32)
    log_lo, log_hi = math.log(args.ratio[0]), math.log(args.ratio[1])
    lo, hi = args.scale
    u_area = jax.random.uniform(k_area, (n, k, N_ATTEMPTS), f32)
    area = (height * width) * (lo + (hi - lo) * u_area) / count[:, None, None].astype(f32)
    aspect = jnp.exp(log_lo + (log_hi - log_lo) * jax.random.uniform(k_aspect, (n, k, N_ATTEMPTS), f32))
    h = jnp.round(jnp.sqrt(area * aspect)).astype(i32)
    w = jnp.round(jnp.sqrt(area / aspect)).astype(i32)
    fits = (h < height) & (w < width)  # [N, K, 10]
    first = jnp.argmax(fits, axis=2)[..., None]
    h, w = jnp.take_along_axis(h, first, axis=2)[..., 0], jnp.take_along_axis(w, first, axis=2)[..., 0]
    active = apply[:, None] & (jnp.arange(k) < count[:, None]) & jnp.any(fits, axis=2)
    top = jnp.minimum(jnp.floor(jax.random.uniform(k_top, (n, k), f32) * (height - h + 1).astype(f32)).astype(i32), height - h)
    left = jnp.minimum(jnp.floor(jax.random.uniform(k_left, (n, k), f32) * (width - w + 1).astype(f32)).astype(i32), width - w)
    top, left = jnp.where(active, top, 0), jnp.where(active, left, 0)
    h, w = jnp.where(active, h, 0), jnp.where(active, w, 0)
    if args.mode == "pixel":
        fill = jax.random.normal(k_fill, (n, height, width, c), f32)
    elif args.mode == "rand":
        colours = jax.random.normal(k_fill, (n, k, c), f32)
        masks = _erasing_box_masks(top, left, h, w, height, width)
        fill = jnp.zeros((n, height, width, c), f32)
        for b in range(k):  # later boxes paint over earlier ones
            fill = jnp.where(masks[:, b, :, :, None], colours[:, b, None, None, :], fill)
    else:
        fill = jnp.broadcast_to(jnp.asarray(args.value, f32), (n, height, width, c))
    return RandomErasingParams(top, left, h, w, fill)


def _check_erasing_params(images, params) -> None:
    n, height, width, c = images.shape
    check_record("params", params, RandomErasingParams)
    shape = None
    for name in ("top", "left", "height", "width"):
        t = getattr(params, name)
        check_ndim(f"params.{name}", t, 2, "[N, K]")
        if not jnp.issubdtype(t.dtype, jnp.integer):
            raise TypeError(f"`params.{name}` must have an integer dtype, got {t.dtype}")
        if t.shape[0] != n or (shape is not None and t.shape != shape):
            raise ValueError(f"`params.{name}` must be [N, K] with N = {n} (the batch of `images`), got {tuple(t.shape)}")
        shape = t.shape
    fill = params.fill
    if not hasattr(fill, "dtype") or not jnp.issubdtype(fill.dtype, jnp.floating):
        raise TypeError("`params.fill` must be a floating array [N, H, W, C]")
    if tuple(fill.shape) != (n, height, width, c):
        raise ValueError(f"`params.fill` must have the shape of `images` {(n, height, width, c)}, got {tuple(fill.shape)}")
    if not n or not all(is_concrete(t) for t in params):
        return
    top, left, bh, bw = (np.asarray(t).astype(np.int64) for t in params[:4])
    bad = (top < 0) | (left < 0) | (bh < 0) | (bw < 0) | (top + bh > height) | (left + bw > width)
    if bad.any():
        i, b = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"`params` box {b} of image {i} (top={top[i, b]}, left={left[i, b]}, height={bh[i, b]}, "
            f"width={bw[i, b]}) must lie inside the {height}x{width} image"
        )
    f = np.asarray(fill)
    if images.dtype == jnp.uint8 and not ((f == np.round(f)) & (f >= 0) & (f <= 255)).all():
        raise ValueError("`params.fill` must hold integers in [0, 255] for uint8 images (random fills need float images)")
    if images.dtype != jnp.uint8 and not np.isfinite(f).all():
        raise ValueError("`params.fill` must be finite")


def erase(images: jax.Array, params: RandomErasingParams) -> jax.Array:
    """Erase the boxes of ``params``: pixels inside any box of image n take ``params.fill``.

    ``out = where(∪_k box_nk, fill, images)`` per pixel and channel; boxes may overlap (the fill
    already holds, per pixel, the value of the box painted last). One batched select: jits once
    per shape, vmaps.

    Args:
        images: ``[N, H, W, C]`` uint8 or floating.
        params: :class:`RandomErasingParams` (value checks on concrete values only: boxes inside
            the image; for uint8 images a fill of integers in ``[0, 255]``).

    Returns:
        An array with the shape and dtype of ``images``.

    .. warning::
       torchvision's kernel writes a float fill into uint8 images by a cast; here uint8 images
       need an integer fill in ``[0, 255]`` (random fills are for normalised float images, where
       timm and torchvision's references apply them).

    References:
        Zhong, Zheng, Kang, Li, Yang, "Random Erasing Data Augmentation", AAAI 2020;
        torchvision ``transforms.v2.functional.erase``.
    """
    check_images("images", images)
    _check_erasing_params(images, params)
    return _erase_kernel(images, params)


@jax.jit
def _erase_kernel(images: jax.Array, params: RandomErasingParams) -> jax.Array:
    """The computation of :func:`erase` after its checks (jitted, as :func:`cutout`).

    The select runs over ``[N, H, W·C]`` (each row of an image one run of ``W·C`` values, the
    column of value ``j`` is ``j // C``), and the per-box row and column masks are computed once
    behind an optimization barrier: without it XLA fuses the box arithmetic (and under
    :func:`random_erasing`, the sampler's) into the select and recomputes it for every value."""
    n, height, width, c = images.shape
    top, left, bh, bw = (t.astype(jnp.int32) for t in params[:4])
    rows = jnp.arange(height, dtype=jnp.int32)
    cols = jnp.arange(width * c, dtype=jnp.int32) // c
    in_rows = (rows >= top[..., None]) & (rows < (top + bh)[..., None])  # [N, K, H]
    in_cols = (cols >= left[..., None]) & (cols < (left + bw)[..., None])  # [N, K, W·C]
    in_rows, in_cols = jax.lax.optimization_barrier((in_rows, in_cols))
    mask = jnp.any(in_rows[..., :, None] & in_cols[..., None, :], axis=1)  # [N, H, W·C]
    flat = images.reshape(n, height, width * c)
    fill = params.fill.astype(images.dtype).reshape(n, height, width * c)
    return jnp.where(mask, fill, flat).reshape(images.shape)


def random_erasing(
    key: jax.Array,
    images: jax.Array,
    *,
    p: float = 0.5,
    scale=(0.02, 0.33),
    ratio=(0.3, 3.3),
    value=0.0,
    mode: str | None = None,
    min_count: int = 1,
    max_count: int | None = None,
) -> jax.Array:
    """Random erasing per image: :func:`sample_random_erasing_params` then :func:`erase`.

    torchvision v2's ``RandomErasing(p, scale, ratio, value)`` arguments and timm's ``mode``,
    ``min_count``, ``max_count``; all but ``key`` and ``images`` are static.

    References:
        Zhong, Zheng, Kang, Li, Yang, "Random Erasing Data Augmentation", AAAI 2020.
    """
    n, h, w, c = check_images("images", images)
    params = sample_random_erasing_params(
        key, n, (h, w), c, p=p, scale=scale, ratio=ratio, value=value, mode=mode, min_count=min_count, max_count=max_count
    )
    return erase(images, params)


# ------------------------------------------------------------------------------------------
# The trainer's entries (cutout, random_erasing): collected by jax_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------


def _trainer_sample_random_erasing(key, n, trainer):
    c = trainer.config
    return sample_random_erasing_params(
        key, n, trainer.image_size, trainer.channels, p=c.random_erasing, mode=c.random_erasing_mode,
        max_count=c.random_erasing_count,
    )


# At the ``erasing`` stage the batch is normalised: Cutout's fill 0 is the data set's mean.
TRICK_IMPLS = {
    "cutout": TrickImpl(
        lambda key, n, tr: sample_cutout_params(key, n, tr.image_size, n_holes=tr.config.cutout_holes),
        lambda x, y, p, tr: (cutout(x, p, length=tr.config.cutout), y),
    ),
    "random_erasing": TrickImpl(_trainer_sample_random_erasing, lambda x, y, p, tr: (erase(x, p), y)),
}
