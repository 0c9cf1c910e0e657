"""The 14 AutoAugment image operations as batched JAX kernels with per-image magnitudes.

The JAX twin of :mod:`torch_impl.ops` (same names, same arguments, same results): every op takes
an ``[N, H, W, C]`` batch (uint8, or floating point in ``[0, 1]``) and one magnitude per image (an
``[N]`` array, or a number), and returns a new batch of the same shape and dtype. See
:mod:`torch_impl.ops` for the table of ops and what each magnitude means.

Bit-exactness with torch_impl (and through it with torchvision) needs the same float32 operations
with the same roundings, which XLA does not promise by itself: its CPU and GPU backends fuse
``a * b + c`` into one fused multiply-add whenever they see the pattern, and move broadcasts so
that a per-image product is computed once. The kernels therefore say which roundings they need:

* :func:`_product` rounds a product where torch rounds it, by summing two exact partial
  products (so no FMA can absorb it); it needs integer-valued factors, i.e. uint8 images;
* :func:`_fma` computes the multiply-adds torch fuses (torchvision's ``add_(other, alpha=)``)
  with error-free transformations, whatever XLA decides to fuse;
* :func:`_fma8` is a cheaper exact form of :func:`_fma` when one factor is an 8-bit integer,
  used where it was checked on every input (the uint8 luma, AutoAugment's Color/Sharpness bins);
* :func:`_divisor` keeps a true division where XLA would multiply by a rounded reciprocal;
* every kernel is ``jax.jit``-compiled, so eager calls and calls inside a user's ``jit`` compile
  the same fused code.

``tests/test_ops.py`` checks jax == torch per op on every AutoAugment magnitude.

.. warning:: "Where torch fuses" is where ATen's CPU kernels use FMA instructions (x86-64 with
   AVX2/AVX-512, as tested) or CUDA contracts; on a CPU without FMA torch rounds twice and uint8
   results can differ by 1 on a few pixels. Contrast's mean is an exact integer sum for uint8
   images up to H·W·255 < 2^24 (256×256); beyond that float32 summation order matters.

Geometric ops need the float32 inverse affine matrix torchvision computes in float64 (Python
floats) and rounds. When the magnitudes are concrete (eager calls, NumPy or Python numbers) the
matrix is computed exactly that way on the host. Under ``jit``/``vmap`` (traced magnitudes) it
is computed in float32: exact for translations; for shears exact on every AutoAugment bin (the
offset ``s·size/2`` can sit exactly on a float32 rounding midpoint for other factors, ~0.2% of
random ones, where torchvision's float64 ``tan(atan(s))`` decides); for rotations through float32-only
double-float trigonometry that rounds like float64 except within ~2^-40 of a float32 rounding
midpoint (see :func:`rotate`).
:func:`jax_impl.autoaugment.autoaugment` does not have this problem: its matrices come from a
host table of the discrete AutoAugment magnitudes.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.functional`` (``_color.py``, ``_geometry.py``).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, is_concrete
from twintricks.checks import check_ndim

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

_DEG_TO_RAD = math.pi / 180.0
_RAD_TO_DEG = 180.0 / math.pi

# --------------------------------------------------------------------------------------------
# Rounding control and argument handling
# --------------------------------------------------------------------------------------------


def _split(c, bits: int):
    """``c = hi + lo`` exactly, ``hi`` keeping the top ``bits`` significant bits of float32 ``c``."""
    c = jnp.asarray(c, jnp.float32)
    mask = np.uint32((0xFFFFFFFF << (24 - bits)) & 0xFFFFFFFF)
    hi = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(c, jnp.uint32) & mask, jnp.float32)
    return hi, c - hi


def _product(x, c, x_bits: int = 8):
    """``x·c`` rounded once to float32, for integer-valued ``x`` with at most ``x_bits`` (<= 12) bits.

    ``x·hi`` and ``x·lo`` are both exact, so their float32 sum is the correctly rounded product
    whether or not XLA fuses one of the products into the addition (torch rounds the product here).
    """
    hi, lo = _split(c, 24 - x_bits)
    return x * hi + x * lo


def _two_sum(a, b):
    """Knuth's error-free ``a + b = s + e`` (additions only)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def _fma(a, b, c):
    """``a·b + c`` rounded once, as torch's fused multiply-add computes it, in plain float32.

    ``a`` and ``b`` are split into 12-bit halves, so the four partial products are exact (and an
    FMA that XLA may or may not form from them changes nothing); they are added to ``c`` with
    error-free transformations and the errors summed (Ogita-Rump-Oishi ``Sum2``), which equals
    the correctly rounded result unless the exact sum lies within about 2^-40 relative of a
    rounding boundary.
    """
    ah, al = _split(a, 12)
    bh, bl = _split(b, 12)
    s, err = c, None
    for part in (ah * bh, ah * bl, al * bh, al * bl):
        s, e = _two_sum(s, part)
        err = e if err is None else err + e
    return s + err


