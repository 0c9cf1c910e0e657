"""Dtype and value checks for torch tensors (shape and scalar checks are in :mod:`twintricks.checks`).

Value checks that read tensor contents (labels in range, float images in [0, 1]) run in eager
mode only: under ``torch.compile`` they would force a graph break and a device sync, so they are
skipped while compiling (documented in each function that relies on them).

Layout: images are ``[N, C, H, W]``. A channels-last array ``[N, H, W, C]`` passed by mistake has
the same rank, and most ops would return a result on the wrong axes, so :func:`check_images`
rejects the shapes where the mistake is detectable: the channel axis ``C`` is longer than 4 (more than RGBA)
while the last axis is 1 or 3 and ``H`` is not (``(8, 32, 32, 3)`` is an NHWC batch of 32x32 RGB
images, not 32-channel images 3 pixels wide). Every other shape is accepted as NCHW: any batch
with 1 or 3 channels, any batch whose width is not 1 or 3 (whatever its channel count), and the
ambiguous shapes whose height and width are both 1 or 3. The rule mirrors
:func:`jax_impl._checks.check_images`'s.
"""

from __future__ import annotations

import torch

from twintricks.checks import check_distribution_summary, check_ndim

__all__ = [
    "check_images", "check_floating", "check_labels", "check_soft_targets", "compiling", "looks_channels_last",
    "generator_device",
]


def compiling() -> bool:
    """True while torch.compile traces (value checks are skipped then)."""
    return torch.compiler.is_compiling()


def _type_name(x) -> str:
    """The type for error messages, with its package (``numpy.ndarray``, ``jaxlib.ArrayImpl``)."""
    root = type(x).__module__.split(".")[0]
    return type(x).__name__ if root == "builtins" else f"{root}.{type(x).__name__}"


_IMAGE_CHANNELS = (1, 3)  # grey and RGB: the channel counts that identify the channel axis
_MAX_CHANNELS = 4  # up to RGBA: a channel axis this short may be real (2- and 4-channel images)


def looks_channels_last(shape) -> bool:
    """True when an ``[N, C, H, W]`` shape is detectably an ``[N, H, W, C]`` batch.

    ``C`` (axis 1) is more than 4, ``W`` (axis 3) is 1 or 3, and ``H`` (axis 2) is not: see the module
    docstring for why ambiguous shapes are accepted.
    """
    _, c, h, w = shape
    return c > _MAX_CHANNELS and w in _IMAGE_CHANNELS and h not in _IMAGE_CHANNELS


def generator_device(generator, default=None):
    """The device a sampler's ``generator`` draws on (``default`` for None, torch's default
    generator); anything but a ``torch.Generator`` is a ``TypeError`` naming ``generator``."""
    if generator is None:
        return default
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, got {_type_name(generator)}")
    return generator.device


def check_images(name: str, images, *, allow_float: bool = True) -> tuple[int, int, int, int]:
    """Check an ``[N, C, H, W]`` batch of uint8 (or float, if allowed) images; return its shape.

    Raises ``ValueError`` for a shape that is detectably channels-last (:func:`looks_channels_last`).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor [N, C, H, W], got {_type_name(images)}")
    check_ndim(name, images, 4, "[N, C, H, W]")
    if images.dtype != torch.uint8 and not (allow_float and images.is_floating_point()):
        want = "uint8 or floating" if allow_float else "uint8"
        raise TypeError(f"`{name}` must have dtype {want}, got {images.dtype}")
    if looks_channels_last(images.shape):
        raise ValueError(
            f"`{name}` must be [N, C, H, W] (channels first), got shape {tuple(images.shape)}, which looks like "
            f"[N, H, W, C] with C={images.shape[3]}: use images.permute(0, 3, 1, 2) (channels_last memory "
            "format keeps the [N, C, H, W] shape and is accepted as is)"
        )
    return tuple(images.shape)


def check_floating(name: str, x) -> None:
    """Check ``x`` is a floating-point tensor (logits, soft targets)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {_type_name(x)}")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must have a floating dtype, got {x.dtype}")


def check_labels(name: str, labels, num_classes: int) -> None:
    """Check ``labels`` are ``[N]`` integer class indices in ``[0, num_classes)``.

    The range check reads the values, so it runs in eager mode only (not under torch.compile).
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {_type_name(labels)}")
    check_ndim(name, labels, 1, "[N] of class indices")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"`{name}` must have an integer dtype, got {labels.dtype}")
    if not compiling() and labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))  # one reduction, one host read
        if low < 0 or high >= num_classes:
            raise ValueError(f"`{name}` must lie in [0, {num_classes}), got values in [{low}, {high}]")


def check_soft_targets(name: str, targets: torch.Tensor, dim: int) -> None:
    """Soft targets are distributions along ``dim``: finite, ``>= 0``, summing to 1
    (:func:`twintricks.checks.check_distribution_summary`). Reads the values (one host read of
    three numbers), so it runs in eager mode only (not under torch.compile)."""
    if compiling() or targets.numel() == 0:
        return
    with torch.no_grad():
        t = targets.detach().float()
        finite = torch.isfinite(t).all()
        worst = (t.sum(dim) - 1).abs().max()
        summary = torch.stack([finite.float(), t.min(), torch.where(finite, worst, torch.zeros_like(worst))]).tolist()
    check_distribution_summary(name, bool(summary[0]), summary[1], summary[2], targets.shape[dim], torch.finfo(targets.dtype).eps)
