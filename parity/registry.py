"""The trick registry and the cross-framework check.

One :class:`Trick` per trick (or per op / per optimizer family member) pairs

* ``cases``: a zero-argument factory returning a hypothesis strategy of *cases* — plain dicts of
  NumPy arrays and Python values (images NHWC, parameter records as dicts of arrays), framework
  neutral, so one drawn case feeds both kernels;
* ``run_torch`` / ``run_jax``: adapters that convert a case with :mod:`parity.convert`, call the
  torch_impl / jax_impl kernel, and return a dict of NumPy outputs in NHWC layout;
* the tolerance (``atol``, ``rtol``; both 0 means bit-identical) and the ``reason`` for it.

The entries live in :mod:`parity.tricks` (one module per family); the ``twintricks parity``
command and ``tests/test_parity.py`` both read :func:`all_tricks`. Adding a trick is adding one
entry there.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["Trick", "ParityError", "Report", "compare_outputs", "check_case", "run_trick", "all_tricks", "get_trick"]

Case = Mapping[str, Any]
Outputs = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Trick:
    """One registered trick: both implementations, the inputs to try, and the tolerance."""

    name: str
    group: str
    cases: Callable[[], Any]
    run_torch: Callable[[Case], Outputs]
    run_jax: Callable[[Case], Outputs]
    atol: float
    rtol: float
    reason: str
    examples: tuple = ()

    @property
    def exact(self) -> bool:
        return self.atol == 0 and self.rtol == 0

    @property
    def tolerance(self) -> str:
        if self.exact:
            return "exact"
        return f"atol={self.atol:g}" + (f", rtol={self.rtol:g}" if self.rtol else "")


class ParityError(AssertionError):
    """The two implementations disagree on a case (or return different shapes/dtypes)."""


@dataclasses.dataclass
class Report:
    """The outcome of :func:`run_trick` for one trick: one row of ``twintricks parity``."""

    name: str
    group: str
    checks: int
    examples: int
    max_abs_err: float
    tolerance: str
    ok: bool
    seconds: float
    failure: str = ""


def compare_outputs(ours_torch: Outputs, ours_jax: Outputs, *, atol: float, rtol: float) -> tuple[float, int]:
    """Compare two output dicts key by key; return ``(max_abs_err, n_arrays_compared)``.

    Raises :class:`ParityError` on different keys, shapes or dtype kinds, or on values outside
    ``|t - j| <= atol + rtol·|j|`` (exact equality when both are 0). NaNs must sit at the same
    places; infinities must match exactly.
    """
    if set(ours_torch) != set(ours_jax):
        raise ParityError(f"different outputs: torch {sorted(ours_torch)} vs jax {sorted(ours_jax)}")
    worst = 0.0
    for key in sorted(ours_torch):
        t = np.asarray(ours_torch[key])
        j = np.asarray(ours_jax[key])
        if t.shape != j.shape:
            raise ParityError(f"{key}: shape torch {t.shape} vs jax {j.shape}")
        if t.dtype.kind != j.dtype.kind and not {t.dtype.kind, j.dtype.kind} <= {"i", "u"}:
            raise ParityError(f"{key}: dtype torch {t.dtype} vs jax {j.dtype}")
        if t.size == 0:
            continue
        t64 = t.astype(np.float64)
        j64 = j.astype(np.float64)
        nan_t, nan_j = np.isnan(t64), np.isnan(j64)
        if not np.array_equal(nan_t, nan_j):
            raise ParityError(f"{key}: NaNs at different places")
        finite = np.isfinite(t64) & np.isfinite(j64)
        inf_mismatch = ~finite & ~nan_t & (t64 != j64)
        if inf_mismatch.any():
            raise ParityError(f"{key}: infinities differ")
        with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
            diff = np.where(finite, np.abs(t64 - j64), 0.0)
        err = float(diff.max())
        worst = max(worst, err)
        bound = atol + rtol * np.abs(j64)
        bad = finite & (diff > bound)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ParityError(
                f"{key}: {int(bad.sum())} of {t.size} values differ beyond atol={atol:g}, rtol={rtol:g}; "
                f"max abs err {err:.3g}; first at {idx}: torch {t64[idx]!r} vs jax {j64[idx]!r}"
            )
    return worst, len(ours_torch)


def check_case(trick: Trick, case: Case) -> tuple[float, int]:
    """Run one case through both implementations and compare them (raises :class:`ParityError`)."""
    return compare_outputs(trick.run_torch(case), trick.run_jax(case), atol=trick.atol, rtol=trick.rtol)


def run_trick(trick: Trick, *, examples: int = 20, seed: int = 0) -> Report:
    """Try ``trick.examples`` plus ``examples`` hypothesis-drawn cases (seeded); never raises."""
    from hypothesis import HealthCheck, Phase, example, given, settings
    from hypothesis import seed as hseed

    stats = {"examples": 0, "checks": 0, "err": 0.0}

    def body(case):
        err, n = check_case(trick, case)
        stats["examples"] += 1
        stats["checks"] += n
        stats["err"] = max(stats["err"], err)

    test = given(trick.cases())(body)
    for case in reversed(trick.examples):
        test = example(case)(test)
    test = settings(
        max_examples=max(examples, 1),
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=False,
    )(test)
    test = hseed(seed)(test)

    start = time.perf_counter()
    failure = ""
    try:
        test()
    except Exception as exc:  # a disagreement, or an implementation that crashed
        failure = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    return Report(
        name=trick.name,
        group=trick.group,
        checks=stats["checks"],
        examples=stats["examples"],
        max_abs_err=stats["err"] if not failure else math.nan,
        tolerance=trick.tolerance,
        ok=not failure,
        seconds=time.perf_counter() - start,
        failure=failure,
    )


def all_tricks() -> dict[str, Trick]:
    """Every registered trick, by name, in registration order."""
    from parity.tricks import TRICKS

    names = [t.name for t in TRICKS]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"trick names registered twice: {sorted(dupes)}")
    return {t.name: t for t in TRICKS}


def get_trick(name: str) -> Trick:
    """The registered trick called ``name`` (ValueError listing the names otherwise)."""
    tricks = all_tricks()
    if name not in tricks:
        raise ValueError(f"unknown trick {name!r}; registered: {', '.join(tricks)}")
    return tricks[name]
