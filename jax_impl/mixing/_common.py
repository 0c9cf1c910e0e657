"""What jax_impl's mixing tricks share: targets as soft targets and the check of an index array.
Images ``[N, H, W, C]``.

Shape, dtype and hyperparameter checks run at trace time; value checks (ranges) need concrete
values and are skipped under ``jit``/``vmap``.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_floating, check_labels, is_concrete
from twintricks.checks import check_int, check_ndim, check_same_leading

__all__: list[str] = []  # helpers of the mixing modules; the tricks are theirs


def _soft_targets(targets, num_classes) -> jax.Array:
    """``[N]`` integer labels (one-hot, float32, needs ``num_classes``) or ``[N, K]`` soft targets."""
    if not hasattr(targets, "shape") or not hasattr(targets, "dtype"):
        raise TypeError(f"`targets` must be an array, got {type(targets).__name__}")
    check_ndim("targets", targets, (1, 2), "[N] of class indices or [N, K] of soft targets")
    if targets.ndim == 1:
        if num_classes is None:
            raise ValueError("`num_classes` is required when `targets` are integer labels [N]")
        k = check_int("num_classes", num_classes, low=1)
        check_labels("targets", targets, k)
        return jax.nn.one_hot(targets, k, dtype=jnp.float32)
    check_floating("targets", targets)
    if num_classes is not None and targets.shape[1] != check_int("num_classes", num_classes, low=1):
        raise ValueError(f"`targets` must have num_classes={num_classes} columns, got shape {tuple(targets.shape)}")
    return jnp.asarray(targets)


def _empty_batch(images, targets, num_classes):
    """An empty batch stays empty: ``(images, soft targets [0, K])``, the targets checked."""
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    return images, soft


def _check_index(name: str, idx, shape: tuple, high: int) -> None:
    if not hasattr(idx, "shape") or not hasattr(idx, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(idx).__name__}")
    if tuple(idx.shape) != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(idx.shape)}")
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise TypeError(f"`{name}` must have an integer dtype, got {idx.dtype}")
    if is_concrete(idx) and idx.size:
        values = np.asarray(idx)  # NumPy: a concrete array closed over inside jit is read, not traced
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= high:
            raise ValueError(f"`{name}` must lie in [0, {high}), got values in [{lo}, {hi}]")
