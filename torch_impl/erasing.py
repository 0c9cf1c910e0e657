"""Cutout (DeVries & Taylor 2017) for ``[N, C, H, W]`` batches: square holes filled with a constant.

Sampling is separate from the kernel: :func:`sample_cutout_params` draws one integer centre per
image and per hole; :func:`cutout` applies them deterministically with masks (no loop over the
batch), so it runs under ``torch.compile(fullgraph=True)`` and compiles once per shape.
The mirror in :mod:`jax_impl.erasing` has the same names and the same record.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from torch_impl._checks import check_images, compiling
from twintricks.checks import check_int, check_ndim, check_real, check_size

__all__ = ["CutoutParams", "sample_cutout_params", "cutout", "Cutout"]


class CutoutParams(NamedTuple):
    """Hole centres: ``cy`` (row) and ``cx`` (column), each ``[N, n_holes]`` integers."""

    cy: torch.Tensor
    cx: torch.Tensor


def sample_cutout_params(
    batch_size: int,
    image_size,
    *,
    n_holes: int = 1,
    generator: torch.Generator | None = None,
    device=None,
) -> CutoutParams:
    """Draw ``n_holes`` centres per image, uniform over the whole ``H × W`` grid.

    ``cy ~ U{0, …, H-1}`` and ``cx ~ U{0, …, W-1}`` independently, per image and per hole; the
    centre may lie on the border (as in the reference code), so a hole may be partly outside.

    Args:
        batch_size: N >= 0.
        image_size: ``H`` (square) or ``(H, W)``, both >= 1.
        n_holes: holes per image, >= 0 (0 gives ``[N, 0]`` arrays and a no-op kernel).
        generator: a ``torch.Generator`` (None: torch's default generator).
        device: where the record goes (sampled where ``generator`` lives, then moved).

    Returns:
        :class:`CutoutParams` of int64 tensors ``[N, n_holes]``.
    """
    n = check_int("batch_size", batch_size, low=0)
    h, w = check_size("image_size", image_size)
    k = check_int("n_holes", n_holes, low=0)
    gen_device = generator.device if generator is not None else None
    cy = torch.randint(0, h, (n, k), generator=generator, device=gen_device)
    cx = torch.randint(0, w, (n, k), generator=generator, device=gen_device)
    if device is not None:
        cy, cx = cy.to(device), cx.to(device)
    return CutoutParams(cy, cx)


def _check_fill(fill, dtype: torch.dtype) -> float:
    fill = check_real("fill", fill)
    if dtype == torch.uint8 and (fill != int(fill) or not 0 <= fill <= 255):
        raise ValueError(f"`fill` must be an integer in [0, 255] for uint8 images, got {fill!r}")
    return fill


def _check_params(images: torch.Tensor, params) -> None:
    if not isinstance(params, CutoutParams):
        raise TypeError(f"`params` must be a CutoutParams, got {type(params).__name__}")
    for name, t in (("params.cy", params.cy), ("params.cx", params.cx)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor [N, n_holes], got {type(t).__name__}")
        check_ndim(name, t, 2, "[N, n_holes]")
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"`{name}` must have an integer dtype, got {t.dtype}")
    if params.cy.shape != params.cx.shape or params.cy.shape[0] != images.shape[0]:
        raise ValueError(
            f"`params.cy` {tuple(params.cy.shape)} and `params.cx` {tuple(params.cx.shape)} must both be "
            f"[N, n_holes] with N = {images.shape[0]} (the batch of `images`)"
        )
    if not compiling() and params.cy.numel():
        for name, t, size in (("params.cy", params.cy, images.shape[2]), ("params.cx", params.cx, images.shape[3])):
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi >= size:
                raise ValueError(
                    f"`{name}` must lie in [0, {size}) (centres inside the image), got values in [{lo}, {hi}]"
                )


def cutout_mask(params: CutoutParams, height: int, width: int, *, length: int) -> torch.Tensor:
    """``[N, H, W]`` bool: True inside at least one hole (the geometry of :func:`cutout`)."""
    half = length // 2
    rows = torch.arange(height, device=params.cy.device)
    cols = torch.arange(width, device=params.cx.device)
    cy = params.cy[..., None]  # [N, K, 1]
    cx = params.cx[..., None]
    in_rows = (rows >= cy - half) & (rows < cy + half)  # [N, K, H]
    in_cols = (cols >= cx - half) & (cols < cx + half)  # [N, K, W]
    return (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)  # [N, H, W]


def cutout(images: torch.Tensor, params: CutoutParams, *, length: int, fill: float = 0) -> torch.Tensor:
    """Fill square holes of side ``length`` with ``fill`` in every channel.

    For image ``n`` and hole ``k`` with centre ``(cy, cx) = (params.cy[n, k], params.cx[n, k])``,
    the hole is rows ``[cy - length//2, cy + length//2)`` × columns
    ``[cx - length//2, cx + length//2)``, clipped to the image. Holes may overlap; pixels outside
    every hole are unchanged. ``n_holes = 0`` (params ``[N, 0]``) returns an unchanged copy;
    ``length`` larger than the image is allowed (the box is clipped).

    .. warning::
        An odd ``length`` gives a box of side ``length - 1`` (``2 · (length // 2)``), exactly as
        the reference implementation (``y1 = clip(y - length // 2)``, ``y2 = clip(y + length // 2)``).

    Args:
        images: ``[N, C, H, W]`` uint8 or floating; not modified.
        params: :class:`CutoutParams` from :func:`sample_cutout_params` (integer ``[N, n_holes]``,
            centres inside the image: checked in eager mode, not under ``torch.compile``).
        length: side of the holes, >= 0.
        fill: value written into the holes; for uint8 an integer in ``[0, 255]``.

    Returns:
        A new tensor, same shape, dtype and device as ``images``.

    References:
        Terrance DeVries and Graham W. Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout", 2017 (arXiv:1708.04552).
    """
    _, _, h, w = check_images("images", images)
    length = check_int("length", length, low=0)
    fill = _check_fill(fill, images.dtype)
    _check_params(images, params)
    params = CutoutParams(params.cy.to(images.device), params.cx.to(images.device))
    mask = cutout_mask(params, h, w, length=length)
    fill_t = torch.tensor(fill, dtype=images.dtype, device=images.device)
    return torch.where(mask[:, None], fill_t, images)


class Cutout(nn.Module):
    """Cutout as a module: ``n_holes`` holes of side ``length`` per image, new centres each call.

    ``forward(images)`` draws :func:`sample_cutout_params` (with ``generator`` if given) and
    applies :func:`cutout`; images are ``[N, C, H, W]`` uint8 or floating. Applied in train and
    eval mode alike (as the reference transform); wrap it in your own condition to skip it.
    Under ``torch.compile(fullgraph=True)`` leave ``generator=None`` (dynamo cannot trace a
    ``torch.Generator`` argument); with a generator, compile :func:`cutout` alone.

    References:
        Terrance DeVries and Graham W. Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout", 2017 (arXiv:1708.04552).
    """

    def __init__(self, n_holes: int = 1, length: int = 16, fill: float = 0, *, generator: torch.Generator | None = None):
        super().__init__()
        self.n_holes = check_int("n_holes", n_holes, low=0)
        self.length = check_int("length", length, low=0)
        self.fill = check_real("fill", fill)
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = check_images("images", images)
        params = sample_cutout_params(n, (h, w), n_holes=self.n_holes, generator=self.generator, device=images.device)
        return cutout(images, params, length=self.length, fill=self.fill)

    def extra_repr(self) -> str:
        return f"n_holes={self.n_holes}, length={self.length}, fill={self.fill}"
