"""The AutoAugment family with every draw made per image, applied batched: AutoAugment, RandAugment,
TrivialAugmentWide and AugMix.

torchvision's ``AutoAugment`` draws one sub-policy per call, so a batch tensor gets the same two
operations on every image. Here :func:`sample_autoaugment_params` draws, per image, the
sub-policy index, whether each of its two operations fires (probability ``p`` of the policy) and
the sign of signed magnitudes; :func:`autoaugment` applies them to the whole ``[N, C, H, W]``
batch in one computation with static shapes: for each of the two operation slots it evaluates
the operations that the policy can put in that slot, each once over the batch with per-image
magnitudes (the five geometric ops share one affine warp), and selects per image with ``where``.
No Python loop over the batch, no data-dependent shapes: it compiles once under ``torch.compile``.
Eagerly on a CPU it instead runs each operation only on the images that drew it, a few images at
a time (:mod:`torch_impl._eager`): on uint8 images the pixel-wise operations as per-image 256-entry
lookup tables (LUTs) and a gather, or whole-uint8 arithmetic (Posterize, Solarize, Invert), the
nearest warp as a gather of cached picks (same bytes).

Given the same draws, each image equals torchvision's ``AutoAugment`` on that image alone (same
policies, same magnitude bins, same kernels; see :mod:`torch_impl.ops` for the one exception,
Contrast on sizes where ``C·H·W`` is not a multiple of 32).

RandAugment (:func:`randaugment`: ``num_ops`` ops per image), TrivialAugmentWide
(:func:`trivialaugment_wide`: one op and bin per image) and AugMix (:func:`augmix`: per image
``W`` chains of 1..3 ops mixed with Dirichlet/Beta weights) run through the same slot machinery
with torchvision v2's op sets and bins (:mod:`twintricks.policies`); the same standard holds.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.AutoAugment``. RandAugment, TrivialAugmentWide, AugMix:
    see their kernels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from torch_impl import _eager, exact, kernels
from torch_impl._checks import check_images, compiling, generator_device
from torch_impl._policy_checks import check_family_images as _check_family_images
from torch_impl._policy_checks import check_int_field as _check_int_field
from torch_impl._policy_checks import check_record as _check_record
from torch_impl._policy_checks import check_shape as _check_shape
from torch_impl.ops import check_op_images, fill_values
from torch_impl.transform import RandomTransform
from twintricks.checks import check_int, check_ndim, check_same_leading
from twintricks.policies import (
    AUGMIX_MAX_DEPTH,
    AUGMIX_NUM_BINS,
    AUGMIX_OPS,
    AUGMIX_PARTIAL_OPS,
    FAMILY_OPS,
    GEOMETRIC_OPS,
    OPS,
    PLACEHOLDER_MAGNITUDES,
    POLICIES,
    RANDAUGMENT_OPS,
    STATIC_LUT_OPS,
    TRIVIALAUGMENT_WIDE_OPS,
    check_augmix_args,
    check_augmix_weights,
    check_interpolation,
    check_num_bins,
    check_randaugment_args,
    family_arrays,
    policy_arrays,
    policy_name,
)

__all__ = [
    "AutoAugmentParams",
    "sample_autoaugment_params",
    "autoaugment",
    "AutoAugment",
    "RandAugmentParams",
    "sample_randaugment_params",
    "randaugment",
    "RandAugment",
    "TrivialAugmentWideParams",
    "sample_trivialaugment_wide_params",
    "trivialaugment_wide",
    "TrivialAugmentWide",
    "AugMixParams",
    "sample_augmix_params",
    "augmix",
    "AugMix",
]


class AutoAugmentParams(NamedTuple):
    """Per-image AutoAugment draws (field names identical in :mod:`jax_impl.policies`).

    Attributes:
        sub_policy: ``[N]`` int64, index into the policy's 25 sub-policies.
        apply: ``[N, 2]`` bool, whether each of the sub-policy's two operations fires.
        negate: ``[N, 2]`` bool, whether a signed operation's magnitude is negated (ignored for
            unsigned operations).
    """

    sub_policy: torch.Tensor
    apply: torch.Tensor
    negate: torch.Tensor


_POLICY_ARRAYS: dict = {}


def _policy_arrays(policy: str, height: int, width: int):
    """:func:`twintricks.policies.policy_arrays`, cached in eager mode; under ``torch.compile``
    computed inline (plain Python, constant-folded)."""
    key = (policy, height, width)
    if not compiling() and key in _POLICY_ARRAYS:
        return _POLICY_ARRAYS[key]
    arrays = policy_arrays(policy, height, width)
    if not compiling():
        _POLICY_ARRAYS[key] = arrays
    return arrays


def _matrix_builders(height: int, width: int) -> dict:
    """Each geometric op's inverse matrices ``[N, 6]`` (float64) from ``[N]`` float64 magnitudes."""
    return {
        "ShearX": lambda m: kernels.shear_matrix(m, height, width, 0),
        "ShearY": lambda m: kernels.shear_matrix(m, height, width, 1),
        "TranslateX": lambda m: kernels.translate_matrix(m, 0),
        "TranslateY": lambda m: kernels.translate_matrix(m, 1),
        "Rotate": kernels.rotate_matrix,
    }


_MATRICES: dict = {}


def _matrix_cache(policy: str, height: int, width: int, device) -> torch.Tensor:
    """Inverse affine matrices ``[25, 2, 2, 6]`` (float64) per (sub-policy, slot, negated): the
    geometric op's matrix for its magnitude bin (same float64 arithmetic as the ops), identity for
    the other ops. Cached in eager mode."""
    key = (policy, height, width, str(device))
    if not compiling() and key in _MATRICES:
        return _MATRICES[key]
    op_id, _, mag, _ = _policy_arrays(policy, height, width)
    builders = _matrix_builders(height, width)
    identity = kernels.translate_matrix(torch.zeros(2, dtype=torch.float64, device=device), 0)
    rows = []
    for ids, mags in zip(op_id, mag):
        slots = []
        for i, m in zip(ids, mags):
            name = OPS[i]
            values = torch.tensor([m, -m], dtype=torch.float64, device=device)
            slots.append(builders[name](values) if name in builders else identity)
        rows.append(torch.stack(slots))
    matrices = torch.stack(rows)
    if not compiling():
        _MATRICES[key] = matrices
    return matrices


