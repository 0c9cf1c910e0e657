"""Arrays and images between NumPy, PyTorch and JAX: the one place where layout is translated.

Arrays move by DLPack where it works and through NumPy otherwise:

* torch → jax and jax → torch use DLPack (zero copy on the same device). DLPack cannot carry
  ``bool`` tensors in every version of both libraries, nor tensors that require grad, nor
  non-contiguous tensors with negative strides; those go through NumPy (a host copy), which is
  always correct, only slower.
* anything → numpy copies to host memory (``np.asarray`` of a CPU array shares memory; callers
  must not write into the result).

Images: torch_impl uses ``[N, C, H, W]``, jax_impl ``[N, H, W, C]``. The strategies in
:mod:`parity.strategies` draw NHWC NumPy batches; :func:`nhwc_to_nchw` / :func:`nchw_to_nhwc`
are the only layout translations in the project.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "to_numpy",
    "to_torch",
    "to_jax",
    "nhwc_to_nchw",
    "nchw_to_nhwc",
    "images_to_torch",
    "images_to_jax",
    "images_from_torch",
    "images_from_jax",
    "torch_state_dict_to_flax",
    "flax_to_torch_state_dict",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _is_jax(x: Any) -> bool:
    return type(x).__module__.startswith(("jax", "jaxlib"))


def to_numpy(x: Any) -> np.ndarray:
    """Any array (NumPy, torch, jax, nested scalars) as a NumPy array on the host."""
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_torch(x: Any, *, device: Any = None):
    """An array as a ``torch.Tensor`` (DLPack from jax where possible, else through NumPy)."""
    import torch

    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    if _is_jax(x) and x.dtype != bool:
        try:
            t = torch.from_dlpack(x)
            return t if device is None else t.to(device)
        except (RuntimeError, TypeError, BufferError, ValueError):
            pass
    # np.array (not asarray): torch.from_numpy needs a writable, owned buffer.
    t = torch.from_numpy(np.array(x))
    return t if device is None else t.to(device)


def to_jax(x: Any):
    """An array as a ``jax.Array`` (DLPack from torch where possible, else through NumPy)."""
    import jax
    import jax.numpy as jnp

    if isinstance(x, jax.Array):
        return x
    if _is_torch(x):
        t = x.detach()
        if t.dtype != _torch_bool() and t.is_contiguous():
            try:
                return jax.dlpack.from_dlpack(t)
            except (RuntimeError, TypeError, BufferError, ValueError):
                pass
        return jnp.asarray(t.cpu().numpy())
    return jnp.asarray(x)


def _torch_bool():
    import torch

    return torch.bool


def nhwc_to_nchw(x: Any):
    """``[..., H, W, C]`` → ``[..., C, H, W]`` for NumPy, torch or jax arrays (a view where possible)."""
    if _is_torch(x):
        return x.movedim(-1, -3)
    if _is_jax(x):
        import jax.numpy as jnp

        return jnp.moveaxis(x, -1, -3)
    return np.moveaxis(x, -1, -3)


def nchw_to_nhwc(x: Any):
    """``[..., C, H, W]`` → ``[..., H, W, C]`` for NumPy, torch or jax arrays (a view where possible)."""
    if _is_torch(x):
        return x.movedim(-3, -1)
    if _is_jax(x):
        import jax.numpy as jnp

        return jnp.moveaxis(x, -3, -1)
    return np.moveaxis(x, -3, -1)


def images_to_torch(images_nhwc: Any, *, device: Any = None):
    """An NHWC batch (NumPy/jax) as a contiguous NCHW ``torch.Tensor``."""
    return to_torch(np.ascontiguousarray(nhwc_to_nchw(to_numpy(images_nhwc))), device=device)


def images_to_jax(images_nhwc: Any):
    """An NHWC batch (NumPy) as a ``jax.Array`` (the layout jax_impl uses)."""
    return to_jax(images_nhwc)


def images_from_torch(images_nchw: Any) -> np.ndarray:
    """A torch NCHW batch as an NHWC NumPy array (the layout parity compares in)."""
    return np.ascontiguousarray(nchw_to_nhwc(to_numpy(images_nchw)))


def images_from_jax(images_nhwc: Any) -> np.ndarray:
    """A jax NHWC batch as an NHWC NumPy array."""
    return to_numpy(images_nhwc)


# ----------------------------------------------------------------------------- model weights
# torch state_dict <-> flax linen variables for the models in torch_impl.models / jax_impl.models
# (and any pair of models built the same way: linen submodule names equal torch attribute names,
# a torch ModuleList/Sequential index ``.0`` being a linen name suffix ``_0``). These two work on
# a bare state_dict and infer each leaf's kind from its name and rank; for your own models (NNX
# too, with renames, flatten permutations, and an error instead of a guess) use
# parity.modules.map_weights / torch_to_flax / flax_to_torch, which read the module types.


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
    """A torch ``state_dict`` as flax linen variables ``{"params": ..., "batch_stats": ...}`` (NumPy).

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
        arr = to_numpy(value)
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
    """Flax linen variables (``{"params", "batch_stats"}``, any array type) as a torch-style
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
            arr = np.array(to_numpy(value), copy=True)
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
