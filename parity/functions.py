"""Check your own port: is a torch function the same function as a jax one?

:func:`check` draws inputs with hypothesis, runs both functions, compares every output with a
stated tolerance and, when they disagree, raises :class:`~parity.registry.ParityError` with
hypothesis's shrunk, minimal counterexample. It is built on the registry's machinery:
:func:`function_check` wraps the two functions into a :class:`~parity.registry.Trick` (the
same record the library's own tricks use), :func:`check` runs it with
:func:`~parity.registry.check_case` under the active hypothesis profile, and the same ``Trick``
in a user module's ``CHECKS`` list runs from the command line (``twintricks parity --checks
mypkg.mymodule``, see :func:`parity.registry.load_checks`).

Inputs are hypothesis strategies (or constants) by argument name; :mod:`parity.strategies`
has the library's own: ``image_batches(dtype=, shape=)`` (NHWC), ``int_labels``,
``soft_targets``, ``logits``, and every trick's parameter record. Conversion per argument:

* an argument named in ``images``: drawn NHWC; torch gets an NCHW ``torch.Tensor``, jax an NHWC
  ``jax.Array`` (:func:`parity.convert.images_to_torch`); image outputs named in
  ``image_outputs`` are brought back to NHWC before comparing;
* an argument named in ``keys``: a drawn 32-bit seed; torch gets ``torch.Generator`` seeded with
  it, jax ``jax.random.key(seed)``. The two random streams differ, so only results that do not
  depend on the stream (or that the test makes independent of it) can be compared;
* any other NumPy array: a torch tensor of the same dtype, a jax array (integers as int32 and
  float64 as float32 unless x64 is enabled: jax's defaults); a dict of arrays (a parameter
  record) becomes a dict of tensors / jax arrays; Python scalars and strings pass unchanged.

Outputs may be an array, a tuple/list, a ``NamedTuple`` or a dict of arrays (named ``out``,
``out[0]``…, field names, keys).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from parity.convert import images_from_torch, images_to_torch, to_jax, to_numpy, to_torch
from parity.registry import CaseRecorder, ParityError, Report, Trick, explain_failure, given_cases

__all__ = ["check", "function_check", "run_check"]


def _names(value, what: str) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise TypeError(f"{what} must be a name or a sequence of argument names, got {value!r}") from None
    if not all(isinstance(v, str) for v in out):
        raise TypeError(f"{what} must hold argument names (str), got {value!r}")
    return out


def _cases_strategy(inputs, keys: tuple):
    from hypothesis import strategies as st

    from parity.strategies import seeds

    if isinstance(inputs, st.SearchStrategy):
        if keys:
            return st.tuples(inputs, st.fixed_dictionaries({k: seeds() for k in keys})).map(lambda t: {**t[0], **t[1]})
        return inputs
    if not isinstance(inputs, Mapping):
        raise TypeError(
            "inputs must be a dict {argument name: hypothesis strategy or constant} or a strategy "
            f"drawing such dicts, got {type(inputs).__name__}"
        )
    fields = {k: (v if isinstance(v, st.SearchStrategy) else st.just(v)) for k, v in inputs.items()}
    for k in keys:
        fields[k] = seeds()
    return st.fixed_dictionaries(fields)


def _convert_torch(value):
    if isinstance(value, np.ndarray) or (isinstance(value, np.generic) and not isinstance(value, np.bool_)):
        return to_torch(np.array(value))
    if isinstance(value, Mapping):
        return {k: _convert_torch(v) for k, v in value.items()}
    return value


def _convert_jax(value):
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        import jax

        if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            arr = arr.astype(np.int32 if arr.dtype.kind == "i" else np.uint32)
        return to_jax(arr)
    if isinstance(value, Mapping):
        return {k: _convert_jax(v) for k, v in value.items()}
    return value


def _flatten_outputs(out, prefix: str = "out") -> dict:
    """Outputs as ``{name: value}``: an array is ``out``, a tuple ``out[i]``, a NamedTuple or a
    dict its field names / keys (nested ones joined with ``.``)."""
    if isinstance(out, Mapping):
        res = {}
        for k, v in out.items():
            res.update(_flatten_outputs(v, str(k)) if isinstance(v, (Mapping, tuple, list)) else {str(k): v})
        return res
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return _flatten_outputs(dict(zip(out._fields, out)), prefix)
    if isinstance(out, (tuple, list)):
        res = {}
        for i, v in enumerate(out):
            name = f"{prefix}[{i}]"
            res.update(_flatten_outputs(v, name) if isinstance(v, (Mapping, tuple, list)) else {name: v})
        return res
    return {prefix: out}


@dataclasses.dataclass(frozen=True)
class _Adapter:
    """Turns a drawn case (a dict of NumPy values) into one framework's call and NumPy outputs."""

    fn: Callable
    framework: str
    images: tuple
    keys: tuple
    image_outputs: Any
    #: the float64 oracle: float inputs as float64, torch's default dtype float64 during the call
    float64: bool = False

    def __call__(self, case):
        if not self.float64:
            return self._call(case)
        import torch

        case = {k: _as_float64(v) for k, v in case.items()}
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return self._call(case)
        finally:
            torch.set_default_dtype(old)

    def _call(self, case):
        kwargs = {}
        for name, value in case.items():
            if name in self.keys:
                kwargs[name] = _generator(int(value)) if self.framework == "torch" else _key(int(value))
            elif name in self.images:
                arr = np.asarray(value)
                if arr.ndim < 3:
                    raise ValueError(f"image argument {name!r} must be [..., H, W, C] (NHWC), got shape {arr.shape}")
                kwargs[name] = images_to_torch(arr) if self.framework == "torch" else to_jax(arr)
            else:
                kwargs[name] = _convert_torch(value) if self.framework == "torch" else _convert_jax(value)
        outs = _flatten_outputs(self.fn(**kwargs))
        res = {}
        for name, value in outs.items():
            arr = to_numpy(value)
            if self.framework == "torch" and self._is_image_output(name, arr):
                arr = images_from_torch(arr)
            res[name] = arr
        return res

    def _is_image_output(self, name, arr) -> bool:
        if self.image_outputs is True:
            return arr.ndim >= 3
        return name in self.image_outputs