_PROBS: dict = {}


def sample_autoaugment_params(
    batch_size: int, *, policy: str, generator: torch.Generator | None = None, device=None
) -> AutoAugmentParams:
    """Draw, per image, a sub-policy (uniform), its two apply decisions and two signs.

    ``apply[i, k] = u <= p`` and ``negate[i, k] = v <= 0.5`` with ``u, v ~ U[0, 1)``, as
    torchvision decides them (``torch.rand(()) <= p``). Sampled where ``generator`` lives (CPU
    default generator when None), then moved to ``device``.
    """
    n = check_int("batch_size", batch_size, low=0)
    policy = policy_name(policy)
    gen_device = generator_device(generator, torch.device("cpu"))
    prob = _PROBS.get((policy, str(gen_device)))
    if prob is None:
        prob = torch.tensor([[p for _, p, _ in sub] for sub in POLICIES[policy]], dtype=torch.float32, device=gen_device)
        _PROBS[(policy, str(gen_device))] = prob
    sub = torch.randint(len(POLICIES[policy]), (n,), generator=generator, device=gen_device)
    u = torch.rand(n, 2, generator=generator, device=gen_device)
    v = torch.rand(n, 2, generator=generator, device=gen_device)
    params = AutoAugmentParams(sub, u <= prob.index_select(0, sub), v <= 0.5)
    return params if device is None else AutoAugmentParams(*(t.to(device) for t in params))


def _check_params(params, n: int, num_sub: int) -> AutoAugmentParams:
    if not isinstance(params, tuple) or len(params) != 3:
        raise TypeError(f"`params` must be an AutoAugmentParams, got {type(params).__name__}")
    params = AutoAugmentParams(*params)
    check_ndim("params.sub_policy", params.sub_policy, 1, "[N]")
    check_ndim("params.apply", params.apply, 2, "[N, 2]")
    check_ndim("params.negate", params.negate, 2, "[N, 2]")
    check_same_leading(
        ["images", "params.sub_policy", "params.apply", "params.negate"],
        [torch.empty(n, 0), params.sub_policy, params.apply, params.negate],
    )
    if params.apply.shape[1] != 2 or params.negate.shape[1] != 2:
        raise ValueError(f"`params.apply` / `params.negate` must be [N, 2], got {tuple(params.apply.shape)}")
    if params.sub_policy.dtype.is_floating_point or params.sub_policy.dtype == torch.bool:
        raise TypeError(f"`params.sub_policy` must be integers, got {params.sub_policy.dtype}")
    if not compiling() and n and not (0 <= int(params.sub_policy.min()) and int(params.sub_policy.max()) < num_sub):
        raise ValueError(f"`params.sub_policy` must lie in [0, {num_sub}), got {params.sub_policy.tolist()}")
    return params


_STATIC_LUTS: dict = {}


def _static_luts(policy: str, height: int, width: int, device) -> torch.Tensor:
    """LUTs ``[25, 2, 2, 256]`` (uint8) per (sub-policy, slot, negated) of the ops whose LUT
    depends only on the magnitude (Brightness, Posterize, Solarize, Invert), computed with their
    kernels on the 256 values (the same arithmetic as on pixels); identity for the other ops.
    Cached (eager only)."""
    key = (policy, height, width, str(device))
    if key in _STATIC_LUTS:
        return _STATIC_LUTS[key]
    op_id, _, mag, _ = _policy_arrays(policy, height, width)
    values = torch.arange(256, device=device).to(torch.uint8).view(1, 1, 1, 256)
    luts = values.view(1, 1, 1, 256).repeat(len(op_id), 2, 2, 1)
    for i, (ids, mags) in enumerate(zip(op_id, mag)):
        for k, (j, m) in enumerate(zip(ids, mags)):
            if OPS[j] in STATIC_LUT_OPS:
                for sign, value in enumerate((m, -m)):
                    m64 = torch.tensor([value], dtype=torch.float64, device=device)
                    luts[i, k, sign] = _eager.LUT_KERNELS[OPS[j]](values, None, m64).view(256)
    _STATIC_LUTS[key] = luts
    return luts


def _apply_slot(images, op, mag, slot_ops: set, fill, static: bool, matrix=None, static_luts=None, inplace=False,
                interpolation="nearest"):
    """One operation slot: ``op`` ``[N]`` (-1: none), ``mag`` ``[N]`` float64 signed magnitudes.

    ``static``: every candidate op runs on the whole batch and ``where`` selects per image (fixed
    shapes: ``torch.compile``, accelerators). Otherwise (eager on CPU) each op runs only on the
    images that drew it, a few at a time, and on uint8 images the pixel-wise ops go through
    per-image LUTs (``static_luts`` ``[N, 256]`` from :func:`_static_luts`):
    :func:`torch_impl._eager.apply_slot`. All give the same images: the kernels treat images
    independently.
    """
    n, _, h, w = images.shape
    geo = [name for name in GEOMETRIC_OPS if name in slot_ops]
    is_geo = None
    if geo and matrix is None:
        zero = torch.zeros_like(mag)
        matrix = kernels.translate_matrix(zero, 0)  # identity
        builders = _matrix_builders(h, w)
        is_geo = torch.zeros_like(op, dtype=torch.bool)
        for name in geo:
            sel = op == OPS.index(name)
            matrix = torch.where(sel[:, None], builders[name](torch.where(sel, mag, zero)), matrix)
            is_geo = is_geo | sel
    if not static:
        return _eager.apply_slot(images, op, mag, fill, matrix, None if images.is_floating_point() else static_luts,
                                 inplace, interpolation)
    candidates = []  # (selected images [N] bool, kernel(images, magnitudes), magnitudes [N])
    if geo:  # [N, 6] per-image matrices (identity for non-geometric ops)
        if is_geo is None:
            is_geo = torch.isin(op, torch.tensor([OPS.index(name) for name in geo], device=op.device))
        candidates.append((is_geo, lambda x, m: kernels.affine(x, m, fill, interpolation), matrix))
    for name, kernel in _eager.KERNELS.items():
        if name in slot_ops:
            sel = op == OPS.index(name)
            placeholder = torch.full_like(mag, PLACEHOLDER_MAGNITUDES.get(name, 0.0))
            candidates.append((sel, kernel, torch.where(sel, mag, placeholder)))
    out = images
    for sel, kernel, m in candidates:
        out = torch.where(sel.view(n, 1, 1, 1), kernel(images, m), out)
    return out