def _fma8(a, b, c):
    """``a·b + c`` rounded once, for integer-valued ``a`` with ``|a| <= 255`` (cheaper than :func:`_fma`).

    ``b = hi + lo`` with 16 and 8 significant bits, so ``a·hi`` and ``a·lo`` are exact (an FMA
    that XLA may form from them changes nothing); ``c + a·hi = s + e`` error-free, and the result
    is ``s + (e + a·lo)``: one rounding, so correctly rounded whenever ``e + a·lo`` is exact in
    float32. Not true for every ``b, c``: it is used only where that was checked on every input
    (``tests/test_ops.py``, against float64): the grayscale weights on every RGB triple, and
    AutoAugment's blends on every magnitude bin (``ratio``/``alpha`` of ``±0.1 … ±0.9``).
    """
    hi, lo = _split(b, 16)
    s, e = _two_sum(c, a * hi)
    return s + (e + a * lo)


def _divisor(value, like):
    """A divisor XLA cannot see as constant or broadcast (it would multiply by a rounded reciprocal)."""
    return value + like * jnp.zeros((), like.dtype)


def _bound(dtype) -> float:
    return 1.0 if jnp.issubdtype(dtype, jnp.floating) else 255.0


def _is_float(images) -> bool:
    return bool(jnp.issubdtype(images.dtype, jnp.floating))


def _compute_dtype(images):
    return images.dtype if _is_float(images) else jnp.float32


def _check(name: str, images, *, rgb_or_gray: bool = False) -> tuple[int, int, int, int]:
    shape = check_images(name, images)
    if rgb_or_gray and shape[3] not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels [N, H, W, C], got C={shape[3]}")
    if _is_float(images) and is_concrete(images) and images.size:
        lo, hi = float(jnp.min(images)), float(jnp.max(images))
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"`{name}`: float images must lie in [0, 1] (uint8 semantics scaled), got values in [{lo}, {hi}]"
            )
    return shape


def _per_image(name: str, value, n: int, *, integer: bool = False):
    """``value`` as ``[N]``: a float64 NumPy array when concrete, else a traced float32/int32 array."""
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
        arr = np.asarray(value, dtype=np.int64 if integer else np.float64)
        return np.broadcast_to(arr, (n,)).copy()
    return jnp.broadcast_to(jnp.asarray(value, jnp.int32 if integer else jnp.float32), (n,))


def _check_values(name: str, value, low: float, high: float) -> None:
    if isinstance(value, np.ndarray) and value.size:
        lo, hi = float(value.min()), float(value.max())
        if not (low <= lo and hi <= high):
            raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}], got values in [{lo:g}, {hi:g}]")


def _fill_values(fill, channels: int, dtype) -> tuple[float, ...] | None:
    """``fill`` per channel (rounded half-to-even for uint8, like torchvision), None when all zero."""
    if isinstance(fill, Sequence) and not isinstance(fill, str):
        values = list(fill)
        if len(values) not in (1, channels):
            raise ValueError(f"`fill` must be a number or one value per channel ({channels}), got {fill!r}")
    else:
        values = [fill]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise TypeError(f"`fill` must be a finite number or a sequence of them, got {fill!r}")
        if not jnp.issubdtype(dtype, jnp.floating):
            if not 0 <= v <= 255:
                raise ValueError(f"`fill` must lie in [0, 255] for uint8 images, got {fill!r}")
            v = float(np.round(np.float32(v)))
        out.append(float(v))
    if len(out) == 1:
        out = out * channels
    return None if all(v == 0 for v in out) else tuple(out)


