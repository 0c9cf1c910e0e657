"""Adapters the registry's families share: integer arrays into jax, labels, jitted and
differentiated calls of a kernel looked up at call time (so a test can monkeypatch one side)."""

from __future__ import annotations

import functools

import numpy as np

from parity.convert import to_jax, to_numpy, to_torch

__all__ = ["jax_int", "torch_value_and_grad", "jax_call", "jax_value_and_grad", "labels_torch", "labels_jax", "torch_params", "jax_params"]


def jax_int(x):
    """Integer arrays go to jax as int32 (jax's default integer width without x64)."""
    return to_jax(np.asarray(x, dtype=np.int32))


def torch_value_and_grad(fn, x: np.ndarray):
    """``fn(x)`` and the vector-Jacobian product with ones (the gradient of ``fn(x).sum()``)."""
    import torch

    z = to_torch(np.array(x)).requires_grad_(True)
    out = fn(z)
    (grad,) = torch.autograd.grad(out.sum(), z)
    return to_numpy(out), to_numpy(grad)


@functools.lru_cache(maxsize=None)
def _jitted():
    """``jax.jit`` of ``fn(*args, **dict(statics))`` with ``fn`` and ``statics`` static.

    ``fn`` is part of the cache key, so a monkeypatched kernel is traced afresh.
    """
    import jax

    return jax.jit(lambda fn, statics, *args: fn(*args, **dict(statics)), static_argnums=(0, 1))


def jax_call(fn, *args, **statics):
    """The mixing kernels run jitted (what users run; one compilation per shape instead of one
    per eager op). The losses run eagerly: their hyperparameters are Python floats, static under
    jit, so each drawn value would recompile, while eager op caches are shared across values."""
    return _jitted()(fn, tuple(sorted(statics.items())), *args)


def jax_value_and_grad(fn, x: np.ndarray, *args, **statics):
    """``fn(x, *args, **statics)`` and the gradient of its sum with respect to ``x`` (eager)."""
    import jax
    import jax.numpy as jnp

    out, vjp = jax.vjp(lambda z: fn(z, *args, **statics), to_jax(x))
    (grad,) = vjp(jnp.ones_like(out))
    return to_numpy(out), to_numpy(grad)


def labels_torch(labels):
    return to_torch(np.array(labels))


def labels_jax(labels):
    """Integer labels as int32, float arrays (soft targets, logits) as they are."""
    return jax_int(labels) if np.asarray(labels).dtype.kind in "iu" else to_jax(labels)


def torch_params(record_type, params: dict):
    """A params NamedTuple of torch tensors from a case's dict of arrays."""
    return record_type(**{k: to_torch(np.asarray(v)) for k, v in params.items()})


def jax_params(record_type, params: dict):
    """A params NamedTuple of jax arrays from a case's dict of arrays."""
    return record_type(**{k: to_jax(np.asarray(v)) for k, v in params.items()})