def autoaugment(images: torch.Tensor, params: AutoAugmentParams, *, policy: str, fill=None,
                interpolation="nearest") -> torch.Tensor:
    """Apply each image's AutoAugment sub-policy (drawn in ``params``) to an ``[N, C, H, W]`` batch.

    For image ``i`` with ``s = params.sub_policy[i]`` and the policy's sub-policy
    ``((op0, p0, b0), (op1, p1, b1))``: if ``params.apply[i, 0]``, apply ``op0`` with the
    magnitude of bin ``b0`` (negated if ``params.negate[i, 0]`` and the op is signed), then
    likewise ``op1`` on the result. Semantics, bins and kernels are torchvision v2's
    (:mod:`torch_impl.ops`), ``interpolation`` and ``fill`` for the geometric ops.

    Args:
        images: ``[N, C, H, W]`` uint8 (C in {1, 3}), or float in [0, 1].
        params: from :func:`sample_autoaugment_params` with the same ``policy``.
        policy: ``"imagenet"``, ``"cifar10"`` or ``"svhn"`` (or torchvision's ``AutoAugmentPolicy``).
        fill: number or per-channel sequence for pixels that come from outside the image; None
            (default): torchvision's default (zeros; with bilinear, not the same as 0 at the border).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (or torchvision's ``InterpolationMode``).

    Returns:
        The augmented batch, same shape and dtype.

    Eager on CPU, each operation runs only on the images that drew it (boolean indexing); under
    ``torch.compile`` and on accelerators every candidate operation runs on the whole batch with
    static shapes and ``where`` selects (same results).
    """
    policy = policy_name(policy)
    n, c, h, w = check_images("images", images)
    if c not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels [N, C, H, W], got C={c}")
    check_op_images("images", images)
    fill_values(fill, c, images.dtype)  # validates fill
    interpolation = check_interpolation(interpolation)
    params = _check_params(params, n, len(POLICIES[policy]))
    return _autoaugment(images, params, policy, fill, static=compiling() or images.device.type != "cpu",
                        interpolation=interpolation)


def _autoaugment(images, params: AutoAugmentParams, policy: str, fill, *, static: bool,
                 interpolation: str = "nearest") -> torch.Tensor:
    n, c, h, w = images.shape
    device = images.device
    fill = fill_values(fill, c, images.dtype)
    sub = params.sub_policy.to(device=device, dtype=torch.int64)
    apply = params.apply.to(device=device, dtype=torch.bool)
    negate = params.negate.to(device=device, dtype=torch.bool)
    if not static:
        return _autoaugment_eager(images, sub, apply, negate, policy, fill, interpolation)
    op_id, _, mag, signed = _policy_arrays(policy, h, w)
    op_t = torch.tensor(op_id, dtype=torch.int64, device=device)[sub]
    mag_t = torch.tensor(mag, dtype=torch.float64, device=device)[sub]
    signed_t = torch.tensor(signed, dtype=torch.bool, device=device)[sub]
    mag_t = torch.where(negate & signed_t, -mag_t, mag_t)
    op_t = torch.where(apply, op_t, torch.full_like(op_t, -1))
    theta = _matrix_cache(policy, h, w, device)[sub]  # [N, 2, 2, 6]
    theta = torch.where((negate & signed_t)[..., None], theta[:, :, 1], theta[:, :, 0])  # [N, 2, 6]
    out = images
    for slot in range(2):
        slot_ops = {sub_policy[slot][0] for sub_policy in POLICIES[policy]}
        out = _apply_slot(out, op_t[:, slot], mag_t[:, slot], slot_ops, fill, static, theta[:, slot],
                          interpolation=interpolation)
    return out


_EAGER_CONSTANTS: dict = {}


def _eager_constants(policy: str, height: int, width: int, device):
    """The policy's arrays as cached tensors for the eager path: op ids, magnitudes (float64) and
    signedness ``[25, 2]``, and per (sub-policy, slot, negated) row ``(s·2 + k)·2 + neg`` the
    inverse affine matrices ``[100, 6]`` and the magnitude-only LUTs ``[100, 256]``."""
    key = (policy, height, width, str(device))
    if key not in _EAGER_CONSTANTS:
        op_id, _, mag, signed = _policy_arrays(policy, height, width)
        _EAGER_CONSTANTS[key] = (
            torch.tensor(op_id, dtype=torch.int64, device=device),
            torch.tensor(mag, dtype=torch.float64, device=device),
            torch.tensor(signed, dtype=torch.bool, device=device),
            _matrix_cache(policy, height, width, device).reshape(-1, 6),
            _static_luts(policy, height, width, device).reshape(-1, 256),
        )
    return _EAGER_CONSTANTS[key]


