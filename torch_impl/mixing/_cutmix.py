"""CutMix and timm-style mixup/CutMix switching in PyTorch: torchvision v2's CutMix
(``sample_cutmix_params``, ``cutmix``, ``CutMix``) and timm's ``Mixup`` (``sample_mixup_cutmix_params``,
``mixup_cutmix``, ``MixupCutmix``), which the recipe's ``cutmix`` trick runs. Images ``[N, C, H, W]``;
targets ``[N]`` labels (with ``num_classes``) or ``[N, K]`` soft targets, returned as ``[N, K]`` soft
targets. Every value (λ, coins, boxes) is drawn on the host from :func:`torch_impl.mixing._common._host_rng`.

Eager, a box the whole batch shares is one region copy and one choice for the whole batch computes
only its path; compiled, the kernels select per image. The bytes are the same.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from torch_impl._checks import check_images, compiling
from torch_impl.mixing._common import (
    _blend,
    _check_index,
    _check_range,
    _check_unit_interval,
    _gen_device,
    _host_rng,
    _mix_targets,
    _soft_targets,
    _take,
)
from torch_impl.transform import RandomTransform
from twintricks.checks import check_bool, check_int, check_real, check_same_leading, check_size
from twintricks.mixing import check_beta_parameter, check_mixup_cutmix_args, minmax_cut_range
from twintricks.tricks import TrickImpl, target_classes

__all__ = [
    "CutMixParams",
    "sample_cutmix_params",
    "cutmix",
    "CutMix",
    "MixupCutmixParams",
    "sample_mixup_cutmix_params",
    "mixup_cutmix",
    "MixupCutmix",
]


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

    Sampled on the host from a NumPy state drawn from ``generator`` (see :mod:`torch_impl.mixing._common`), then
    moved to ``device``; int64 fields (int32 in :mod:`jax_impl.mixing._cutmix`).

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
    per_sample = check_bool("per_sample", per_sample)
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
        self.per_sample = check_bool("per_sample", per_sample)
        self.generator = generator

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        n, _, height, width = check_images("images", images)
        soft = _soft_targets(targets, self.num_classes)
        check_same_leading(["images", "targets"], [images, soft])
        alpha = check_beta_parameter("alpha", self.alpha)  # re-checked: attributes may be set after __init__
        check_bool("per_sample", self.per_sample)
        if n == 0:  # an empty batch stays empty, as with Mixup and MixupCutmix
            return images.clone(), soft
        # :func:`sample_cutmix_params` + :func:`cutmix`, less the record's value checks: a record
        # drawn here is valid by construction, and its shared box is known on the host.
        fields = _draw_cutmix(n, height, width, alpha, self.per_sample, self.generator)
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

    Sampled on the host from a NumPy state drawn from ``generator`` (see :mod:`torch_impl.mixing._common`), then
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


class _ArrayDraws:
    """The switch's draw as ``m`` independent draws in NumPy arrays (modes ``pair`` and ``elem``)."""

    def __init__(self, rng: np.random.Generator, m: int):
        self.rng, self.m = rng, m

    def random(self):
        return self.rng.random(self.m)

    def beta(self, a: float):
        return self.rng.beta(a, a, size=self.m)

    def integers(self, low, high):
        # per-element bounds (an array) give the shape themselves
        return self.rng.integers(low, high, size=None if np.ndim(high) else self.m)

    def full(self, value):
        return np.full(self.m, value)

    where, sqrt = staticmethod(np.where), staticmethod(np.sqrt)
    maximum, minimum = staticmethod(np.maximum), staticmethod(np.minimum)

    @staticmethod
    def trunc(x):
        return x.astype(np.int64)

    @staticmethod
    def weight(apply, lam):
        """``lam`` as float32 where ``apply``, else 1."""
        return np.where(apply, lam.astype(np.float32), np.float32(1.0))

    @staticmethod
    def box(boxed, box):
        return np.where(boxed, np.stack(box), 0)

    @staticmethod
    def own_share(boxed, box, pixels: int, lam):
        """The share of its own pixels (float32) where ``boxed``, else ``lam``."""
        return np.where(boxed, (1.0 - box[2] * box[3] / float(pixels)).astype(np.float32), lam)


