"""Exact float32 arithmetic: the roundings torch performs, whatever XLA decides to fuse.

Bit-exactness with torch_impl (and through it with torchvision) needs the same float32 operations
with the same roundings, which XLA does not promise by itself: its CPU and GPU backends fuse
``a * b + c`` into one fused multiply-add whenever they see the pattern, and move broadcasts so
that a per-image product is computed once. The kernels (:mod:`jax_impl.kernels`) therefore say
which roundings they need:

* :func:`product` rounds a product where torch rounds it, by summing two exact partial
  products (so no FMA can absorb it); it needs integer-valued factors, i.e. uint8 images;
* :func:`fma` computes the multiply-adds torch fuses (torchvision's ``add_(other, alpha=)``)
  with error-free transformations, whatever XLA decides to fuse;
* :func:`fma8` is a cheaper exact form of :func:`fma` when one factor is an 8-bit integer,
  used where it was checked on every input (the uint8 luma, AutoAugment's Color/Sharpness bins);
* :func:`fma_by_constant` is :func:`fma` with a Python-number factor of at most 12 significant
  bits (the grid's ``size/2``), the same float operations less the partial products that are 0;
* :func:`divisor` keeps a true division where XLA would multiply by a rounded reciprocal;
* :func:`run_time` keeps a host-computed matrix from being folded into constants under a
  user's ``jit`` (so ``jit`` and eager calls round alike);
* :func:`cos_sin_degrees` is float32-only double-float trigonometry that rounds like the float64
  ``math.cos``/``math.sin`` torchvision calls, for matrices built from traced angles.

The twin of :mod:`torch_impl.exact` (``split``, ``product``, ``two_sum``, ``fma``: same names, same
algorithms); ``fma8``, ``divisor``, ``run_time``, ``exact_parts``, ``sum2`` and
``cos_sin_degrees`` exist only here, because eager torch rounds as ATen does by itself and computes its matrices in float64.

.. warning:: "Where torch fuses" is where ATen's CPU kernels use FMA instructions (x86-64 with
   AVX2/AVX-512, as tested) or CUDA contracts; on a CPU without FMA torch rounds twice and uint8
   results can differ by 1 on a few pixels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["split", "product", "two_sum", "fma", "fma_by_constant", "fma8", "divisor", "run_time", "exact_parts", "sum2", "cos_sin_degrees"]

_DEG_TO_RAD = math.pi / 180.0


def split(c, bits: int):
    """``c = hi + lo`` exactly, ``hi`` keeping the top ``bits`` significant bits of float32 ``c``."""
    c = jnp.asarray(c, jnp.float32)
    mask = np.uint32((0xFFFFFFFF << (24 - bits)) & 0xFFFFFFFF)
    hi = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(c, jnp.uint32) & mask, jnp.float32)
    return hi, c - hi


def product(x, c, x_bits: int = 8):
    """``x·c`` rounded once to float32, for integer-valued ``x`` with at most ``x_bits`` (<= 12) bits.

    ``x·hi`` and ``x·lo`` are both exact, so their float32 sum is the correctly rounded product
    whether or not XLA fuses one of the products into the addition (torch rounds the product here).
    """
    hi, lo = split(c, 24 - x_bits)
    return x * hi + x * lo


def two_sum(a, b):
    """Knuth's error-free ``a + b = s + e`` (additions only)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def fma(a, b, c):
    """``a·b + c`` rounded once, as torch's fused multiply-add computes it, in plain float32.

    ``a`` and ``b`` are split into 12-bit halves, so the four partial products are exact (and an
    FMA that XLA may or may not form from them changes nothing); they are added to ``c`` with
    error-free transformations and the errors summed (Ogita-Rump-Oishi ``Sum2``), which equals
    the correctly rounded result unless the exact sum lies within about 2^-40 relative of a
    rounding boundary.
    """
    ah, al = split(a, 12)
    bh, bl = split(b, 12)
    s, err = c, None
    for part in (ah * bh, ah * bl, al * bh, al * bl):
        s, e = two_sum(s, part)
        err = e if err is None else err + e
    return s + err


def fma_by_constant(a, b: float, c):
    """:func:`fma` ``(a, b, c)`` for a Python number ``b``, the same bits with half the work when
    ``b`` has at most 12 significant bits (its low split half is 0: the partial products
    ``a_h·0`` and ``a_l·0`` add nothing but the sign of a zero); else :func:`fma` itself.

    ``a_h·b`` and ``a_l·b`` are exact (at most 12 + 12 bits), so an FMA that XLA may form from
    them changes nothing, and the two error-free sums and the error total are those of :func:`fma`.
    """
    b32 = np.float32(b)
    lo = b32 - np.uint32(np.asarray(b32).view(np.uint32) & np.uint32(0xFFFFF000)).view(np.float32)
    if lo != 0 or not np.isfinite(b32):
        return fma(a, jnp.asarray(b32, jnp.float32), c)
    ah, al = split(a, 12)
    s, e1 = two_sum(c, ah * b32)
    s, e2 = two_sum(s, al * b32)
    return s + (e1 + e2)