def _autoaugment_eager(images, sub, apply, negate, policy: str, fill, interpolation: str) -> torch.Tensor:
    """:func:`_autoaugment` eagerly (CPU): the same per-image values from cached constants with
    ``index_select`` (advanced indexing copies element by element), then :func:`_apply_slot`."""
    n, c, h, w = images.shape
    op_ids, mags, signed, matrices, static_luts = _eager_constants(policy, h, w, images.device)
    op_t = op_ids.index_select(0, sub)
    neg = negate & signed.index_select(0, sub)
    mag_t = mags.index_select(0, sub)
    mag_t = torch.where(neg, -mag_t, mag_t)
    op_t = torch.where(apply, op_t, torch.full_like(op_t, -1))
    row = ((sub.view(n, 1) * 2 + torch.arange(2, device=sub.device)) * 2 + neg.long()).view(-1)
    theta = matrices.index_select(0, row).view(n, 2, 6)
    luts = None if images.is_floating_point() else static_luts.index_select(0, row).view(n, 2, 256)
    op_t, paired = _eager.pair_first_slots(images, op_t, luts)
    out = images
    for slot in range(2):
        slot_ops = {sub_policy[slot][0] for sub_policy in POLICIES[policy]}
        out = _apply_slot(
            out, op_t[:, slot], mag_t[:, slot], slot_ops, fill, False, theta[:, slot],
            None if luts is None else luts[:, slot], inplace=slot == 1,  # slot 1: ``out`` is ours
            interpolation=interpolation,
        )
    for r, y in paired:
        _eager.put_rows(out, r, y)
    return out


class AutoAugment(RandomTransform, torch.nn.Module):
    """AutoAugment on a ``[N, C, H, W]`` batch with a sub-policy per image (drop-in for training steps).

    Samples :func:`sample_autoaugment_params` on ``generator`` (torch's default when None), moves
    them to the images' device and applies :func:`autoaugment`. Defaults as torchvision's
    ``AutoAugment`` (ImageNet policy, nearest interpolation, fill None), in its positional order.
    """

    def __init__(self, policy: str = "imagenet", interpolation="nearest", fill=None, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.policy = policy_name(policy)
        self.interpolation = check_interpolation(interpolation)
        self.fill = fill
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images("images", images)
        params = sample_autoaugment_params(
            images.shape[0], policy=self.policy, generator=self.generator, device=images.device
        )
        return autoaugment(images, params, policy=self.policy, fill=self.fill, interpolation=self.interpolation)

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}, interpolation={self.interpolation!r}, fill={self.fill!r}"


# ============================================================================================
# RandAugment, TrivialAugmentWide, AugMix: each image draws its own ops, bins and signs
# ============================================================================================
#
# The three share the AutoAugment machinery above: each image's (op, magnitude bin, sign) per
# operation slot becomes an op id of :data:`twintricks.policies.OPS` (-1: nothing), a signed
# float64 magnitude, an inverse affine matrix and (eager, uint8) a magnitude-only LUT, all rows of
# per-family constants (:func:`_family_constants`), and :func:`_apply_slot` applies a slot.


class RandAugmentParams(NamedTuple):
    """Per-image RandAugment draws (field names identical in :mod:`jax_impl.policies`).

    Attributes:
        op: ``[N, num_ops]`` int64, index into :data:`twintricks.policies.RANDAUGMENT_OPS`, the
            operations applied one after the other.
        negate: ``[N, num_ops]`` bool, whether a signed operation's magnitude is negated.
    """

    op: torch.Tensor
    negate: torch.Tensor


class TrivialAugmentWideParams(NamedTuple):
    """Per-image TrivialAugmentWide draws (field names identical in :mod:`jax_impl.policies`).

    Attributes:
        op: ``[N]`` int64, index into :data:`twintricks.policies.TRIVIALAUGMENT_WIDE_OPS`.
        magnitude: ``[N]`` int64, the magnitude bin in ``[0, num_magnitude_bins)``.
        negate: ``[N]`` bool, whether a signed operation's magnitude is negated.
    """

    op: torch.Tensor
    magnitude: torch.Tensor
    negate: torch.Tensor


class AugMixParams(NamedTuple):
    """Per-image AugMix draws (field names identical in :mod:`jax_impl.policies`).

    ``W`` chains (``mixture_width``) of up to ``D`` operations (``chain_depth``, or 3 when the depth
    is drawn).

    Attributes:
        op: ``[N, W, D]`` int64, index into :data:`twintricks.policies.AUGMIX_OPS`.
        magnitude: ``[N, W, D]`` int64, the magnitude bin in ``[0, 10)`` (``< severity`` when drawn).
        negate: ``[N, W, D]`` bool, whether a signed operation's magnitude is negated.
        depth: ``[N, W]`` int64 in ``[1, D]``: chain ``j`` applies its first ``depth[:, j]`` ops.
        weights: ``[N, 1 + W]`` float32: the original image's weight ``m`` (``m ~ Beta(α, α)``),
            then each chain's ``(1 - m)·w_j`` (``w ~ Dirichlet(α, …, α)``), as torchvision forms them.
    """

    op: torch.Tensor
    magnitude: torch.Tensor
    negate: torch.Tensor
    depth: torch.Tensor
    weights: torch.Tensor


def _on(generator, device):
    """Where to sample: the generator's device (CPU for torch's default generator)."""
    return generator_device(generator, torch.device("cpu"))


def _moved(params, device):
    return params if device is None else type(params)(*(t.to(device) for t in params))


def sample_randaugment_params(
    batch_size: int, *, num_ops: int = 2, generator: torch.Generator | None = None, device=None
) -> RandAugmentParams:
    """Draw, per image, ``num_ops`` operations (uniform over the 14, Identity included) and their signs
    (``torch.rand(()) <= 0.5``, torchvision's rule)."""
    n = check_int("batch_size", batch_size, low=0)
    k = check_int("num_ops", num_ops, low=0)
    on = _on(generator, device)
    op = torch.randint(len(RANDAUGMENT_OPS), (n, k), generator=generator, device=on)
    negate = torch.rand(n, k, generator=generator, device=on) <= 0.5
    return _moved(RandAugmentParams(op, negate), device)


