"""Batch-mixing augmentations that also mix the targets: mixup and RICAP. Images ``[N, C, H, W]``.

Each trick is a sampler ``sample_<trick>_params`` returning a NamedTuple (field names identical
to :mod:`jax_impl.mixing`), a deterministic kernel ``<trick>(images, targets, params, ...)`` that
returns ``(images, soft_targets)``, and an ``nn.Module`` that does both. Targets are ``[N]``
integer labels (with ``num_classes``) or ``[N, K]`` soft targets (e.g. smoothed labels), so the
tricks compose with label smoothing; the returned targets are ``[N, K]`` soft targets for
:func:`torch_impl.losses.soft_target_cross_entropy`.

Kernels use gathers and broadcasting only (no Python loop over the batch, no data-dependent
shapes), so they run under ``torch.compile``. Value checks on the parameters (ranges) read the
tensors and run in eager mode only. Inputs are never modified in place.

.. warning::
   torch has no Beta sampler that takes a ``torch.Generator``. The samplers draw one 63-bit seed
   from ``generator`` (torch's default generator when None) and draw the Beta variates with
   NumPy's ``default_rng(seed)`` on the host, so the generator stays the only source of
   randomness; the random streams of course differ from :mod:`jax_impl.mixing`'s (parity
   compares kernels on shared parameter records, never streams).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_impl._checks import check_floating, check_images, check_labels, compiling
from twintricks.checks import check_int, check_ndim, check_real, check_same_leading, check_size

__all__ = [
    "MixupParams",
    "sample_mixup_params",
    "mixup",
    "Mixup",
    "RicapParams",
    "sample_ricap_params",
    "ricap",
    "RICAP",
]


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


def _gen_device(generator) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _beta(a: float, size: int, generator) -> np.ndarray:
    """``size`` float64 Beta(a, a) draws, seeded from ``generator`` (see the module warning)."""
    seed = torch.randint(0, 2**63 - 1, (), generator=generator, device=_gen_device(generator))
    return np.random.default_rng(int(seed)).beta(a, a, size=size)


def _randperm(n: int, generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator, device=_gen_device(generator))


def _check_finite(name: str, value, **interval) -> float:
    """:func:`check_real` that also rejects infinities (a Beta parameter must be finite)."""
    v = check_real(name, value, **interval)
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v!r}")
    return v


def _soft_targets(targets, num_classes) -> torch.Tensor:
    """``[N]`` integer labels (one-hot, float32, needs ``num_classes``) or ``[N, K]`` soft targets."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"`targets` must be a torch.Tensor, got {type(targets).__name__}")
    check_ndim("targets", targets, (1, 2), "[N] of class indices or [N, K] of soft targets")
    if targets.ndim == 1:
        if num_classes is None:
            raise ValueError("`num_classes` is required when `targets` are integer labels [N]")
        k = check_int("num_classes", num_classes, low=1)
        check_labels("targets", targets, k)
        return F.one_hot(targets.long(), k).to(torch.get_default_dtype())
    check_floating("targets", targets)
    if num_classes is not None and targets.shape[1] != check_int("num_classes", num_classes, low=1):
        raise ValueError(f"`targets` must have num_classes={num_classes} columns, got shape {tuple(targets.shape)}")
    return targets


def _check_index(name: str, idx, shape: tuple, high: int) -> None:
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(idx).__name__}")
    if tuple(idx.shape) != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(idx.shape)}")
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"`{name}` must have an integer dtype, got {idx.dtype}")
    if not compiling() and idx.numel() and (idx.min() < 0 or idx.max() >= high):
        raise ValueError(f"`{name}` must lie in [0, {high}), got values in [{int(idx.min())}, {int(idx.max())}]")


# ------------------------------------------------------------------------------------------
# mixup
# ------------------------------------------------------------------------------------------


class MixupParams(NamedTuple):
    """One mixup draw: ``lam`` float32 (``[]`` per batch, or ``[N]`` per sample) and ``perm`` ``[N]``."""

    lam: torch.Tensor
    perm: torch.Tensor


