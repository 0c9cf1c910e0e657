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

from twintricks import weights

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


def to_numpy(x: Any, *, name: str = "x") -> np.ndarray:
    """Any array (NumPy, torch, jax, nested scalars) as a NumPy array on the host; anything that
    is not an array of numbers (a string, a dict, objects) is a ``TypeError`` naming ``name``."""
    if _is_torch(x):
        return x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError:  # a ragged nesting
        a = None
    if a is None or a.dtype.kind not in "biufc":
        raise TypeError(f"`{name}` must be an array of numbers (NumPy, torch, jax or nested lists), got "
                        f"{type(x).__name__}" + ("" if a is None else f" of dtype {a.dtype}"))
    return a


def _images(name: str, x: Any, layout: str):
    """``x`` checked as images ``[..., H, W, C]`` / ``[..., C, H, W]``: a batch, or one image (3 dimensions)."""
    if not hasattr(x, "ndim"):
        x = to_numpy(x, name=name)
    if x.ndim < 3:
        raise ValueError(f"`{name}` must be {layout} (a batch, or one image of 3 dimensions), got shape {tuple(x.shape)}")
    return x


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


def _check_rank3(x: Any):
    if not hasattr(x, "ndim"):
        x = to_numpy(x)
    if x.ndim < 3:
        raise ValueError(f"`x` must have at least 3 dimensions (an image or a batch), got shape {tuple(x.shape)}")
    return x


def nhwc_to_nchw(x: Any):
    """``[..., H, W, C]`` → ``[..., C, H, W]`` for NumPy, torch or jax arrays (a view where possible)."""
    x = _check_rank3(x)
    if _is_torch(x):
        return x.movedim(-1, -3)
    if _is_jax(x):
        import jax.numpy as jnp

        return jnp.moveaxis(x, -1, -3)
    return np.moveaxis(x, -1, -3)


def nchw_to_nhwc(x: Any):
    """``[..., C, H, W]`` → ``[..., H, W, C]`` for NumPy, torch or jax arrays (a view where possible)."""
    x = _check_rank3(x)
    if _is_torch(x):
        return x.movedim(-3, -1)
    if _is_jax(x):
        import jax.numpy as jnp

        return jnp.moveaxis(x, -3, -1)
    return np.moveaxis(x, -3, -1)


def images_to_torch(images_nhwc: Any, *, device: Any = None):
    """An NHWC batch (NumPy/jax) as a contiguous NCHW ``torch.Tensor``."""
    x = to_numpy(_images("images_nhwc", images_nhwc, "[N, H, W, C]"), name="images_nhwc")
    return to_torch(np.ascontiguousarray(nhwc_to_nchw(x)), device=device)


def images_to_jax(images_nhwc: Any):
    """An NHWC batch (NumPy) as a ``jax.Array`` (the layout jax_impl uses)."""
    x = _images("images_nhwc", images_nhwc, "[N, H, W, C]")
    return to_jax(x if _is_torch(x) or _is_jax(x) else to_numpy(x, name="images_nhwc"))


def images_from_torch(images_nchw: Any) -> np.ndarray:
    """A torch NCHW batch as an NHWC NumPy array (the layout parity compares in)."""
    x = to_numpy(_images("images_nchw", images_nchw, "[N, C, H, W]"), name="images_nchw")
    return np.ascontiguousarray(nchw_to_nhwc(x))


def images_from_jax(images_nhwc: Any) -> np.ndarray:
    """A jax NHWC batch as an NHWC NumPy array."""
    return to_numpy(_images("images_nhwc", images_nhwc, "[N, H, W, C]"), name="images_nhwc")


# ----------------------------------------------------------------------------- model weights
# torch state_dict <-> flax linen variables: the conversion is written once, in NumPy, in
# twintricks.weights (the backends' teacher loaders use it too); these take any array type.


def torch_state_dict_to_flax(state_dict) -> dict:
    """A torch ``state_dict`` (tensors anywhere, NumPy arrays) as flax linen variables
    ``{"params": ..., "batch_stats": ...}`` of NumPy arrays: :func:`twintricks.weights.torch_state_dict_to_flax`
    (the rules and the BatchNorm momentum convention are documented there)."""
    if not hasattr(state_dict, "items"):
        raise TypeError(f"`state_dict` must be a mapping of parameter names to arrays, got {type(state_dict).__name__}")
    return weights.torch_state_dict_to_flax({k: to_numpy(v, name=f"state_dict[{k!r}]") for k, v in state_dict.items()})


def flax_to_torch_state_dict(variables, *, num_batches_tracked: int = 0) -> dict:
    """Flax linen variables (any array type) as a torch-style ``state_dict`` of NumPy arrays: the
    inverse of :func:`torch_state_dict_to_flax`, :func:`twintricks.weights.flax_to_torch_state_dict`.
    Load into a module with ``module.load_state_dict({k: torch.from_numpy(v) ...})``."""
    return weights.flax_to_torch_state_dict(variables, num_batches_tracked=num_batches_tracked)