def sample_trivialaugment_wide_params(
    batch_size: int, *, num_magnitude_bins: int = 31, generator: torch.Generator | None = None, device=None
) -> TrivialAugmentWideParams:
    """Draw, per image, one operation (uniform over the 14), a magnitude bin (uniform) and a sign."""
    n = check_int("batch_size", batch_size, low=0)
    bins = check_num_bins(num_magnitude_bins)
    on = _on(generator, device)
    op = torch.randint(len(TRIVIALAUGMENT_WIDE_OPS), (n,), generator=generator, device=on)
    magnitude = torch.randint(bins, (n,), generator=generator, device=on)
    negate = torch.rand(n, generator=generator, device=on) <= 0.5
    return _moved(TrivialAugmentWideParams(op, magnitude, negate), device)


def sample_augmix_params(
    batch_size: int,
    *,
    severity: int = 3,
    mixture_width: int = 3,
    chain_depth: int = -1,
    alpha: float = 1.0,
    all_ops: bool = True,
    generator: torch.Generator | None = None,
    device=None,
) -> AugMixParams:
    """Draw, per image, AugMix's mixing weights and ``mixture_width`` chains, as torchvision v2 draws them.

    ``m ~ Dirichlet(α, α)`` (so ``m[0] ~ Beta(α, α)``) and ``w ~ Dirichlet(α·1_W)`` (float32,
    ``torch._sample_dirichlet``); ``weights = [m[0], m[1]·w]``. Each chain's depth is
    ``chain_depth`` if positive, else uniform in 1..3; each op is uniform over the 13 ops
    (``all_ops``) or the first 9; each bin uniform in ``[0, severity)``; each sign ``rand <= 0.5``.
    """
    n = check_int("batch_size", batch_size, low=0)
    severity, width, depth, alpha, all_ops = check_augmix_args(severity, mixture_width, chain_depth, alpha, all_ops)
    on = _on(generator, device)
    d = depth if depth > 0 else AUGMIX_MAX_DEPTH
    num_ops = len(AUGMIX_OPS if all_ops else AUGMIX_PARTIAL_OPS)
    m = torch._sample_dirichlet(torch.full((n, 2), float(alpha), device=on), generator=generator)
    w = torch._sample_dirichlet(torch.full((n, width), float(alpha), device=on), generator=generator)
    weights = torch.cat([m[:, :1], w * m[:, 1:]], dim=1)
    if depth > 0:
        depths = torch.full((n, width), depth, dtype=torch.int64, device=on)
    else:
        depths = torch.randint(1, AUGMIX_MAX_DEPTH + 1, (n, width), generator=generator, device=on)
    op = torch.randint(num_ops, (n, width, d), generator=generator, device=on)
    magnitude = torch.randint(severity, (n, width, d), generator=generator, device=on)
    negate = torch.rand(n, width, d, generator=generator, device=on) <= 0.5
    return _moved(AugMixParams(op, magnitude, negate, depths, weights), device)


_FAMILY_CONSTANTS: dict = {}


def _family_constants(family: str, num_bins: int, height: int, width: int, device):
    """A family's per-op tensors: op ids ``[K]`` (:data:`OPS` ids, -1 for Identity), unsigned
    magnitudes ``[K, B]`` (float64), signedness ``[K]``, and per row ``(k·B + b)·2 + negated`` the
    inverse affine matrices ``[2KB, 6]`` (float64; identity for non-geometric ops) and the
    magnitude-only LUTs ``[2KB, 256]`` (uint8; identity for the other ops). Each computed with the
    same kernels as on pixels. Cached in eager mode (LUTs only there: the static path has none)."""
    key = (family, num_bins, height, width, str(device))
    if not compiling() and key in _FAMILY_CONSTANTS:
        return _FAMILY_CONSTANTS[key]
    op_id, mag, signed = family_arrays(family, num_bins, height, width)
    k, b = len(op_id), num_bins
    mags = torch.tensor(mag, dtype=torch.float64, device=device)  # [K, B]
    values = torch.stack([mags, -mags], dim=-1)  # [K, B, 2]
    builders = _matrix_builders(height, width)
    identity = kernels.translate_matrix(torch.zeros(2 * b, dtype=torch.float64, device=device), 0)
    matrices = torch.stack(
        [builders[OPS[i]](values[j].reshape(-1)) if i >= 0 and OPS[i] in builders else identity for j, i in enumerate(op_id)]
    ).reshape(2 * k * b, 6)
    luts = None
    if not compiling():
        v = torch.arange(256, device=device).to(torch.uint8).view(1, 1, 1, 256)
        rows = []
        for j, i in enumerate(op_id):
            if i >= 0 and OPS[i] in STATIC_LUT_OPS:
                rows.append(_eager.LUT_KERNELS[OPS[i]](v.expand(2 * b, 1, 1, 256).contiguous(), None, values[j].reshape(-1)).view(2 * b, 256))
            else:
                rows.append(v.view(1, 256).expand(2 * b, 256))
        luts = torch.cat(rows)
    constants = (
        torch.tensor(op_id, dtype=torch.int64, device=device),
        mags,
        torch.tensor(signed, dtype=torch.bool, device=device),
        matrices,
        luts,
    )
    if not compiling():
        _FAMILY_CONSTANTS[key] = constants
    return constants


