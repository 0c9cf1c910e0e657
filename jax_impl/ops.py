"""The 14 AutoAugment image operations as batched JAX kernels with per-image magnitudes.

The JAX twin of :mod:`torch_impl.ops` (same names, same arguments, same results): every op takes
an ``[N, H, W, C]`` batch (uint8, or floating point in ``[0, 1]``) and one magnitude per image (an
``[N]`` array, or a number), and returns a new batch of the same shape and dtype. See
:mod:`torch_impl.ops` for the list of ops and what each magnitude means.

This module checks the arguments and converts the magnitudes; the arithmetic is in
:mod:`jax_impl.kernels` (shared with :mod:`jax_impl.policies`), whose float32 roundings
:mod:`jax_impl.exact` pins to torch's, so that the results equal torch_impl's (and through it
torchvision's) bit for bit; ``tests/test_ops.py`` checks jax == torch per op on every AutoAugment
magnitude.

Geometric ops need the float32 inverse affine matrix torchvision computes in float64 (Python
floats) and rounds. When the magnitudes are concrete (eager calls, NumPy or Python numbers) the
matrix is computed exactly that way on the host. Under ``jit``/``vmap`` (traced magnitudes) it
is computed in float32: exact for translations; for shears exact on every AutoAugment bin (the
offset ``s·size/2`` can sit exactly on a float32 rounding midpoint for other factors, ~0.2% of
random ones, where torchvision's float64 ``tan(atan(s))`` decides); for rotations through
float32-only double-float trigonometry that rounds like float64 except within ~2^-40 of a float32
rounding midpoint (see :func:`rotate`). :func:`jax_impl.autoaugment` does not have this problem:
its matrices come from a host cache of the discrete AutoAugment magnitudes.

Eager calls and calls inside a user's ``jit`` run the same compiled kernels on the same matrix
(a matrix from Python numbers stays a run-time value, :func:`jax_impl.exact.run_time`), so they
give the same bytes. Value checks (float images in [0, 1], finite magnitudes, integer ``bits``,
ranges) apply to concrete values, Python numbers included; traced values inside ``jit``/``vmap``
are not checked.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.functional`` (``_color.py``, ``_geometry.py``).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl import kernels
from jax_impl._checks import check_images, check_not_torch, is_concrete
from twintricks.checks import check_ndim
from twintricks.policies import check_interpolation

__all__ = [
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
    "invert",
]


def check_op_images(name: str, images, *, rgb_or_gray: bool = False) -> tuple[int, int, int, int]:
    shape = check_images(name, images)
    if rgb_or_gray and shape[3] not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels [N, H, W, C], got C={shape[3]}")
    if kernels.is_float(images) and is_concrete(images) and images.size:
        lo, hi = float(jnp.min(images)), float(jnp.max(images))
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"`{name}`: float images must lie in [0, 1] (uint8 semantics scaled), got values in [{lo}, {hi}]"
            )
    return shape


def _per_image(name: str, value, n: int, *, integer: bool = False):
    """``value`` as ``[N]``: a float64 (``integer``: int64) NumPy array when concrete, else a traced
    float32/int32 array. Concrete values must be finite (and integers if ``integer``): a ValueError
    naming ``name`` otherwise; traced values (inside ``jit``/``vmap``) are not checked."""
    check_not_torch(name, value)
    if isinstance(value, bool) or (not hasattr(value, "shape") and not isinstance(value, numbers.Real)):
        raise TypeError(f"`{name}` must be a number or an array [N], got {type(value).__name__}")
    if hasattr(value, "dtype") and (value.dtype == bool or jnp.issubdtype(value.dtype, jnp.complexfloating)):
        raise TypeError(f"`{name}` must be real numbers, got dtype {value.dtype}")
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) == 1 and shape[0] != n:
        raise ValueError(f"`{name}` must have one value per image ({n}), got shape {shape}")
    if len(shape) > 1:
        check_ndim(name, value, 1, "[N] (one value per image)")
    if is_concrete(value):
        arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
        if not np.isfinite(arr).all():
            raise ValueError(f"`{name}` must be finite, got {_show(arr)}")
        if integer and not (arr == np.round(arr)).all():
            raise ValueError(f"`{name}` must be integers, got {_show(arr)}")
        return arr.astype(np.int64) if integer else arr
    return jnp.broadcast_to(jnp.asarray(value, jnp.int32 if integer else jnp.float32), (n,))


def _show(values: np.ndarray) -> str:
    """A few of ``values`` for an error message."""
    shown = values.tolist()
    return str(shown) if len(shown) <= 8 else f"{shown[:8]} (first 8 of {len(shown)})"


def _check_values(name: str, value, low: float, high: float) -> None:
    if isinstance(value, np.ndarray) and value.size:
        lo, hi = float(value.min()), float(value.max())
        if not (low <= lo and hi <= high):
            raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}], got values in [{lo:g}, {hi:g}]")


def fill_values(fill, channels: int, dtype) -> tuple[float, ...] | None:
    """``fill`` per channel as given (the kernels round it for uint8 where torchvision does); None
    for None (torchvision's default: zeros, and bilinear blends no mask)."""
    if fill is None:
        return None
    if isinstance(fill, Sequence) and not isinstance(fill, str):
        values = list(fill)
        if len(values) not in (1, channels):
            raise ValueError(f"`fill` must be a number or one value per channel ({channels}), got {fill!r}")
    else:
        values = [fill]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise TypeError(f"`fill` must be None, a finite number or a sequence of them, got {fill!r}")
        if not jnp.issubdtype(dtype, jnp.floating):
            if not 0 <= v <= 255:
                raise ValueError(f"`fill` must lie in [0, 255] for uint8 images, got {fill!r}")
        out.append(float(v))
    if len(out) == 1:
        out = out * channels
    return tuple(out)


def _geometric(images, matrix, fill, interpolation):
    n, _, _, c = images.shape
    interpolation = check_interpolation(interpolation)
    fill = fill_values(fill, c, images.dtype)
    if interpolation == "nearest" and fill is not None and not any(fill):
        fill = None  # the same pixels: one compiled kernel for both
    return kernels.affine(images, jnp.asarray(matrix, jnp.float32), fill=fill, interpolation=interpolation)


def shear_x(images, magnitude, *, fill=None, interpolation="nearest"):
    """Shear along x by factor ``magnitude`` per image (AutoAugment's ShearX), about the top-left corner.

    Output pixel ``(x, y)`` takes input pixel ``round(x + s·(y + 0.5))``; see :func:`torch_impl.ops.shear_x`.
    Images ``[N, H, W, C]``; ``magnitude`` ``[N]`` or a number; ``fill`` for pixels from outside.
    """
    n, h, w, _ = check_op_images("images", images)
    return _geometric(images, kernels.shear_matrix(_per_image("magnitude", magnitude, n), h, w, 0), fill, interpolation)


def shear_y(images, magnitude, *, fill=None, interpolation="nearest"):
    """Shear along y by factor ``magnitude`` per image (AutoAugment's ShearY); see :func:`shear_x`."""
    n, h, w, _ = check_op_images("images", images)
    return _geometric(images, kernels.shear_matrix(_per_image("magnitude", magnitude, n), h, w, 1), fill, interpolation)


def translate_x(images, pixels, *, fill=None, interpolation="nearest"):
    """Shift each image right by ``int(pixels)`` (truncated towards 0); ``fill`` the uncovered pixels."""
    n = check_op_images("images", images)[0]
    return _geometric(images, kernels.translate_matrix(_per_image("pixels", pixels, n), 0), fill, interpolation)


def translate_y(images, pixels, *, fill=None, interpolation="nearest"):
    """Shift each image down by ``int(pixels)``; see :func:`translate_x`."""
    n = check_op_images("images", images)[0]
    return _geometric(images, kernels.translate_matrix(_per_image("pixels", pixels, n), 1), fill, interpolation)


def rotate(images, angle, *, fill=None, interpolation="nearest"):
    """Rotate each image counter-clockwise by ``angle`` degrees about its centre (same size).

    ``interpolation``: ``"nearest"`` (default) or ``"bilinear"`` for every geometric op here
    (:func:`jax_impl.kernels.affine_bilinear`: torchvision's uint8 bytes, float32 within one ulp on a
    measured share); ``fill`` None (default) is torchvision's default (no mask blend).

    .. warning:: With concrete angles the float32 matrix equals torchvision's exactly. With traced
       angles (inside ``jit``/``vmap``) ``cos``/``sin`` come from :func:`jax_impl.exact.cos_sin_degrees`
       (float32 only): exact on every AutoAugment angle, but an angle whose cosine or sine lies
       within ~2^-40 of a float32 rounding midpoint (about 3 in 100,000 random angles) can get
       a matrix entry one ulp off, which can move nearest-neighbour ties.
    """
    n = check_op_images("images", images)[0]
    return _geometric(images, kernels.rotate_matrix(_per_image("angle", angle, n)), fill, interpolation)


def _factors(name: str, magnitude, n: int, dtype):
    """``ratio = 1 + m`` and ``1 - ratio`` as torchvision computes them from Python floats.

    Concrete magnitudes: in float64 on the host, then rounded. Traced float32 magnitudes: ``1 + m``
    rounded once and ``-m`` are the same numbers (``1 + m`` is exact in float64).
    """
    m = _per_image(name, magnitude, n)
    if isinstance(m, np.ndarray):
        ratio64 = 1.0 + m
        _check_values(f"1 + {name}", ratio64, 0.0, math.inf)
        ratio, alpha = jnp.asarray(ratio64.astype(dtype)), jnp.asarray((1.0 - ratio64).astype(dtype))
    else:
        ratio, alpha = (1.0 + m).astype(dtype), (-m).astype(dtype)
    return ratio.reshape(n, 1, 1, 1), alpha.reshape(n, 1, 1, 1)


def brightness(images, magnitude):
    """Scale intensities by ``1 + magnitude`` per image, clamp (truncate to uint8); ``[N, H, W, 1 or 3]``."""
    n, _, _, _ = check_op_images("images", images, rgb_or_gray=True)
    ratio, _ = _factors("magnitude", magnitude, n, kernels.compute_dtype(images))
    return kernels.brightness(images, ratio)


def color(images, magnitude):
    """Saturation: blend with torchvision v2's floored grayscale by ``1 + magnitude``; 1-channel unchanged."""
    n, _, _, c = check_op_images("images", images, rgb_or_gray=True)
    ratio, alpha = _factors("magnitude", magnitude, n, kernels.compute_dtype(images))
    return jnp.asarray(images) if c == 1 else kernels.color(images, ratio, alpha)


def contrast(images, magnitude):
    """Blend with the image's mean grayscale by ``1 + magnitude`` (fused multiply-add on every pixel).

    .. warning:: Float images: the mean is a float32 sum whose order differs from torch's, so
       results can differ from torch_impl in the last bits (uint8 sums are exact: same results).
    """
    n = check_op_images("images", images, rgb_or_gray=True)[0]
    ratio, alpha = _factors("magnitude", magnitude, n, kernels.compute_dtype(images))
    return kernels.contrast(images, ratio, alpha)


def sharpness(images, magnitude):
    """Blend with the ``[[1,1,1],[1,5,1],[1,1,1]]/13`` smoothing inside a 1-pixel border by ``1 + magnitude``.

    .. warning:: Float images: the smoothing sums in another order than torch's ``conv2d``, so
       results can differ in the last bits (uint8 rounds the smoothing to integers: same results).
    """
    n, h, w, _ = check_op_images("images", images, rgb_or_gray=True)
    _, alpha = _factors("magnitude", magnitude, n, kernels.compute_dtype(images))
    if h <= 2 or w <= 2 or images.size == 0:
        return jnp.asarray(images)
    return kernels.sharpness(images, alpha)


def posterize(images, bits):
    """Keep the ``bits`` (``[N]`` integers in [0, 8]) most significant bits; floats: ``floor(x·2^b)/2^b``."""
    n = check_op_images("images", images)[0]
    b = _per_image("bits", bits, n, integer=True)
    _check_values("bits", b, 0, 8)
    return kernels.posterize(images, jnp.asarray(b, jnp.int32))


def solarize(images, threshold):
    """Invert values at or above ``threshold · max`` (``threshold`` ``[N]`` in [0, 1]); compared in float32."""
    n = check_op_images("images", images)[0]
    t = _per_image("threshold", threshold, n)
    _check_values("threshold", t, 0.0, 1.0)
    dtype = kernels.compute_dtype(images)
    if isinstance(t, np.ndarray):
        t = jnp.asarray((t * kernels.max_value(images.dtype)).astype(dtype))
    else:
        t = (t * kernels.max_value(images.dtype)).astype(dtype)  # exact product of float32 t and 255, rounded once
    return kernels.solarize(images, t.reshape(n, 1, 1, 1))


def autocontrast(images):
    """Stretch each channel to the full range: ``(x - lo) / ((hi - lo)/255)``, truncated; constant channels unchanged.

    .. warning::
        Float images with subnormal values: XLA's CPU backend flushes subnormals to zero, so a
        channel whose range ``hi - lo`` is subnormal counts as constant here (left unchanged),
        while torch stretches it to ``[0, 1]``. No 8-bit-derived image has such a range.
    """
    check_op_images("images", images, rgb_or_gray=True)
    return jnp.asarray(images) if images.size == 0 else kernels.autocontrast(images)


def equalize(images):
    """Histogram-equalise each channel with PIL's LUT; floats quantised to uint8 (× 255.999) and back (/255).

    float16/bfloat16 are quantised in float32; see :func:`torch_impl.ops.equalize` for the
    difference from torchvision.
    """
    check_op_images("images", images)
    return jnp.asarray(images) if images.size == 0 else kernels.equalize(images)


def invert(images):
    """``255 - x`` for uint8, ``1 - x`` for floats."""
    check_op_images("images", images)
    return jax.jit(kernels.invert)(images)
