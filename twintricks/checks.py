"""Argument checks shared by both backends.

Everything here is plain Python and works on any array object with ``.shape`` and ``.ndim``
(NumPy, torch, jax — including jax tracers, whose shapes are static), so the checks run at trace
time under ``jax.jit`` and before any kernel under ``torch.compile``. Dtype checks live in each
backend (``torch_impl._checks`` / ``jax_impl._checks``) because dtypes are framework objects.

Every failure raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad
value) whose message names the argument and says what was expected.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

__all__ = [
    "check_real",
    "check_bool",
    "check_int",
    "check_ordered_pair",
    "check_choice",
    "check_ndim",
    "check_size",
    "check_same_leading",
    "check_distribution_summary",
]


def _fmt_interval(low, high, low_inclusive, high_inclusive, *, finite: bool = False) -> str:
    left = "[" if low_inclusive and not (finite and low is None) else "("
    right = "]" if high_inclusive and not (finite and high is None) else ")"
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    return f"{left}{lo}, {hi}{right}"


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    finite: bool = True,
) -> float:
    """Return ``value`` as a float after checking it is a real number in the given interval.

    ``finite=True`` (the default) also rejects ``inf`` and ``-inf``, whatever the interval: a
    hyperparameter that is infinite is a mistake far more often than a meaning. A caller for
    which an infinite value means something must opt in with ``finite=False``. NaN is always
    rejected.

    Raises:
        TypeError: ``value`` is not a real number (bools are rejected too).
        ValueError: ``value`` is NaN, infinite (unless ``finite=False``) or outside the interval.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    ok = value == value and (not finite or math.isfinite(value))
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        interval = _fmt_interval(low, high, low_inclusive, high_inclusive, finite=finite)
        what = "a finite number in" if finite else "in"
        raise ValueError(f"`{name}` must be {what} {interval}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` as a bool after checking it is one (Python's or NumPy's): a switch given
    ``"no"`` or ``2`` would otherwise be truthy and silently on."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if not isinstance(value, bool) and not numpy_bool:
        raise TypeError(f"`{name}` must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[low, high]``."""
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"`{name}` must be in {_fmt_interval(low, high, True, True)}, got {value!r}")
    return value


def check_ordered_pair(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, strict_low: bool = False
) -> tuple[float, float]:
    """Return ``value`` as a ``(lo, hi)`` float pair with ``lo <= hi``, both inside the bounds.

    ``strict_low`` requires ``lo > low`` instead of ``lo >= low`` (e.g. an aspect ratio > 0).
    """
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"`{name}` must be a pair (min, max), got {value!r}")
    lo = check_real(f"{name}[0]", value[0], low=low, high=high, low_inclusive=not strict_low)
    hi = check_real(f"{name}[1]", value[1], low=low, high=high, low_inclusive=not strict_low)
    if lo > hi:
        raise ValueError(f"`{name}` must be ordered as (min, max), got {tuple(value)!r}")
    return lo, hi


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Check ``value`` is one of ``choices`` (e.g. a reduction or a policy name)."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")
    return value


def check_ndim(name: str, array: Any, ndim: int | Sequence[int], layout: str = "") -> None:
    """Check ``array`` has the given rank; ``layout`` (e.g. ``"[N, C, H, W]"``) goes in the message."""
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    shape = getattr(array, "shape", None)
    if shape is None:
        raise TypeError(f"`{name}` must be an array, got {type(array).__name__}")
    if len(shape) not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        hint = f" {layout}" if layout else ""
        raise ValueError(f"`{name}` must be a {want} array{hint}, got shape {tuple(shape)}")


def check_size(name: str, size: Any) -> tuple[int, int]:
    """Normalise an output size given as an int or an ``(h, w)`` pair; both must be >= 1."""
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) != 2:
            raise TypeError(f"`{name}` must be an int or a pair (h, w), got {size!r}")
        return check_int(f"{name}[0]", size[0], low=1), check_int(f"{name}[1]", size[1], low=1)
    s = check_int(name, size, low=1)
    return s, s


def check_same_leading(names: Sequence[str], arrays: Sequence[Any]) -> int:
    """Check the arrays share their leading (batch) dimension and return it."""
    sizes = [tuple(a.shape)[0] if len(a.shape) else None for a in arrays]
    if len(set(sizes)) != 1 or sizes[0] is None:
        desc = ", ".join(f"`{n}` {tuple(a.shape)}" for n, a in zip(names, arrays))
        raise ValueError(f"batch sizes must match: {desc}")
    return sizes[0]


def check_distribution_summary(name: str, finite: bool, minimum: float, worst: float, k: int, eps: float) -> None:
    """Soft targets must be distributions over their ``k`` classes: finite, ``>= 0``, each summing
    to 1. The backends reduce the values on their device to three numbers (``finite``: all
    finite; ``minimum``; ``worst``: the largest ``|Σ t - 1|``), and this says what is wrong.

    The sums may be off by the rounding of ``k`` terms of the targets' dtype: the tolerance is
    ``4·k·eps`` (``eps`` of that dtype), at least ``1e-6``.
    """
    if not finite:
        raise ValueError(f"`{name}` must be finite: soft targets hold NaN or inf")
    if minimum < 0:
        raise ValueError(f"`{name}` must be >= 0 (soft targets are distributions), got a value of {minimum:.6g}")
    tol = max(4 * k * eps, 1e-6)
    if worst > tol:
        raise ValueError(
            f"`{name}` must sum to 1 over the {k} classes (soft targets are distributions; tolerance {tol:.2g}), "
            f"got a sum off by {worst:.6g}"
        )