def _apply_draws(images, family: str, num_bins: int, op, bin_, negate, fill, *, static: bool, active=None,
                 interpolation: str = "nearest", owned: bool = False):
    """Apply each image's operation slots in order: ``op``, ``bin_``, ``negate`` ``[N, S]`` (family
    op ids, magnitude bins, signs); ``active`` ``[N, S]`` bool (None: all) turns slots off.
    ``owned``: ``images`` is a contiguous batch of the caller's that may be written in place."""
    n, c, h, w = images.shape
    s = op.shape[1]
    if s == 0:
        return images.clone()
    op_ids, mags, signed, matrices, luts = _family_constants(family, num_bins, h, w, images.device)
    op = op.to(device=images.device, dtype=torch.int64)
    bin_ = bin_.to(device=images.device, dtype=torch.int64)
    flat_op = op.reshape(-1)
    neg = negate.to(device=images.device, dtype=torch.bool).reshape(-1) & signed.index_select(0, flat_op)
    cell = flat_op * num_bins + bin_.reshape(-1)
    mag = mags.reshape(-1).index_select(0, cell)
    mag = torch.where(neg, -mag, mag).view(n, s)
    row = cell * 2 + neg.long()
    global_op = op_ids.index_select(0, flat_op).view(n, s)
    if active is not None:
        global_op = torch.where(active.to(images.device), global_op, torch.full_like(global_op, -1))
    theta = matrices.index_select(0, row).view(n, s, 6)
    slot_luts = None if static or images.is_floating_point() else luts.index_select(0, row).view(n, s, 256)
    slot_ops = {name for name in FAMILY_OPS[family] if name != "Identity"}
    global_op, paired = _eager.pair_first_slots(images, global_op, slot_luts)  # (eager uint8 only)
    out = images
    for k in range(s):
        out = _apply_slot(
            out, global_op[:, k], mag[:, k], slot_ops, fill, static, theta[:, k],
            None if slot_luts is None else slot_luts[:, k], inplace=(k > 0 or owned) and not static,
            interpolation=interpolation,
        )
        if k == 1:  # the paired images' two slots, before the third
            for r, y in paired:
                _eager.put_rows(out, r, y)
    return out if out is not images or owned else out.clone()


def _static(images) -> bool:
    return compiling() or images.device.type != "cpu"


def randaugment(
    images: torch.Tensor, params: RandAugmentParams, *, magnitude: int = 9, num_magnitude_bins: int = 31, fill=None,
    interpolation="nearest",
) -> torch.Tensor:
    """Apply each image's RandAugment operations (drawn in ``params``) to an ``[N, C, H, W]`` batch.

    Image ``i`` gets ``op[i, 0]``, then ``op[i, 1]``, … (:data:`twintricks.policies.RANDAUGMENT_OPS`)
    with the magnitude of bin ``magnitude`` out of ``num_magnitude_bins`` (AutoAugment's ranges),
    negated where ``negate`` says and the op is signed. Bins, semantics and kernels are
    torchvision v2's ``RandAugment``: for uint8 images each image equals torchvision's kernels on
    that image with that op and magnitude (the one exception: Contrast where ``C·H·W`` is not a
    multiple of 32, see :mod:`torch_impl.ops`).

    Args:
        images: ``[N, C, H, W]`` uint8 (C in {1, 3}), or float in [0, 1].
        params: from :func:`sample_randaugment_params`.
        magnitude: the bin index, in ``[0, num_magnitude_bins)``.
        num_magnitude_bins: at least 2.
        fill: number or per-channel sequence for pixels from outside the image; None (default):
            torchvision's default (zeros; with bilinear, not the same as 0 at the border).
        interpolation: ``"nearest"`` (default, torchvision's) or ``"bilinear"`` (or torchvision's
            ``InterpolationMode``) for the geometric ops; bicubic is refused (torchvision's
            ``affine``/``rotate`` refuse it for tensors).

    Returns:
        The augmented batch, same shape and dtype (a new tensor).

    References:
        Cubuk, Zoph, Shlens, Le. "RandAugment: Practical automated data augmentation with a
        reduced search space", CVPR Workshops 2020. torchvision ``transforms.v2.RandAugment``.
    """
    n, c, h, w, fill = _check_family_images(images, fill)
    interpolation = check_interpolation(interpolation)
    _, mag, bins = check_randaugment_args(0, magnitude, num_magnitude_bins)
    params = _check_record(params, RandAugmentParams)
    _check_shape("op", params.op, (n, None))
    s = params.op.shape[1]
    _check_int_field("op", params.op, 0, len(RANDAUGMENT_OPS), (n, s))
    _check_shape("negate", params.negate, (n, s))
    bin_ = torch.full((n, s), mag, dtype=torch.int64, device=images.device)
    return _apply_draws(images, "randaugment", bins, params.op, bin_, params.negate, fill, static=_static(images),
                        interpolation=interpolation)


def trivialaugment_wide(
    images: torch.Tensor, params: TrivialAugmentWideParams, *, num_magnitude_bins: int = 31, fill=None,
    interpolation="nearest",
) -> torch.Tensor:
    """Apply each image's TrivialAugmentWide operation (drawn in ``params``) to an ``[N, C, H, W]`` batch.

    Image ``i`` gets ``op[i]`` (:data:`twintricks.policies.TRIVIALAUGMENT_WIDE_OPS`) with the
    magnitude of bin ``magnitude[i]`` of TrivialAugmentWide's wide ranges
    (:func:`twintricks.policies.family_bins`: shears and enhancements up to 0.99, translations up
    to 32 pixels, rotations up to 135°, Posterize down to 2 bits), negated where ``negate`` says
    and the op is signed. For uint8 images each image equals torchvision v2's kernels on that
    image with that op and magnitude (Contrast: see :func:`randaugment`).

    Args:
        images: ``[N, C, H, W]`` uint8 (C in {1, 3}), or float in [0, 1].
        params: from :func:`sample_trivialaugment_wide_params` with the same ``num_magnitude_bins``.
        num_magnitude_bins: at least 2.
        fill: number or per-channel sequence for pixels from outside the image; None (default):
            torchvision's default (zeros; with bilinear, not the same as 0 at the border).
        interpolation: ``"nearest"`` (default, torchvision's) or ``"bilinear"`` (see :func:`randaugment`).

    References:
        Müller, Hutter. "TrivialAugment: Tuning-free Yet State-of-the-Art Data Augmentation",
        ICCV 2021. torchvision ``transforms.v2.TrivialAugmentWide``.
    """
    n, c, h, w, fill = _check_family_images(images, fill)
    interpolation = check_interpolation(interpolation)
    bins = check_num_bins(num_magnitude_bins)
    params = _check_record(params, TrivialAugmentWideParams)
    op = _check_int_field("op", params.op, 0, len(TRIVIALAUGMENT_WIDE_OPS), (n,))
    bin_ = _check_int_field("magnitude", params.magnitude, 0, bins, (n,))
    _check_shape("negate", params.negate, (n,))
    return _apply_draws(
        images, "trivialaugment_wide", bins, op.view(n, 1), bin_.view(n, 1), params.negate.view(n, 1), fill,
        static=_static(images), interpolation=interpolation,
    )


