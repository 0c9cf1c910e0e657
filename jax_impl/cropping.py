"""Random resized crop + horizontal flip for ``[N, H, W, C]`` batches, one box and one coin per image.

Sampling is separate from the kernels: :func:`sample_resized_crop_params` runs torchvision's
``RandomResizedCrop.get_params`` algorithm for every image at once (a fixed 10-attempt draw with
selection of the first that fits, else the centre-crop fallback, so it jits), :func:`resized_crop`
resizes every image's box to one static size by bilinear interpolation with gathers, and
:func:`sample_flip_params` / :func:`hflip` flip a Bernoulli(p) subset. The mirror of
:mod:`torch_impl.cropping`.

Shapes, dtypes and the Python hyperparameters (``size``, ``scale``, ``ratio``, ``p``) are checked
at trace time; whether the boxes lie inside the image is checked only on concrete values (eager).

NaN and inf: float images are not checked for them; the kernels propagate them, as
:mod:`torch_impl.cropping` says (and as torchvision's ``resized_crop`` and ``hflip`` do).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, check_record, is_concrete
from twintricks.checks import check_int, check_ndim, check_real, check_size
from twintricks.geometry import check_scale_ratio, fallback_crop_box
from twintricks.tricks import TrickImpl

__all__ = [
    "ResizedCropParams",
    "sample_resized_crop_params",
    "resized_crop",
    "FlipParams",
    "sample_flip_params",
    "hflip",
    "random_resized_crop_flip",
]

N_ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params
MAX_UINT8_OUTPUT_AREA = 2**21  # exact integer bilinear arithmetic fits int32 below this


class ResizedCropParams(NamedTuple):
    """One box per image: ``top``, ``left``, ``height``, ``width``, each ``[N]`` integers."""

    top: jax.Array
    left: jax.Array
    height: jax.Array
    width: jax.Array


class FlipParams(NamedTuple):
    """``flip``: ``[N]`` bool, True where the image is mirrored left-right."""

    flip: jax.Array


def sample_resized_crop_params(
    key: jax.Array,
    batch_size: int,
    image_size,
    *,
    scale=(0.08, 1.0),
    ratio=(3.0 / 4.0, 4.0 / 3.0),
) -> ResizedCropParams:
    """Draw one crop box per image with torchvision's ``RandomResizedCrop.get_params`` algorithm.

    For each image, 10 attempts: area ``a = H·W·U(scale)``, aspect ratio
    ``r = exp(U(log ratio[0], log ratio[1]))``, ``w = round(sqrt(a·r))``, ``h = round(sqrt(a/r))``
    (round half to even, as Python's ``round``). The first attempt with ``0 < w <= W`` and
    ``0 < h <= H`` is kept, with ``top ~ U{0, …, H-h}`` and ``left ~ U{0, …, W-w}``. If none fits,
    the centre crop: the whole image, narrowed to the nearest allowed aspect ratio.

    The 10 attempts are a fixed draw with selection (static shapes, jit-friendly), so the
    random stream differs from torchvision's; the boxes' distribution is the same (tested
    against torchvision with fixed seeds). Computed in float32.

    .. warning::
        In the fallback, torchvision can return a zero-sized box for extreme aspect ratios
        (e.g. ``W = 1`` with ``ratio[0] > 2``); here the box side is clamped to at least 1.

    Args:
        key: a ``jax.random`` key.
        batch_size: N >= 0.
        image_size: ``H`` (square) or ``(H, W)``, both >= 1.
        scale: ``(min, max)`` fraction of the image area, ``0 < min <= max``.
        ratio: ``(min, max)`` aspect ratio ``w / h``, ``0 < min <= max``.

    Returns:
        :class:`ResizedCropParams` of int32 arrays ``[N]``.

    References:
        Christian Szegedy et al., "Going Deeper with Convolutions", 2015 (the crop augmentation);
        torchvision ``transforms.RandomResizedCrop.get_params``.
    """
    n = check_int("batch_size", batch_size, low=0)
    height, width = check_size("image_size", image_size)
    scale, ratio = check_scale_ratio(scale, ratio)
    return _sample_boxes(key, n, height, width, scale, ratio)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _sample_boxes(key, n: int, height: int, width: int, scale, ratio) -> ResizedCropParams:
    """The computation of :func:`sample_resized_crop_params` after its checks (jitted)."""
    f32, i32 = jnp.float32, jnp.int32
    # one draw for everything (one RNG op compiles faster than four): 10 areas, 10 ratios, top, left
    u = jax.random.uniform(key, (n, 2 * N_ATTEMPTS + 2), f32)
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u[:, :N_ATTEMPTS])
    aspect = jnp.exp(log_lo + (log_hi - log_lo) * u[:, N_ATTEMPTS : 2 * N_ATTEMPTS])
    w = jnp.round(jnp.sqrt(target_area * aspect)).astype(i32)
    h = jnp.round(jnp.sqrt(target_area / aspect)).astype(i32)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # [N, 10]
    first = jnp.argmax(fits, axis=1)[:, None]  # first True (0 when none)
    found = jnp.any(fits, axis=1)
    h = jnp.take_along_axis(h, first, axis=1)[:, 0]
    w = jnp.take_along_axis(w, first, axis=1)[:, 0]
    f_top, f_left, f_h, f_w = fallback_crop_box(height, width, ratio)
    h = jnp.where(found, h, f_h)
    w = jnp.where(found, w, f_w)
    u_top, u_left = u[:, 2 * N_ATTEMPTS], u[:, 2 * N_ATTEMPTS + 1]
    top = jnp.minimum(jnp.floor(u_top * (height - h + 1).astype(f32)).astype(i32), height - h)
    left = jnp.minimum(jnp.floor(u_left * (width - w + 1).astype(f32)).astype(i32), width - w)
    top = jnp.where(found, top, f_top)
    left = jnp.where(found, left, f_left)
    return ResizedCropParams(top, left, h, w)


def _check_int_vector(name: str, t, n: int) -> None:
    if not hasattr(t, "dtype"):
        raise TypeError(f"`{name}` must be an array [N], got {type(t).__name__}")
    check_ndim(name, t, 1, "[N]")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"`{name}` must have an integer dtype, got {t.dtype}")
    if t.shape[0] != n:
        raise ValueError(f"`{name}` must have N = {n} entries (the batch of `images`), got {t.shape[0]}")


def _check_boxes(params, h: int, w: int, n: int) -> None:
    check_record("params", params, ResizedCropParams)
    for field in ResizedCropParams._fields:
        _check_int_vector(f"params.{field}", getattr(params, field), n)
    if n and all(is_concrete(t) for t in params):
        top, left, bh, bw = (np.asarray(t).astype(np.int64) for t in params)
        bad = (bh < 1) | (bw < 1) | (top < 0) | (left < 0) | (top + bh > h) | (left + bw > w)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`params` box {i} (top={int(top[i])}, left={int(left[i])}, height={int(bh[i])}, "
                f"width={int(bw[i])}) must have height, width >= 1 and lie inside the {h}x{w} image"
            )


def _source_taps(start, extent, in_size: int, out_size: int, mirror=None):
    """Bilinear taps along one axis, exactly, for every image's box.

    Output index ``o`` samples box coordinate ``s = (o + 1/2)·extent/out - 1/2`` (half-pixel
    centres), clamped at 0 as PyTorch's ``align_corners=False``. With ``D = 2·out``:
    ``s = (extent·(2o+1) - out) / D``, so ``i0 = floor(s)``, and the weights are the integers
    ``D - r`` and ``r`` over ``D`` where ``r = D·s - D·i0``. Returns absolute indices
    ``[N, out]`` (``i0``, ``i1 = min(i0 + 1, extent - 1)``) and integer weights ``[N, out]``.
    ``mirror`` (``[N]`` bool, optional) reverses the output axis of the images it selects.
    """
    i32 = jnp.int32
    d = 2 * out_size
    o = jnp.arange(out_size, dtype=i32)
    if mirror is not None:
        o = jnp.where(mirror[:, None], out_size - 1 - o, o)
    extent = extent.astype(i32)[:, None]
    num = jnp.maximum(extent * (2 * o + 1) - out_size, 0)  # D·s >= 0
    i0 = num // d
    r = num - i0 * d
    i1 = jnp.minimum(i0 + 1, extent - 1)
    base = start.astype(i32)[:, None]
    # clamp keeps every gather in bounds even for invalid boxes under jit (no value checks there)
    i0 = jnp.clip(base + i0, 0, in_size - 1)
    i1 = jnp.clip(base + i1, 0, in_size - 1)
    return i0, i1, d - r, r


@functools.partial(jax.jit, static_argnames=("size",))
def _resized_crop_kernel(images: jax.Array, params: ResizedCropParams, flip, *, size: tuple[int, int]) -> jax.Array:
    """The computation of :func:`resized_crop` after its checks (jitted: eager calls compile once
    per shape instead of dispatching op by op; inlined when called under an outer ``jit``)."""
    n, h, w, c = images.shape
    out_h, out_w = size
    uint8 = images.dtype == jnp.uint8
    y0, y1, wy0, wy1 = _source_taps(params.top, params.height, h, out_h)
    x0, x1, wx0, wx1 = _source_taps(params.left, params.width, w, out_w, flip)
    if uint8:
        work = jnp.int32
    else:
        work = jnp.float64 if images.dtype == jnp.float64 else jnp.float32
        wy0, wy1 = (t.astype(work) / (2 * out_h) for t in (wy0, wy1))
        wx0, wx1 = (t.astype(work) / (2 * out_w) for t in (wx0, wx1))

    # Rows and columns by take_along_axis: a gather with the batch as an operand-batching
    # dimension, which XLA's SPMD partitioner keeps sharded when the batch is.

    def rows(idx, weight):  # weight · the rows idx of every image: [N, out_h, W, C]
        got = jnp.take_along_axis(images, idx[:, :, None, None], axis=1, mode="clip")
        return got.astype(work) * weight[:, :, None, None]

    def cols(t, idx, weight):  # weight · the columns idx of t: [N, out_h, out_w, C]
        return jnp.take_along_axis(t, idx[:, None, :, None], axis=2, mode="clip") * weight[:, None, :, None]

    t = rows(y0, wy0) + rows(y1, wy1)
    out = cols(t, x0, wx0) + cols(t, x1, wx1)
    if not uint8:
        return out.astype(images.dtype)
    den = 4 * out_h * out_w  # exact rounding half up (XLA divides by the constant without a division)
    return ((out + den // 2) // den).astype(jnp.uint8)


def resized_crop(images: jax.Array, params: ResizedCropParams, *, size, flip: FlipParams | None = None) -> jax.Array:
    """Crop each image's box and resize it to ``size`` by bilinear interpolation.

    Output pixel ``(y, x)`` of image ``n`` samples the box at
    ``sy = (y + 1/2)·height/out_h - 1/2`` (clamped at 0) and likewise ``sx``: half-pixel centres,
    PyTorch's ``align_corners=False``, then the usual 2×2 bilinear blend of the neighbours
    ``floor(s)`` and ``min(floor(s) + 1, extent - 1)``. The box is cropped exactly, so no pixel
    outside it contributes. With ``flip``, the images it selects come out mirrored left-right:
    exactly ``hflip(resized_crop(images, params, size=size), flip)``, without the extra pass
    (the column taps are reversed instead of the output; under ``jit`` XLA fused the separate
    flip into the resize, several times slower). Exactly for uint8; for floats the same formula,
    which XLA may contract into fused multiply-adds differently at the mirrored positions: within
    ``4u·max|x|`` (``u`` the unit roundoff; ``tests/test_cropping.py`` derives the bound).

    Arithmetic, identical in both frameworks, separable (rows, then columns):

    * the taps are computed exactly in integers: the weights are ``(D - r)/D`` and ``r/D`` with
      ``D = 2·out`` (see the formula above);
    * uint8: exact integer arithmetic, ``t = wy0·p0 + wy1·p1`` along the rows then
      ``wx0·t0 + wx1·t1`` along the columns (the exact ``Σ wy·wx·p``), over ``4·out_h·out_w``,
      rounded half up; the result is bit-identical to :mod:`torch_impl.cropping`.
      The output area ``out_h·out_w`` must be at most ``2**21`` for uint8 (int32 arithmetic);
    * floating: weights ``w/D`` in float32 (float64 for float64 images), blended as
      ``t = wy0·p0 + wy1·p1``, then ``wx0·t0 + wx1·t1``; other float dtypes are computed in
      float32.

    .. warning::
        No antialiasing when downscaling (unlike ``jax.image.resize``, which antialiases by
        default): a strong downscale aliases. Boxes must lie inside the image; that is checked
        on concrete values only, and under ``jit`` out-of-range taps are clamped.
        Float results may differ from torch_impl's in the last bits (XLA may fuse the
        multiply-adds, and the weight divisions may round differently).

    Args:
        images: ``[N, H, W, C]`` uint8 or floating.
        params: :class:`ResizedCropParams` (integer ``[N]`` each; boxes inside the image).
        size: output ``(out_h, out_w)``, or an int for a square; sides >= 1 (static).
        flip: optional :class:`FlipParams`: mirror the selected outputs (see :func:`hflip`).

    Returns:
        ``[N, out_h, out_w, C]``, the dtype of ``images``.

    References:
        torchvision ``transforms.v2.functional.resized_crop`` (``interpolation=BILINEAR``,
        ``antialias=False``).
    """
    n, h, w, c = check_images("images", images)
    out_h, out_w = check_size("size", size)
    _check_boxes(params, h, w, n)
    uint8 = images.dtype == jnp.uint8
    if uint8 and out_h * out_w > MAX_UINT8_OUTPUT_AREA:
        raise ValueError(f"`size` {out_h}x{out_w} is too large for uint8 images (at most {MAX_UINT8_OUTPUT_AREA} pixels)")
    mirror = None if flip is None else _check_flip("flip", flip, n)
    return _resized_crop_kernel(images, params, mirror, size=(out_h, out_w))


def _check_flip(name: str, params, n: int) -> jax.Array:
    """Check a :class:`FlipParams` argument called ``name``; return its ``[N]`` bool mask."""
    check_record(name, params, FlipParams)
    flip = params.flip
    if not hasattr(flip, "dtype"):
        raise TypeError(f"`{name}.flip` must be an array [N], got {type(flip).__name__}")
    check_ndim(f"{name}.flip", flip, 1, "[N]")
    if flip.dtype != jnp.bool_:
        raise TypeError(f"`{name}.flip` must have dtype bool, got {flip.dtype}")
    if flip.shape[0] != n:
        raise ValueError(f"`{name}.flip` must have N = {n} entries (the batch of `images`), got {flip.shape[0]}")
    return flip


def sample_flip_params(key: jax.Array, batch_size: int, *, p: float = 0.5) -> FlipParams:
    """One coin per image: ``flip[n] ~ Bernoulli(p)``, as a ``[N]`` bool array."""
    n = check_int("batch_size", batch_size, low=0)
    p = check_real("p", p, low=0.0, high=1.0)
    return FlipParams(jax.random.bernoulli(key, p, (n,)))


def hflip(images: jax.Array, params: FlipParams) -> jax.Array:
    """Mirror left-right (reverse the W axis) the images whose ``params.flip`` is True.

    Args:
        images: ``[N, H, W, C]`` uint8 or floating.
        params: :class:`FlipParams` with ``flip`` a ``[N]`` bool array.

    Returns:
        An array of the same shape and dtype.
    """
    n, _, _, _ = check_images("images", images)
    flip = _check_flip("params", params, n)
    return _hflip_kernel(images, flip)


@jax.jit
def _hflip_kernel(images: jax.Array, flip: jax.Array) -> jax.Array:
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def random_resized_crop_flip(
    key: jax.Array,
    images: jax.Array,
    *,
    size,
    scale=(0.08, 1.0),
    ratio=(3.0 / 4.0, 4.0 / 3.0),
    flip_p: float = 0.5,
) -> jax.Array:
    """Random resized crop to ``size`` then a random horizontal flip, per image, batched.

    Splits ``key`` in two: :func:`sample_resized_crop_params` then :func:`sample_flip_params`;
    applies both with :func:`resized_crop` (its ``flip`` argument). ``size``, ``scale``, ``ratio`` and
    ``flip_p`` are static (mark them so under ``jax.jit``). Bilinear without antialiasing.

    References:
        Christian Szegedy et al., "Going Deeper with Convolutions", 2015; torchvision
        ``RandomResizedCrop`` and ``RandomHorizontalFlip``.
    """
    n, h, w, _ = check_images("images", images)
    size = check_size("size", size)
    flip_p = check_real("flip_p", flip_p, low=0.0, high=1.0)
    k_crop, k_flip = jax.random.split(key)
    box = sample_resized_crop_params(k_crop, n, (h, w), scale=scale, ratio=ratio)
    flip = sample_flip_params(k_flip, n, p=flip_p)
    return resized_crop(images, box, size=size, flip=flip)


# ------------------------------------------------------------------------------------------
# The trainer's entries (crop_flip): collected by jax_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------


def _trainer_sample_crop_flip(key, n, trainer):
    k_crop, k_flip = jax.random.split(key)
    crop = sample_resized_crop_params(k_crop, n, trainer.image_size, scale=trainer.config.crop_scale)
    return crop, sample_flip_params(k_flip, n)


TRICK_IMPLS = {
    "crop_flip": TrickImpl(
        _trainer_sample_crop_flip,
        lambda x, y, p, tr: (resized_crop(x, p[0], size=tr.image_size, flip=p[1]), y),
    ),
}
