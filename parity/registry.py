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

__all__ = [
    "Trick",
    "ParityError",
    "Report",
    "Registry",
    "compare_outputs",
    "check_case",
    "run_trick",
    "all_tricks",
    "get_trick",
    "load_checks",
    "library_registry",
    "given_cases",
    "CaseRecorder",
    "explain_failure",
]

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
    #: optional ``explain(case) -> str``: called on a disagreeing case, its text is appended to
    #: the failure (the module checks use it to name the first layer that differs)
    explain: Callable[[Case], str] | None = None
    #: ``{output-name prefix: (atol, rtol)}``: outputs whose name starts with a prefix are compared
    #: with that tolerance instead (e.g. running statistics, tighter than gradients); the reason
    #: covers them
    tolerances: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

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
                f"max abs err {err:.3g}; first at {idx}: torch {float(t64[idx])!r} vs jax {float(j64[idx])!r}"
            )
    return worst, len(ours_torch)


def check_case(trick: Trick, case: Case, *, explain: bool = True) -> tuple[float, int]:
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


def explain_failure(trick: Trick, case: Case, message: str) -> str:
    """``message`` followed by ``trick.explain(case)`` (when the trick has one)."""
    if trick.explain is None:
        return message
    try:
        note = trick.explain(case)
    except Exception as inner:  # the diagnosis must never hide the disagreement itself
        note = f"(no diagnosis: {type(inner).__name__}: {inner})"
    return f"{message}; {note}" if note else message


class CaseRecorder:
    """Records a check's run of ``trick``: examples and checks counted, the largest error, and the
    last failing case (hypothesis replays the shrunk, minimal example last, so after a failure
    :attr:`failing` is that one). :attr:`body` is the hypothesis test body that checks one case."""

    def __init__(self, trick: Trick):
        self.trick = trick
        self.examples = 0
        self.checks = 0
        self.max_abs_err = 0.0
        self.failing: Case | None = None

        def body(case):
            try:
                err, n = check_case(trick, case, explain=False)
            except Exception:
                self.failing = case
                raise
            self.examples += 1
            self.checks += n
            self.max_abs_err = max(self.max_abs_err, err)

        self.body = body


def given_cases(trick: Trick, body: Callable[[Case], Any]):
    """``body`` as a hypothesis test over ``trick.cases()``, with ``trick.examples`` as explicit
    examples; the caller adds ``settings`` (or inherits the active profile)."""
    from hypothesis import example, given

    test = given(trick.cases())(body)
    for case in reversed(trick.examples):
        test = example(case)(test)
    return test


def run_trick(trick: Trick, *, examples: int = 20, seed: int = 0) -> Report:
    """Try ``trick.examples`` plus ``examples`` hypothesis-drawn cases (seeded); never raises."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import seed as hseed

    run = CaseRecorder(trick)
    test = given_cases(trick, run.body)
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
        message = str(exc)
        if isinstance(exc, ParityError) and run.failing is not None:
            message = explain_failure(trick, run.failing, message)
        failure = f"{type(exc).__name__}: {message}".strip().splitlines()[0][:300]
    return Report(
        name=trick.name,
        group=trick.group,
        checks=run.checks,
        examples=run.examples,
        max_abs_err=run.max_abs_err if not failure else math.nan,
        tolerance=trick.tolerance,
        ok=not failure,
        seconds=time.perf_counter() - start,
        failure=failure,
    )


class Registry:
    """An ordered collection of checks (:class:`Trick`\\ s) with unique names.

    The library's own checks are :func:`library_registry`; a user's checks live in a
    ``Registry`` of their own (see :func:`load_checks`), so registering one never touches a
    library global. ``twintricks parity --checks MODULE`` runs a user registry with the same
    table and exit code as the library's.
    """

    def __init__(self, checks=()):
        self._checks: dict[str, Trick] = {}
        for trick in checks:
            self.add(trick)

    def add(self, trick: Trick) -> Trick:
        """Register ``trick`` (TypeError for anything else, ValueError for a name taken)."""
        if not isinstance(trick, Trick):
            raise TypeError(f"a Registry holds parity.registry.Trick objects, got {type(trick).__name__}")
        if trick.name in self._checks:
            raise ValueError(f"a check named {trick.name!r} is already registered")
        self._checks[trick.name] = trick
        return trick

    def get(self, name: str) -> Trick:
        """The check called ``name`` (ValueError listing the names otherwise)."""
        if name not in self._checks:
            raise ValueError(f"unknown trick {name!r}; registered: {', '.join(self._checks)}")
        return self._checks[name]

    def __iter__(self):
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)

    def __contains__(self, name) -> bool:
        return name in self._checks

    def names(self) -> list[str]:
        return list(self._checks)

    def run(self, *, examples: int = 20, seed: int = 0) -> list[Report]:
        """:func:`run_trick` for every check, in registration order."""
        return [run_trick(t, examples=examples, seed=seed) for t in self]


def library_registry() -> Registry:
    """A new :class:`Registry` holding the library's own tricks (:mod:`parity.tricks`)."""
    from parity.tricks import TRICKS

    names = [t.name for t in TRICKS]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"trick names registered twice: {sorted(dupes)}")
    return Registry(TRICKS)


def load_checks(module_name: str) -> Registry:
    """The checks a user module declares, in a new :class:`Registry`.

    The module (imported by name, e.g. ``"mypkg.parity_checks"``; it must be importable, i.e. on
    ``sys.path``) declares its checks either as ``CHECKS``, a list of :class:`Trick` (built with
    :func:`parity.functions.function_check`, :func:`parity.modules.module_check`,
    :func:`parity.optim_state.optimizer_check` or by hand), or as a function
    ``register(registry)`` that adds them to the registry it is given. ImportError if the module
    cannot be imported, ValueError if it declares neither or no check at all.
    """
    import importlib

    if not isinstance(module_name, str) or not module_name:
        raise TypeError(f"module_name must be a module name like 'mypkg.checks', got {module_name!r}")
    module = importlib.import_module(module_name)
    registry = Registry()
    register = getattr(module, "register", None)
    checks = getattr(module, "CHECKS", None)
    if register is None and checks is None:
        raise ValueError(f"module {module_name!r} defines neither CHECKS (a list of checks) nor register(registry)")
    if checks is not None:
        for trick in checks:
            registry.add(trick)
    if register is not None:
        register(registry)
    if not len(registry):
        raise ValueError(f"module {module_name!r} registers no checks")
    return registry


def all_tricks() -> dict[str, Trick]:
    """Every registered trick of the library, by name, in registration order."""
    return {t.name: t for t in library_registry()}


def get_trick(name: str) -> Trick:
    """The registered trick called ``name`` (ValueError listing the names otherwise)."""
    tricks = all_tricks()
    if name not in tricks:
        raise ValueError(f"unknown trick {name!r}; registered: {', '.join(tricks)}")
    return tricks[name]
