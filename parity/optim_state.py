"""Optimizer state between torch and optax, and the optimizer check.

A run moves between frameworks without restarting its moments: :func:`torch_to_optax_state`
fills an optax state (its structure taken from ``tx.init(params)``) from a torch optimizer's
``state_dict()``, and :func:`optax_to_torch_state` does the reverse, by field:

========================  ==================================  =================================
optax state field          torch per-parameter state           optimizers
========================  ==================================  =================================
``count``                  ``step`` (one value for all)        Adam/AdamW, AdaBound family;
                                                               every ``count`` of the chain
                                                               (``ScaleByScheduleState`` too)
``mu``                     ``exp_avg``                         Adam/AdamW, AdaBound family
``nu``                     ``exp_avg_sq``                      Adam/AdamW, AdaBound family
``nu_max``                 ``max_exp_avg_sq``                  AMSBound, Adam(amsgrad)
``trace``                  ``momentum_buffer``                 SGD with momentum
========================  ==================================  =================================

Each moment is converted like the weight it belongs to (conv OIHW ↔ HWIO, Linear transposed,
a flatten permutation…) through the :class:`parity.modules.WeightMap` of the model, or, for
plain parameters, by name (``{name: array}`` params in optax, the same names in torch's order).
Anything else in the optax state that holds arrays (an ``inject_hyperparams`` state, a
transformation this table does not know) is an error, never skipped; so is a torch state
whose parameters have different ``step`` counts (optax keeps one).

:func:`optimizer_check` / :func:`check_optimizer` compare a torch optimizer with an optax
transformation over a hypothesis-drawn gradient trajectory (float64), and check that the torch
state converted at the end equals the optax state.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from parity.convert import to_numpy
from parity.registry import Trick

__all__ = [
    "NamedParams",
    "torch_to_optax_state",
    "optax_to_torch_state",
    "optimizer_check",
    "check_optimizer",
    "optimizer_cases",
    "FIELDS",
]

#: optax state field -> torch per-parameter state key (``count`` is ``step``)
FIELDS = {"mu": "exp_avg", "nu": "exp_avg_sq", "nu_max": "max_exp_avg_sq", "trace": "momentum_buffer"}


class NamedParams:
    """The identity mapping for plain parameters: optax params ``{name: array}``, torch
    parameters in the order of ``names``; the interface of :class:`parity.modules.WeightMap`
    that the state conversion uses."""

    def __init__(self, names: Iterable[str]):
        self.param_names = list(names)

    def flax_key(self, name: str) -> tuple:
        return ("params", (name,))

    def leaf_to_flax(self, name: str, arr) -> tuple:
        return "params", (name,), np.array(to_numpy(arr), copy=True)  # never a view of torch's memory

    def leaf_to_torch(self, name: str, arr) -> np.ndarray:
        return np.array(to_numpy(arr), copy=True)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _tree_paths(tree, prefix=()) -> dict:
    """``{path: leaf}`` of a params-like nested dict (linen params, or ``{name: array}``)."""
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_tree_paths(v, prefix + (k,)))
        return out
    return {prefix: tree}


def _set_paths(tree, values: Mapping, prefix=()):
    if isinstance(tree, Mapping):
        return {k: _set_paths(v, values, prefix + (k,)) for k, v in tree.items()}
    return values[prefix]


def _torch_states(opt_state_dict: Mapping, names: list) -> dict:
    """``{torch param name: its state dict}`` (empty for a parameter never stepped)."""
    groups = opt_state_dict["param_groups"]
    indices = [i for g in groups for i in g["params"]]
    if len(indices) != len(names):
        raise ValueError(
            f"the torch optimizer holds {len(indices)} parameters, the weight map {len(names)} "
            "(build the optimizer on module.parameters(), or pass param_names in its order)"
        )
    state = opt_state_dict["state"]
    return {name: dict(state.get(i, state.get(str(i), {}))) for name, i in zip(names, indices)}


def torch_to_optax_state(opt_state_dict: Mapping, template, weight_map, *, param_names: list | None = None):
    """An optax state like ``template`` (e.g. ``tx.init(params)``) holding a torch optimizer's state.

    Args:
        opt_state_dict: ``optimizer.state_dict()`` (tensors or NumPy arrays).
        template: the optax state to fill (its structure, dtypes and hyperparameter-free fields).
        weight_map: a :class:`parity.modules.WeightMap` (model parameters) or :class:`NamedParams`.
        param_names: the torch parameter names in the optimizer's order (default: the map's
            ``param_names``, i.e. ``module.named_parameters()`` order).

    Raises ValueError for a state field it cannot fill, or parameters with different ``step``.
    """
    import jax.numpy as jnp

    names = list(param_names if param_names is not None else weight_map.param_names)
    states = _torch_states(opt_state_dict, names)
    steps = {int(to_numpy(s["step"])) for s in states.values() if "step" in s}
    if len(steps) > 1:
        raise ValueError(f"torch parameters have different step counts {sorted(steps)}; optax keeps one count")
    step = steps.pop() if steps else 0
    by_flax = {weight_map.flax_key(n)[1]: n for n in names}

    def moments(tree, torch_key, field):
        paths = _tree_paths(tree)
        values = {}
        for path, leaf in paths.items():
            name = by_flax.get(path)
            if name is None:
                raise ValueError(f"optax state {field} has a leaf at {'/'.join(map(str, path))} that no torch parameter maps to")
            src = states[name].get(torch_key)
            if src is None:
                if states[name]:
                    raise ValueError(f"torch state of {name!r} has no {torch_key!r} (it has {sorted(states[name])})")
                arr = np.zeros(np.shape(leaf))
            else:
                arr = weight_map.leaf_to_flax(name, src)[2]
            if arr.shape != tuple(np.shape(leaf)):
                raise ValueError(f"{name}.{torch_key} converts to {arr.shape}, optax {field} leaf is {np.shape(leaf)}")
            # a fresh jax buffer: jnp.asarray may alias a NumPy array (and that one torch's memory)
            values[path] = jnp.array(np.array(arr, copy=True), dtype=jnp.asarray(leaf).dtype, copy=True)
        return _set_paths(tree, values)

    def fill(node, where):
        if node is None:
            return None
        if _is_namedtuple(node):
            fields = {}
            for f, v in zip(node._fields, node):
                if f == "count":
                    fields[f] = jnp.asarray(step, dtype=jnp.asarray(v).dtype)
                elif f in FIELDS and v is not None:
                    fields[f] = moments(v, FIELDS[f], f"{type(node).__name__}.{f}")
                else:
                    fields[f] = fill(v, f"{where}{type(node).__name__}.{f}/")
            return type(node)(**fields)
        if isinstance(node, (tuple, list)):
            return type(node)(fill(v, f"{where}{i}/") for i, v in enumerate(node))
        if isinstance(node, Mapping):
            if node:
                raise ValueError(f"optax state at {where or '(root)'} is a dict this converter does not know (e.g. inject_hyperparams)")
            return node
        if hasattr(node, "shape"):
            raise ValueError(f"optax state leaf at {where or '(root)'} has no torch counterpart in {sorted(FIELDS)} or count")
        return node

    return fill(template, "")


def optax_to_torch_state(opt_state, optimizer, weight_map, *, param_names: list | None = None) -> dict:
    """A ``state_dict()`` for the torch ``optimizer`` holding an optax state (load it with
    ``optimizer.load_state_dict``). ``step`` takes the type torch's optimizer uses (a float32
    tensor for ``torch.optim.Adam``/``AdamW``, a Python int for :class:`torch_impl.optim.AdaBound`)."""
    import torch

    names = list(param_names if param_names is not None else weight_map.param_names)
    template = optimizer.state_dict()
    groups = template["param_groups"]
    indices = [i for g in groups for i in g["params"]]
    if len(indices) != len(names):
        raise ValueError(f"the torch optimizer holds {len(indices)} parameters, the weight map {len(names)}")
    counts, fields = [], {}

    def walk(node):
        if node is None:
            return
        if _is_namedtuple(node):
            for f, v in zip(node._fields, node):
                if f == "count":
                    counts.append(int(np.asarray(v)))
                elif f in FIELDS and v is not None:
                    if f in fields:
                        raise ValueError(f"optax state has two {f!r} fields; which one torch's {FIELDS[f]} is, is ambiguous")
                    fields[f] = v
                else:
                    walk(v)
        elif isinstance(node, (tuple, list)):
            for v in node:
                walk(v)
        elif isinstance(node, Mapping) and node:
            raise ValueError("optax state holds a dict this converter does not know (e.g. inject_hyperparams)")
        elif hasattr(node, "shape"):
            raise ValueError("optax state holds an array outside the fields this converter knows")

    walk(opt_state)
    if len(set(counts)) > 1:
        raise ValueError(f"optax state has different counts {sorted(set(counts))}")
    step = counts[0] if counts else None
    tensor_step = isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
    existing = template["state"]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    out_state = {}
    trees = {f: _tree_paths(v) for f, v in fields.items()}
    for name, i, p in zip(names, indices, params):
        entry: dict = {}
        if step is not None:
            old = existing.get(i, {}).get("step")
            as_tensor = isinstance(old, torch.Tensor) if old is not None else tensor_step
            entry["step"] = torch.tensor(float(step), dtype=torch.float32) if as_tensor else int(step)
        path = weight_map.flax_key(name)[1]
        for f, tree in trees.items():
            arr = weight_map.leaf_to_torch(name, tree[path])
            entry[FIELDS[f]] = torch.from_numpy(np.array(arr, dtype=to_numpy(p).dtype)).to(p.device)
        out_state[i] = entry
    return {"state": out_state, "param_groups": groups}


# ------------------------------------------------------------------------------ the check


def optimizer_cases(*, max_steps: int = 8):
    """A strategy of optimizer trajectory cases: ``params`` (a small float64 array, see
    :func:`parity.strategies.param_shapes`) and ``grads`` ``[T, *shape]`` with per-step
    magnitudes from 1e-6 to 1e2 (:func:`parity.strategies.gradient_sequences`)."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from parity.strategies import gradient_sequences, param_shapes

    @st.composite
    def cases(draw):
        shape = draw(param_shapes())
        steps = draw(st.integers(1, max_steps))
        params = draw(hnp.arrays(np.float64, shape, elements=st.floats(-10.0, 10.0)))
        return dict(params=params, grads=draw(gradient_sequences(steps, shape)))

    return cases()


