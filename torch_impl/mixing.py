"""Batch-mixing augmentations that also mix the targets: mixup, RICAP, CutMix and timm-style
mixup/CutMix switching. Images ``[N, C, H, W]``.

Each trick is a sampler ``sample_<trick>_params`` returning a NamedTuple (field names identical
to :mod:`jax_impl.mixing`), a deterministic kernel ``<trick>(images, targets, params, ...)`` that
returns ``(images, soft_targets)``, and an ``nn.Module`` that does both. Targets are ``[N]``
integer labels (with ``num_classes``) or ``[N, K]`` soft targets (e.g. smoothed labels), so the
tricks compose with label smoothing; the returned targets are ``[N, K]`` soft targets for
:func:`torch_impl.losses.soft_target_cross_entropy`.

Under ``torch.compile`` the kernels use gathers and broadcasting only (no Python loop over the
batch, no data-dependent shapes). In eager mode they take shortcuts that give the same bytes: a
box the whole batch shares is one region copy, one choice for the whole batch computes only its
path. Value checks on the parameters (ranges) read the tensors and run in eager mode only; the
modules skip them for the records they draw themselves. Inputs are never modified in place.

.. warning::
   torch has no Beta sampler that takes a ``torch.Generator``. The samplers draw two 63-bit
   numbers from ``generator`` (torch's default generator when None), set a NumPy PCG64
   generator's state to them and draw the Beta variates with it on the host, so the generator
   stays the only source of randomness; the random streams of course differ from
   :mod:`jax_impl.mixing`'s (parity compares kernels on shared parameter records, never
   streams). CutMix and the mixup/CutMix switch draw all their values (λ, coins, boxes) from
   that NumPy generator.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from torch_impl._checks import check_floating, check_images, check_labels, compiling
from torch_impl.transform import RandomTransform
from twintricks.checks import check_int, check_ndim, check_real, check_same_leading, check_size
from twintricks.mixing import check_beta_parameter, check_mixup_cutmix_args, minmax_cut_range

__all__ = [
    "MixupParams",
    "sample_mixup_params",
    "mixup",
    "Mixup",
    "RicapParams",
    "sample_ricap_params",
    "ricap",
    "RICAP",
    "CutMixParams",
    "sample_cutmix_params",
    "cutmix",
    "CutMix",
    "MixupCutmixParams",
    "sample_mixup_cutmix_params",
    "mixup_cutmix",
    "MixupCutmix",
]


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


def _gen_device(generator) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _beta(a: float, size: int, generator) -> np.ndarray:
    """``size`` float64 Beta(a, a) draws, from :func:`_host_rng` (see the module warning)."""
    return _host_rng(generator).beta(a, a, size=size)


def _randperm(n: int, generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator, device=_gen_device(generator))


def _soft_targets(targets, num_classes, smoothing: float = 0.0) -> torch.Tensor:
    """``[N]`` integer labels (one-hot, float32, needs ``num_classes``) or ``[N, K]`` soft targets,
    smoothed as timm's ``mixup_target`` when ``smoothing`` ``ε > 0``: labels get ``1 - ε + ε/K``
    and ``ε/K`` (written as those two values, as timm's ``one_hot``), soft targets
    ``t·(1-ε) + ε/K``."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"`targets` must be a torch.Tensor, got {type(targets).__name__}")
    check_ndim("targets", targets, (1, 2), "[N] of class indices or [N, K] of soft targets")
    if targets.ndim == 1:
        if num_classes is None:
            raise ValueError("`num_classes` is required when `targets` are integer labels [N]")
        k = check_int("num_classes", num_classes, low=1)
        check_labels("targets", targets, k)
        off = smoothing / k
        soft = torch.full((targets.shape[0], k), off, dtype=torch.get_default_dtype(), device=targets.device)
        return soft.scatter_(1, targets.long().unsqueeze(1), 1.0 - smoothing + off)  # (F.one_hot would check the range again)
    check_floating("targets", targets)
    if num_classes is not None and targets.shape[1] != check_int("num_classes", num_classes, low=1):
        raise ValueError(f"`targets` must have num_classes={num_classes} columns, got shape {tuple(targets.shape)}")
    return targets * (1.0 - smoothing) + smoothing / targets.shape[1] if smoothing else targets


def _check_range(name: str, low: int, top: int, high: int) -> None:
    """Indices whose smallest and largest values are ``low`` and ``top`` must lie in ``[0, high)``."""
    if low < 0 or top >= high:
        raise ValueError(f"`{name}` must lie in [0, {high}), got values in [{low}, {top}]")


def _check_unit_interval(name: str, lam: torch.Tensor):
    """In eager mode, check every ``λ`` lies in ``[0, 1]`` (NaN fails) and return whether they are
    all equal (one reduction, one host read); under ``torch.compile`` return None."""
    if compiling() or not lam.numel():
        return None
    low, high = (float(v) for v in torch.aminmax(lam))
    if not (0 <= low and high <= 1):
        raise ValueError(f"`{name}` must lie in [0, 1], got {lam.tolist()}")
    return low == high


def _check_index(name: str, idx, shape: tuple, high: int, *, values: bool = True) -> None:
    """Type, shape and integer dtype of an index tensor; with ``values`` (eager mode only) its
    range ``[0, high)``, read in one host transfer."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(idx).__name__}")
    if tuple(idx.shape) != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(idx.shape)}")
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"`{name}` must have an integer dtype, got {idx.dtype}")
    if values and not compiling() and idx.numel():
        _check_range(name, *(int(v) for v in torch.aminmax(idx)), high)  # one reduction, one host read


def _take(x: torch.Tensor, perm) -> torch.Tensor:
    """``x[perm]`` along the batch: ``index_select`` in eager mode (on a CPU many times faster than
    advanced indexing), advanced indexing under ``torch.compile``, which fuses it into its
    consumer; ``perm`` None is timm's pairing ``N-1-i``, ``x.flip(0)``."""
    if perm is None:
        return x.flip(0)
    return x[perm] if compiling() else x.index_select(0, perm)


def _weights(lam, dtype: torch.dtype, device):
    """``(λ, 1-λ)`` as ``dtype`` arithmetic gives them from a float32 ``λ``: a tensor (``[]`` or
    ``[N, ...]``) cast to ``dtype``, or a Python float holding a float32 value.

    For a Python float and float32 or float64 the weights stay Python floats with exactly those
    values (a scalar operand of a float32 op is used as float32, of a float64 op as float64):
    no 0-d tensors to build per call in eager mode, nor to copy to a GPU. Other dtypes (half
    precision rounds ``λ`` first) get 0-d tensors."""
    if isinstance(lam, float):
        if dtype == torch.float32:
            # 1 - λ in float64 is exact (or, for λ < 2⁻³⁰, far from a float32 tie): rounded
            # once to float32 it is the float32 subtraction's result
            return lam, float(np.float32(1.0 - lam))
        if dtype == torch.float64:
            return lam, 1.0 - lam
        lam = torch.tensor(lam, dtype=torch.float32, device=device)
    lam = lam.to(device=device, dtype=dtype)
    return lam, 1 - lam


def _mix_targets(soft: torch.Tensor, lam, perm: torch.Tensor) -> torch.Tensor:
    """``soft·λ + soft[perm]·(1-λ)`` in the targets' dtype (``λ``: see :func:`_weights`;
    ``[N, 1]`` for one per image)."""
    lam, mu = _weights(lam, soft.dtype, soft.device)
    return soft * lam + _take(soft, None if perm is None else perm.to(soft.device)) * mu


def _blend(images: torch.Tensor, perm: torch.Tensor, lam) -> torch.Tensor:
    """``images·λ + images[perm]·(1-λ)`` with ``λ`` in ``[0, 1]`` (see :func:`_weights`;
    ``[N, 1, 1, 1]`` for one per image); uint8 is blended in float32 and rounded half to even.

    Under ``torch.compile`` it is the formula as one expression, which the compiler fuses. Eager,
    the float operations are the same; the code only saves passes over the batch: full-size
    temporaries are updated in place, and uint8 is rounded by adding ``1.5·2²³`` (float32 then
    holds ``1.5·2²³ + level``, rounded half to even, and the level is the low byte of its bits:
    an int32 view converted to uint8, which truncates modulo 256). On a CPU that is one pass
    where ``round`` and a float → uint8 conversion take several. The callers have checked (or
    drawn) ``λ`` in ``[0, 1]`` in eager mode, which keeps every blend of two levels within
    ``[0, 255 + 255·3·2⁻²⁴]`` before rounding: no clamp is needed there."""
    src = _take(images, perm)
    uint8 = images.dtype == torch.uint8
    lam, mu = _weights(lam, torch.float32 if uint8 else images.dtype, images.device)
    if compiling():
        if not uint8:
            return images * lam + src * mu
        return (images.float() * lam + src.float() * mu).round().clamp(0, 255).to(torch.uint8)
    if not uint8:
        needs_grad = torch.is_grad_enabled() and (images.requires_grad or getattr(lam, "requires_grad", False))
        return (images * lam).add_(src * mu if needs_grad else src.mul_(mu))
    out = images.to(torch.float32).mul_(lam).add_(src.to(torch.float32).mul_(mu))
    # + 1.5·2²³ rounds half to even to an integer float whose low byte is the level
    return out.add_(12582912.0).view(torch.int32).to(torch.uint8)


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
       torch has no Beta sampler that takes a generator: ``λ`` is drawn by NumPy from a state
       drawn from ``generator`` (see the module docstring), which costs one host sync when the
       generator lives on a GPU.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n = check_int("batch_size", batch_size, low=1)
    a = check_beta_parameter("alpha", alpha, allow_zero=True)
    lam, perm = _draw_mixup(n, a, per_sample, generator)
    lam = torch.from_numpy(lam) if per_sample else torch.tensor(lam, dtype=torch.float32)
    return MixupParams(lam.to(device or _gen_device(generator)), perm.to(device or perm.device))


def _draw_mixup(n: int, alpha: float, per_sample: bool, generator):
    """:func:`sample_mixup_params`'s draw for checked arguments: ``λ`` float32, ``[N]`` on the
    host or (one per batch) a Python float holding a float32 value, and ``perm``."""
    if per_sample:
        lam = _beta(alpha, n, generator).astype(np.float32) if alpha > 0 else np.ones(n, np.float32)
    else:
        lam = float(np.float32(_beta(alpha, 1, generator)[0])) if alpha > 0 else 1.0
    return lam, _randperm(n, generator)


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
    _check_unit_interval("params.lam", lam)
    _check_index("params.perm", perm, (n,), n)
    return _apply_mixup(images, soft, lam, perm.to(images.device).long())


def _apply_mixup(images: torch.Tensor, soft: torch.Tensor, lam, perm: torch.Tensor):
    """:func:`mixup` after its checks (``λ``: a tensor ``[]`` or ``[N]``, or a Python float)."""
    per_image = isinstance(lam, torch.Tensor) and lam.ndim
    mixed = _blend(images, perm, lam.reshape(-1, 1, 1, 1) if per_image else lam)
    return mixed, _mix_targets(soft, lam.reshape(-1, 1) if per_image else lam, perm)


class Mixup(RandomTransform, nn.Module):
    """Sample and apply mixup: ``forward(images, targets) -> (mixed_images, soft_targets)``.

    ``generator`` (optional) is the only source of randomness; ``per_sample`` draws one ``λ`` per
    image instead of one per batch (the default, as in the paper).
    """

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, *, per_sample: bool = False, generator=None):
        super().__init__()
        self.alpha = check_beta_parameter("alpha", alpha, allow_zero=True)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_sample = bool(per_sample)
        self.generator = generator

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        check_images("images", images)
        soft = _soft_targets(targets, self.num_classes)
        check_same_leading(["images", "targets"], [images, soft])
        # :func:`sample_mixup_params` + :func:`mixup`, less the record's value checks (a record
        # drawn here is valid by construction); one λ stays a Python float
        lam, perm = _draw_mixup(images.shape[0], self.alpha, self.per_sample, self.generator)
        if self.per_sample:
            lam = torch.from_numpy(lam).to(images.device)
        return _apply_mixup(images, soft, lam, perm.to(images.device))

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
       The Beta draws come from NumPy, its state drawn from ``generator`` (see the module docstring).

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


