"""Dtype and value checks for torch tensors (shape and scalar checks are in :mod:`twintricks.checks`).

Value checks that read tensor contents (labels in range, float images in [0, 1]) run in eager
mode only: under ``torch.compile`` they would force a graph break and a device sync, so they are
skipped while compiling (documented in each function that relies on them).
"""

from __future__ import annotations

import torch

from twintricks.checks import check_ndim

__all__ = ["check_images", "check_floating", "check_labels", "compiling"]


def compiling() -> bool:
    """True while torch.compile traces (value checks are skipped then)."""
    return torch.compiler.is_compiling()


def check_images(name: str, images, *, allow_float: bool = True) -> tuple[int, int, int, int]:
    """Check an ``[N, C, H, W]`` batch of uint8 (or float, if allowed) images; return its shape."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor [N, C, H, W], got {type(images).__name__}")
    check_ndim(name, images, 4, "[N, C, H, W]")
    if images.dtype != torch.uint8 and not (allow_float and images.is_floating_point()):
        want = "uint8 or floating" if allow_float else "uint8"
        raise TypeError(f"`{name}` must have dtype {want}, got {images.dtype}")
    return tuple(images.shape)


def check_floating(name: str, x) -> None:
    """Check ``x`` is a floating-point tensor (logits, soft targets)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must have a floating dtype, got {x.dtype}")


def check_labels(name: str, labels, num_classes: int) -> None:
    """Check ``labels`` are ``[N]`` integer class indices in ``[0, num_classes)``.

    The range check reads the values, so it runs in eager mode only (not under torch.compile).
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(labels).__name__}")
    check_ndim(name, labels, 1, "[N] of class indices")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"`{name}` must have an integer dtype, got {labels.dtype}")
    if not compiling() and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`{name}` must lie in [0, {num_classes}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
