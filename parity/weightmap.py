"""Torch weights <-> flax variables: :func:`map_weights`, :class:`WeightMap`, :func:`torch_to_flax`,
:func:`flax_to_torch` (the module check itself is :mod:`parity.modules`).

* :func:`map_weights` builds a :class:`WeightMap`: which torch module's parameters and buffers go
  to which flax module's variables, and how. It never fails silently: a torch parameter with no
  flax home, a flax variable that nothing fills (it would keep its initial value), a module type
  it does not know, or a shape that fits only after a guess is a :class:`ConversionError`
  listing every problem at once; a guess the user accepts (``accept=[name]``) is applied and
  listed in ``WeightMap.warnings``. NNX random-stream state (``nnx.Rngs``, a Dropout's stream)
  is not a weight and is skipped.
* :func:`torch_to_flax` / :func:`flax_to_torch` convert weights (and BatchNorm statistics) with
  the map, into linen variables or into an NNX module, and back into a torch module; every
  converted array is a copy, never a view of its source.

The mapping (torch → flax; flax → torch is its inverse):

=====================  ===========================  ==========================================
torch module           torch leaf                   flax leaf
=====================  ===========================  ==========================================
``Conv1d/2d/3d``       ``weight`` ``[O, I, *k]``    ``kernel`` ``[*k, I, O]`` (OIHW → HWIO)
``Linear``             ``weight`` ``[out, in]``     ``kernel`` ``[in, out]``
``BatchNorm1d/2d/3d``  ``weight``, ``bias``         ``scale``, ``bias`` (``params``)
                       ``running_mean/var``         ``mean``, ``var`` (``batch_stats``)
``LayerNorm``,         ``weight``, ``bias``         ``scale``, ``bias``
``GroupNorm``
``Embedding``          ``weight`` ``[num, dim]``    ``embedding`` ``[num, dim]``
any of them            ``bias``                     ``bias``
=====================  ===========================  ==========================================

``num_batches_tracked`` is not carried (flax has no counter; it only matters for
``momentum=None``, which is refused). Modules are paired by name: torch ``layer1.0.conv1``
pairs with linen ``layer1_0/conv1`` and NNX ``layer1/0/conv1`` (a ``_<digits>`` suffix and a
list index both read as ``.<digits>``); ``names={"torch.name": "flax/path"}`` pairs the rest.

Flatten order: a ``Linear`` fed by ``x.flatten(1)`` of an NCHW activation sees its features in
``(C, H, W)`` order, a flax port flattening NHWC in ``(H, W, C)`` order. ``flatten={"fc": (C, H,
W)}`` permutes that layer's input features so the port is right as written; without it the
check finds the difference at ``fc`` and says so.

.. warning:: flax's own BatchNorm (``flax.linen.BatchNorm``, ``nnx.BatchNorm``) writes the
   running average as ``running = m·running + (1 - m)·batch`` — torch's ``momentum=0.1`` is
   flax's ``momentum=0.9`` — and keeps the *biased* batch variance in ``var`` where torch keeps
   the unbiased one. The first is a port bug the check reports; the second is the frameworks'
   convention, reported as such, and accepted with ``accept=["biased_running_var"]``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Mapping

import numpy as np

from parity.convert import to_jax, to_numpy, to_torch

__all__ = ["ConversionError", "WeightMap", "Entry", "map_weights", "torch_to_flax", "flax_to_torch", "BIASED_RUNNING_VAR"]

#: ``accept`` entry: compare running variances in flax BatchNorm's biased convention
BIASED_RUNNING_VAR = "biased_running_var"


class ConversionError(ValueError):
    """Weights cannot be converted without a guess or a loss (the message lists every problem)."""


# ------------------------------------------------------------------------------------ naming


def _canon(tokens) -> str:
    """A module path as a canonical dotted name: ``layer1_0`` and ``("layer1", 0)`` both read
    ``layer1.0``; a string path may use ``/`` or ``.``."""
    if isinstance(tokens, str):
        tokens = [t for t in re.split(r"[./]", tokens) if t]
    out: list[str] = []
    for t in tokens:
        t = str(t)
        m = re.fullmatch(r"(.+)_(\d+)", t)
        out.extend([m.group(1), m.group(2)] if m else [t])
    return ".".join(out)


def _path_str(path) -> str:
    return "/".join(str(p) for p in path) or "(root)"


def _torch_kind(mod) -> str | None:
    import torch.nn as tnn

    if isinstance(mod, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)):
        return "conv"
    if isinstance(mod, tnn.Linear):
        return "linear"
    if isinstance(mod, tnn.modules.batchnorm._BatchNorm):
        return "batchnorm"
    if isinstance(mod, (tnn.LayerNorm, tnn.GroupNorm)):
        return "norm"
    if isinstance(mod, tnn.Embedding):
        return "embedding"
    return None


# torch leaf -> (flax collection, flax leaf) per kind
_LEAVES = {
    "conv": {"weight": ("params", "kernel"), "bias": ("params", "bias")},
    "linear": {"weight": ("params", "kernel"), "bias": ("params", "bias")},
    "batchnorm": {
        "weight": ("params", "scale"),
        "bias": ("params", "bias"),
        "running_mean": ("batch_stats", "mean"),
        "running_var": ("batch_stats", "var"),
    },
    "norm": {"weight": ("params", "scale"), "bias": ("params", "bias")},
    "embedding": {"weight": ("params", "embedding")},
}


# ------------------------------------------------------------------------------- flax access


def _is_nnx(obj) -> bool:
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, nnx.Module)


def _is_linen(obj) -> bool:
    import flax.linen as nn

    return isinstance(obj, nn.Module)


def _is_rng(var) -> bool:
    """An NNX random-stream variable (``nnx.Rngs`` keys and counts, a Dropout's own stream): state
    of the port's randomness, not a weight — never converted nor compared."""
    from flax import nnx

    if isinstance(var, nnx.RngState):
        return True
    value = var.get_value()
    try:
        import jax

        return jax.dtypes.issubdtype(getattr(value, "dtype", None), jax.dtypes.prng_key)
    except TypeError:
        return False


def _nnx_collection(var) -> str:
    from flax import nnx

    if isinstance(var, nnx.Param):
        return "params"
    if isinstance(var, nnx.BatchStat):
        return "batch_stats"
    return type(var).__name__


def _flax_flat(target) -> dict:
    """``{(collection, path): array}`` of linen variables or of an NNX module's variables."""
    if _is_nnx(target):
        from flax import nnx

        out = {}
        for path, node in nnx.iter_graph(target):
            if isinstance(node, nnx.Variable) and not _is_rng(node) and hasattr(node.get_value(), "shape"):
                out[(_nnx_collection(node), tuple(path))] = np.asarray(node.get_value())
        return out
    if not isinstance(target, Mapping):
        raise TypeError(
            "flax target must be an nnx.Module or linen variables ({'params': ..., 'batch_stats': ...}), "
            f"got {type(target).__name__} (for a linen module pass its variables)"
        )
    out = {}

    def walk(tree, coll, path):
        for k, v in tree.items():
            if isinstance(v, Mapping):
                walk(v, coll, path + (k,))
            else:
                out[(coll, path + (k,))] = np.asarray(v)

    for coll, tree in target.items():
        if coll == "intermediates":
            continue
        if not isinstance(tree, Mapping):
            raise TypeError(f"linen variables[{coll!r}] must be a dict, got {type(tree).__name__}")
        walk(tree, coll, ())
    return out


def _nnx_modules(model) -> dict:
    from flax import nnx

    return {tuple(p): m for p, m in nnx.iter_graph(model) if isinstance(m, nnx.Module)}


# ---------------------------------------------------------------------------------- the map


@dataclasses.dataclass(frozen=True)
class Entry:
    """One torch module paired with one flax module."""

    torch_name: str
    flax_path: tuple
    kind: str
    torch_type: str
    #: torch leaf -> (flax collection, flax leaf, how: "rule" or an accepted guess)
    leaves: Mapping[str, tuple]
    flatten: tuple | None = None


def _rule_to_flax(kind: str, leaf: str, arr: np.ndarray, flatten) -> np.ndarray:
    if leaf != "weight" or kind not in ("conv", "linear"):
        return arr
    if kind == "conv":
        nd = arr.ndim
        return arr.transpose(*range(2, nd), 1, 0)
    if flatten is not None:
        out = arr.shape[0]
        arr = arr.reshape(out, *flatten).transpose(0, *range(2, len(flatten) + 1), 1).reshape(out, -1)
    return arr.T


def _rule_to_torch(kind: str, leaf: str, arr: np.ndarray, flatten) -> np.ndarray:
    if leaf != "weight" or kind not in ("conv", "linear"):
        return arr
    if kind == "conv":
        nd = arr.ndim
        return arr.transpose(nd - 1, nd - 2, *range(nd - 2))
    arr = arr.T
    if flatten is not None:
        out = arr.shape[0]
        chw = tuple(flatten)
        hwc = chw[1:] + chw[:1]
        arr = arr.reshape(out, *hwc).transpose(0, len(hwc), *range(1, len(hwc))).reshape(out, -1)
    return arr


_GUESSES = {
    "as is": (lambda a, shape: a if a.shape == tuple(shape) else None, lambda a, shape: a),
    "all axes reversed": (
        lambda a, shape: a.T if a.T.shape == tuple(shape) else None,
        lambda a, shape: a.T,
    ),
    "reshaped": (
        lambda a, shape: a.reshape(shape) if a.size == int(np.prod(shape)) else None,
        lambda a, shape: a.reshape(shape),
    ),
}


@dataclasses.dataclass
class WeightMap:
    """The pairing of a torch module's leaves with a flax module's variables (:func:`map_weights`)."""

    entries: list
    warnings: list
    #: torch parameter names in ``torch_module.named_parameters()`` order (the optimizer's order)
    param_names: list
    flax_shapes: dict
    torch_shapes: dict

    def entry(self, torch_name: str) -> Entry:
        for e in self.entries:
            if e.torch_name == torch_name:
                return e
        raise KeyError(torch_name)

    def leaf_to_flax(self, torch_key: str, arr) -> tuple:
        """``(collection, flax path, array)`` for torch leaf ``torch_key`` (e.g. ``"fc.weight"``)."""
        module, _, leaf = torch_key.rpartition(".")
        e = self.entry(module)
        coll, fleaf, how = e.leaves[leaf]
        target = self.flax_shapes[(coll, e.flax_path + (fleaf,))]
        arr = np.asarray(to_numpy(arr))
        if how == "rule":
            arr = _rule_to_flax(e.kind, leaf, arr, e.flatten)
        else:
            arr = _GUESSES[how][1](arr, target)
        return coll, e.flax_path + (fleaf,), np.array(arr, order="C", copy=True)  # never a view of the source

    def leaf_to_torch(self, torch_key: str, arr) -> np.ndarray:
        """The inverse of :meth:`leaf_to_flax` for the flax value of torch leaf ``torch_key``."""
        module, _, leaf = torch_key.rpartition(".")
        e = self.entry(module)
        how = e.leaves[leaf][2]
        arr = np.asarray(to_numpy(arr))
        if how == "rule":
            arr = _rule_to_torch(e.kind, leaf, arr, e.flatten)
        elif how == "all axes reversed":
            arr = arr.T
        else:
            arr = arr.reshape(self.torch_shapes[torch_key])
        return np.array(arr, order="C", copy=True)  # never a view of the source

    def torch_keys(self) -> list[str]:
        return [f"{e.torch_name}.{leaf}" if e.torch_name else leaf for e in self.entries for leaf in e.leaves]

    def flax_key(self, torch_key: str) -> tuple:
        module, _, leaf = torch_key.rpartition(".")
        e = self.entry(module)
        coll, fleaf, _ = e.leaves[leaf]
        return coll, e.flax_path + (fleaf,)


def map_weights(
    torch_module,
    flax_target,
    *,
    names: Mapping[str, Any] | None = None,
    flatten: Mapping[str, tuple] | None = None,
    accept: Iterable[str] = (),
) -> WeightMap:
    """Pair every parameter and buffer of ``torch_module`` with a variable of ``flax_target``.

    Args:
        torch_module: a ``torch.nn.Module``.
        flax_target: linen variables (``{"params": ..., "batch_stats": ...}``) or an ``nnx.Module``.
        names: ``{torch module name: flax module path}`` for modules whose names do not pair by
            the rule in the module docstring (a path as ``"a/b/0"`` or a tuple).
        flatten: ``{torch Linear name: (C, H, W)}`` for a Linear fed by an NCHW flatten whose
            flax twin is fed by an NHWC flatten (its input features are permuted).
        accept: torch leaf names (``"fc.weight"``) whose shape fits only after a guess, to be
            converted with that guess anyway (listed in ``warnings``).

    Raises :class:`ConversionError` listing every unpaired, unknown, unfilled or misshapen leaf.
    """
    import torch

    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(f"torch_module must be a torch.nn.Module, got {type(torch_module).__name__}")
    names = dict(names or {})
    flatten = {k: tuple(int(d) for d in v) for k, v in (flatten or {}).items()}
    accept = set(accept)
    flax_flat = _flax_flat(flax_target)
    groups: dict[tuple, dict] = {}
    for (coll, path), arr in flax_flat.items():
        groups.setdefault(path[:-1], {})[path[-1]] = (coll, arr.shape)
    by_canon = {}
    for path in groups:
        by_canon.setdefault(_canon(path), []).append(path)
    problems: list[str] = []
    warnings: list[str] = []
    entries: list[Entry] = []
    used_paths: set = set()
    torch_shapes = {}
    known = set()
    for mname, mod in torch_module.named_modules():
        direct = dict(mod.named_parameters(recurse=False))
        direct.update({k: v for k, v in mod.named_buffers(recurse=False) if v is not None})
        if not direct:
            continue
        for leaf, v in direct.items():
            torch_shapes[f"{mname}.{leaf}" if mname else leaf] = tuple(v.shape)
        kind = _torch_kind(mod)
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in direct.items())
        if kind is None:
            problems.append(f"torch {mname or '(root)'} ({type(mod).__name__}: {shapes}): no conversion rule for this module type")
            continue
        if kind == "batchnorm" and mod.momentum is None:
            problems.append(f"torch {mname} (BatchNorm with momentum=None, a cumulative average): flax has no equivalent")
            continue
        wanted = names.get(mname, mname)
        cands = by_canon.get(_canon(wanted), [])
        if len(cands) != 1:
            how = "no" if not cands else f"{len(cands)} ({', '.join(_path_str(c) for c in cands)})"
            problems.append(
                f"torch {mname} ({type(mod).__name__}: {shapes}): {how} flax module named {_canon(wanted)!r}"
                " — pair it with names={...}"
            )
            continue
        path = cands[0]
        used_paths.add(path)
        known.add(mname)
        fleaves = groups[path]
        leaves = {}
        claimed: set = set()
        rules = _LEAVES[kind]
        for leaf, value in direct.items():
            key = f"{mname}.{leaf}" if mname else leaf
            if leaf == "num_batches_tracked" and kind == "batchnorm":
                continue
            if leaf not in rules:
                problems.append(f"torch {key} {tuple(value.shape)}: no rule for a {type(mod).__name__} leaf named {leaf!r}")
                continue
            coll, fleaf = rules[leaf]
            claimed.add(fleaf)
            if fleaf not in fleaves:
                problems.append(
                    f"torch {key} {tuple(value.shape)}: flax {_path_str(path)} has no {fleaf!r} "
                    f"(it has {sorted(fleaves)}) — unused in the port?"
                )
                continue
            fcoll, fshape = fleaves[fleaf]
            if fcoll != coll:
                problems.append(f"torch {key}: flax {_path_str(path)}/{fleaf} is in collection {fcoll!r}, expected {coll!r}")
                continue
            arr = value.detach().cpu().numpy()
            if kind == "linear" and leaf == "weight" and mname in flatten:
                if int(np.prod(flatten[mname])) != arr.shape[1]:
                    problems.append(f"flatten[{mname!r}] = {flatten[mname]} does not multiply to {mname}'s {arr.shape[1]} inputs")
                    continue
            converted = _rule_to_flax(kind, leaf, arr, flatten.get(mname))
            if converted.shape == tuple(fshape):
                leaves[leaf] = (coll, fleaf, "rule")
                continue
            guess = next((g for g, (test, _) in _GUESSES.items() if test(arr, fshape) is not None), None)
            if guess is None:
                problems.append(
                    f"torch {key} {arr.shape} converts to {converted.shape}, but flax {_path_str(path)}/{fleaf} is {tuple(fshape)}"
                )
            elif key in accept:
                leaves[leaf] = (coll, fleaf, guess)
                warnings.append(f"{key}: {arr.shape} → flax {tuple(fshape)} only {guess} (accepted guess)")
            else:
                problems.append(
                    f"torch {key} {arr.shape} converts to {converted.shape} by the {kind} rule, but flax "
                    f"{_path_str(path)}/{fleaf} is {tuple(fshape)}; it fits only {guess} — pass "
                    f"accept=[{key!r}] if that is what the port means"
                )
        for fleaf, (coll, fshape) in fleaves.items():
            if fleaf not in claimed:
                problems.append(
                    f"flax {_path_str(path)}/{fleaf} {tuple(fshape)} ({coll}) gets no torch value: it would keep its "
                    f"initial value (torch {mname} is a {type(mod).__name__} with {sorted(direct)})"
                )
        entries.append(Entry(mname, path, kind, type(mod).__name__, leaves, flatten.get(mname)))
    for path, fleaves in groups.items():
        if path not in used_paths:
            desc = ", ".join(f"{k} {tuple(s)}" for k, (c, s) in fleaves.items())
            problems.append(f"flax {_path_str(path)} ({desc}) has no torch counterpart — pair it with names={{...}}")
    for k in names:
        if k not in known and not any(p.startswith(f"torch {k} ") for p in problems):
            problems.append(f"names[{k!r}]: torch has no module with parameters called {k!r}")
    for k in flatten:
        if k not in known or _torch_kind(dict(torch_module.named_modules())[k]) != "linear":
            problems.append(f"flatten[{k!r}]: not a torch Linear of this module")
    if problems:
        raise ConversionError("cannot convert the weights without guessing:\n  " + "\n  ".join(problems))
    param_names = [n for n, _ in torch_module.named_parameters()]
    return WeightMap(entries, warnings, param_names, {k: v.shape for k, v in flax_flat.items()}, torch_shapes)


