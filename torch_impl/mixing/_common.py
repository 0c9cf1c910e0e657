"""What torch_impl's mixing tricks share: targets as soft targets and their mix, the blend of two
images, batch permutations, parameter checks, and the host random generator the samplers draw
Beta variates (and CutMix its boxes) from. Images ``[N, C, H, W]``.

Under ``torch.compile`` the helpers use gathers and broadcasting only (no Python loop over the
batch, no data-dependent shapes). In eager mode they take shortcuts that give the same bytes (a
Python-float weight instead of a 0-d tensor, in-place updates of temporaries). Inputs are never
modified in place.

.. warning::
   torch has no Beta sampler that takes a ``torch.Generator``. The samplers draw two 63-bit
   numbers from ``generator`` (torch's default generator when None), set a NumPy PCG64
   generator's state to them and draw the Beta variates with it on the host
   (:func:`_host_rng`), so the generator stays the only source of randomness; the random streams
   of course differ from :mod:`jax_impl.mixing`'s (parity compares kernels on shared parameter
   records, never streams). CutMix and the mixup/CutMix switch draw all their values (λ, coins,
   boxes) from that NumPy generator.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from torch_impl._checks import check_floating, check_labels, compiling, generator_device
from twintricks.checks import check_int, check_ndim

__all__: list[str] = []  # helpers of the mixing modules; the tricks are theirs


def _gen_device(generator) -> torch.device:
    return generator_device(generator, torch.device("cpu"))


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


def _blend(images: torch.Tensor, perm: torch.Tensor, lam, inplace: bool = False) -> torch.Tensor:
    """``images·λ + images[perm]·(1-λ)`` with ``λ`` in ``[0, 1]`` (see :func:`_weights`;
    ``[N, 1, 1, 1]`` for one per image); uint8 is blended in float32 and rounded half to even.
    ``inplace``: written into ``images`` (the partners are copied out first), the same values.

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
            out = images * lam + src * mu
        else:
            out = (images.float() * lam + src.float() * mu).round().clamp(0, 255).to(torch.uint8)
        return images.copy_(out) if inplace else out
    if not uint8:
        if inplace:  # timm's in-place form: no batch-sized allocation to fault in
            return images.mul_(lam).add_(src.mul_(mu))
        needs_grad = torch.is_grad_enabled() and (images.requires_grad or getattr(lam, "requires_grad", False))
        return (images * lam).add_(src * mu if needs_grad else src.mul_(mu))
    out = images.to(torch.float32).mul_(lam).add_(src.to(torch.float32).mul_(mu))
    # + 1.5·2²³ rounds half to even to an integer float whose low byte is the level
    out = out.add_(12582912.0).view(torch.int32)
    return images.copy_(out) if inplace else out.to(torch.uint8)


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