# ------------------------------------------------------------------------------------------
# CutMix and timm-style mixup/CutMix switching
# ------------------------------------------------------------------------------------------


# PCG64's increment (any odd number selects one of its streams); the state is drawn per call
_PCG64_INC = 0x5851F42D4C957F2D_14057B7EF767814F
_HOST = threading.local()


def _host_rng(generator) -> np.random.Generator:
    """A NumPy generator at a uniformly random point of one PCG64 stream: its 128-bit state is
    two 63-bit draws of ``generator`` (see the module warning).

    Setting the state of a generator kept per thread costs about 1 µs; ``default_rng(seed)``,
    whose SeedSequence hashing cost 10-35 µs a call, was a tenth of a mixing call at CIFAR size
    on a CPU. Every caller draws what it needs from the returned generator before the next
    call in its thread."""
    hi, lo = torch.randint(0, 2**63 - 1, (2,), generator=generator, device=_gen_device(generator)).tolist()
    rng = getattr(_HOST, "rng", None)
    if rng is None:
        rng = _HOST.rng = np.random.Generator(np.random.PCG64(0))
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": hi << 64 | lo, "inc": _PCG64_INC},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return rng


def _box_mask(top, left, height, width, image_h: int, image_w: int) -> torch.Tensor:
    """``[N, H, W]`` bool: True inside image i's box ``[top, top+height) × [left, left+width)``."""
    rows = torch.arange(image_h, device=top.device)
    cols = torch.arange(image_w, device=top.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # [N, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # [N, W]
    return in_rows[:, :, None] & in_cols[:, None, :]


def _check_boxes(params, n: int, image_h: int, image_w: int, device):
    """Check the ``top``/``left``/``height``/``width`` ``[N]`` integer fields of a box record; in
    eager mode also that every box (possibly empty) lies inside the image.

    Returns them as int64 on ``device`` and, in eager mode, the box every image shares as four
    ints (None when the boxes differ, or under ``torch.compile``, which reads no values)."""
    fields = []
    for name in ("top", "left", "height", "width"):
        t = getattr(params, name)
        _check_index(f"params.{name}", t, (n,), max(image_h, image_w) + 1, values=False)
        fields.append(t.to(device=device, dtype=torch.int64))
    box = torch.stack(fields)  # [4, N]
    if compiling():
        return tuple(box), None
    host = box.cpu().numpy()  # one read (one sync on a GPU) for every value check
    for name, row in zip(("top", "left", "height", "width"), host):
        if row.size:
            _check_range(f"params.{name}", int(row.min()), int(row.max()), max(image_h, image_w) + 1)
    top, left, height, width = host
    bad = (top + height > image_h) | (left + width > image_w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"`params` box {i} (top={int(top[i])}, left={int(left[i])}, height={int(height[i])}, "
            f"width={int(width[i])}) must lie inside the {image_h}x{image_w} image"
        )
    return tuple(box), _shared_box(host)


def _paste(images: torch.Tensor, perm: torch.Tensor, box, shared) -> torch.Tensor:
    """Image i with image ``perm[i]``'s pixels inside its box (pixels copied, input untouched).

    A box shared by the whole batch (eager mode) is one slice copy of the box region, as timm
    pastes (uint8 on a CPU: a bitwise select with one ``[H, W]`` mask, ``x ^ ((x ^ y) & m)``,
    three vectorised passes where the box copy moves its rows of a few bytes one by one, ~1.3×
    faster for most boxes); otherwise a per-image mask selects between the image and its partner. Same bytes."""
    if shared is not None:
        top, left, height, width = shared
        if height and width and images.dtype == torch.uint8 and images.device.type == "cpu" and not compiling():
            mask = torch.zeros(images.shape[-2:], dtype=torch.uint8)
            mask[top : top + height, left : left + width] = 255
            return _take(images, perm).bitwise_xor_(images).bitwise_and_(mask).bitwise_xor_(images)
        out = images.clone()
        if height and width:
            # gather the box's whole rows (long contiguous runs), then take its columns
            pasted = _take(images.narrow(2, top, height), perm).narrow(3, left, width)
            out.narrow(2, top, height).narrow(3, left, width).copy_(pasted)
        return out
    mask = _box_mask(*box, images.shape[-2], images.shape[-1])[:, None]
    if compiling() and images.dtype == torch.uint8:
        # Inductor vectorises this select over float32 but not over uint8 (~6x on a CPU); the
        # levels go through float32 exactly
        return torch.where(mask, _take(images, perm).float(), images.float()).to(torch.uint8)
    return torch.where(mask, _take(images, perm), images)


class CutMixParams(NamedTuple):
    """One CutMix draw (integer tensors ``[N]``): image i receives, inside the box
    ``[top, top+height) × [left, left+width)`` (clipped to the image; empty when ``height`` or
    ``width`` is 0), the pixels of image ``perm[i]``."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    perm: torch.Tensor


def sample_cutmix_params(
    batch_size: int,
    image_size,
    *,
    alpha: float = 1.0,
    per_sample: bool = False,
    generator=None,
    device=None,
) -> CutMixParams:
    """Draw a CutMix box as torchvision v2's ``CutMix``: ``λ ~ Beta(α, α)``, a centre
    ``(r_y, r_x)`` uniform over the pixels, half-sides ``⌊½·sqrt(1-λ)·H⌋`` and
    ``⌊½·sqrt(1-λ)·W⌋``, the box clipped to the image (so its area is about ``(1-λ)·H·W``).
    One box for the whole batch (torchvision) or one per image with ``per_sample``; the pairing
    is torchvision's ``roll(1)`` (``perm[i] = i - 1 mod N``). The kernel corrects λ to the box
    actually pasted.

    Sampled on the host from a NumPy state drawn from ``generator`` (see the module warning), then
    moved to ``device``; int64 fields (int32 in :mod:`jax_impl.mixing`).

    Args:
        batch_size: ``N >= 1``.
        image_size: ``(H, W)`` or an int for square images.
        alpha: ``α > 0``, finite.

    References:
        Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
        Classifiers with Localizable Features", ICCV 2019; torchvision ``transforms.v2.CutMix``.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    a = check_beta_parameter("alpha", alpha)
    fields = _draw_cutmix(n, height, width, a, per_sample, generator)
    return CutMixParams(*torch.from_numpy(fields).to(device or _gen_device(generator)))


def _draw_cutmix(n: int, height: int, width: int, alpha: float, per_sample: bool, generator) -> np.ndarray:
    """:func:`sample_cutmix_params`'s draw after its checks: the record's fields ``top``, ``left``,
    ``height``, ``width``, ``perm`` as the rows of one ``[5, N]`` int64 host array."""
    m = n if per_sample else 1
    rng = _host_rng(generator)
    lam = rng.beta(alpha, alpha, size=m)
    cx = rng.integers(0, width, size=m)
    cy = rng.integers(0, height, size=m)
    r = 0.5 * np.sqrt(1.0 - lam)
    half_w = (r * width).astype(np.int64)
    half_h = (r * height).astype(np.int64)
    x1, x2 = np.maximum(cx - half_w, 0), np.minimum(cx + half_w, width)
    y1, y2 = np.maximum(cy - half_h, 0), np.minimum(cy + half_h, height)
    fields = np.empty((5, n), dtype=np.int64)
    fields[:4] = np.stack([y1, x1, y2 - y1, x2 - x1])
    fields[4] = np.arange(-1, n - 1) % n  # torchvision v2's pairing roll(1): image i takes image i - 1 mod N
    return fields


def _shared_box(box: np.ndarray):
    """The box (``[4, N]`` host array) every image shares, as four ints; None when they differ."""
    return tuple(int(v) for v in box[:, 0]) if bool((box == box[:, :1]).all()) else None


def cutmix(images: torch.Tensor, targets: torch.Tensor, params: CutMixParams, *, num_classes: int | None = None):
    """CutMix kernel: paste image ``perm[i]``'s box into image i; mix the targets by pixel share.

    ``x̃_i = M_i ⊙ x_perm[i] + (1 - M_i) ⊙ x_i`` with ``M_i`` the box of image i, and
    ``t̃_i = λ_i·t_i + (1-λ_i)·t_perm[i]`` with ``λ_i = 1 - height_i·width_i / (H·W)``, the
    share of image i's own pixels (λ corrected to the box actually pasted, as torchvision v2).
    Both weights are float divisions of exact integers, ``(H·W - area)/(H·W)`` and
    ``area/(H·W)``.

    Args:
        images: ``[N, C, H, W]`` uint8 or float; returned in the same dtype (pixels are copied).
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`CutMixParams` (boxes inside the image: checked in eager mode).

    Returns:
        ``(mixed_images, soft_targets)``, soft targets ``[N, K]`` float (float32 for labels).

    .. warning::
       torchvision computes ``λ`` in float64 and rounds each weight to float32 once more; here
       each weight is one float32 division, which can differ from torchvision's by an ulp.

    References:
        Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
        Classifiers with Localizable Features", ICCV 2019; torchvision ``transforms.v2.CutMix``.
    """
    n, _, height, width = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    if not isinstance(params, CutMixParams):
        raise TypeError(f"`params` must be a CutMixParams, got {type(params).__name__}")
    box, shared = _check_boxes(params, n, height, width, images.device)
    _check_index("params.perm", params.perm, (n,), n)
    return _apply_cutmix(images, soft, box, params.perm.to(images.device).long(), shared)


def _apply_cutmix(images: torch.Tensor, soft: torch.Tensor, box, perm: torch.Tensor, shared):
    """:func:`cutmix` after its checks (``box``: four int64 ``[N]`` tensors; ``shared``: the box
    every image shares as four ints, or None)."""
    mixed = _paste(images, perm, box, shared)
    hw = images.shape[-2] * images.shape[-1]
    if shared is not None and soft.dtype in (torch.float32, torch.float64):
        # one area: the two shares as Python floats, a float64 division of integers below 2**24,
        # which rounded to float32 is the float32 division (double rounding is innocuous there)
        area = shared[2] * shared[3]
        own, pasted = (hw - area) / hw, area / hw
    else:
        area = (box[2] * box[3]).to(device=soft.device, dtype=soft.dtype)[:, None]
        own, pasted = (hw - area) / hw, area / hw
    return mixed, own * soft + pasted * _take(soft, perm.to(soft.device))


class CutMix(RandomTransform, nn.Module):
    """Sample and apply CutMix: ``forward(images, labels) -> (mixed_images, soft_targets)``.

    torchvision v2's ``CutMix(alpha=1.0, num_classes=None)``; ``per_sample`` draws a box per
    image instead of one per batch. ``generator`` (optional) is the only source of randomness.
    """

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, *, per_sample: bool = False, generator=None):
        super().__init__()
        self.alpha = check_beta_parameter("alpha", alpha)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_sample = bool(per_sample)
        self.generator = generator

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        n, _, height, width = check_images("images", images)
        soft = _soft_targets(labels, self.num_classes)
        check_same_leading(["images", "targets"], [images, soft])
        # :func:`sample_cutmix_params` + :func:`cutmix`, less the record's value checks: a record
        # drawn here is valid by construction, and its shared box is known on the host.
        fields = _draw_cutmix(n, height, width, self.alpha, self.per_sample, self.generator)
        box_perm = torch.from_numpy(fields).to(images.device)
        shared = None if self.per_sample else tuple(fields[:4, 0].tolist())
        return _apply_cutmix(images, soft, tuple(box_perm[:4]), box_perm[4], shared)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, num_classes={self.num_classes}, per_sample={self.per_sample}"


