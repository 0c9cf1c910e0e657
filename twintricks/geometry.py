"""Framework-free geometry for the resized-crop samplers of both backends.

The image size, ``scale`` and ``ratio`` are static Python values, so the parts of torchvision's
``RandomResizedCrop.get_params`` that depend only on them are computed here once, in plain Python,
and both ``torch_impl.cropping`` and ``jax_impl.cropping`` use the same numbers.
"""

from __future__ import annotations

import math

from twintricks.checks import check_ordered_pair

__all__ = ["check_scale_ratio", "fallback_crop_box"]


def check_scale_ratio(scale, ratio) -> tuple[tuple[float, float], tuple[float, float]]:
    """Check ``scale`` and ``ratio`` are finite, positive, ordered ``(min, max)`` pairs."""
    scale = check_ordered_pair("scale", scale, low=0.0, strict_low=True)
    ratio = check_ordered_pair("ratio", ratio, low=0.0, strict_low=True)
    for name, pair in (("scale", scale), ("ratio", ratio)):
        if not all(math.isfinite(v) for v in pair):
            raise ValueError(f"`{name}` must be finite, got {pair!r}")
    return scale, ratio


def fallback_crop_box(h: int, w: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's centre crop ``(top, left, height, width)`` when no attempt fits.

    The whole ``h × w`` image narrowed to the nearest allowed aspect ratio, centred; each side is
    clamped to at least 1 (torchvision can return 0 for extreme ratios).
    """
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        ch, cw = h, w
    ch, cw = min(max(ch, 1), h), min(max(cw, 1), w)
    return (h - ch) // 2, (w - cw) // 2, ch, cw