def _mix(images, augs, weights, static: bool) -> torch.Tensor:
    """``(((m·x) + v_1·a_1) + v_2·a_2) + …`` as torchvision's AugMix computes it: each product rounded
    (float32 for uint8 images), then the sum. Compiled code could fuse the two; uint8 values make the
    product exactly splittable (:func:`torch_impl.exact.product`), so it is rounded where eager torch
    rounds it. Eager uint8: :func:`torch_impl._eager.mix_uint8` (the same operations, a few images
    at a time, already cast back to uint8)."""
    if not static and not images.is_floating_point():
        return _eager.mix_uint8(images, augs, weights)
    w = [weights[:, j].view(-1, 1, 1, 1) for j in range(weights.shape[1])]
    split = static and compiling() and not images.is_floating_point()
    mix = None
    for wj, x in zip(w, (images, *augs)):
        prod = exact.product(x.float(), wj) if split else wj * x
        mix = prod if mix is None else mix + prod
    return mix


def augmix(images: torch.Tensor, params: AugMixParams, *, all_ops: bool = True, fill=None,
           interpolation="nearest") -> torch.Tensor:
    """Apply each image's AugMix chains and mixing (drawn in ``params``) to an ``[N, C, H, W]`` batch.

    For image ``x`` with weights ``(m, v_1, …, v_W)``: chain ``j`` applies its first ``depth[j]``
    operations (:data:`twintricks.policies.AUGMIX_OPS`, AugMix's bins: translations up to a third of
    the side, Posterize 4 down to 0 bits) to ``x``, giving ``a_j``, and the result is
    ``(((m·x) + v_1·a_1) + v_2·a_2) + …`` in float32 (the images' dtype for float images), each
    product rounded before its sum, cast back to the images' dtype (truncated for uint8) —
    torchvision v2's ``AugMix`` step for step. For uint8 images each chain image equals
    torchvision's kernels (Contrast: see :func:`randaugment`), and with the same weights the mix
    is the same float32 arithmetic, so the same bytes.

    Args:
        images: ``[N, C, H, W]`` uint8 (C in {1, 3}), or float in [0, 1].
        params: from :func:`sample_augmix_params` (with the same ``all_ops``).
        all_ops: whether the four colour enhancements are allowed (ops ``< 13``, else ``< 9``).
        fill: number or per-channel sequence for pixels from outside the image; None (default):
            torchvision's default (zeros; with bilinear, not the same as 0 at the border).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (see :func:`randaugment`).

    .. warning:: torchvision's ``AugMix`` defaults to bilinear interpolation; this function and
       :class:`AugMix` default to nearest (the other policies' default), so pass
       ``interpolation="bilinear"`` for torchvision's default ``AugMix()``.

    References:
        Hendrycks, Mu, Cubuk, Zoph, Gilmer, Lakshminarayanan. "AugMix: A Simple Data Processing
        Method to Improve Robustness and Uncertainty", ICLR 2020. torchvision ``transforms.v2.AugMix``.
    """
    n, c, h, w, fill = _check_family_images(images, fill)
    interpolation = check_interpolation(interpolation)
    if not isinstance(all_ops, bool):
        raise TypeError(f"`all_ops` must be a bool, got {type(all_ops).__name__}")
    params = _check_record(params, AugMixParams)
    _check_shape("op", params.op, (n, None, None))
    _, width, d = params.op.shape
    if width < 1 or d < 1:
        raise ValueError(f"`params.op` must be [N, W, D] with W, D >= 1, got {list(params.op.shape)}")
    num_ops = len(AUGMIX_OPS if all_ops else AUGMIX_PARTIAL_OPS)
    op = _check_int_field("op", params.op, 0, num_ops, (n, width, d))
    bin_ = _check_int_field("magnitude", params.magnitude, 0, AUGMIX_NUM_BINS, (n, width, d))
    _check_shape("negate", params.negate, (n, width, d))
    depth = _check_int_field("depth", params.depth, 1, d + 1, (n, width))
    _check_shape("weights", params.weights, (n, width + 1))
    if not params.weights.is_floating_point():
        raise TypeError(f"`params.weights` must be floating point, got {params.weights.dtype}")
    if not compiling():
        check_augmix_weights(params.weights.detach().double().cpu().numpy(), torch.finfo(params.weights.dtype).eps)
    static = _static(images)
    weights = params.weights.to(device=images.device, dtype=torch.float32)
    active = torch.arange(d, device=images.device).view(1, 1, d) < depth.to(images.device).view(n, width, 1)

    def chain_major(t):  # [N, W, ...] -> [W·N, ...]: the W chains as one batch
        return t.transpose(0, 1).reshape((width * n,) + tuple(t.shape[2:]))

    augs = _apply_draws(
        images.repeat(width, 1, 1, 1), "augmix", AUGMIX_NUM_BINS, chain_major(op), chain_major(bin_),
        chain_major(params.negate), fill, static=static, active=chain_major(active), interpolation=interpolation,
        owned=True,
    ).view((width,) + tuple(images.shape))
    mix = _mix(images, augs, weights, static)
    return mix if mix.dtype == images.dtype else mix.to(images.dtype)


