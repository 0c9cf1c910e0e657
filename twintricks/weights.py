"""Model weights between the two frameworks' layouts, in NumPy: a torch ``state_dict`` and flax
linen variables, for the models of :mod:`torch_impl.models` / :mod:`jax_impl.models` (and any pair
of models built the same way: linen submodule names equal torch attribute names, a torch
``ModuleList``/``Sequential`` index ``.0`` being a linen name suffix ``_0``).

Framework-free, so that both backends' teacher loaders (:mod:`torch_impl.teacher`,
:mod:`jax_impl.teacher`) and :mod:`parity.convert` (which also takes tensors that live on a
device or require grad) use the one conversion. These two work on a bare ``state_dict`` and infer
each leaf's kind from its name and rank; for your own models (NNX too, with renames, flatten
permutations, and an error instead of a guess) use :func:`parity.modules.map_weights`, which reads
the module types.
"""

from __future__ import annotations

import numpy as np

__all__ = ["torch_state_dict_to_flax", "flax_to_torch_state_dict"]


def _torch_key_to_flax_path(key: str) -> tuple[tuple[str, ...], str]:
    parts = key.split(".")
    path: list[str] = []
    for p in parts[:-1]:
        if p.isdigit() and path:
            path[-1] = f"{path[-1]}_{p}"
        else:
            path.append(p)
    return tuple(path), parts[-1]


def _flax_name_to_torch(name: str) -> str:
    head, sep, tail = name.rpartition("_")
    return f"{head}.{tail}" if sep and head and tail.isdigit() else name


def torch_state_dict_to_flax(state_dict) -> dict:
    """A torch ``state_dict`` of host arrays (NumPy, or anything ``np.asarray`` reads) as flax linen
    variables ``{"params": ..., "batch_stats": ...}`` (NumPy).

    Per leaf: conv ``weight`` ``[O, I, kh, kw]`` → ``kernel`` ``[kh, kw, I, O]`` (OIHW → HWIO);
    linear ``weight`` ``[out, in]`` → ``kernel`` ``[in, out]`` (transposed); BatchNorm ``weight`` →
    ``scale``, ``bias`` → ``bias``, ``running_mean``/``running_var`` → ``batch_stats`` ``mean``/``var``;
    ``num_batches_tracked`` is dropped (linen has no counter; the momentum is fixed).

    Momentum: :class:`jax_impl.models.BatchNorm` uses torch's convention (``running = (1-m)·running
    + m·batch``, ``m = 0.1``, unbiased variance in the running var), so the running statistics carry
    over unchanged. flax's own ``nn.BatchNorm`` writes the same rule with ``momentum = 1 - m``
    (0.9) and keeps the *biased* variance: converting into such a model is exact for inference,
    but its later updates differ from torch's by the factor ``n/(n-1)`` on the variance.
    """
    params: dict = {}
    stats: dict = {}
    for key, value in state_dict.items():
        arr = np.asarray(value)
        path, leaf = _torch_key_to_flax_path(key)
        if leaf == "num_batches_tracked":
            continue
        if leaf in ("running_mean", "running_var"):
            tree, name = stats, ("mean" if leaf == "running_mean" else "var")
        elif leaf == "weight" and arr.ndim == 4:
            tree, name, arr = params, "kernel", arr.transpose(2, 3, 1, 0)
        elif leaf == "weight" and arr.ndim == 2:
            tree, name, arr = params, "kernel", arr.T
        elif leaf == "weight" and arr.ndim == 1:
            tree, name = params, "scale"
        elif leaf == "bias":
            tree, name = params, "bias"
        else:
            raise ValueError(f"cannot convert torch parameter {key!r} with shape {arr.shape}")
        node = tree
        for p in path:
            node = node.setdefault(p, {})
        node[name] = np.array(arr, order="C", copy=True)  # never a view of the torch tensor
    out = {"params": params}
    if stats:
        out["batch_stats"] = stats
    return out


def flax_to_torch_state_dict(variables, *, num_batches_tracked: int = 0) -> dict:
    """Flax linen variables (``{"params", "batch_stats"}``, host arrays or jax arrays) as a torch-style
    ``state_dict`` of NumPy arrays; the inverse of :func:`torch_state_dict_to_flax`.

    ``kernel`` ``[kh, kw, I, O]`` → ``weight`` ``[O, I, kh, kw]``; 2-D ``kernel`` transposed;
    ``scale`` → ``weight``; ``mean``/``var`` → ``running_mean``/``running_var``; every BatchNorm
    gets a ``num_batches_tracked`` (int64, default 0) so ``load_state_dict(strict=True)`` works.
    Load into a module with ``module.load_state_dict({k: torch.from_numpy(v) ...})``.
    """
    out: dict = {}

    def walk(tree, prefix, collection):
        for name, value in tree.items():
            key = f"{prefix}{_flax_name_to_torch(name)}"
            if isinstance(value, dict) or hasattr(value, "items"):
                walk(dict(value), key + ".", collection)
                continue
            arr = np.array(value, copy=True)
            if collection == "batch_stats":
                out[key.rsplit(".", 1)[0] + (".running_mean" if name == "mean" else ".running_var")] = arr
                continue
            base = key.rsplit(".", 1)[0]
            if name == "kernel" and arr.ndim == 4:
                out[base + ".weight"] = np.ascontiguousarray(arr.transpose(3, 2, 0, 1))
            elif name == "kernel" and arr.ndim == 2:
                out[base + ".weight"] = np.ascontiguousarray(arr.T)
            elif name == "scale":
                out[base + ".weight"] = arr
            elif name == "bias":
                out[base + ".bias"] = arr
            else:
                raise ValueError(f"cannot convert flax parameter {key!r} with shape {arr.shape}")

    walk(dict(variables["params"]), "", "params")
    if "batch_stats" in variables:
        walk(dict(variables["batch_stats"]), "", "batch_stats")
        for key in [k for k in out if k.endswith(".running_mean")]:
            out[key[: -len("running_mean")] + "num_batches_tracked"] = np.array(num_batches_tracked, np.int64)
    return out