# --------------------------------------------------------------------------- conversion


def _unflatten(flat: Mapping[tuple, Any]) -> dict:
    out: dict = {}
    for (coll, path), v in flat.items():
        node = out.setdefault(coll, {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return out


def torch_to_flax(torch_module, flax_target, *, weight_map: WeightMap | None = None, **map_kwargs):
    """``torch_module``'s weights and BatchNorm statistics in ``flax_target``'s structure.

    Linen: returns new variables (``flax_target`` is a template; dtypes follow it). NNX: writes
    the values into the module ``flax_target`` and returns it. ``map_kwargs`` go to
    :func:`map_weights` (``names``, ``flatten``, ``accept``) unless ``weight_map`` is given.
    """
    wm = weight_map or map_weights(torch_module, flax_target, **map_kwargs)
    state = torch_module.state_dict()
    flat = {}
    for key in wm.torch_keys():
        coll, path, arr = wm.leaf_to_flax(key, state[key])
        flat[(coll, path)] = arr
    if _is_nnx(flax_target):
        from flax import nnx

        variables = {
            (_nnx_collection(n), tuple(p)): n
            for p, n in nnx.iter_graph(flax_target)
            if isinstance(n, nnx.Variable) and not _is_rng(n)
        }
        for k, arr in flat.items():
            var = variables[k]
            var.set_value(to_jax(arr.astype(np.asarray(var.get_value()).dtype)))
        return flax_target
    template = _flax_flat(flax_target)
    out = {k: to_jax(flat[k].astype(template[k].dtype)) for k in template if k in flat}
    return _unflatten(out)


def flax_to_torch(flax_source, torch_module, *, weight_map: WeightMap | None = None, load: bool = True, **map_kwargs) -> dict:
    """The flax weights and BatchNorm statistics as ``torch_module``'s ``state_dict`` (torch tensors).

    ``flax_source``: linen variables or an ``nnx.Module``. With ``load`` (default) the state dict
    is also loaded into ``torch_module`` (strictly). ``num_batches_tracked`` keeps the module's
    current value (flax has no counter).
    """
    wm = weight_map or map_weights(torch_module, flax_source, **map_kwargs)
    flat = _flax_flat(flax_source)
    state = torch_module.state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out[key] = value.clone()
            continue
        arr = wm.leaf_to_torch(key, flat[wm.flax_key(key)])
        out[key] = to_torch(arr.astype(value.detach().cpu().numpy().dtype)).to(value.device)
    if load:
        torch_module.load_state_dict(out, strict=True)
    return out
