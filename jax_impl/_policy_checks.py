"""Checks of the AutoAugment-family records and images (:mod:`jax_impl.policies`' arguments).

The twin of :mod:`torch_impl._policy_checks` (same names). Values are checked when concrete."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, check_not_torch, is_concrete
from jax_impl.ops import check_op_images, fill_values


def check_int_field(name: str, a, low: int, high: int, shape: tuple):
    """``params.<name>``: integers of ``shape`` in ``[low, high)`` (values checked when concrete)."""
    check_shape(name, a, shape)
    if not jnp.issubdtype(jnp.asarray(a).dtype, jnp.integer):
        raise TypeError(f"`params.{name}` must be integers, got {jnp.asarray(a).dtype}")
    if is_concrete(a) and np.size(a):
        v = np.asarray(a)
        if v.min() < low or v.max() >= high:
            raise ValueError(f"`params.{name}` must lie in [{low}, {high}), got values in [{v.min()}, {v.max()}]")
    return jnp.asarray(a)


def magnitude_array(magnitude):
    """RandAugment's ``magnitude`` given as an array (traceable) rather than an int: anything that is
    not an array of numbers (a string, None) is a ``TypeError`` naming it."""
    check_not_torch("magnitude", magnitude)
    try:
        return jnp.asarray(magnitude)
    except (TypeError, ValueError):
        raise TypeError(f"`magnitude` must be an int or an integer array, got {type(magnitude).__name__} "
                        f"{magnitude!r}") from None


def check_shape(name: str, a, shape: tuple) -> None:
    got = tuple(getattr(a, "shape", ()))
    if not hasattr(a, "shape") or len(got) != len(shape) or any(s is not None and s != d for s, d in zip(shape, got)):
        want = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"`params.{name}` must have shape {want}, got {list(got)}")


def check_record(params, cls):
    """``params`` as a ``cls`` record (any tuple of its length), no field a torch tensor (TypeError)."""
    if not isinstance(params, tuple) or len(params) != len(cls._fields):
        raise TypeError(f"`params` must be a {cls.__name__}, got {type(params).__name__}")
    params = cls(*params)
    for field, value in zip(params._fields, params):
        check_not_torch(f"params.{field}", value)
    return params


def check_family_images(images, fill):
    n, h, w, c = check_images("images", images)
    if c not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels [N, H, W, C], got C={c}")
    check_op_images("images", images)
    return n, fill_values(fill, c, images.dtype)