def _x64():
    import jax

    return jax.enable_x64(True)


def optimizer_check(
    name: str,
    torch_optimizer: Callable[[list], Any],
    optax_tx: Callable[[], Any] | Any,
    *,
    cases=None,
    atol: float,
    rtol: float = 0.0,
    reason: str,
    dtype: str = "float64",
    group: str = "optim",
) -> Trick:
    """A :class:`~parity.registry.Trick` comparing ``torch_optimizer([param])`` with ``optax_tx``.

    Both take the same drawn gradients (the trajectories cannot feed back into them) for a
    parameter called ``"p"``; outputs: the parameter after each step (``trajectory``) and the
    final state, torch's converted by :func:`torch_to_optax_state` (``state/mu``…): so the check
    also proves the conversion. ``dtype="float64"`` runs jax inside ``jax.enable_x64``.

    Args:
        torch_optimizer: ``params -> torch.optim.Optimizer`` (e.g. ``lambda ps: torch.optim.Adam(ps, lr=1e-2)``).
        optax_tx: an ``optax.GradientTransformation`` or a zero-argument factory of one.
        cases: a strategy of ``{"params", "grads"}`` (default :func:`optimizer_cases`).
    """
    import torch

    from parity.functions import _tolerance

    atol, rtol = _tolerance(atol, rtol, reason)
    strategy = cases if cases is not None else optimizer_cases()
    named = NamedParams(["p"])

    def make_tx():
        return optax_tx() if callable(optax_tx) and not hasattr(optax_tx, "init") else optax_tx

    def run_torch(case):
        tdtype = getattr(torch, dtype)
        p = torch.nn.Parameter(torch.tensor(np.asarray(case["params"]), dtype=tdtype))
        opt = torch_optimizer([p])
        traj = []
        for g in np.asarray(case["grads"]):
            p.grad = torch.tensor(g, dtype=tdtype)
            opt.step()
            traj.append(p.detach().clone().numpy())
        out = {"trajectory": np.stack(traj)}
        with _x64() if dtype == "float64" else contextlib.nullcontext():
            import jax.numpy as jnp

            template = make_tx().init({"p": jnp.asarray(case["params"], dtype=dtype)})
            state = torch_to_optax_state(opt.state_dict(), template, named)
            out.update(_state_outputs(state))
        return out

    def run_jax(case):
        import jax.numpy as jnp
        import optax

        with _x64() if dtype == "float64" else contextlib.nullcontext():
            tx = make_tx()
            params = {"p": jnp.asarray(np.asarray(case["params"]), dtype=dtype)}
            state = tx.init(params)
            traj = []
            for g in np.asarray(case["grads"]):
                updates, state = tx.update({"p": jnp.asarray(g, dtype=dtype)}, state, params)
                params = optax.apply_updates(params, updates)
                traj.append(np.asarray(params["p"]))
            out = {"trajectory": np.stack(traj)}
            out.update(_state_outputs(state))
        return out

    return Trick(name=name, group=group, cases=lambda: strategy, run_torch=run_torch, run_jax=run_jax,
                 atol=atol, rtol=rtol, reason=reason)


def _state_outputs(state) -> dict:
    out = {}

    def walk(node, where):
        if _is_namedtuple(node):
            for f, v in zip(node._fields, node):
                if f == "count":
                    out[f"state/{where}count"] = np.asarray(v).astype(np.int64)
                elif f in FIELDS and v is not None:
                    for path, leaf in _tree_paths(v).items():
                        out[f"state/{where}{f}/{'/'.join(map(str, path))}"] = np.asarray(leaf)
                else:
                    walk(v, f"{where}{f}.")
        elif isinstance(node, (tuple, list)):
            for i, v in enumerate(node):
                walk(v, f"{where}{i}.")

    walk(state, "")
    return out


def check_optimizer(torch_optimizer, optax_tx, *, examples: int | None = None, name: str | None = None, **kwargs):
    """:func:`optimizer_check` run at once (see :func:`parity.functions.run_check`)."""
    from parity.functions import run_check

    return run_check(optimizer_check(name or "optimizer", torch_optimizer, optax_tx, **kwargs), examples=examples)