def _as_float64(value):
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind == "f":
        return np.asarray(value, np.float64)
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return {k: _as_float64(v) for k, v in value.items()}
    return value


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _key(seed: int):
    import jax

    return jax.random.key(seed)


def function_check(
    name: str,
    torch_fn: Callable,
    jax_fn: Callable,
    *,
    inputs,
    images: str | Iterable[str] = (),
    image_outputs: bool | str | Iterable[str] = (),
    keys: str | Iterable[str] = (),
    atol: float | None = None,
    rtol: float | None = None,
    reason: str = "",
    group: str = "user",
    explicit: Iterable[Mapping] = (),
    allow_nan: str = "",
    allow_empty: str = "",
    allow_constant: str = "",
) -> Trick:
    """A :class:`~parity.registry.Trick` comparing ``torch_fn(**case)`` with ``jax_fn(**case)``.

    Args:
        name: the check's name (its row in ``twintricks parity``).
        torch_fn, jax_fn: called with keyword arguments, one per input name.
        inputs: ``{argument name: hypothesis strategy or constant}``, or a strategy drawing such
            dicts (e.g. ``parity.strategies.label_smoothing_cases()``); arrays as NumPy, images NHWC.
        images: the arguments that are image batches (NHWC drawn; NCHW for torch).
        image_outputs: outputs (by name: ``out``, ``out[0]``, a field or key) that torch returns
            NCHW and are compared NHWC; ``True`` for every output with >= 3 dimensions.
        keys: arguments that receive randomness: a ``torch.Generator`` / a ``jax.random.key``
            made from one drawn seed.
        atol, rtol: ``|torch - jax| <= atol + rtol·|jax|`` per element (both 0: bit-identical).
            Both ``None`` (the default): calibrated per case and output — ``torch_fn`` also runs
            in float64 (float inputs as float64, ``torch.set_default_dtype(torch.float64)``) as
            the oracle, and ``jax_fn`` must stay within :data:`parity.compare.FACTOR` times
            torch's own float32 error against it plus :data:`parity.compare.ULPS` ulps; integer
            outputs are compared exactly.
        reason: why this tolerance (required with an explicit one): e.g. "float32 reductions in
            a different order, a few ulps of values <= 10".
        group: the group column of the table.
        explicit: explicit cases (dicts like the drawn ones) always tried first — keep the
            counterexamples hypothesis found here.
        allow_nan, allow_empty, allow_constant: by default a NaN or infinite output, a run that
            compares no element, and outputs that are the same for every drawn input (at least 3
            different ones, ``keys`` aside) fail (they prove nothing); a non-empty string (the
            reason) allows them.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    for what, fn in (("torch_fn", torch_fn), ("jax_fn", jax_fn)):
        if not callable(fn):
            raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
    if torch_fn is jax_fn:
        raise ValueError(
            "torch_fn and jax_fn are the very same object: comparing an implementation with itself proves nothing"
        )
    atol, rtol = _tolerance(atol, rtol, reason)
    images_t, keys_t = _names(images, "images"), _names(keys, "keys")
    outs = image_outputs if image_outputs is True else _names(image_outputs, "image_outputs")
    if isinstance(inputs, Mapping):
        missing = [k for k in images_t if k not in inputs]
        if missing:
            raise ValueError(f"images names {missing} that are not among the inputs {list(inputs)}")
    strategy = _cases_strategy(inputs, keys_t)
    return Trick(
        name=name,
        group=group,
        cases=lambda: strategy,
        run_torch=_Adapter(torch_fn, "torch", images_t, keys_t, outs),
        run_jax=_Adapter(jax_fn, "jax", images_t, keys_t, outs),
        atol=atol,
        rtol=rtol,
        reason=reason or ("calibrated from torch in float64" if atol is None else ""),
        examples=tuple(explicit),
        oracle=_Adapter(torch_fn, "torch", images_t, keys_t, outs, float64=True) if atol is None else None,
        allow_nan=_why(allow_nan, "allow_nan"),
        allow_empty=_why(allow_empty, "allow_empty"),
        allow_constant=_why(allow_constant, "allow_constant"),
        seed_args=keys_t,
    )


def _why(value, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be the reason (a str), got {type(value).__name__}")
    return value.strip()


def _tolerance(atol, rtol, reason) -> tuple:
    """``(atol, rtol)`` checked; ``(None, None)`` when neither is given (calibrated)."""
    if atol is None and rtol is None:
        return None, None
    atol, rtol = atol or 0.0, rtol or 0.0
    for what, v in (("atol", atol), ("rtol", rtol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
            # an infinite tolerance would pass any two outputs: a check that proves nothing
            raise ValueError(f"{what} must be a finite number >= 0, got {v!r}")
    if (atol or rtol) and (not isinstance(reason, str) or not reason.strip()):
        raise ValueError("a tolerance needs its reason: pass reason='why these two may differ by this much'")
    return float(atol), float(rtol)


def _describe(value, indent: str = "    ") -> str:
    if isinstance(value, np.ndarray) and value.size > 32:
        flat = value.reshape(-1)
        if flat.size and np.all(flat == flat[0]):
            return f"array of shape {value.shape}, dtype {value.dtype}, every element {flat[0]!r}"
        return (
            f"array of shape {value.shape}, dtype {value.dtype}, min {value.min()!r}, max {value.max()!r}"
            " (hypothesis's \"Falsifying example\" note on the cause prints it in full)"
        )
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=8, threshold=64, edgeitems=3):
            body = np.array2string(value, separator=", ", prefix=indent)
        return f"array({body}, dtype={value.dtype}, shape={value.shape})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v, indent)}" for k, v in value.items()) + "}"
    return repr(value)


def run_check(trick: Trick, *, examples: int | None = None) -> Report:
    """Run ``trick`` under the active hypothesis settings (the test suite's profile under
    pytest; ``examples`` overrides its number of drawn examples); return its
    :class:`~parity.registry.Report` or raise :class:`~parity.registry.ParityError` naming the
    minimal, shrunk counterexample."""
    import time

    from hypothesis import settings

    run = CaseRecorder(trick)
    from hypothesis import HealthCheck

    # No deadline: the first call of every shape compiles (XLA, oneDNN), which a per-example
    # deadline would report as a flaky failure. Everything else comes from the active profile.
    suppress = set(settings.default.suppress_health_check) | {HealthCheck.too_slow, HealthCheck.data_too_large}
    options: dict = dict(deadline=None, suppress_health_check=list(suppress))
    if examples is not None:
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
            raise ValueError(f"examples must be an int >= 1, got {examples!r}")
        options["max_examples"] = examples
    test = settings(parent=settings.default, **options)(given_cases(trick, run.body))
    start = time.perf_counter()
    try:
        test()
        run.finish()
    except Exception as exc:
        case = run.failing
        lines = [f"{trick.name}: torch and jax disagree ({trick.tolerance}; {trick.reason or 'exact'})"]
        message = str(exc)
        if isinstance(exc, ParityError) and case is not None:
            message = explain_failure(trick, case, message)
        lines.append(f"  {type(exc).__name__}: {message}")
        if case is not None:
            lines.append("  minimal counterexample (shrunk by hypothesis):")
            lines += [f"    {k} = {_describe(v)}" for k, v in case.items()]
        raise ParityError("\n".join(lines)) from exc
    return Report(
        name=trick.name,
        group=trick.group,
        checks=run.checks,
        examples=run.examples,
        max_abs_err=run.max_abs_err,
        tolerance=trick.tolerance,
        ok=True,
        seconds=time.perf_counter() - start,
        elements=run.elements,
    )


def check(
    torch_fn: Callable,
    jax_fn: Callable,
    *,
    inputs,
    images: str | Iterable[str] = (),
    image_outputs: bool | str | Iterable[str] = (),
    keys: str | Iterable[str] = (),
    atol: float | None = None,
    rtol: float | None = None,
    reason: str = "",
    examples: int | None = None,
    explicit: Iterable[Mapping] = (),
    name: str | None = None,
    allow_nan: str = "",
    allow_empty: str = "",
    allow_constant: str = "",
) -> Report:
    """Prove on hypothesis-drawn inputs that ``torch_fn`` and ``jax_fn`` compute the same thing.

    The arguments are those of :func:`function_check` (``name`` defaults to the functions'
    names). Runs under the active hypothesis settings — in a test suite, its profile (number of
    examples, derandomization, database); ``examples=N`` overrides the number of drawn
    examples, for scripts — and returns the :class:`~parity.registry.Report`;
    on a disagreement raises :class:`~parity.registry.ParityError` (an ``AssertionError``, so
    pytest shows it as a failure) whose message names the output that differs, the size of the
    difference and hypothesis's shrunk minimal counterexample, argument by argument.

    Example::

        from hypothesis import strategies as st
        from parity import check, strategies as S

        check(torch_softmax, jax_softmax, inputs={"x": S.logits(4, 10)})  # calibrated tolerance
    """
    if name is None:
        name = f"{getattr(torch_fn, '__name__', 'torch_fn')} vs {getattr(jax_fn, '__name__', 'jax_fn')}"
    trick = function_check(
        name, torch_fn, jax_fn, inputs=inputs, images=images, image_outputs=image_outputs, keys=keys,
        atol=atol, rtol=rtol, reason=reason, explicit=explicit,
        allow_nan=allow_nan, allow_empty=allow_empty, allow_constant=allow_constant,
    )
    return run_check(trick, examples=examples)