def sample_mixup_params(
    batch_size: int, *, alpha: float = 1.0, per_sample: bool = False, generator=None, device=None
) -> MixupParams:
    """Draw ``λ ~ Beta(α, α)`` (one per batch, or one per image with ``per_sample``) and a
    uniformly random permutation of the batch.

    ``α = 0`` means no mixing (``λ = 1``), as in the reference code; ``α < 0`` is an error.
    Sampled where ``generator`` lives (CPU when None: torch's default generator), then moved to
    ``device``.

    .. warning::
       torch has no Beta sampler that takes a generator: ``λ`` is drawn by NumPy from a seed
       drawn from ``generator`` (see the module docstring), which costs one host sync when the
       generator lives on a GPU.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n = check_int("batch_size", batch_size, low=1)
    a = _check_finite("alpha", alpha, low=0.0)
    m = n if per_sample else 1
    lam = torch.from_numpy(_beta(a, m, generator)).float() if a > 0 else torch.ones(m)
    lam = lam if per_sample else lam[0]
    perm = _randperm(n, generator)
    return MixupParams(lam.to(device or _gen_device(generator)), perm.to(device or perm.device))


def mixup(images: torch.Tensor, targets: torch.Tensor, params: MixupParams, *, num_classes: int | None = None):
    """mixup kernel: ``x̃ = λ·x + (1-λ)·x[perm]``, ``t̃ = λ·t + (1-λ)·t[perm]``.

    Args:
        images: ``[N, C, H, W]`` uint8 or float.
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`MixupParams`; ``lam`` ``[]`` or ``[N]`` (per-sample mode).

    Returns:
        ``(mixed_images, soft_targets)``: images of the input dtype (uint8 is blended in float32
        and rounded half to even), targets ``[N, K]`` float (float32 for integer labels). With
        these targets ``CE(z, t̃) = λ·CE(z, y_a) + (1-λ)·CE(z, y_b)``, the reference's loss.

    .. warning::
       The reference code mixes float tensors only. For uint8 images the blend is computed in
       float32 and rounded half to even, so the result is quantised; and since a compiler may
       fuse ``λ·x + (1-λ)·x'`` into one multiply-add (one rounding instead of two), a value
       within an ulp of a .5 tie can round to a level one apart from :mod:`jax_impl.mixing`.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n, _, _, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    if not isinstance(params, MixupParams):
        raise TypeError(f"`params` must be a MixupParams, got {type(params).__name__}")
    lam, perm = params
    if not isinstance(lam, torch.Tensor) or not lam.is_floating_point():
        raise TypeError("`params.lam` must be a floating torch.Tensor")
    if tuple(lam.shape) not in ((), (n,)):
        raise ValueError(f"`params.lam` must have shape () or ({n},), got {tuple(lam.shape)}")
    if not compiling() and not bool(((lam >= 0) & (lam <= 1)).all()):  # NaN fails both
        raise ValueError(f"`params.lam` must lie in [0, 1], got {lam.tolist()}")
    _check_index("params.perm", perm, (n,), n)

    work = images.float() if images.dtype == torch.uint8 else images
    lam_x = lam.to(work.dtype).reshape(-1, 1, 1, 1) if lam.ndim else lam.to(work.dtype)
    mixed = lam_x * work + (1 - lam_x) * work[perm]
    if images.dtype == torch.uint8:
        mixed = mixed.round().clamp(0, 255).to(torch.uint8)
    lam_t = lam.to(soft.dtype).reshape(-1, 1) if lam.ndim else lam.to(soft.dtype)
    return mixed, lam_t * soft + (1 - lam_t) * soft[perm]


class Mixup(nn.Module):
    """Sample and apply mixup: ``forward(images, targets) -> (mixed_images, soft_targets)``.

    ``generator`` (optional) is the only source of randomness; ``per_sample`` draws one ``λ`` per
    image instead of one per batch (the default, as in the paper).
    """

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, *, per_sample: bool = False, generator=None):
        super().__init__()
        self.alpha = _check_finite("alpha", alpha, low=0.0)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_sample = bool(per_sample)
        self.generator = generator

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        check_images("images", images)
        params = sample_mixup_params(
            images.shape[0], alpha=self.alpha, per_sample=self.per_sample, generator=self.generator, device=images.device
        )
        return mixup(images, targets, params, num_classes=self.num_classes)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, num_classes={self.num_classes}, per_sample={self.per_sample}"


# ------------------------------------------------------------------------------------------
# RICAP
# ------------------------------------------------------------------------------------------


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
    to ``device``; integer fields are int64 (int32 in :mod:`jax_impl.mixing`).

    .. warning::
       The Beta draws come from NumPy seeded from ``generator`` (see the module docstring).

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
    b = _check_finite("beta", beta, low=0.0, low_inclusive=False)
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


class RICAP(nn.Module):
    """Sample and apply RICAP: ``forward(images, labels) -> (patched_images, soft_targets)``.

    ``per_image_offsets`` draws a crop offset per image and patch instead of the reference's one
    per patch for the whole batch. ``generator`` (optional) is the only source of randomness.
    """

    def __init__(self, beta: float = 0.3, num_classes: int | None = None, *, per_image_offsets: bool = False, generator=None):
        super().__init__()
        self.beta = _check_finite("beta", beta, low=0.0, low_inclusive=False)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_image_offsets = bool(per_image_offsets)
        self.generator = generator

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        n, _, height, width = check_images("images", images)
        params = sample_ricap_params(
            n,
            (height, width),
            beta=self.beta,
            per_image_offsets=self.per_image_offsets,
            generator=self.generator,
            device=images.device,
        )
        return ricap(images, labels, params, num_classes=self.num_classes)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, num_classes={self.num_classes}, per_image_offsets={self.per_image_offsets}"
