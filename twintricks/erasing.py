"""Framework-free argument checks of random erasing (torchvision v2's arguments, timm's modes).

Both backends call these, so a bad argument gets the same message in either.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

from twintricks.checks import check_choice, check_int, check_ordered_pair, check_real

__all__ = ["ERASING_MODES", "RandomErasingArgs", "check_random_erasing_args"]

#: timm's fill modes: a constant (``value``), one normal colour per box and channel, or normal
#: noise per pixel (torchvision's ``value="random"``).
ERASING_MODES = ("const", "rand", "pixel")


class RandomErasingArgs(NamedTuple):
    """The checked arguments, as the samplers use them."""

    p: float
    scale: tuple[float, float]
    ratio: tuple[float, float]
    value: tuple[float, ...]  # the constant fill, one value or one per channel ("const" mode)
    mode: str
    min_count: int
    max_count: int


def check_random_erasing_args(p, scale, ratio, value, mode, min_count, max_count) -> RandomErasingArgs:
    """Check random erasing's arguments.

    ``p`` in ``[0, 1]``; ``scale`` an ordered pair in ``[0, 1]``; ``ratio`` an ordered pair of
    finite values ``> 0``; ``value`` a real number, a sequence of them (one per channel) or
    ``"random"`` (torchvision: per-pixel normal noise, timm's ``"pixel"`` mode); ``mode`` None
    (from ``value``) or one of :data:`ERASING_MODES` (``"rand"``/``"pixel"`` draw the fill, so
    ``value`` must stay 0 with them); ``1 <= min_count <= max_count`` (None: ``min_count``).
    """
    p = check_real("p", p, low=0.0, high=1.0)
    scale = check_ordered_pair("scale", scale, low=0.0, high=1.0)
    ratio = check_ordered_pair("ratio", ratio, low=0.0, strict_low=True)
    if not all(math.isfinite(r) for r in ratio):
        raise ValueError(f"`ratio` must be finite, got {ratio!r}")
    if isinstance(value, str):
        if value != "random":
            raise ValueError(f"`value` must be a number, a sequence of numbers or 'random', got {value!r}")
        if mode not in (None, "pixel"):
            raise ValueError(f"`value='random'` is the 'pixel' mode; got mode={mode!r}")
        mode, fill = "pixel", (0.0,)
    else:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            values = [value]
        elif isinstance(value, (list, tuple)) and value:
            values = list(value)
        else:
            raise TypeError(f"`value` must be a number, a sequence of numbers or 'random', got {value!r}")
        fill = tuple(check_real(f"value[{i}]" if len(values) > 1 else "value", v) for i, v in enumerate(values))
        if not all(math.isfinite(v) for v in fill):
            raise ValueError(f"`value` must be finite, got {value!r}")
        mode = "const" if mode is None else check_choice("mode", mode, ERASING_MODES)
        if mode != "const" and any(fill):
            raise ValueError(f"`value` must be 0 with mode={mode!r} (the fill is drawn), got {value!r}")
    min_count = check_int("min_count", min_count, low=1)
    max_count = min_count if max_count is None else check_int("max_count", max_count, low=min_count)
    return RandomErasingArgs(p, scale, ratio, fill, mode, min_count, max_count)