class MixupCutmixParams(NamedTuple):
    """One draw of timm-style mixup/CutMix switching, per image (``[N]`` each).

    Fields:
        lam: float32, image i's own share: the mixup weight, or for a CutMix image the share of
            its pixels outside the box (corrected to the box when ``correct_lam``); 1 = unmixed.
        use_cutmix: bool, True where image i gets a pasted box instead of a blend.
        top, left, height, width: int, the box of a CutMix image (empty elsewhere).
        perm: int, image i's partner (timm pairs i with ``N - 1 - i``: ``x.flip(0)``).
    """

    lam: torch.Tensor
    use_cutmix: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    perm: torch.Tensor


def _expand_to_batch(values: np.ndarray, n: int, mode: str) -> np.ndarray:
    """timm's layouts along the last axis: one draw for the batch, a draw per pair
    ``(i, N-1-i)``, or per element."""
    if mode == "batch":
        return np.broadcast_to(values, (*values.shape[:-1], n))
    if mode == "pair":
        return np.concatenate([values, values[..., ::-1]], axis=-1)
    return values


def sample_mixup_cutmix_params(
    batch_size: int,
    image_size,
    *,
    mixup_alpha: float = 1.0,
    cutmix_alpha: float = 0.0,
    cutmix_minmax=None,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
    correct_lam: bool = True,
    generator=None,
    device=None,
) -> MixupCutmixParams:
    """Draw timm ``Mixup``'s parameters (its arguments, names and defaults).

    Per draw (one per batch, per pair ``(i, N-1-i)`` or per element, by ``mode``): mix with
    probability ``prob`` (else ``λ = 1``); when both tricks are on, CutMix with probability
    ``switch_prob``, else mixup; ``λ ~ Beta(cutmix_alpha)`` or ``Beta(mixup_alpha)``. A CutMix
    box is timm's ``rand_bbox``: sides ``⌊H·sqrt(1-λ)⌋``, ``⌊W·sqrt(1-λ)⌋`` around a uniform
    centre, clipped (rows ``[cy - ⌊h/2⌋, cy + ⌈h/2⌉)``); with ``cutmix_minmax`` timm's
    ``rand_bbox_minmax`` (sides uniform in ``[⌊H·min⌋, ⌊H·max⌋)``, the box inside the image). With
    ``correct_lam`` (or ``cutmix_minmax``) a CutMix λ becomes ``1 - box area / (H·W)``.

    Sampled on the host from a NumPy state drawn from ``generator`` (see the module warning), then
    moved to ``device``. ``mode="pair"`` needs an even batch.

    .. warning::
       timm asserts an even batch in every mode; here only ``pair`` needs one (in the other
       modes an odd batch's middle image is paired with itself and stays as it is).

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    args = check_mixup_cutmix_args(mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, correct_lam)
    lam, use_cutmix, ints = _draw_mixup_cutmix(n, height, width, args, generator)
    dev = device or _gen_device(generator)
    return MixupCutmixParams(torch.from_numpy(lam).to(dev), torch.from_numpy(use_cutmix).to(dev), *torch.from_numpy(ints).to(dev))


def _draw_mixup_cutmix(n: int, height: int, width: int, args, generator):
    """:func:`sample_mixup_cutmix_params`'s draw for checked arguments (``args``:
    :class:`twintricks.mixing.MixupCutmixArgs`), on the host: ``lam`` float32 ``[N]``,
    ``use_cutmix`` bool ``[N]`` and the fields ``top``, ``left``, ``height``, ``width``, ``perm``
    as the rows of one ``[5, N]`` int64 array."""
    ints = np.empty((5, n), dtype=np.int64)
    ints[4] = np.arange(n - 1, -1, -1)  # timm pairs image i with N - 1 - i (x.flip(0))
    if args.mode == "batch":
        lam, boxed, box = _draw_mixup_cutmix_batch(height, width, args, generator)
        ints[:4] = np.array(box)[:, None]
        return np.full(n, lam, dtype=np.float32), np.full(n, boxed), ints
    if args.mode == "pair" and n % 2:
        raise ValueError(f"`batch_size` must be even for mode='pair', got {n}")
    cut_range = _cut_range(height, width, args)
    lam, boxed, box = _draw_mixup_cutmix_groups(n // 2 if args.mode == "pair" else n, height, width, args, cut_range, _host_rng(generator))
    ints[:4] = _expand_to_batch(box, n, args.mode)
    lam, use_cutmix = (np.ascontiguousarray(_expand_to_batch(v, n, args.mode)) for v in (lam, boxed))
    return lam, use_cutmix, ints


def _cut_range(height: int, width: int, args):
    return None if args.cutmix_minmax is None else minmax_cut_range(args.cutmix_minmax, height, width)


def _draw_mixup_cutmix_groups(m: int, height: int, width: int, args, cut_range, rng: np.random.Generator):
    """``m`` independent draws (one per pair or per image), as timm draws them: ``lam`` float32
    ``[m]`` (corrected to the box), ``boxed`` bool ``[m]`` (a CutMix draw with a non-empty box)
    and ``box`` int64 ``[4, m]`` (``top, left, height, width``; zeros unless boxed)."""
    apply = rng.random(m) < args.prob
    if args.mixup_alpha > 0 and args.cutmix_alpha > 0:
        use_cutmix = rng.random(m) < args.switch_prob
    else:
        use_cutmix = np.full(m, args.cutmix_alpha > 0)
    lam_mix = np.ones(m)
    if args.mixup_alpha > 0:
        lam_mix = np.where(use_cutmix, lam_mix, rng.beta(args.mixup_alpha, args.mixup_alpha, size=m))
    if args.cutmix_alpha > 0:
        lam_mix = np.where(use_cutmix, rng.beta(args.cutmix_alpha, args.cutmix_alpha, size=m), lam_mix)
    lam = np.where(apply, lam_mix.astype(np.float32), np.float32(1.0))
    boxed = use_cutmix & (lam != 1)
    if cut_range is None:  # timm's rand_bbox; a centre inside the image leaves only these two clips to bite
        ratio = np.sqrt(1.0 - lam_mix)
        cut_h, cut_w = (height * ratio).astype(np.int64), (width * ratio).astype(np.int64)
        cy, cx = rng.integers(0, height, size=m), rng.integers(0, width, size=m)
        y1, y2 = np.maximum(cy - cut_h // 2, 0), np.minimum(cy + (cut_h + 1) // 2, height)
        x1, x2 = np.maximum(cx - cut_w // 2, 0), np.minimum(cx + (cut_w + 1) // 2, width)
    else:
        lo_h, hi_h, lo_w, hi_w = cut_range
        cut_h, cut_w = rng.integers(lo_h, hi_h, size=m), rng.integers(lo_w, hi_w, size=m)
        y1, x1 = rng.integers(0, height - cut_h + 1), rng.integers(0, width - cut_w + 1)
        y2, x2 = y1 + cut_h, x1 + cut_w
    box = np.where(boxed, np.stack([y1, x1, y2 - y1, x2 - x1]), 0)
    if args.correct_lam or cut_range is not None:
        lam = np.where(boxed, (1.0 - box[2] * box[3] / float(height * width)).astype(np.float32), lam)
    return lam.astype(np.float32), boxed, box


def _draw_mixup_cutmix_batch(height: int, width: int, args, generator):
    """The one draw of ``mode='batch'``: :func:`_draw_mixup_cutmix_groups` with ``m = 1``, in
    Python scalars. The same NumPy calls in the same order give the same stream and, with IEEE
    float64 throughout, the same values (a test compares the two); NumPy's per-call overhead on
    one-element arrays was most of the module's time at CIFAR size. Returns ``lam`` (a float32
    value), ``boxed`` and the box ``(top, left, height, width)``."""
    cut_range = _cut_range(height, width, args)
    rng = _host_rng(generator)
    apply = rng.random() < args.prob
    use_cutmix = rng.random() < args.switch_prob if args.mixup_alpha > 0 and args.cutmix_alpha > 0 else args.cutmix_alpha > 0
    lam_mix = 1.0
    if args.mixup_alpha > 0:
        draw = rng.beta(args.mixup_alpha, args.mixup_alpha)
        lam_mix = lam_mix if use_cutmix else draw
    if args.cutmix_alpha > 0:
        draw = rng.beta(args.cutmix_alpha, args.cutmix_alpha)
        lam_mix = draw if use_cutmix else lam_mix
    lam = float(np.float32(lam_mix)) if apply else 1.0
    boxed = bool(use_cutmix and lam != 1)
    if cut_range is None:
        ratio = math.sqrt(1.0 - lam_mix)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, y2 = max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, height)
        x1, x2 = max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, width)
    else:
        lo_h, hi_h, lo_w, hi_w = cut_range
        cut_h, cut_w = int(rng.integers(lo_h, hi_h)), int(rng.integers(lo_w, hi_w))
        y1, x1 = int(rng.integers(0, height - cut_h + 1)), int(rng.integers(0, width - cut_w + 1))
        y2, x2 = y1 + cut_h, x1 + cut_w
    if not boxed:
        return lam, False, (0, 0, 0, 0)
    box = (y1, x1, y2 - y1, x2 - x1)
    if args.correct_lam or cut_range is not None:
        lam = float(np.float32(1.0 - box[2] * box[3] / float(height * width)))
    return lam, True, box


def mixup_cutmix(
    images: torch.Tensor,
    targets: torch.Tensor,
    params: MixupCutmixParams,
    *,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
):
    """Kernel of timm-style mixup/CutMix switching, image by image.

    With ``j = perm[i]`` and ``λ = lam[i]``: a CutMix image takes image j's pixels inside its box
    (``where``, pixels copied); a mixup image is ``x_i·λ + x_j·(1-λ)`` (uint8: blended in float32
    and rounded half to even, as timm's ``FastCollateMixup``); targets, smoothed first as timm's
    ``mixup_target``, are ``t_i·λ + t_j·(1-λ)``.

    Args:
        images: ``[N, C, H, W]`` uint8 or float; returned in the same dtype.
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`MixupCutmixParams` (value checks in eager mode only).
        label_smoothing: ``ε`` in ``[0, 1]`` (timm ``Mixup``'s default is 0.1; 0 here).

    Returns:
        ``(mixed_images, soft_targets)``, soft targets ``[N, K]`` float (float32 for labels).

    .. warning::
       timm's per-batch mode computes ``1 - λ`` in float64 and rounds it to float32; here
       ``1 - λ`` is computed in float32 from the float32 ``λ`` of the record (as timm's per-pair
       and per-element modes do), so per-batch results can differ from timm's by an ulp.

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """
    n, _, height, width = check_images("images", images)
    eps = check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)
    soft = _soft_targets(targets, num_classes, eps)
    check_same_leading(["images", "targets"], [images, soft])
    if not isinstance(params, MixupCutmixParams):
        raise TypeError(f"`params` must be a MixupCutmixParams, got {type(params).__name__}")
    lam, use_cutmix = params.lam, params.use_cutmix
    if not isinstance(lam, torch.Tensor) or not lam.is_floating_point() or tuple(lam.shape) != (n,):
        raise TypeError(f"`params.lam` must be a floating torch.Tensor of shape ({n},)")
    lam_shared = _check_unit_interval("params.lam", lam)
    if not isinstance(use_cutmix, torch.Tensor) or use_cutmix.dtype != torch.bool or tuple(use_cutmix.shape) != (n,):
        raise TypeError(f"`params.use_cutmix` must be a bool torch.Tensor of shape ({n},)")
    box, shared = _check_boxes(params, n, height, width, images.device)
    _check_index("params.perm", params.perm, (n,), n)
    perm = params.perm.to(images.device).long()
    lam, use_cutmix = lam.to(images.device), use_cutmix.to(images.device)
    every = None if compiling() else (bool(use_cutmix.all()), bool(use_cutmix.any()))
    return _apply_mixup_cutmix(images, soft, lam, use_cutmix, box, perm, shared, every, lam_shared)


def _apply_mixup_cutmix(images, soft, lam, use_cutmix, box, perm, shared, every, lam_shared):
    """:func:`mixup_cutmix` after its checks. Read on the host in eager mode (None under
    ``torch.compile``): ``every``, ``(all, any)`` of ``use_cutmix``; ``shared``, the box every
    image shares; ``lam_shared``, whether every image has the same ``λ`` (then blended as 0-d)."""
    # Eager, with one choice for the whole batch (timm's mode='batch'), only that path is computed;
    # compiled code keeps static control flow and selects per image. The bytes are the same.
    if every is None:
        # over float32, which Inductor vectorises (uint8 it did not); a pasted level is an integer,
        # which the rounding and the clamp keep
        uint8 = images.dtype == torch.uint8
        work = images.float() if uint8 else images
        lam4 = lam.reshape(-1, 1, 1, 1)
        mixed = torch.where(use_cutmix.reshape(-1, 1, 1, 1), _paste(work, perm, box, None), _blend(work, perm, lam4))
        if uint8:
            mixed = mixed.round().clamp(0, 255).to(torch.uint8)
    elif every == (True, True):
        mixed = _paste(images, perm, box, shared)
    else:
        mixed = _blend(images, perm, lam[0] if lam_shared else lam.reshape(-1, 1, 1, 1))
        if every != (False, False):
            mixed = torch.where(use_cutmix.reshape(-1, 1, 1, 1), _paste(images, perm, box, None), mixed)
    return mixed, _mix_targets(soft, lam[:, None], perm)


class MixupCutmix(RandomTransform, nn.Module):
    """Sample and apply timm-style mixup/CutMix switching:
    ``forward(images, targets) -> (mixed_images, soft_targets)``.

    timm ``Mixup``'s arguments, order and defaults (``mixup_alpha=1.0``, ``cutmix_alpha=0.0``,
    ``cutmix_minmax=None``, ``prob=1.0``, ``switch_prob=0.5``, ``mode='batch'``,
    ``correct_lam=True``, ``label_smoothing=0.1``, ``num_classes=1000``), so a timm user's
    arguments carry over unchanged; set ``mixup_enabled = False`` to stop mixing (as timm's
    training script does late in training; the targets are still smoothed). ``generator``
    (optional, keyword) is the only source of randomness. Unlike timm, the input batch is not
    modified.

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        cutmix_minmax=None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        correct_lam: bool = True,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        *,
        generator=None,
    ):
        super().__init__()
        args = check_mixup_cutmix_args(mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, correct_lam)
        self.mixup_alpha, self.cutmix_alpha, self.cutmix_minmax = args.mixup_alpha, args.cutmix_alpha, args.cutmix_minmax
        self.mix_prob, self.switch_prob, self.mode, self.correct_lam = args.prob, args.switch_prob, args.mode, args.correct_lam
        self.label_smoothing = check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.mixup_enabled = True
        self.generator = generator

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        n, _, height, width = check_images("images", images)
        if self.mixup_enabled:
            # :func:`sample_mixup_cutmix_params` + :func:`mixup_cutmix`, less the record's value
            # checks: a record drawn here is valid by construction, and its choices are on the host.
            eps = check_real("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
            soft = _soft_targets(targets, self.num_classes, eps)
            check_same_leading(["images", "targets"], [images, soft])
            args = check_mixup_cutmix_args(
                self.mixup_alpha, self.cutmix_alpha, self.cutmix_minmax, self.mix_prob, self.switch_prob, self.mode, self.correct_lam
            )
            dev = images.device
            if args.mode == "batch":  # one draw, read as Python scalars; only its path is computed
                lam, boxed, box = _draw_mixup_cutmix_batch(height, width, args, self.generator)
                perm = None  # timm's x.flip(0)
                mixed = _paste(images, perm, None, box) if boxed else _blend(images, perm, lam)
                return mixed, _mix_targets(soft, lam, perm)
            lam, use_cutmix, ints = _draw_mixup_cutmix(n, height, width, args, self.generator)
            fields = torch.from_numpy(ints).to(dev)
            return _apply_mixup_cutmix(
                images, soft, torch.from_numpy(lam).to(dev), torch.from_numpy(use_cutmix).to(dev),
                tuple(fields[:4]), fields[4], None, (bool(use_cutmix.all()), bool(use_cutmix.any())), False,
            )
        zeros = torch.zeros(n, dtype=torch.int64, device=images.device)  # mixing off: λ = 1, targets still smoothed
        params = MixupCutmixParams(
            torch.ones(n, device=images.device), zeros.bool(), zeros, zeros, zeros, zeros,
            torch.arange(n - 1, -1, -1, device=images.device),
        )
        return mixup_cutmix(images, targets, params, num_classes=self.num_classes, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return (
            f"mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, cutmix_minmax={self.cutmix_minmax}, "
            f"prob={self.mix_prob}, switch_prob={self.switch_prob}, mode={self.mode!r}, correct_lam={self.correct_lam}, "
            f"label_smoothing={self.label_smoothing}, num_classes={self.num_classes}"
        )
