"""Dtype and value checks for jax arrays (shape and scalar checks are in :mod:`twintricks.checks`).

Shapes and dtypes are static, so those checks run at trace time, inside ``jax.jit`` too. Value
checks that read array contents (labels in range, float images in [0, 1]) need concrete data:
they run in eager mode and are skipped for tracers (inside ``jit``/``vmap``), as documented in
each function that relies on them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from twintricks.checks import check_ndim

__all__ = ["check_images", "check_floating", "check_labels", "is_concrete"]


def is_concrete(x) -> bool:
    """True when ``x``'s values are known (not a tracer under jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _dtype(x):
    return np.dtype(getattr(x, "dtype", None) or np.asarray(x).dtype)


def check_images(name: str, images, *, allow_float: bool = True) -> tuple[int, int, int, int]:
    """Check an ``[N, H, W, C]`` batch of uint8 (or float, if allowed) images; return its shape."""
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        raise TypeError(f"`{name}` must be an array [N, H, W, C], got {type(images).__name__}")
    check_ndim(name, images, 4, "[N, H, W, C]")
    dt = _dtype(images)
    if dt != np.uint8 and not (allow_float and jnp.issubdtype(dt, jnp.floating)):
        want = "uint8 or floating" if allow_float else "uint8"
        raise TypeError(f"`{name}` must have dtype {want}, got {dt}")
    return tuple(images.shape)


def check_floating(name: str, x) -> None:
    """Check ``x`` is a floating-point array (logits, soft targets)."""
    if not hasattr(x, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")
    if not jnp.issubdtype(_dtype(x), jnp.floating):
        raise TypeError(f"`{name}` must have a floating dtype, got {_dtype(x)}")


def check_labels(name: str, labels, num_classes: int) -> None:
    """Check ``labels`` are ``[N]`` integer class indices in ``[0, num_classes)``.

    The range check needs concrete values: it runs eagerly and is skipped under jit/vmap.
    """
    if not hasattr(labels, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(labels).__name__}")
    check_ndim(name, labels, 1, "[N] of class indices")
    if not jnp.issubdtype(_dtype(labels), jnp.integer):
        raise TypeError(f"`{name}` must have an integer dtype, got {_dtype(labels)}")
    if is_concrete(labels) and labels.size:
        lo, hi = int(jnp.min(labels)), int(jnp.max(labels))
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"`{name}` must lie in [0, {num_classes}), got values in [{lo}, {hi}]")