class _ScalarDraws:
    """The switch's one draw of ``mode='batch'`` in Python scalars: the same generator calls
    without a size and the same IEEE float64 arithmetic (``math.sqrt`` and ``np.sqrt`` are both
    correctly rounded; ``int`` and ``astype(int64)`` both truncate), so the same stream gives the
    same values as :class:`_ArrayDraws` with ``m = 1``. NumPy's per-call overhead on one-element
    arrays was most of the module's time at CIFAR size."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.random = rng.random

    def beta(self, a: float):
        return self.rng.beta(a, a)

    def integers(self, low, high):
        return int(self.rng.integers(low, high))

    @staticmethod
    def full(value):
        return value

    @staticmethod
    def where(condition, x, y):
        return x if condition else y

    sqrt, maximum, minimum, trunc = staticmethod(math.sqrt), staticmethod(max), staticmethod(min), staticmethod(int)

    @staticmethod
    def weight(apply, lam):
        return float(np.float32(lam)) if apply else 1.0

    @staticmethod
    def box(boxed, box):
        return box if boxed else (0, 0, 0, 0)

    @staticmethod
    def own_share(boxed, box, pixels: int, lam):
        return float(np.float32(1.0 - box[2] * box[3] / float(pixels))) if boxed else lam


def _switch_draw(d, height: int, width: int, args, cut_range):
    """One draw of timm's switch, as timm draws it, written once for ``d`` :class:`_ArrayDraws`
    (``m`` draws, one per pair or per image) or :class:`_ScalarDraws` (the one draw of a batch).

    Returns ``lam`` (float32: ``[m]``, or a Python float holding a float32 value; corrected to the
    box), ``boxed`` (a CutMix draw with a non-empty box) and ``box`` (``top, left, height,
    width``: int64 ``[4, m]`` or four ints; zeros unless boxed)."""
    apply = d.random() < args.prob
    if args.mixup_alpha > 0 and args.cutmix_alpha > 0:
        use_cutmix = d.random() < args.switch_prob
    else:
        use_cutmix = d.full(args.cutmix_alpha > 0)
    lam_mix = d.full(1.0)
    if args.mixup_alpha > 0:
        lam_mix = d.where(use_cutmix, lam_mix, d.beta(args.mixup_alpha))
    if args.cutmix_alpha > 0:
        lam_mix = d.where(use_cutmix, d.beta(args.cutmix_alpha), lam_mix)
    lam = d.weight(apply, lam_mix)
    boxed = use_cutmix & (lam != 1)
    if cut_range is None:  # timm's rand_bbox; a centre inside the image leaves only these two clips to bite
        ratio = d.sqrt(1.0 - lam_mix)
        cut_h, cut_w = d.trunc(height * ratio), d.trunc(width * ratio)
        cy, cx = d.integers(0, height), d.integers(0, width)
        y1, y2 = d.maximum(cy - cut_h // 2, 0), d.minimum(cy + (cut_h + 1) // 2, height)
        x1, x2 = d.maximum(cx - cut_w // 2, 0), d.minimum(cx + (cut_w + 1) // 2, width)
    else:
        lo_h, hi_h, lo_w, hi_w = cut_range
        cut_h, cut_w = d.integers(lo_h, hi_h), d.integers(lo_w, hi_w)
        y1, x1 = d.integers(0, height - cut_h + 1), d.integers(0, width - cut_w + 1)
        y2, x2 = y1 + cut_h, x1 + cut_w
    box = d.box(boxed, (y1, x1, y2 - y1, x2 - x1))
    if args.correct_lam or cut_range is not None:
        lam = d.own_share(boxed, box, height * width, lam)
    return lam, boxed, box


def _draw_mixup_cutmix_groups(m: int, height: int, width: int, args, cut_range, rng: np.random.Generator):
    """``m`` independent draws (one per pair or per image) of :func:`_switch_draw` in arrays:
    ``lam`` float32 ``[m]``, ``boxed`` bool ``[m]``, ``box`` int64 ``[4, m]``."""
    return _switch_draw(_ArrayDraws(rng, m), height, width, args, cut_range)


def _draw_mixup_cutmix_batch(height: int, width: int, args, generator):
    """The one draw of ``mode='batch'``: :func:`_switch_draw` in Python scalars. Returns ``lam``
    (a float32 value), ``boxed`` and the box ``(top, left, height, width)``."""
    return _switch_draw(_ScalarDraws(_host_rng(generator)), height, width, args, _cut_range(height, width, args))


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

    @property
    def prob(self) -> float:
        """The constructor's ``prob``, stored as timm's ``mix_prob`` (either name sets it; checked at call time)."""
        return self.mix_prob

    @prob.setter
    def prob(self, value) -> None:
        self.mix_prob = value

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


# ------------------------------------------------------------------------------------------
# The trainer's entry: collected by torch_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------

def _trainer_sample_cutmix(n, trainer, g):
    c = trainer.config
    return sample_mixup_cutmix_params(
        n, trainer.image_size, mixup_alpha=c.mixup, cutmix_alpha=c.cutmix, cutmix_minmax=c.cutmix_minmax,
        prob=c.mix_prob, switch_prob=c.mix_switch_prob, mode=c.mix_mode, generator=g, device=trainer.device,
    )


# CutMix alone, or (with mixup on, which it then takes over) timm's mixup/CutMix switching; label
# smoothing is already folded into the soft targets, as timm's mixup_target does.
TRICK_IMPLS = {
    "cutmix": TrickImpl(
        _trainer_sample_cutmix, lambda x, y, p, tr: mixup_cutmix(x, y, p, num_classes=target_classes(y, tr))
    ),
}
