"""The registry of cross-framework checks, and running them.

A :class:`~parity.compare.Check` proves that torch_impl and jax_impl compute the same thing on
hypothesis-drawn cases (:mod:`parity.compare`). The library's own checks are declared in
:mod:`parity.tricks` (one module per family, named like the backend modules; each check names
the recipe trick it proves in ``trick``); :func:`library_registry` collects them, and the
``twintricks parity`` command and ``tests/test_parity.py`` both read it. A user's checks live in
a :class:`Registry` of their own (:func:`load_checks`).

``Trick``, ``run_trick``, ``all_tricks`` and ``get_trick`` are the former names of
:class:`~parity.compare.Check`, :func:`run_seeded`, :func:`all_checks` and :func:`get_check`
(kept as aliases: "trick" now means only a recipe trick, :mod:`twintricks.tricks`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from typing import Any, Callable, Mapping

import numpy as np

from parity.compare import Case, Check, ParityError, check_case, compare_outputs, explain_failure

__all__ = [
    "Check",
    "ParityError",
    "Report",
    "Registry",
    "compare_outputs",
    "check_case",
    "run_seeded",
    "all_checks",
    "get_check",
    "load_checks",
    "library_registry",
    "given_cases",
    "CaseRecorder",
    "explain_failure",
    # former names
    "Trick",
    "run_trick",
    "all_tricks",
    "get_trick",
]

@dataclasses.dataclass
class Report:
    """The outcome of :func:`run_seeded` for one check: one row of ``twintricks parity``."""

    name: str
    group: str
    checks: int
    examples: int
    max_abs_err: float
    tolerance: str
    ok: bool
    seconds: float
    failure: str = ""
    #: array elements compared, over all examples
    elements: int = 0


def _fingerprint(value, h=None):
    """A digest of a case or an output dict (arrays by dtype, shape and bytes)."""
    h = h or hashlib.sha1()
    if isinstance(value, Mapping):
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _fingerprint(value[k], h)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _fingerprint(v, h)
    elif isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        arr = np.ascontiguousarray(np.asarray(value))
        if arr.dtype.kind in "fc":
            arr = arr + 0  # -0.0 and 0.0 are the same output
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


class CaseRecorder:
    """Records a run of the check ``trick``: examples and checks counted, the largest error, and the
    last failing case (hypothesis replays the shrunk, minimal example last, so after a failure
    :attr:`failing` is that one). :attr:`body` is the hypothesis test body that checks one case."""

    def __init__(self, trick: Check):
        self.trick = trick
        self.examples = 0
        self.checks = 0
        self.max_abs_err = 0.0
        self.elements = 0
        self.failing: Case | None = None
        self._cases: set = set()
        self._outputs: set = set()

        def record(outputs):
            if not trick.allow_constant and len(self._outputs) < 2:
                case = case_seen[0]
                if isinstance(case, Mapping) and trick.seed_args:
                    case = {k: v for k, v in case.items() if k not in trick.seed_args}
                self._cases.add(_fingerprint(case))
                self._outputs.add(_fingerprint(outputs))

        case_seen: list = [None]

        def body(case):
            case_seen[0] = case
            try:
                err, n, m = check_case(trick, case, explain=False, record=record)
            except Exception:
                self.failing = case
                raise
            self.examples += 1
            self.checks += n
            self.elements += m
            self.max_abs_err = max(self.max_abs_err, err)

        self.body = body

    def finish(self) -> None:
        """After a run that passed every case: raise :class:`ParityError` when it proved nothing —
        no element compared, or the same outputs on every drawn example (unless the check opts in)."""
        if self.elements == 0 and not self.trick.allow_empty:
            raise ParityError(
                f"{self.trick.name}: compared no element in {self.examples} examples (every output empty) — that proves "
                "nothing (pass allow_empty='why' if so)"
            )
        if self.elements and len(self._cases) >= 3 and len(self._outputs) == 1 and not self.trick.allow_constant:
            raise ParityError(
                f"{self.trick.name}: the outputs are the same on all {len(self._cases)} different inputs drawn — they do not "
                "depend on the input, so their agreement proves nothing (pass allow_constant='why' if so)"
            )


def given_cases(trick: Check, body: Callable[[Case], Any]):
    """``body`` as a hypothesis test over ``trick.cases()``, with ``trick.examples`` as explicit
    examples; the caller adds ``settings`` (or inherits the active profile)."""
    from hypothesis import example, given

    test = given(trick.cases())(body)
    for case in reversed(trick.examples):
        test = example(case)(test)
    return test


def run_seeded(trick: Check, *, examples: int = 20, seed: int = 0) -> Report:
    """Try ``trick.examples`` plus ``examples`` hypothesis-drawn cases (hypothesis seeded with
    ``seed``, no example database) of the check ``trick``; never raises: a disagreement is the
    report's ``failure``. What ``twintricks parity`` runs for each row."""
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
        run.finish()
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
        elements=run.elements,
    )


