"""Framework-free argument checks of the mixing tricks (CutMix, timm-style mixup/CutMix switching).

Both backends call these, so a bad argument gets the same message in either.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from twintricks.checks import check_choice, check_ordered_pair, check_real

__all__ = [
    "MIXUP_CUTMIX_MODES",
    "check_beta_parameter",
    "MixupCutmixArgs",
    "check_mixup_cutmix_args",
    "minmax_cut_range",
]

#: timm's ``Mixup(mode=...)``: one draw per batch, per pair ``(i, N-1-i)``, or per element.
MIXUP_CUTMIX_MODES = ("batch", "pair", "elem")


def check_beta_parameter(name: str, value, *, allow_zero: bool = False) -> float:
    """A Beta(α, α) parameter: finite, ``> 0`` (``>= 0`` with ``allow_zero``, 0 meaning off)."""
    v = check_real(name, value, low=0.0, low_inclusive=allow_zero)
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v!r}")
    return v


class MixupCutmixArgs(NamedTuple):
    """The checked arguments of timm's ``Mixup``, as the samplers use them."""

    mixup_alpha: float
    cutmix_alpha: float
    cutmix_minmax: tuple[float, float] | None
    prob: float
    switch_prob: float
    mode: str
    correct_lam: bool


def check_mixup_cutmix_args(
    mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, correct_lam
) -> MixupCutmixArgs:
    """Check timm ``Mixup``'s arguments; as timm, ``cutmix_minmax`` forces ``cutmix_alpha = 1``.

    ``mixup_alpha`` / ``cutmix_alpha``: finite, ``>= 0``, 0 turns that trick off, and at least one
    trick must be on; ``cutmix_minmax``: None or an ordered pair in ``[0, 1]``; ``prob`` and
    ``switch_prob`` in ``[0, 1]``; ``mode`` one of :data:`MIXUP_CUTMIX_MODES`.
    """
    ma = check_beta_parameter("mixup_alpha", mixup_alpha, allow_zero=True)
    ca = check_beta_parameter("cutmix_alpha", cutmix_alpha, allow_zero=True)
    minmax = None
    if cutmix_minmax is not None:
        minmax = check_ordered_pair("cutmix_minmax", cutmix_minmax, low=0.0, high=1.0)
        ca = 1.0
    if ma == 0 and ca == 0:
        raise ValueError("`mixup_alpha` or `cutmix_alpha` must be > 0 (or `cutmix_minmax` given): nothing to mix")
    p = check_real("prob", prob, low=0.0, high=1.0)
    sp = check_real("switch_prob", switch_prob, low=0.0, high=1.0)
    mode = check_choice("mode", mode, MIXUP_CUTMIX_MODES)
    if not isinstance(correct_lam, bool):
        raise TypeError(f"`correct_lam` must be a bool, got {type(correct_lam).__name__}")
    return MixupCutmixArgs(ma, ca, minmax, p, sp, mode, correct_lam)


def minmax_cut_range(minmax: tuple[float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """timm's ``rand_bbox_minmax`` side ranges: box height in ``[lo_h, hi_h)``, width in ``[lo_w, hi_w)``.

    timm draws ``randint(int(H·min), int(H·max))``, which needs a non-empty range.
    """
    lo_h, hi_h = int(height * minmax[0]), int(height * minmax[1])
    lo_w, hi_w = int(width * minmax[0]), int(width * minmax[1])
    if lo_h >= hi_h or lo_w >= hi_w:
        raise ValueError(
            f"`cutmix_minmax` {tuple(minmax)!r} gives no box side for {height}x{width} images "
            f"(int(H·min) < int(H·max) and int(W·min) < int(W·max) are needed)"
        )
    return lo_h, hi_h, lo_w, hi_w
