"""Exact float32 arithmetic: the roundings eager ATen performs, emulated without relying on FMA contraction.

Eager ATen fuses ``a + alpha·b`` (``add_`` with ``alpha``, ``addcmul``) into one fused multiply-add on
x86-64 AVX2/AVX-512 and rounds ``bmm``'s products separately; inductor's generated code may fuse
differently. Under ``torch.compile`` the uint8 kernels (:mod:`torch_impl.kernels`) compute those
roundings explicitly with these helpers, so that compiled and eager results are the same bytes.

The twin of :mod:`jax_impl.exact` (same names, same algorithms). jax_impl also needs ``fma8``,
``divisor`` and float32-only double-float trigonometry (``cos_sin_degrees``): XLA contracts and
rewrites more freely than eager torch, and torch computes its affine matrices in float64.
"""

from __future__ import annotations

import torch

__all__ = ["split", "product", "two_sum", "fma"]


def split(c: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``c = hi + lo`` exactly, ``hi`` keeping the top ``bits`` significant bits of float32 ``c``."""
    c = c.to(torch.float32)
    mask = -(1 << (24 - bits))  # int32 with the low (24 - bits) mantissa bits cleared
    hi = (c.view(torch.int32) & mask).view(torch.float32)
    return hi, c - hi


def product(x: torch.Tensor, c: torch.Tensor, x_bits: int = 8) -> torch.Tensor:
    """``x·c`` rounded once, for integer-valued ``x`` of at most ``x_bits`` bits (exact partial products)."""
    hi, lo = split(c, 24 - x_bits)
    return x * hi + x * lo


def two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Knuth's error-free ``a + b = s + e`` (additions only)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a·b + c`` rounded once (see :func:`jax_impl.exact.fma`): exact 12-bit partial products summed
    with error-free transformations."""
    ah, al = split(a, 12)
    bh, bl = split(b, 12)
    s, err = c, None
    for part in (ah * bh, ah * bl, al * bh, al * bl):
        s, e = two_sum(s, part)
        err = e if err is None else err + e
    return s + err