class Registry:
    """An ordered collection of :class:`~parity.compare.Check`\\ s with unique names.

    The library's own checks are :func:`library_registry`; a user's checks live in a
    ``Registry`` of their own (see :func:`load_checks`), so registering one never touches a
    library global. ``twintricks parity --checks MODULE`` runs a user registry with the same
    table and exit code as the library's.
    """

    def __init__(self, checks=()):
        self._checks: dict[str, Check] = {}
        for check in checks:
            self.add(check)

    def add(self, check: Check) -> Check:
        """Register ``check`` (TypeError for anything else, ValueError for a name taken)."""
        if not isinstance(check, Check):
            raise TypeError(f"a Registry holds parity.compare.Check objects, got {type(check).__name__}")
        if check.name in self._checks:
            raise ValueError(f"a check named {check.name!r} is already registered")
        self._checks[check.name] = check
        return check

    def get(self, name: str) -> Check:
        """The check called ``name`` (ValueError listing the names otherwise)."""
        if name not in self._checks:
            raise ValueError(f"unknown trick {name!r}; registered: {', '.join(self._checks)}")
        return self._checks[name]

    def of_trick(self, trick: str) -> list[Check]:
        """The checks of the recipe trick ``trick`` (its id), in registration order."""
        return [c for c in self if c.trick == trick]

    def select(self, names) -> list[Check]:
        """The checks ``twintricks parity --trick NAME ...`` runs: for each name, every check of
        the recipe trick with that id (``crop_flip``: ``resized_crop`` and ``hflip``), else the
        check of that name. ValueError naming both vocabularies for a name that is neither."""
        if isinstance(names, str) or not all(isinstance(n, str) for n in _iterable("names", names)):
            raise TypeError(f"`names` must be a list of trick ids or check names, got {names!r}")
        out: list[Check] = []
        for name in names:
            found = self.of_trick(name) or ([self._checks[name]] if name in self._checks else [])
            if not found:
                tricks = sorted({c.trick for c in self if c.trick})
                raise ValueError(
                    f"unknown trick {name!r}: neither a recipe trick with checks ({', '.join(tricks)}) "
                    f"nor a check ({', '.join(self._checks)})"
                )
            out += [c for c in found if c not in out]
        return out

    def __iter__(self):
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)

    def __contains__(self, name) -> bool:
        return name in self._checks

    def names(self) -> list[str]:
        return list(self._checks)

    def run(self, *, examples: int = 20, seed: int = 0) -> list[Report]:
        """:func:`run_seeded` for every check, in registration order."""
        return [run_seeded(c, examples=examples, seed=seed) for c in self]


def library_registry() -> Registry:
    """A new :class:`Registry` holding the library's own checks (the ``CHECKS`` of the
    :mod:`parity.tricks` modules)."""
    from parity.tricks import CHECKS

    names = [c.name for c in CHECKS]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"check names registered twice: {sorted(dupes)}")
    return Registry(CHECKS)


def load_checks(module_name: str) -> Registry:
    """The checks a user module declares, in a new :class:`Registry`.

    The module (imported by name, e.g. ``"mypkg.parity_checks"``; it must be importable, i.e. on
    ``sys.path``) declares its checks either as ``CHECKS``, a list of :class:`~parity.compare.Check`
    (built with :func:`parity.functions.function_check`, :func:`parity.modules.module_check`,
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
        for check in checks:
            registry.add(check)
    if register is not None:
        register(registry)
    if not len(registry):
        raise ValueError(f"module {module_name!r} registers no checks")
    return registry


def all_checks() -> dict[str, Check]:
    """Every check of the library, by name, in registration order."""
    return {c.name: c for c in library_registry()}


def get_check(name: str) -> Check:
    """The library's check called ``name`` (ValueError listing the names otherwise)."""
    return library_registry().get(name)


# former names (see the module docstring)
Trick = Check
run_trick = run_seeded
all_tricks = all_checks
get_trick = get_check


def _iterable(name: str, value):
    """``value`` as a list; a ``TypeError`` naming ``name`` when it is not iterable."""
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a list of names, got {type(value).__name__} {value!r}") from None