def fma8(a, b, c):
    """``a·b + c`` rounded once, for integer-valued ``a`` with ``|a| <= 255`` (cheaper than :func:`fma`).

    ``b = hi + lo`` with 16 and 8 significant bits, so ``a·hi`` and ``a·lo`` are exact (an FMA
    that XLA may form from them changes nothing); ``c + a·hi = s + e`` error-free, and the result
    is ``s + (e + a·lo)``: one rounding, so correctly rounded whenever ``e + a·lo`` is exact in
    float32. Not true for every ``b, c``: it is used only where that was checked on every input
    (``tests/test_ops.py``, against float64): the grayscale weights on every RGB triple, and
    AutoAugment's blends on every magnitude bin (``ratio``/``alpha`` of ``±0.1 … ±0.9``).
    """
    hi, lo = split(b, 16)
    s, e = two_sum(c, a * hi)
    return s + (e + a * lo)


def run_time(value, like):
    """``value`` unchanged, as a value XLA cannot treat as a compile-time constant.

    A matrix built on the host from a Python number is a constant inside a user's ``jit``; XLA
    then folds the grid arithmetic that depends on it (reassociating constants, dividing by
    reciprocals), which rounds differently from the same code on run-time values. Adding
    ``v·0`` for a finite ``v`` read from ``like`` (a run-time input) keeps ``value`` a run-time
    value: XLA does not simplify a floating-point ``x·0``. The result equals ``value`` (a ``-0``
    may become ``+0``).
    """
    v = jnp.sum(jnp.reshape(like, (-1,))[:1]).astype(value.dtype)
    v = jnp.where(jnp.isfinite(v), v, jnp.zeros((), value.dtype))
    return value + v * jnp.zeros((), value.dtype)


def divisor(value, like):
    """A divisor XLA cannot see as constant or broadcast (it would multiply by a rounded reciprocal)."""
    return value + like * jnp.zeros((), like.dtype)


def _degree_cos_sin():
    """cos and sin of every integer degree in [-360, 360] as float32 (hi, lo) pairs (float64 exact)."""
    deg = np.arange(-360, 361, dtype=np.float64)
    out = []
    for v in (np.cos(deg * _DEG_TO_RAD), np.sin(deg * _DEG_TO_RAD)):
        hi = v.astype(np.float32)
        out += [hi, (v - hi).astype(np.float32)]
    return out


_COS_HI, _COS_LO, _SIN_HI, _SIN_LO = _degree_cos_sin()
_K = _DEG_TO_RAD
_K_HI = np.float32(_K)
_K_LO = np.float32(_K - float(_K_HI))


def exact_parts(a, b):
    """The four exact partial products of float32 ``a·b`` (12-bit halves)."""
    ah, al = split(a, 12)
    bh, bl = split(b, 12)
    return ah * bh, ah * bl, al * bh, al * bl


def sum2(terms):
    """Sum with error-free two-sums, the errors added at the end (Sum2): about twice float32 precision."""
    s, err = terms[0], jnp.zeros_like(terms[0])
    for t in terms[1:]:
        s, e = two_sum(s, t)
        err = err + e
    return s + err


def cos_sin_degrees(angle):
    """Correctly rounded float32 ``cos``/``sin`` of float32 ``angle`` degrees, in float32 only.

    ``angle = n + f`` (integer degrees ``n`` from precomputed float64 values, ``|f| <= 0.5``), angle-sum
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
    x_parts = exact_parts(f, jnp.float32(_K_HI))
    x1 = sum2(list(x_parts))
    x2 = f * _K_LO + ((x_parts[0] - x1) + x_parts[1] + x_parts[2] + x_parts[3])
    x2 = jnp.where(f == 0, 0.0, x2)
    xx = x1 * x1
    dc = xx * (-0.5 + xx * (1.0 / 24.0 - xx * (1.0 / 720.0)))  # cos(x) - 1
    ds = -x1 * xx * (1.0 / 6.0 - xx * (1.0 / 120.0))  # sin(x) - x
    # cos(n + f) = C·(1 + dc) - S·(x1 + x2 + ds);  sin(n + f) = S·(1 + dc) + C·(x1 + x2 + ds)
    cos = sum2([ch, *[-p for p in exact_parts(sh, x1)], cl, ch * dc, -sh * (x2 + ds), -sl * x1])
    sin = sum2([sh, *exact_parts(ch, x1), sl, sh * dc, ch * (x2 + ds), cl * x1])
    return cos, sin