class RandAugment(RandomTransform, torch.nn.Module):
    """RandAugment on a ``[N, C, H, W]`` batch with ops and signs drawn per image.

    Samples :func:`sample_randaugment_params` on ``generator`` (torch's default when None), moves
    them to the images' device and applies :func:`randaugment`. Arguments (in torchvision's
    positional order) and defaults as torchvision v2's ``RandAugment`` (2 ops, bin 9 of 31,
    nearest, fill None); ``interpolation`` nearest or bilinear.
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, interpolation="nearest",
                 fill=None, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_ops, self.magnitude, self.num_magnitude_bins = check_randaugment_args(num_ops, magnitude, num_magnitude_bins)
        self.interpolation = check_interpolation(interpolation)
        self.fill = fill
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images("images", images)
        params = sample_randaugment_params(images.shape[0], num_ops=self.num_ops, generator=self.generator, device=images.device)
        return randaugment(images, params, magnitude=self.magnitude, num_magnitude_bins=self.num_magnitude_bins, fill=self.fill,
                           interpolation=self.interpolation)

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}, num_magnitude_bins={self.num_magnitude_bins}, interpolation={self.interpolation!r}, fill={self.fill!r}"


class TrivialAugmentWide(RandomTransform, torch.nn.Module):
    """TrivialAugmentWide on a ``[N, C, H, W]`` batch with an op, a bin and a sign drawn per image.

    Samples :func:`sample_trivialaugment_wide_params` and applies :func:`trivialaugment_wide`.
    Arguments (in torchvision's positional order) and defaults as torchvision v2's
    ``TrivialAugmentWide`` (31 bins, nearest, fill None); ``interpolation`` nearest or bilinear.
    """

    def __init__(self, num_magnitude_bins: int = 31, interpolation="nearest", fill=None, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_magnitude_bins = check_num_bins(num_magnitude_bins)
        self.interpolation = check_interpolation(interpolation)
        self.fill = fill
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images("images", images)
        params = sample_trivialaugment_wide_params(
            images.shape[0], num_magnitude_bins=self.num_magnitude_bins, generator=self.generator, device=images.device
        )
        return trivialaugment_wide(images, params, num_magnitude_bins=self.num_magnitude_bins, fill=self.fill,
                           interpolation=self.interpolation)

    def extra_repr(self) -> str:
        return f"num_magnitude_bins={self.num_magnitude_bins}, interpolation={self.interpolation!r}, fill={self.fill!r}"


class AugMix(RandomTransform, torch.nn.Module):
    """AugMix on a ``[N, C, H, W]`` batch with chains and mixing weights drawn per image.

    Samples :func:`sample_augmix_params` and applies :func:`augmix`. Arguments and defaults as
    torchvision v2's ``AugMix`` (severity 3, 3 chains, depth 1..3, α = 1, all ops, fill None) except
    the default interpolation: nearest (torchvision's is bilinear, see :func:`augmix`).
    """

    def __init__(self, severity: int = 3, mixture_width: int = 3, chain_depth: int = -1, alpha: float = 1.0,
                 all_ops: bool = True, interpolation="nearest", fill=None, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.severity, self.mixture_width, self.chain_depth, self.alpha, self.all_ops = check_augmix_args(
            severity, mixture_width, chain_depth, alpha, all_ops
        )
        self.interpolation = check_interpolation(interpolation)
        self.fill = fill
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images("images", images)
        params = sample_augmix_params(
            images.shape[0], severity=self.severity, mixture_width=self.mixture_width, chain_depth=self.chain_depth,
            alpha=self.alpha, all_ops=self.all_ops, generator=self.generator, device=images.device,
        )
        return augmix(images, params, all_ops=self.all_ops, fill=self.fill, interpolation=self.interpolation)

    def extra_repr(self) -> str:
        return (f"severity={self.severity}, mixture_width={self.mixture_width}, chain_depth={self.chain_depth}, "
                f"alpha={self.alpha}, all_ops={self.all_ops}, interpolation={self.interpolation!r}, fill={self.fill!r}")


from twintricks.tricks import TrickImpl  # noqa: E402  (the trainer's entries, collected by torch_impl.train)

TRICK_IMPLS = {
    "autoaugment": TrickImpl(
        lambda n, tr, g: sample_autoaugment_params(n, policy=tr.config.autoaugment, generator=g, device=tr.device),
        lambda x, y, p, tr: (autoaugment(x, p, policy=tr.config.autoaugment,
                                         interpolation=tr.config.autoaugment_interpolation), y)),
    "randaugment": TrickImpl(
        lambda n, tr, g: sample_randaugment_params(n, num_ops=tr.config.randaugment_ops, generator=g, device=tr.device),
        lambda x, y, p, tr: (randaugment(x, p, magnitude=tr.config.randaugment_magnitude,
                                         num_magnitude_bins=tr.config.randaugment_bins,
                                         interpolation=tr.config.randaugment_interpolation), y)),
    "trivialaugment": TrickImpl(
        lambda n, tr, g: sample_trivialaugment_wide_params(n, num_magnitude_bins=tr.config.trivialaugment_bins,
                                                           generator=g, device=tr.device),
        lambda x, y, p, tr: (trivialaugment_wide(x, p, num_magnitude_bins=tr.config.trivialaugment_bins,
                                                 interpolation=tr.config.trivialaugment_interpolation), y)),
    "augmix": TrickImpl(
        lambda n, tr, g: sample_augmix_params(
            n, severity=tr.config.augmix_severity, mixture_width=tr.config.augmix_width, chain_depth=tr.config.augmix_depth,
            alpha=tr.config.augmix_alpha, all_ops=tr.config.augmix_all_ops, generator=g, device=tr.device),
        lambda x, y, p, tr: (augmix(x, p, all_ops=tr.config.augmix_all_ops,
                                    interpolation=tr.config.augmix_interpolation), y)),
}
