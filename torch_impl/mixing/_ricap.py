"""RICAP in PyTorch: ``sample_ricap_params``, the kernel ``ricap`` and the module ``RICAP``.
Images ``[N, C, H, W]``; targets ``[N]`` labels (with ``num_classes``) or ``[N, K]`` soft targets,
returned as ``[N, K]`` soft targets (the helpers and the host Beta draw: :mod:`torch_impl.mixing._common`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from torch_impl._checks import check_images, compiling
from torch_impl.mixing._common import _beta, _check_index, _gen_device, _randperm, _soft_targets
from torch_impl.transform import RandomTransform
from twintricks.checks import check_bool, check_int, check_same_leading, check_size
from twintricks.mixing import check_beta_parameter
from twintricks.tricks import TrickImpl, target_classes

__all__ = ["RicapParams", "sample_ricap_params", "ricap", "RICAP"]


class RicapParams(NamedTuple):
    """One RICAP draw (integer tensors).

    The boundary splits the output image into four patches ``k = 0..3``: top-left, bottom-left,
    top-right, bottom-right, of ``rows_k = [split_row, H-split_row, split_row, H-split_row]`` by
    ``cols_k = [split_col, split_col, W-split_col, W-split_col]`` pixels. The reference code calls
    the two boundary values ``w`` (= ``split_row``, although it counts ROWS, along H) and ``h``
    (= ``split_col``, although it counts COLUMNS, along W), from ``I_x, I_y = input.size()[2:]``
    on an NCHW batch.

    Fields:
        split_row: ``[]`` rows of the top patches (the reference's ``w``), in ``[0, H]``.
        split_col: ``[]`` columns of the left patches (the reference's ``h``), in ``[0, W]``.
        perms: ``[4, N]`` patch k of output image i comes from source image ``perms[k, i]``.
        top: ``[4, N]`` row offset of patch k's crop in its source image, in ``[0, H - rows_k]``.
        left: ``[4, N]`` column offset, in ``[0, W - cols_k]``. In the reference mode ``top`` and
            ``left`` are the same for the whole batch (one offset per patch).
    """

    split_row: torch.Tensor
    split_col: torch.Tensor
    perms: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor


def _patch_sizes(split_row, split_col, height: int, width: int):
    """``rows_k``, ``cols_k`` of the four patches (k: TL, BL, TR, BR)."""
    rows = torch.stack([split_row, height - split_row, split_row, height - split_row])
    cols = torch.stack([split_col, split_col, width - split_col, width - split_col])
    return rows, cols


def sample_ricap_params(
    batch_size: int,
    image_size,
    *,
    beta: float = 0.3,
    per_image_offsets: bool = False,
    generator=None,
    device=None,
) -> RicapParams:
    """Draw a RICAP boundary, four permutations and the crop offsets.

    ``split_row = round(H·Beta(β, β))``, ``split_col = round(W·Beta(β, β))``, rounded half to
    even like ``np.round`` in the reference; four independent uniform permutations of the batch;
    for each patch k a crop offset uniform in ``[0, H - rows_k] × [0, W - cols_k]`` — one per patch
    for the whole batch as in the reference code (default), or one per image and patch with
    ``per_image_offsets=True``. Sampled where ``generator`` lives (CPU when None), then moved
    to ``device``; integer fields are int64 (int32 in :mod:`jax_impl.mixing._ricap`).

    .. warning::
       The Beta draws come from NumPy, its state drawn from ``generator`` (see :mod:`torch_impl.mixing._common`).

    Args:
        batch_size: ``N >= 1``.
        image_size: ``(H, W)`` or an int for square images.
        beta: ``β > 0``.

    References:
        Takahashi, Matsubara, Uehara, "RICAP: Random Image Cropping and Patching Data
        Augmentation for Deep CNNs", ACML 2018; extended as "Data Augmentation using Random Image
        Cropping and Patching for Deep CNNs", IEEE TCSVT 2020.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    b = check_beta_parameter("beta", beta)
    per_image_offsets = check_bool("per_image_offsets", per_image_offsets)
    bw, bh = _beta(b, 2, generator)
    split_row, split_col = int(np.round(height * bw)), int(np.round(width * bh))
    gdev = _gen_device(generator)
    perms = torch.stack([_randperm(n, generator) for _ in range(4)])
    m = n if per_image_offsets else 1
    rows = [split_row, height - split_row, split_row, height - split_row]
    cols = [split_col, split_col, width - split_col, width - split_col]
    top = torch.stack([torch.randint(0, height - r + 1, (m,), generator=generator, device=gdev) for r in rows])
    left = torch.stack([torch.randint(0, width - c + 1, (m,), generator=generator, device=gdev) for c in cols])
    dev = device or gdev
    return RicapParams(
        split_row=torch.tensor(split_row, device=dev),
        split_col=torch.tensor(split_col, device=dev),
        perms=perms.to(dev),
        top=top.expand(4, n).to(dev),
        left=left.expand(4, n).to(dev),
    )


def ricap(images: torch.Tensor, targets: torch.Tensor, params: RicapParams, *, num_classes: int | None = None):
    """RICAP kernel: patch four crops into each image and mix the targets by area.

    Output pixel ``(i, j)`` of image ``n`` lies in patch ``k = [i >= split_row] + 2·[j >= split_col]`` (c0
    top-left, c1 bottom-left, c2 top-right, c3 bottom-right, as the reference's
    ``cat(cat(c0, c1, H), cat(c2, c3, H), W)``) and equals source image ``perms[k, n]`` at row
    ``top[k, n] + i - [i >= split_row]·split_row`` and column
    ``left[k, n] + j - [j >= split_col]·split_col``. Soft targets:
    ``Σ_k W_k·t[perms[k]]`` with ``W_k = rows_k·cols_k / (H·W)``. Degenerate boundaries (``split_row``
    or ``split_col`` at 0 or at the full size) give zero-area patches with zero weight.

    Built as one gather with static shapes: jit/compile once per image shape.

    Args:
        images: ``[N, C, H, W]`` uint8 or float; returned in the same dtype (pixels are copied).
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`RicapParams` (its docstring maps the fields to the reference's ``w``/``h``).

    .. warning::
       The reference code's ``w`` counts rows and its ``h`` columns (it reads
       ``I_x, I_y = input.size()[2:]`` from an NCHW batch); here they are ``split_row`` and
       ``split_col``. The per-image offset mode (``per_image_offsets`` in the sampler) is an extension; the
       reference draws one offset per patch for the whole batch.

    Returns:
        ``(patched_images, soft_targets)``, soft targets ``[N, K]`` float.

    References:
        Takahashi, Matsubara, Uehara, "RICAP: Random Image Cropping and Patching Data
        Augmentation for Deep CNNs", ACML 2018; extended as "Data Augmentation using Random Image
        Cropping and Patching for Deep CNNs", IEEE TCSVT 2020.
    """
    n, _, height, width = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    if not isinstance(params, RicapParams):
        raise TypeError(f"`params` must be a RicapParams, got {type(params).__name__}")
    sr, sc, perms, top, left = params
    for name, v in (("params.split_row", sr), ("params.split_col", sc)):
        if not isinstance(v, torch.Tensor) or v.ndim != 0 or v.is_floating_point():
            raise TypeError(f"`{name}` must be a 0-d integer torch.Tensor")
    _check_index("params.perms", perms, (4, n), n)
    _check_index("params.top", top, (4, n), height + 1)
    _check_index("params.left", left, (4, n), width + 1)
    dev = images.device
    sr, sc, perms, top, left = (x.to(dev).long() for x in (sr, sc, perms, top, left))
    rows, cols = _patch_sizes(sr, sc, height, width)
    if not compiling():
        if not (0 <= int(sr) <= height and 0 <= int(sc) <= width):
            raise ValueError(
                f"`params.split_row` must be in [0, {height}] and `params.split_col` in [0, {width}], got {int(sr)}, {int(sc)}"
            )
        if ((top + rows[:, None]) > height).any() or ((left + cols[:, None]) > width).any():
            raise ValueError("`params.top`/`params.left` put a crop outside its source image")

    i = torch.arange(height, device=dev)[:, None]  # [H, 1]
    j = torch.arange(width, device=dev)[None, :]  # [1, W]
    below, right = i >= sr, j >= sc
    k = below.long() + 2 * right.long()  # [H, W] patch index
    di = i - below.long() * sr  # row inside the patch
    dj = j - right.long() * sc  # column inside the patch
    src = perms.t()[:, k]  # [N, H, W]
    src_i = top.t()[:, k] + di
    src_j = left.t()[:, k] + dj
    patched = images[src, :, src_i, src_j].permute(0, 3, 1, 2).contiguous()  # [N, H, W, C] -> NCHW

    weights = (rows * cols).to(soft.dtype) / (height * width)  # [4]
    parts = soft[perms] * weights[:, None, None]  # [4, N, K]
    mixed = ((parts[0] + parts[1]) + parts[2]) + parts[3]
    return patched, mixed


class RICAP(RandomTransform, nn.Module):
    """Sample and apply RICAP: ``forward(images, labels) -> (patched_images, soft_targets)``.

    ``per_image_offsets`` draws a crop offset per image and patch instead of the reference's one
    per patch for the whole batch. ``generator`` (optional) is the only source of randomness.
    """

    def __init__(self, beta: float = 0.3, num_classes: int | None = None, *, per_image_offsets: bool = False, generator=None):
        super().__init__()
        self.beta = check_beta_parameter("beta", beta)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_image_offsets = check_bool("per_image_offsets", per_image_offsets)
        self.generator = generator

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        n, _, height, width = check_images("images", images)
        if n == 0:  # an empty batch stays empty, as with Mixup and MixupCutmix
            check_beta_parameter("beta", self.beta)
            soft = _soft_targets(targets, self.num_classes)
            check_same_leading(["images", "targets"], [images, soft])
            return images.clone(), soft
        params = sample_ricap_params(
            n,
            (height, width),
            beta=self.beta,
            per_image_offsets=self.per_image_offsets,
            generator=self.generator,
            device=images.device,
        )
        return ricap(images, targets, params, num_classes=self.num_classes)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, num_classes={self.num_classes}, per_image_offsets={self.per_image_offsets}"


# ------------------------------------------------------------------------------------------
# The trainer's entry: collected by torch_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------

TRICK_IMPLS = {
    "ricap": TrickImpl(
        lambda n, tr, g: sample_ricap_params(n, tr.image_size, beta=tr.config.ricap, generator=g, device=tr.device),
        lambda x, y, p, tr: ricap(x, y, p, num_classes=target_classes(y, tr)),
    ),
}
