"""A cross-framework check and how one case is compared: :class:`Check`, :func:`check_case`.

A :class:`Check` pairs

* ``cases``: a zero-argument factory returning a hypothesis strategy of *cases* — plain dicts of
  NumPy arrays and Python values (images NHWC, parameter records as dicts of arrays), framework
  neutral, so one drawn case feeds both kernels;
* ``run_torch`` / ``run_jax``: adapters that convert a case with :mod:`parity.convert`, call the
  torch_impl / jax_impl kernel, and return a dict of NumPy outputs in NHWC layout;
* the tolerance (``atol``, ``rtol``; both 0 means bit-identical) and the ``reason`` for it, or,
  with ``atol=None`` and an ``oracle`` (the torch side run in float64), a tolerance *calibrated*
  per case and per output: the jax output must lie within ``FACTOR`` times torch's own float32
  error against the float64 oracle plus ``ULPS`` float32 ulps of the oracle's value
  (:func:`calibrated_bound`).

No vacuous pass: NaN or infinite outputs (even at the same places on both sides), a run that
compared no element, and outputs that are the same on every drawn example (they do not depend on
the input) fail, unless the check opts in with a reason (``allow_nan``, ``allow_empty``,
``allow_constant``).

The library's checks are declared in :mod:`parity.tricks` (one module per family) and collected
by :func:`parity.registry.library_registry`; this module imports neither, so the families and
the registry both build on it without an import circle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

__all__ = [
    "Check",
    "ParityError",
    "Compared",
    "compare_outputs",
    "check_case",
    "explain_failure",
    "calibrated_bound",
    "FACTOR",
    "ULPS",
]

#: calibrated tolerance: the port may be off by FACTOR × torch's own float32 error (against the
#: float64 oracle, per output, per case) — a different but equally good float32 evaluation order
#: lands within a small multiple of it; 8 leaves room for reductions summed in another order
FACTOR = 8.0
#: ... plus ULPS float32 ulps of the largest magnitude in the output or the case's float inputs
#: (and of the smallest normal float32, for XLA's CPU backend flushing subnormals): where torch's
#: float32 result happens to be exact (or shares the oracle's cancellation, e.g. torch's
#: ``0.5·x·(1 + erf(x/√2))`` at x = -11 gives 0 in float32 and float64 alike), a port that
#: rounds differently is still right to a few ulps of the numbers it computed with
ULPS = 4.0
_EPS32 = float(np.finfo(np.float32).eps)
_TINY32 = float(np.finfo(np.float32).tiny)

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
    #: ``None``: calibrated from ``oracle`` (see the module docstring)
    atol: float | None
    rtol: float | None
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
    #: ``oracle(case) -> outputs``: the torch side in float64, for a calibrated tolerance
    oracle: Callable[[Case], Outputs] | None = None
    #: why NaN / infinite outputs are expected (empty: they fail the check)
    allow_nan: str = ""
    #: why a run may compare no element at all (empty: such a run fails)
    allow_empty: str = ""
    #: why outputs may be the same on every drawn example (empty: such a run fails)
    allow_constant: str = ""
    #: further float32 evaluations of the torch side (``f(case) -> outputs``), equally correct
    #: but rounding differently; the calibrated tolerance takes the largest float32 error of all
    references: tuple = ()
    #: case entries that only seed randomness (left out when telling drawn inputs apart)
    seed_args: tuple = ()

    @property
    def calibrated(self) -> bool:
        return self.atol is None

    @property
    def exact(self) -> bool:
        return self.atol == 0 and self.rtol == 0

    @property
    def tolerance(self) -> str:
        if self.calibrated:
            return f"calibrated {FACTOR:g}x f32+{ULPS:g}ulp"
        if self.exact:
            return "exact"
        return f"atol={self.atol:g}" + (f", rtol={self.rtol:g}" if self.rtol else "")


class Compared(tuple):
    """``(max_abs_err, arrays, elements)``: what one comparison looked at."""

    def __new__(cls, max_abs_err: float, arrays: int, elements: int):
        return super().__new__(cls, (max_abs_err, arrays, elements))

    max_abs_err = property(lambda self: self[0])
    arrays = property(lambda self: self[1])
    elements = property(lambda self: self[2])


class ParityError(AssertionError):
    """The two implementations disagree on a case (or return different shapes/dtypes)."""


def calibrated_bound(torch32, oracle, input_scale: float = 0.0, others=()) -> float:
    """The calibrated allowance for one output: ``FACTOR·max|torch32 - oracle| + ULPS·(eps32·S +
    tiny32)`` with ``S`` the largest finite magnitude in the oracle's output or ``input_scale``
    (the case's largest float input); torch's own float32 error is measured over the whole output
    (the largest over ``torch32`` and the further float32 evaluations ``others``)."""
    o = np.asarray(oracle, np.float64)
    own = 0.0
    for t in (torch32, *others):
        t = np.asarray(t, np.float64)
        fin = np.isfinite(t) & np.isfinite(o)
        if fin.any():
            own = max(own, float(np.abs(t - o)[fin].max()))
    finite = np.isfinite(o)
    scale = max(float(np.abs(o[finite]).max()) if finite.any() else 0.0, float(input_scale))
    return FACTOR * own + ULPS * (_EPS32 * scale + _TINY32)


def input_scale(case) -> float:
    """The largest finite magnitude among a case's float arrays (0 when it has none)."""
    if isinstance(case, Mapping):
        return max((input_scale(v) for v in case.values()), default=0.0)
    if isinstance(case, (np.ndarray, np.generic, float)):
        arr = np.asarray(case)
        if arr.dtype.kind == "f" and arr.size:
            fin = arr[np.isfinite(arr)]
            return float(np.abs(fin).max()) if fin.size else 0.0
    return 0.0


def compare_outputs(ours_torch: Outputs, ours_jax: Outputs, *, atol: float | None, rtol: float | None,
                    allow_nan: str = "", oracle: Outputs | None = None, scale: float = 0.0,
                    references=()) -> Compared:
    """Compare two output dicts key by key; return :class:`Compared` ``(max_abs_err, arrays, elements)``.

    Raises :class:`ParityError` on different keys, shapes or dtype kinds, or on values outside
    ``|t - j| <= atol + rtol·|j|`` (exact equality when both are 0). NaNs must sit at the same
    places; infinities must match exactly; and unless ``allow_nan`` gives the reason, a NaN or an
    infinity in an output fails even where both sides agree on it (it proves nothing).

    With ``atol=None`` the float outputs are compared with the oracle (``oracle``: torch in
    float64, same keys) within :func:`calibrated_bound` of torch's own float32 error; integer and
    bool outputs stay exact against torch.
    """
    if set(ours_torch) != set(ours_jax):
        raise ParityError(f"different outputs: torch {sorted(ours_torch)} vs jax {sorted(ours_jax)}")
    calibrated = atol is None
    if calibrated and (oracle is None or set(oracle) != set(ours_torch)):
        got = "none" if oracle is None else sorted(oracle)
        raise ParityError(f"a calibrated tolerance needs the float64 oracle's outputs for {sorted(ours_torch)}, got {got}")
    worst, elements = 0.0, 0
    for key in sorted(ours_torch):
        t = np.asarray(ours_torch[key])
        j = np.asarray(ours_jax[key])
        if t.shape != j.shape:
            raise ParityError(f"{key}: shape torch {t.shape} vs jax {j.shape}")
        if t.dtype.kind != j.dtype.kind and not {t.dtype.kind, j.dtype.kind} <= {"i", "u"}:
            raise ParityError(f"{key}: dtype torch {t.dtype} vs jax {j.dtype}")
        if t.size == 0:
            continue
        elements += t.size
        t64 = t.astype(np.float64)
        j64 = j.astype(np.float64)
        nan_t, nan_j = np.isnan(t64), np.isnan(j64)
        if not np.array_equal(nan_t, nan_j):
            raise ParityError(f"{key}: NaNs at different places")
        finite = np.isfinite(t64) & np.isfinite(j64)
        inf_mismatch = ~finite & ~nan_t & (t64 != j64)
        if inf_mismatch.any():
            raise ParityError(f"{key}: infinities differ")
        if not finite.all() and not allow_nan:
            what = "NaN" if nan_t.any() else "infinite"
            raise ParityError(
                f"{key}: {int((~finite).sum())} of {t.size} values are {what} on both sides — that agreement proves "
                "nothing (pass allow_nan='why' if non-finite outputs are what the function must return)"
            )
        ref, lim = j64, None
        if calibrated and t.dtype.kind == "f":
            o = np.asarray(oracle[key], np.float64)
            if o.shape != t.shape:
                raise ParityError(f"{key}: the float64 oracle has shape {o.shape}, torch {t.shape}")
            finite &= np.isfinite(o)
            lim = calibrated_bound(t64, o, scale, [r[key] for r in references if key in r])
            t64 = o  # the port is compared with the oracle
        with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
            diff = np.where(finite, np.abs(t64 - j64), 0.0)
        err = float(diff.max())
        worst = max(worst, err)
        if lim is not None:
            bound, tol = lim, f"the calibrated tolerance {lim:.3g} ({FACTOR:g}× torch's own float32 error + {ULPS:g} ulps)"
        elif calibrated:  # integer outputs: exact
            bound, tol = np.zeros_like(diff), "exact (integer output)"
        else:
            bound, tol = atol + rtol * np.abs(ref), f"atol={atol:g}, rtol={rtol:g}"
        bad = finite & (diff > bound)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            side = "float64 oracle" if lim is not None else "torch"
            raise ParityError(
                f"{key}: {int(bad.sum())} of {t.size} values differ beyond {tol}; "
                f"max abs err {err:.3g}; first at {idx}: {side} {float(t64[idx])!r} vs jax {float(j64[idx])!r}"
            )
    return Compared(worst, len(ours_torch), elements)


def check_case(trick: Check, case: Case, *, explain: bool = True, record: Callable | None = None) -> Compared:
    """Run one case through both implementations and compare them (raises :class:`ParityError`);
    returns :class:`Compared` ``(max_abs_err, arrays, elements)``.

    When the trick has an ``explain`` hook (and ``explain``), its diagnosis of the case is
    appended to the error; the runners below pass ``explain=False`` while hypothesis shrinks and
    explain the minimal case once (:func:`explain_failure`). ``record(jax_outputs)`` is called
    after a passing comparison (the runners watch for outputs that never change).
    """
    try:
        ours_torch, ours_jax = trick.run_torch(case), trick.run_jax(case)
        oracle, references = None, []
        if trick.calibrated:
            if trick.oracle is None:
                raise ParityError(f"{trick.name}: no tolerance given (atol=None) and no float64 oracle to calibrate one")
            try:
                oracle = trick.oracle(case)
            except Exception as exc:
                raise ParityError(
                    f"the torch side does not run in float64 for the calibrated tolerance ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}) — make it follow its input's dtype (e.g. "
                    "w.to(x.dtype) for a captured tensor), or pass atol/rtol with a reason"
                ) from exc
            references = [f(case) for f in trick.references]
        if set(ours_torch) != set(ours_jax):
            raise ParityError(f"different outputs: torch {sorted(ours_torch)} vs jax {sorted(ours_jax)}")
        groups: dict = {}
        for key in ours_torch:
            prefix = next((p for p in trick.tolerances if key.startswith(p)), None)
            groups.setdefault(prefix, []).append(key)
        worst, count, elements = 0.0, 0, 0
        scale = input_scale(case) if trick.calibrated else 0.0
        for prefix, keys in groups.items():
            atol, rtol = (trick.atol, trick.rtol) if prefix is None else trick.tolerances[prefix]
            err, n, m = compare_outputs(
                {k: ours_torch[k] for k in keys}, {k: ours_jax[k] for k in keys}, atol=atol, rtol=rtol,
                allow_nan=trick.allow_nan, oracle=None if atol is not None else {k: oracle[k] for k in keys if k in oracle},
                scale=scale, references=references,
            )
            worst, count, elements = max(worst, err), count + n, elements + m
        if record is not None:
            record(ours_jax)
        return Compared(worst, count, elements)
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
