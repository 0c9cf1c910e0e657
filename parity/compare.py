"""A cross-framework check and how one case is compared: :class:`Check`, :func:`check_case`.

A :class:`Check` pairs

* ``cases``: a zero-argument factory returning a hypothesis strategy of *cases* — plain dicts of
  NumPy arrays and Python values (images NHWC, parameter records as dicts of arrays), framework
  neutral, so one drawn case feeds both kernels;
* ``run_torch`` / ``run_jax``: adapters that convert a case with :mod:`parity.convert`, call the
  torch_impl / jax_impl kernel, and return a dict of NumPy outputs in NHWC layout;
* the tolerance (``atol``, ``rtol``; both 0 means bit-identical) and the ``reason`` for it.

The library's checks are declared in :mod:`parity.tricks` (one module per family) and collected
by :func:`parity.registry.library_registry`; this module imports neither, so the families and
the registry both build on it without an import circle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["Check", "ParityError", "compare_outputs", "check_case", "explain_failure"]

Case = Mapping[str, Any]
Outputs = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Check:
    """One cross-framework check: both implementations, the inputs to try, and the tolerance.

    ``name`` is the check's own (``twintricks parity --trick NAME``; a kernel it runs, e.g.
    ``resized_crop``); ``group`` the family module it lives in (``parity/tricks/<group>.py``, named
    like the backend modules); ``trick`` the id of the recipe trick it proves
    (:data:`twintricks.tricks.TRICKS`), ``None`` for a check of something else (an op, an
    optimizer, a user's function).
    """

    name: str
    group: str
    cases: Callable[[], Any]
    run_torch: Callable[[Case], Outputs]
    run_jax: Callable[[Case], Outputs]
    atol: float
    rtol: float
    reason: str
    examples: tuple = ()
    #: optional ``explain(case) -> str``: called on a disagreeing case, its text is appended to
    #: the failure (the module checks use it to name the first layer that differs)
    explain: Callable[[Case], str] | None = None
    #: ``{output-name prefix: (atol, rtol)}``: outputs whose name starts with a prefix are compared
    #: with that tolerance instead (e.g. running statistics, tighter than gradients); the reason
    #: covers them
    tolerances: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    #: the id of the recipe trick this check proves (``None``: not a recipe trick)
    trick: str | None = None

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
                f"max abs err {err:.3g}; first at {idx}: torch {float(t64[idx])!r} vs jax {float(j64[idx])!r}"
            )
    return worst, len(ours_torch)


def check_case(trick: Check, case: Case, *, explain: bool = True) -> tuple[float, int]:
    """Run one case through both implementations and compare them (raises :class:`ParityError`).

    When the trick has an ``explain`` hook (and ``explain``), its diagnosis of the case is
    appended to the error; the runners below pass ``explain=False`` while hypothesis shrinks and
    explain the minimal case once (:func:`explain_failure`).
    """
    try:
        ours_torch, ours_jax = trick.run_torch(case), trick.run_jax(case)
        if not trick.tolerances:
            return compare_outputs(ours_torch, ours_jax, atol=trick.atol, rtol=trick.rtol)
        if set(ours_torch) != set(ours_jax):
            raise ParityError(f"different outputs: torch {sorted(ours_torch)} vs jax {sorted(ours_jax)}")
        groups: dict = {}
        for key in ours_torch:
            prefix = next((p for p in trick.tolerances if key.startswith(p)), None)
            groups.setdefault(prefix, []).append(key)
        worst, count = 0.0, 0
        for prefix, keys in groups.items():
            atol, rtol = (trick.atol, trick.rtol) if prefix is None else trick.tolerances[prefix]
            err, n = compare_outputs(
                {k: ours_torch[k] for k in keys}, {k: ours_jax[k] for k in keys}, atol=atol, rtol=rtol
            )
            worst, count = max(worst, err), count + n
        return worst, count
    except ParityError as exc:
        if trick.explain is None or not explain:
            raise
        raise ParityError(explain_failure(trick, case, str(exc))) from None


def explain_failure(trick: Check, case: Case, message: str) -> str:
    """``message`` followed by ``trick.explain(case)`` (when the trick has one)."""
    if trick.explain is None:
        return message
    try:
        note = trick.explain(case)
    except Exception as inner:  # the diagnosis must never hide the disagreement itself
        note = f"(no diagnosis: {type(inner).__name__}: {inner})"
    return f"{message}; {note}" if note else message
