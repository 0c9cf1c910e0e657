"""Checks of the AutoAugment-family records and images (:mod:`torch_impl.policies`' arguments).

The twin of :mod:`jax_impl._policy_checks` (same names)."""

from __future__ import annotations

import torch

from torch_impl._checks import check_images, compiling
from torch_impl.ops import check_op_images, fill_values


def check_int_field(name: str, t, low: int, high: int, shape: tuple) -> torch.Tensor:
    """``params.<name>``: an integer tensor of ``shape`` (None: any size) with values in ``[low, high)``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`params.{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"`params.{name}` must be integers, got {t.dtype}")
    check_shape(name, t, shape)
    if not compiling() and t.numel() and not (low <= int(t.min()) and int(t.max()) < high):
        raise ValueError(f"`params.{name}` must lie in [{low}, {high}), got values in [{int(t.min())}, {int(t.max())}]")
    return t


def check_shape(name: str, t, shape: tuple) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`params.{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"`params.{name}` must have shape {want}, got {list(t.shape)}")


def check_record(params, cls):
    if not isinstance(params, tuple) or len(params) != len(cls._fields):
        raise TypeError(f"`params` must be a {cls.__name__}, got {type(params).__name__}")
    return cls(*params)


def check_family_images(images, fill):
    n, c, h, w = check_images("images", images)
    if c not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels [N, C, H, W], got C={c}")
    check_op_images("images", images)
    return n, c, h, w, fill_values(fill, c, images.dtype)