def _finish(out, dtype):
    """Clamp to the dtype's range and cast back (truncation for uint8)."""
    return jnp.clip(out, 0, _bound(dtype)).astype(dtype)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _host_map(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` (a :mod:`math` function) on each distinct value of a float64 array."""
    uniq, inv = np.unique(x, return_inverse=True)
    return np.array([fn(float(u)) for u in uniq], dtype=np.float64)[inv.reshape(-1)]


def _inverse_affine_host(angle, shear_x_deg, shear_y_deg, tx, ty, cx: float, cy: float) -> np.ndarray:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) on the host, float64 → ``[N, 6]`` float32.

    Trigonometry goes through Python's :mod:`math` (what torchvision calls), once per distinct value.
    """

    f = _host_map
    rot = angle * _DEG_TO_RAD
    sx = shear_x_deg * _DEG_TO_RAD
    sy = shear_y_deg * _DEG_TO_RAD
    cos_sy = f(math.cos, sy)
    tan_sx = f(math.tan, sx)
    rot_minus_sy = rot - sy
    cx_plus_tx = cx + tx
    cy_plus_ty = cy + ty
    a = f(math.cos, rot_minus_sy) / cos_sy
    b = -(a * tan_sx + f(math.sin, rot))
    c = f(math.sin, rot_minus_sy) / cos_sy
    d = f(math.cos, rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = 0.0 + ((cx - m0 * cx_plus_tx) - m1 * cy_plus_ty)
    m5 = 0.0 + ((cy - m3 * cx_plus_tx) - m4 * cy_plus_ty)
    return np.stack([m0, m1, m2, m3, m4, m5], axis=1).astype(np.float32)


def shear_matrix(magnitude, h: int, w: int, axis: int):
    """Float32 inverse matrices ``[N, 6]`` of AutoAugment's ShearX (``axis=0``) / ShearY (``axis=1``)."""
    if isinstance(magnitude, np.ndarray):
        deg = _host_map(math.atan, magnitude) * _RAD_TO_DEG  # math.degrees(math.atan(s))
        z = np.zeros_like(deg)
        sx, sy = (deg, z) if axis == 0 else (z, deg)
        return _inverse_affine_host(z, sx, sy, z, z, -w * 0.5, -h * 0.5)
    # float32: tan(atan(s)) == s after rounding; the offset is s·size/2 rounded once.
    s = magnitude.astype(jnp.float32)
    one, zero = jnp.ones_like(s), jnp.zeros_like(s)
    if axis == 0:
        return jnp.stack([one, s, s * (h * 0.5), zero, one, zero], axis=1)
    return jnp.stack([one, zero, zero, s, one, s * (w * 0.5)], axis=1)


def translate_matrix(pixels, axis: int):
    """Float32 inverse matrices ``[N, 6]`` of a translation by ``int(pixels)`` along ``axis`` (exact)."""
    xp = np if isinstance(pixels, np.ndarray) else jnp
    t = xp.trunc(pixels).astype(xp.float32)
    one, zero = xp.ones_like(t), xp.zeros_like(t)
    if axis == 0:
        return xp.stack([one, zero, -t, zero, one, zero], axis=1)
    return xp.stack([one, zero, zero, zero, one, -t], axis=1)


def _degree_table():
    """cos and sin of every integer degree in [-360, 360] as float32 (hi, lo) pairs (float64 exact)."""
    deg = np.arange(-360, 361, dtype=np.float64)
    out = []
    for v in (np.cos(deg * _DEG_TO_RAD), np.sin(deg * _DEG_TO_RAD)):
        hi = v.astype(np.float32)
        out += [hi, (v - hi).astype(np.float32)]
    return out


_COS_HI, _COS_LO, _SIN_HI, _SIN_LO = _degree_table()
_K = _DEG_TO_RAD
_K_HI = np.float32(_K)
_K_LO = np.float32(_K - float(_K_HI))


def _exact_parts(a, b):
    """The four exact partial products of float32 ``a·b`` (12-bit halves)."""
    ah, al = _split(a, 12)
    bh, bl = _split(b, 12)
    return ah * bh, ah * bl, al * bh, al * bl


def _sum_exactish(terms):
    """Sum with error-free two-sums, the errors added at the end (Sum2): about twice float32 precision."""
    s, err = terms[0], jnp.zeros_like(terms[0])
    for t in terms[1:]:
        s, e = _two_sum(s, t)
        err = err + e
    return s + err


def _cos_sin_degrees(angle):
    """Correctly rounded float32 ``cos``/``sin`` of float32 ``angle`` degrees, in float32 only.

    ``angle = n + f`` (integer degrees ``n`` from a float64 table, ``|f| <= 0.5``), angle-sum
    formulas with ``f·π/180`` in double-float, the leading products exact (split partial
    products), everything summed with error-free transformations: about 2^-40 absolute error,
    so the rounding to float32 matches torchvision's float64 ``math.cos``/``math.sin`` except
    within ~2^-40 of a rounding midpoint.
    """
    a = jax.lax.rem(angle.astype(jnp.float32), jnp.float32(360.0))  # exact
    n = jnp.round(a)
    f = a - n  # exact, |f| <= 0.5
    idx = (n + 360).astype(jnp.int32)
    ch, cl = jnp.asarray(_COS_HI)[idx], jnp.asarray(_COS_LO)[idx]
    sh, sl = jnp.asarray(_SIN_HI)[idx], jnp.asarray(_SIN_LO)[idx]
    # x = f·π/180 as x1 (its exact partial products) + x2 (small terms)
    x_parts = _exact_parts(f, jnp.float32(_K_HI))
    x1 = _sum_exactish(list(x_parts))
    x2 = f * _K_LO + ((x_parts[0] - x1) + x_parts[1] + x_parts[2] + x_parts[3])
    x2 = jnp.where(f == 0, 0.0, x2)
    xx = x1 * x1
    dc = xx * (-0.5 + xx * (1.0 / 24.0 - xx * (1.0 / 720.0)))  # cos(x) - 1
    ds = -x1 * xx * (1.0 / 6.0 - xx * (1.0 / 120.0))  # sin(x) - x
    # cos(n + f) = C·(1 + dc) - S·(x1 + x2 + ds);  sin(n + f) = S·(1 + dc) + C·(x1 + x2 + ds)
    cos = _sum_exactish([ch, *[-p for p in _exact_parts(sh, x1)], cl, ch * dc, -sh * (x2 + ds), -sl * x1])
    sin = _sum_exactish([sh, *_exact_parts(ch, x1), sl, sh * dc, ch * (x2 + ds), cl * x1])
    return cos, sin


def rotate_matrix(angle):
    """Float32 inverse matrices ``[N, 6]`` of a counter-clockwise rotation by ``angle`` degrees about the centre."""
    if isinstance(angle, np.ndarray):
        z = np.zeros_like(angle)
        return _inverse_affine_host(-np.remainder(angle, 360.0), z, z, z, z, 0.0, 0.0)
    # rot = -angle: theta = [cos(angle), -sin(angle), 0, sin(angle), cos(angle), 0]
    cos, sin = _cos_sin_degrees(angle)
    zero = jnp.zeros_like(cos)
    return jnp.stack([cos, -sin, zero, sin, cos, zero], axis=1)


@functools.partial(jax.jit, static_argnames=("fill",))
def _affine_nearest(images, theta, *, fill):
    """Warp ``[N, H, W, C]`` images by float32 inverse matrices ``theta`` ``[N, 6]``, nearest, ``fill`` outside.

    Same float32 grid as torch_impl (torchvision's ``_affine_grid`` through ``bmm``:
    ``g = (x·a + y·b) + c`` with both products rounded), then ``grid_sample``'s nearest rule:
    source index ``round_half_even((g + 1)·size/2 - 0.5)``, outside → ``fill``.
    """
    return _warp_nearest(images, _grid_terms(theta, images.shape[1], images.shape[2], _compute_dtype(images)), fill=fill)


def _grid_terms(theta, h: int, w: int, dtype):
    """The separable terms of :func:`_affine_nearest`'s grid for each image: per output coordinate
    ``col`` (x, y), ``x·a`` ``[N, 1, W]``, ``y·b`` ``[N, H, 1]`` (each product rounded once) and ``c``
    ``[N, 1, 1]``, so that ``g = (x·a + y·b) + c``."""
    theta = theta.astype(dtype)
    n = theta.shape[0]
    xs = jnp.arange(w, dtype=dtype) - (w - 1) * 0.5
    ys = jnp.arange(h, dtype=dtype) - (h - 1) * 0.5
    scale = jnp.asarray([0.5 * w] * 3 + [0.5 * h] * 3, dtype=dtype)
    r = theta / _divisor(scale, theta)
    terms = []
    for col in range(2):
        # 2·xs and 2·ys are integers below 2^11 for sides up to 2048: exact split products.
        px = _product(2 * xs[None, None, :], r[:, 3 * col, None, None], 11) * 0.5
        py = _product(2 * ys[None, :, None], r[:, 3 * col + 1, None, None], 11) * 0.5
        terms += [px, py, r[:, 3 * col + 2].reshape(n, 1, 1)]
    return tuple(terms)


@functools.partial(jax.jit, static_argnames=("fill",))
def _warp_nearest(images, terms, *, fill):
    """:func:`_affine_nearest` from :func:`_grid_terms` (which a caller can compute once, outside
    the per-pixel code: XLA would otherwise recompute the split products for every pixel)."""
    n, h, w, c = images.shape
    dtype = _compute_dtype(images)

    def coord(col: int, size: int):
        px, py, c0 = terms[3 * col : 3 * col + 3]
        g = (px + py) + c0
        i = jnp.round((g + 1) * (size * 0.5) - 0.5)
        return i, (i >= 0) & (i <= size - 1)

    ix, okx = coord(0, w)
    iy, oky = coord(1, h)
    valid = okx & oky
    idx = jnp.where(valid, iy * w + ix, 0).astype(jnp.int32).reshape(n, h * w)
    out = jax.vmap(lambda im, i: im[i])(images.reshape(n, h * w, c), idx).reshape(n, h, w, c)
    fill_img = jnp.asarray(fill if fill is not None else (0.0,) * c, dtype=dtype).astype(images.dtype)
    return jnp.where(valid[..., None], out, fill_img)


def _geometric(images, matrix, fill):
    n, _, _, c = images.shape
    return _affine_nearest(images, jnp.asarray(matrix, jnp.float32), fill=_fill_values(fill, c, images.dtype))


def shear_x(images, magnitude, *, fill=0):
    """Shear along x by factor ``magnitude`` per image (AutoAugment's ShearX), about the top-left corner.

    Output pixel ``(x, y)`` takes input pixel ``round(x + s·(y + 0.5))``; see :func:`torch_impl.ops.shear_x`.
    Images ``[N, H, W, C]``; ``magnitude`` ``[N]`` or a number; ``fill`` for pixels from outside.
    """
    n, h, w, _ = _check("images", images)
    return _geometric(images, shear_matrix(_per_image("magnitude", magnitude, n), h, w, 0), fill)


def shear_y(images, magnitude, *, fill=0):
    """Shear along y by factor ``magnitude`` per image (AutoAugment's ShearY); see :func:`shear_x`."""
    n, h, w, _ = _check("images", images)
    return _geometric(images, shear_matrix(_per_image("magnitude", magnitude, n), h, w, 1), fill)


def translate_x(images, pixels, *, fill=0):
    """Shift each image right by ``int(pixels)`` (truncated towards 0); ``fill`` the uncovered pixels."""
    n = _check("images", images)[0]
    return _geometric(images, translate_matrix(_per_image("pixels", pixels, n), 0), fill)


def translate_y(images, pixels, *, fill=0):
    """Shift each image down by ``int(pixels)``; see :func:`translate_x`."""
    n = _check("images", images)[0]
    return _geometric(images, translate_matrix(_per_image("pixels", pixels, n), 1), fill)


def rotate(images, angle, *, fill=0):
    """Rotate each image counter-clockwise by ``angle`` degrees about its centre (nearest, same size).

    .. warning:: With concrete angles the float32 matrix equals torchvision's exactly. With traced
       angles (inside ``jit``/``vmap``) ``cos``/``sin`` come from :func:`_cos_sin_degrees`
       (float32 only): exact on every AutoAugment angle, but an angle whose cosine or sine lies
       within ~2^-40 of a float32 rounding midpoint (about 3 in 100,000 random angles) can get
       a matrix entry one ulp off, which can move nearest-neighbour ties.
    """
    n = _check("images", images)[0]
    return _geometric(images, rotate_matrix(_per_image("angle", angle, n)), fill)


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


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


def _grayscale(x, is_float: bool):
    """torchvision's luma ``r·0.2989`` then ``+ g·0.587``, ``+ b·0.114`` fused; floored for uint8. ``[N, H, W, 1]``."""
    x = x.astype(_compute_dtype(x)) if not is_float else x
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    if is_float:
        acc = _fma(g, jnp.asarray(0.587, x.dtype), r * jnp.asarray(0.2989, x.dtype))
        return _fma(b, jnp.asarray(0.114, x.dtype), acc)
    # uint8: _fma8 is exact for these two weights on all 2^24 RGB triples (tested exhaustively).
    acc = _fma8(g, jnp.float32(0.587), _product(r, 0.2989))
    return jnp.floor(_fma8(b, jnp.float32(0.114), acc))


def _blend(x, other, ratio, alpha, is_float: bool, bins: bool = False):
    """``round(x·ratio)`` then ``+ other·alpha`` fused, per pixel (torchvision's ``_blend``).

    ``bins``: ``other`` is uint8-valued and ``alpha`` one of AutoAugment's magnitude bins, where
    the cheaper :func:`_fma8` is exact (checked on every value and bin)."""
    fma = _fma8 if bins and not is_float else _fma
    return fma(jnp.broadcast_to(other, x.shape), alpha, x * ratio if is_float else _product(x, ratio))


@jax.jit
def _brightness(images, ratio):
    x = images.astype(_compute_dtype(images))
    return _finish(x * ratio, images.dtype)


@functools.partial(jax.jit, static_argnames=("bins",))
def _color(images, ratio, alpha, *, bins: bool = False):
    """``bins``: ``alpha`` is one of AutoAugment's magnitude bins (see :func:`_blend`)."""
    x = images.astype(_compute_dtype(images))
    return _finish(_blend(x, _grayscale(x, _is_float(images)), ratio, alpha, _is_float(images), bins), images.dtype)


def _contrast_mean(images):
    x = images.astype(_compute_dtype(images))
    gray = _grayscale(x, _is_float(images)) if images.shape[-1] == 3 else x
    n, h, w = images.shape[:3]
    # The sum as a product with ones: XLA's CPU reduction of this fused input is ~10x slower. For
    # uint8 the values are integers and every partial sum is exact (below 2^24 while
    # H·W·255 < 2^24, i.e. up to 256×256), so the order does not matter and this equals torch.
    ones = jnp.ones((h * w,), x.dtype)
    total = jnp.dot(gray.reshape(n, h * w), ones, precision=jax.lax.Precision.HIGHEST).reshape(n, 1, 1, 1)
    return total / _divisor(jnp.asarray(h * w, x.dtype), total)


@jax.jit
def _contrast(images, ratio, alpha):
    x = images.astype(_compute_dtype(images))
    mean = _contrast_mean(images)
    return _finish(_blend(x, mean, ratio, alpha, _is_float(images)), images.dtype)


@functools.partial(jax.jit, static_argnames=("bins",))
def _sharpness(images, alpha, *, bins: bool = False):
    """``bins``: ``alpha`` is one of AutoAugment's magnitude bins, where :func:`_fma8` is exact
    for uint8 (``|blurred - x| <= 255``; checked on every value and bin)."""
    n, h, w, c = images.shape
    dtype = _compute_dtype(images)
    x = images.astype(dtype)
    if not _is_float(images):
        # uint8: the exact integer sum S = 8 neighbours + 5·centre, computed at full size (zero
        # padding; XLA's CPU code for the interior slices was ~3x slower), and round(S/13): S/13
        # is never within 0.038 of a half-integer and S·fl(1/13) is within 3e-4 of it, so this
        # is the same integer as torch's rounded conv2d (and as the slice formula below; checked
        # on every S). The difference is 0 on the 1-pixel border, where x + 0·alpha = x exactly.
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        rows = xp[:, 0:h] + xp[:, 1 : h + 1] + xp[:, 2 : h + 2]
        window = rows[:, :, 0:w] + rows[:, :, 1 : w + 1] + rows[:, :, 2 : w + 2]
        blurred = jnp.round((window + 4 * x) * jnp.asarray(1.0 / 13.0, dtype))
        ys, xs = jnp.arange(h), jnp.arange(w)
        inside = ((ys > 0) & (ys < h - 1))[:, None] & ((xs > 0) & (xs < w - 1))[None, :]
        delta = jnp.where(inside[None, :, :, None], blurred - x, 0.0)
        return _finish((_fma8 if bins else _fma)(delta, alpha, x), images.dtype)
    a, b = jnp.asarray(1.0 / 13.0, dtype), jnp.asarray(5.0 / 13.0, dtype)
    rows = x[:, 0 : h - 2] + x[:, 1 : h - 1] + x[:, 2:h]  # separable 3×3 sum
    window = rows[:, :, 0 : w - 2] + rows[:, :, 1 : w - 1] + rows[:, :, 2:w]
    inner = x[:, 1:-1, 1:-1]
    blurred = (window - inner) * a + inner * b
    # The difference is 0 on the 1-pixel border, where x + 0·alpha = x exactly.
    delta = jnp.pad(blurred - inner, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return _finish(_fma(delta, alpha, x), images.dtype)


def brightness(images, magnitude):
    """Scale intensities by ``1 + magnitude`` per image, clamp (truncate to uint8); ``[N, H, W, 1 or 3]``."""
    n, _, _, _ = _check("images", images, rgb_or_gray=True)
    ratio, _ = _factors("magnitude", magnitude, n, _compute_dtype(images))
    return _brightness(images, ratio)


def color(images, magnitude):
    """Saturation: blend with torchvision v2's floored grayscale by ``1 + magnitude``; 1-channel unchanged."""
    n, _, _, c = _check("images", images, rgb_or_gray=True)
    ratio, alpha = _factors("magnitude", magnitude, n, _compute_dtype(images))
    return jnp.asarray(images) if c == 1 else _color(images, ratio, alpha)


def contrast(images, magnitude):
    """Blend with the image's mean grayscale by ``1 + magnitude`` (fused multiply-add on every pixel).

    .. warning:: Float images: the mean is a float32 sum whose order differs from torch's, so
       results can differ from torch_impl in the last bits (uint8 sums are exact: same results).
    """
    n = _check("images", images, rgb_or_gray=True)[0]
    ratio, alpha = _factors("magnitude", magnitude, n, _compute_dtype(images))
    return _contrast(images, ratio, alpha)


def sharpness(images, magnitude):
    """Blend with the ``[[1,1,1],[1,5,1],[1,1,1]]/13`` smoothing inside a 1-pixel border by ``1 + magnitude``.

    .. warning:: Float images: the smoothing sums in another order than torch's ``conv2d``, so
       results can differ in the last bits (uint8 rounds the smoothing to integers: same results).
    """
    n, h, w, _ = _check("images", images, rgb_or_gray=True)
    _, alpha = _factors("magnitude", magnitude, n, _compute_dtype(images))
    if h <= 2 or w <= 2 or images.size == 0:
        return jnp.asarray(images)
    return _sharpness(images, alpha)


@jax.jit
def _posterize(images, bits):
    n = images.shape[0]
    bits = bits.reshape(n, 1, 1, 1)
    if _is_float(images):
        levels = jnp.left_shift(1, bits).astype(images.dtype)
        return jnp.minimum(jnp.maximum(jnp.floor(images * levels), 0), levels - 1) * (1.0 / levels)
    mask = (jnp.left_shift(255, 8 - bits) & 255).astype(jnp.uint8)
    return images & mask


def posterize(images, bits):
    """Keep the ``bits`` (``[N]`` integers in [0, 8]) most significant bits; floats: ``floor(x·2^b)/2^b``."""
    n = _check("images", images)[0]
    b = _per_image("bits", bits, n, integer=True)
    _check_values("bits", b, 0, 8)
    return _posterize(images, jnp.asarray(b, jnp.int32))


@jax.jit
def _solarize(images, threshold):
    x = images.astype(threshold.dtype)
    return jnp.where(x >= threshold, _invert(images), images)


def solarize(images, threshold):
    """Invert values at or above ``threshold · max`` (``threshold`` ``[N]`` in [0, 1]); compared in float32."""
    n = _check("images", images)[0]
    t = _per_image("threshold", threshold, n)
    _check_values("threshold", t, 0.0, 1.0)
    dtype = _compute_dtype(images)
    if isinstance(t, np.ndarray):
        t = jnp.asarray((t * _bound(images.dtype)).astype(dtype))
    else:
        t = (t * _bound(images.dtype)).astype(dtype)  # exact product of float32 t and 255, rounded once
    return _solarize(images, t.reshape(n, 1, 1, 1))


@jax.jit
def _autocontrast(images):
    bound = _bound(images.dtype)
    x = images.astype(_compute_dtype(images))
    lo = jnp.min(x, axis=(1, 2), keepdims=True)
    hi = jnp.max(x, axis=(1, 2), keepdims=True)
    flat = hi == lo
    span = hi - lo
    scaled = span * jnp.asarray(1.0 / bound, x.dtype) if _is_float(images) else _product(span, 1.0 / bound)
    inv_scale = jnp.where(flat, 1.0, scaled).astype(x.dtype)
    lo = jnp.where(flat, 0.0, lo).astype(x.dtype)
    return jnp.clip((x - lo) / _divisor(inv_scale, x), 0, bound).astype(images.dtype)


def autocontrast(images):
    """Stretch each channel to the full range: ``(x - lo) / ((hi - lo)/255)``, truncated; constant channels unchanged.

    .. warning::
        Float images with subnormal values: XLA's CPU backend flushes subnormals to zero, so a
        channel whose range ``hi - lo`` is subnormal counts as constant here (left unchanged),
        while torch stretches it to ``[0, 1]``. No 8-bit-derived image has such a range.
    """
    _check("images", images, rgb_or_gray=True)
    return jnp.asarray(images) if images.size == 0 else _autocontrast(images)


def _equalize_lut(hist):
    """PIL's equalisation LUT from ``[..., 256]`` int32 histograms → (uint8 LUT, valid); see torch_impl."""
    cum = jax.lax.associative_scan(jnp.add, hist, axis=-1)  # exact (integers); ~2x faster than cumsum on CPU
    total = cum[..., -1:]
    top = jnp.take_along_axis(hist, jnp.argmax(cum, axis=-1)[..., None], axis=-1)
    step = (total - top) // 255
    valid = step != 0
    lut = jnp.clip((cum[..., :-1] + step // 2) // jnp.maximum(step, 1), 0, 255)
    lut = jnp.concatenate([jnp.zeros_like(lut[..., :1]), lut], axis=-1).astype(jnp.uint8)
    return lut, valid


def _histograms(u8):
    """Per-image, per-channel 256-bin histograms ``[N, C, 256]`` (int32) of an NHWC uint8 batch."""
    n, h, w, c = u8.shape
    bins = (jnp.arange(n, dtype=jnp.int32)[:, None, None, None] * c + jnp.arange(c, dtype=jnp.int32)) * 256
    counts = jnp.bincount((bins + u8.astype(jnp.int32)).reshape(-1), length=n * c * 256)
    return counts.astype(jnp.int32).reshape(n, c, 256)


def _materialize_lut(lut):
    """``lut`` (uint8 ``[..., 256]``) unchanged, computed once before any per-pixel lookup.

    XLA's CPU fusion would otherwise inline the table's arithmetic (cumulative sums, integer
    divisions) into the per-pixel gather and redo it for every pixel (``optimization_barrier`` is
    expanded away before fusion there). A product with the identity matrix is never fused into its
    consumer, and is exact: each output is one integer below 256 times 1 plus zeros.
    """
    eye = jnp.eye(lut.shape[-1], dtype=jnp.float32)
    return jnp.matmul(lut.astype(jnp.float32), eye, precision=jax.lax.Precision.HIGHEST).astype(jnp.uint8)


def _lookup(u8, lut):
    """``out[n, h, w, c] = lut[n, u8[n, h, w, c], c]`` for a value-major ``lut`` ``[N, 256, C]`` (uint8)."""
    n, h, w, c = u8.shape
    flat = u8.reshape(n, h * w, c).astype(jnp.int32)
    return jnp.take_along_axis(lut, flat, axis=1).reshape(n, h, w, c)


def _apply_lut(u8, lut):
    """``out[n, h, w, c] = lut[n, c, u8[n, h, w, c]]`` for ``lut`` ``[N, C, 256]``, the table
    materialised first (it is computed in the same fusion scope)."""
    return _lookup(u8, jnp.swapaxes(_materialize_lut(lut), 1, 2))


@jax.jit
def _equalize(images):
    if _is_float(images):
        u8 = (images * jnp.asarray(255.0 + 1.0 - 1e-3, images.dtype)).astype(jnp.uint8)
    else:
        u8 = images
    lut, valid = _equalize_lut(_histograms(u8))
    lut = jnp.where(valid, lut, jnp.arange(256, dtype=jnp.uint8))
    out = _apply_lut(u8, lut)
    return out.astype(images.dtype) * jnp.asarray(1.0 / 255.0, images.dtype) if _is_float(images) else out


def equalize(images):
    """Histogram-equalise each channel with PIL's LUT; floats quantised to uint8 (× 255.999) and back (/255)."""
    _check("images", images)
    return jnp.asarray(images) if images.size == 0 else _equalize(images)


def _invert(images):
    return 1.0 - images if _is_float(images) else jnp.bitwise_not(images)


def invert(images):
    """``255 - x`` for uint8, ``1 - x`` for floats."""
    _check("images", images)
    return jax.jit(_invert)(images)
