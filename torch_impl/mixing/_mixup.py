"""mixup in PyTorch: ``sample_mixup_params``, the kernel ``mixup`` and the module ``Mixup``.
Images ``[N, C, H, W]``; targets ``[N]`` labels (with ``num_classes``) or ``[N, K]`` soft targets,
returned as ``[N, K]`` soft targets (the helpers and the host Beta draw: :mod:`torch_impl.mixing._common`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from torch_impl._checks import check_images
from torch_impl.mixing._common import (
    _beta,
    _blend,
    _check_index,
    _check_unit_interval,
    _gen_device,
    _mix_targets,
    _randperm,
    _soft_targets,
)
from torch_impl.transform import RandomTransform
from twintricks.checks import check_bool, check_int, check_same_leading
from twintricks.mixing import check_beta_parameter
from twintricks.tricks import TrickImpl, target_classes

__all__ = ["MixupParams", "sample_mixup_params", "mixup", "Mixup"]


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
       drawn from ``generator`` (see :mod:`torch_impl.mixing._common`), which costs one host sync when the
       generator lives on a GPU.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n = check_int("batch_size", batch_size, low=1)
    a = check_beta_parameter("alpha", alpha, allow_zero=True)
    per_sample = check_bool("per_sample", per_sample)
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


def mixup(images: torch.Tensor, targets: torch.Tensor, params: MixupParams, *, num_classes: int | None = None,
          inplace: bool = False):
    """mixup kernel: ``x̃ = λ·x + (1-λ)·x[perm]``, ``t̃ = λ·t + (1-λ)·t[perm]``.

    Args:
        images: ``[N, C, H, W]`` uint8 or float; not modified unless ``inplace``.
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`MixupParams`; ``lam`` ``[]`` or ``[N]`` (per-sample mode).
        inplace: write the mixed images into ``images`` and return it, as timm's ``Mixup`` does
            (no batch-sized allocation); the same values. Default False: a new tensor. Not for
            images that require grad (a ValueError).

    Returns:
        ``(mixed_images, soft_targets)``: images of the input dtype (uint8 is blended in float32
        and rounded half to even), targets ``[N, K]`` float (float32 for integer labels). With
        these targets ``CE(z, t̃) = λ·CE(z, y_a) + (1-λ)·CE(z, y_b)``, the reference's loss.

    .. warning::
       The reference code mixes float tensors only. For uint8 images the blend is computed in
       float32 and rounded half to even, so the result is quantised; and since a compiler may
       fuse ``λ·x + (1-λ)·x'`` into one multiply-add (one rounding instead of two), a value
       within an ulp of a .5 tie can round to a level one apart from :mod:`jax_impl.mixing._mixup`.

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
    return _apply_mixup(images, soft, lam, perm.to(images.device).long(), _check_inplace(inplace, images))


def _check_inplace(inplace, images: torch.Tensor) -> bool:
    """``inplace`` checked: a bool, and not True for images autograd tracks."""
    inplace = check_bool("inplace", inplace)
    if inplace and torch.is_grad_enabled() and images.requires_grad:
        raise ValueError("`inplace=True` cannot write into `images`, which require grad: pass inplace=False")
    return inplace


def _apply_mixup(images: torch.Tensor, soft: torch.Tensor, lam, perm: torch.Tensor, inplace: bool = False):
    """:func:`mixup` after its checks (``λ``: a tensor ``[]`` or ``[N]``, or a Python float)."""
    per_image = isinstance(lam, torch.Tensor) and lam.ndim
    mixed = _blend(images, perm, lam.reshape(-1, 1, 1, 1) if per_image else lam, inplace)
    return mixed, _mix_targets(soft, lam.reshape(-1, 1) if per_image else lam, perm)


class Mixup(RandomTransform, nn.Module):
    """Sample and apply mixup: ``forward(images, targets) -> (mixed_images, soft_targets)``.

    ``generator`` (optional) is the only source of randomness; ``per_sample`` draws one ``λ`` per
    image instead of one per batch (the default, as in the paper); ``inplace`` mixes into the
    input batch and returns it (timm's ``Mixup`` does; see :func:`mixup`).
    """

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, *, per_sample: bool = False, generator=None,
                 inplace: bool = False):
        super().__init__()
        self.alpha = check_beta_parameter("alpha", alpha, allow_zero=True)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_sample = check_bool("per_sample", per_sample)
        self.generator = generator
        self.inplace = check_bool("inplace", inplace)

    def forward(self, images: torch.Tensor, targets: torch.Tensor):
        check_images("images", images)
        soft = _soft_targets(targets, self.num_classes)
        check_same_leading(["images", "targets"], [images, soft])
        # :func:`sample_mixup_params` + :func:`mixup`, less the record's value checks (a record
        # drawn here is valid by construction); one λ stays a Python float
        alpha = check_beta_parameter("alpha", self.alpha, allow_zero=True)  # re-checked: attributes may be set after __init__
        check_bool("per_sample", self.per_sample)
        inplace = _check_inplace(self.inplace, images)
        lam, perm = _draw_mixup(images.shape[0], alpha, self.per_sample, self.generator)
        if self.per_sample:
            lam = torch.from_numpy(lam).to(images.device)
        return _apply_mixup(images, soft, lam, perm.to(images.device), inplace)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, num_classes={self.num_classes}, per_sample={self.per_sample}"
                + (", inplace=True" if self.inplace else ""))


# ------------------------------------------------------------------------------------------
# The trainer's entry: collected by torch_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------

TRICK_IMPLS = {
    "mixup": TrickImpl(
        lambda n, tr, g: sample_mixup_params(n, alpha=tr.config.mixup, generator=g, device=tr.device),
        lambda x, y, p, tr: mixup(x, y, p, num_classes=target_classes(y, tr)),
    ),
}
