"""CutMix and timm-style mixup/CutMix switching in JAX: torchvision v2's CutMix
(``sample_cutmix_params``, ``cutmix``, ``random_cutmix``) and timm's ``Mixup``
(``sample_mixup_cutmix_params``, ``mixup_cutmix``, ``random_mixup_cutmix``), which the recipe's
``cutmix`` trick runs. Images ``[N, H, W, C]``; targets ``[N]`` labels (with ``num_classes``) or
``[N, K]`` soft targets, returned as ``[N, K]`` soft targets.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, check_record, hyperparameter, is_concrete
from jax_impl.mixing._common import _check_index, _empty_batch, _soft_targets
from twintricks.checks import check_bool, check_int, check_real, check_same_leading, check_size
from twintricks.mixing import check_beta_parameter, check_mixup_cutmix_args, minmax_cut_range
from twintricks.tricks import TrickImpl, target_classes

__all__ = [
    "CutMixParams",
    "sample_cutmix_params",
    "cutmix",
    "random_cutmix",
    "MixupCutmixParams",
    "sample_mixup_cutmix_params",
    "mixup_cutmix",
    "random_mixup_cutmix",
]


def _box_mask(top, left, height, width, image_h: int, image_w: int) -> jax.Array:
    """``[N, H, W]`` bool: True inside image i's box ``[top, top+height) × [left, left+width)``."""
    rows = jnp.arange(image_h, dtype=jnp.int32)
    cols = jnp.arange(image_w, dtype=jnp.int32)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # [N, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # [N, W]
    return in_rows[:, :, None] & in_cols[:, None, :]


@functools.lru_cache(maxsize=64)
def _pixel_shares(pixels: int) -> np.ndarray:
    """``k / pixels`` for ``k = 0..pixels``, float32, each one correctly rounded division.

    XLA turns a division by a constant into a multiplication by its reciprocal (``110·(1/110)``
    is ``0.99999994``); a table looked up by the integer ``k`` keeps the shares exact, and
    bit-identical to torch's float32 division."""
    return np.arange(pixels + 1, dtype=np.float32) / np.float32(pixels)


def _check_boxes(params, n: int, image_h: int, image_w: int):
    """Check the ``top``/``left``/``height``/``width`` ``[N]`` integer fields of a box record; on
    concrete values also that every box (possibly empty) lies inside the image. Returns int32."""
    fields, raw = [], []
    for name in ("top", "left", "height", "width"):
        t = getattr(params, name)
        _check_index(f"params.{name}", t, (n,), max(image_h, image_w) + 1)
        raw.append(t)
        fields.append(jnp.asarray(t, jnp.int32))
    if n and all(is_concrete(t) for t in raw):
        # NumPy: a concrete record closed over inside jit is read, not traced
        top, left, height, width = (np.asarray(t).astype(np.int64) for t in raw)
        bad = (top + height > image_h) | (left + width > image_w)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`params` box {i} (top={int(top[i])}, left={int(left[i])}, height={int(height[i])}, "
                f"width={int(width[i])}) must lie inside the {image_h}x{image_w} image"
            )
    return tuple(fields)


class CutMixParams(NamedTuple):
    """One CutMix draw (integer arrays ``[N]``): image i receives, inside the box
    ``[top, top+height) × [left, left+width)`` (clipped to the image; empty when ``height`` or
    ``width`` is 0), the pixels of image ``perm[i]``."""

    top: jax.Array
    left: jax.Array
    height: jax.Array
    width: jax.Array
    perm: jax.Array


def sample_cutmix_params(key, batch_size: int, image_size, *, alpha: float = 1.0, per_sample: bool = False) -> CutMixParams:
    """Draw a CutMix box as torchvision v2's ``CutMix``: ``λ ~ Beta(α, α)``, a centre
    ``(r_y, r_x)`` uniform over the pixels, half-sides ``⌊½·sqrt(1-λ)·H⌋`` and
    ``⌊½·sqrt(1-λ)·W⌋``, the box clipped to the image (so its area is about ``(1-λ)·H·W``).
    One box for the whole batch (torchvision) or one per image with ``per_sample``; the pairing
    is torchvision's ``roll(1)`` (``perm[i] = i - 1 mod N``). The kernel corrects λ to the box
    actually pasted. Computed in float32 (torchvision: float64); int32 fields. Jittable
    (``batch_size``, ``image_size``, ``per_sample`` static; ``alpha`` may be traced, unchecked
    then: see :mod:`jax_impl.mixing`).

    References:
        Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
        Classifiers with Localizable Features", ICCV 2019; torchvision ``transforms.v2.CutMix``.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    a, _ = hyperparameter("alpha", alpha, check_beta_parameter, 1.0)
    return _sample_cutmix(key, n, height, width, jnp.float32(a) if isinstance(a, float) else a,
                          check_bool("per_sample", per_sample))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 5))
def _sample_cutmix(key, n: int, height: int, width: int, a: float, per_sample: bool) -> CutMixParams:
    """The computation of :func:`sample_cutmix_params` after its checks (jitted: an eager call
    compiles once instead of dispatching op by op)."""
    m = n if per_sample else 1
    k_lam, k_x, k_y = jax.random.split(key, 3)
    lam = jax.random.beta(k_lam, a, a, (m,), dtype=jnp.float32)
    cx = jax.random.randint(k_x, (m,), 0, width, dtype=jnp.int32)
    cy = jax.random.randint(k_y, (m,), 0, height, dtype=jnp.int32)
    r = 0.5 * jnp.sqrt(1.0 - lam)
    half_w = jnp.floor(r * width).astype(jnp.int32)
    half_h = jnp.floor(r * height).astype(jnp.int32)
    x1, x2 = jnp.maximum(cx - half_w, 0), jnp.minimum(cx + half_w, width)
    y1, y2 = jnp.maximum(cy - half_h, 0), jnp.minimum(cy + half_h, height)
    box = [jnp.broadcast_to(v, (n,)) for v in (y1, x1, y2 - y1, x2 - x1)]
    return CutMixParams(*box, perm=(jnp.arange(n, dtype=jnp.int32) - 1) % n)


def cutmix(images, targets, params: CutMixParams, *, num_classes: int | None = None):
    """CutMix kernel: paste image ``perm[i]``'s box into image i; mix the targets by pixel share.

    ``x̃_i = M_i ⊙ x_perm[i] + (1 - M_i) ⊙ x_i`` with ``M_i`` the box of image i, and
    ``t̃_i = λ_i·t_i + (1-λ_i)·t_perm[i]`` with ``λ_i = 1 - height_i·width_i / (H·W)``, the
    share of image i's own pixels (λ corrected to the box actually pasted, as torchvision v2).
    Both weights are correctly rounded float32 divisions of exact integers,
    ``(H·W - area)/(H·W)`` and ``area/(H·W)`` (looked up in a table, see :func:`_pixel_shares`).

    Args:
        images: ``[N, H, W, C]`` uint8 or float; returned in the same dtype (pixels are copied).
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`CutMixParams` (boxes inside the image: checked on concrete values).

    Returns:
        ``(mixed_images, soft_targets)``, soft targets ``[N, K]`` float (float32 for labels).

    .. warning::
       torchvision computes ``λ`` in float64 and rounds each weight to float32 once more; here
       each weight is one float32 division, which can differ from torchvision's by an ulp.

    References:
        Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
        Classifiers with Localizable Features", ICCV 2019; torchvision ``transforms.v2.CutMix``.
    """
    n, height, width, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    check_record("params", params, CutMixParams)
    top, left, bh, bw = _check_boxes(params, n, height, width)
    _check_index("params.perm", params.perm, (n,), n)
    perm = jnp.asarray(params.perm, jnp.int32)
    images = jnp.asarray(images)
    mask = _box_mask(top, left, bh, bw, height, width)
    mixed = jnp.where(mask[..., None], images[perm], images)
    area = bh * bw
    shares = jnp.asarray(_pixel_shares(height * width), soft.dtype)
    own, pasted = shares[height * width - area][:, None], shares[area][:, None]
    return mixed, own * soft + pasted * soft[perm]


def random_cutmix(
    key, images, targets, *, alpha: float = 1.0, num_classes: int | None = None, per_sample: bool = False
):
    """Sample (:func:`sample_cutmix_params`) and apply (:func:`cutmix`): ``(mixed_images, soft_targets)``."""
    n, height, width, _ = check_images("images", images)
    if n == 0:  # an empty batch stays empty, as with torch_impl's module
        return _empty_batch(images, targets, num_classes)
    params = sample_cutmix_params(key, n, (height, width), alpha=alpha, per_sample=per_sample)
    return cutmix(images, targets, params, num_classes=num_classes)


class MixupCutmixParams(NamedTuple):
    """One draw of timm-style mixup/CutMix switching, per image (``[N]`` each).

    Fields:
        lam: float32, image i's own share: the mixup weight, or for a CutMix image the share of
            its pixels outside the box (corrected to the box when ``correct_lam``); 1 = unmixed.
        use_cutmix: bool, True where image i gets a pasted box instead of a blend.
        top, left, height, width: int, the box of a CutMix image (empty elsewhere).
        perm: int, image i's partner (timm pairs i with ``N - 1 - i``: ``x.flip(0)``).
    """

    lam: jax.Array
    use_cutmix: jax.Array
    top: jax.Array
    left: jax.Array
    height: jax.Array
    width: jax.Array
    perm: jax.Array


def _expand_to_batch(values, n: int, mode: str):
    """timm's layouts: one draw for the batch, a draw per pair ``(i, N-1-i)``, or per element."""
    if mode == "batch":
        return jnp.broadcast_to(values, (n,))
    if mode == "pair":
        return jnp.concatenate([values, values[::-1]])
    return values


def sample_mixup_cutmix_params(
    key,
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
) -> MixupCutmixParams:
    """Draw timm ``Mixup``'s parameters (its arguments, names and defaults).

    Per draw (one per batch, per pair ``(i, N-1-i)`` or per element, by ``mode``): mix with
    probability ``prob`` (else ``λ = 1``); when both tricks are on, CutMix with probability
    ``switch_prob``, else mixup; ``λ ~ Beta(cutmix_alpha)`` or ``Beta(mixup_alpha)``. A CutMix
    box is timm's ``rand_bbox``: sides ``⌊H·sqrt(1-λ)⌋``, ``⌊W·sqrt(1-λ)⌋`` around a uniform
    centre, clipped (rows ``[cy - ⌊h/2⌋, cy + ⌈h/2⌉)``); with ``cutmix_minmax`` timm's
    ``rand_bbox_minmax`` (sides uniform in ``[⌊H·min⌋, ⌊H·max⌋)``, the box inside the image). With
    ``correct_lam`` (or ``cutmix_minmax``) a CutMix λ becomes ``1 - box area / (H·W)``.
    Computed in float32 (timm: float64). ``mode="pair"`` needs an even batch. Jittable
    (``mixup_alpha``, ``cutmix_alpha``, ``prob`` and ``switch_prob`` may be traced, unchecked then:
    see :mod:`jax_impl.mixing`; the other arguments but ``key`` static).

    .. warning::
       timm asserts an even batch in every mode; here only ``pair`` needs one (in the other
       modes an odd batch's middle image is paired with itself and stays as it is).

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """
    n = check_int("batch_size", batch_size, low=1)
    height, width = check_size("image_size", image_size)
    beta_arg = functools.partial(check_beta_parameter, allow_zero=True)
    unit = functools.partial(check_real, low=0.0, high=1.0)
    # each number may be traced (its value is then checked on the device's terms: α <= 0 is off)
    values = [
        hyperparameter("mixup_alpha", mixup_alpha, beta_arg, 1.0),
        hyperparameter("cutmix_alpha", cutmix_alpha, beta_arg, 1.0),
        hyperparameter("prob", prob, unit, 1.0),
        hyperparameter("switch_prob", switch_prob, unit, 0.5),
    ]
    args = check_mixup_cutmix_args(*(c for _, c in values[:2]), cutmix_minmax, *(c for _, c in values[2:]), mode, correct_lam)
    if args.mode == "pair" and n % 2:
        raise ValueError(f"`batch_size` must be even for mode='pair', got {n}")
    cut_range = None if args.cutmix_minmax is None else minmax_cut_range(args.cutmix_minmax, height, width)
    checked = (args.mixup_alpha, args.cutmix_alpha, args.prob, args.switch_prob)
    # a traced number stands; cutmix_minmax sets cutmix_alpha to 1 whatever was given (timm)
    numbers = jnp.stack([
        v if isinstance(v, jax.Array) and not (i == 1 and cut_range is not None) else jnp.float32(c)
        for i, ((v, _), c) in enumerate(zip(values, checked))
    ])
    return _sample_mixup_cutmix(key, numbers, n, height, width, args.mode, args.correct_lam, cut_range)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6, 7))
def _sample_mixup_cutmix(key, numbers, n: int, height: int, width: int, mode: str, correct_lam: bool, cut_range) -> MixupCutmixParams:
    """The computation of :func:`sample_mixup_cutmix_params` after its checks (jitted). ``numbers``:
    float32 ``[mixup_alpha, cutmix_alpha, prob, switch_prob]``, arrays so that they may be traced
    (and a new value does not recompile); an α <= 0 turns its trick off, as 0 does."""
    m = {"batch": 1, "pair": n // 2, "elem": n}[mode]
    k_apply, k_switch, k_mix, k_cut, k_h, k_w, k_y, k_x = jax.random.split(key, 8)
    f32, i32 = jnp.float32, jnp.int32
    mixup_alpha, cutmix_alpha, prob, switch_prob = numbers
    mix_on, cut_on = mixup_alpha > 0, cutmix_alpha > 0
    apply = jax.random.uniform(k_apply, (m,), f32) < prob
    switch = jax.random.uniform(k_switch, (m,), f32) < switch_prob
    use_cutmix = jnp.where(mix_on & cut_on, switch, jnp.broadcast_to(cut_on, (m,)))
    ma, ca = jnp.where(mix_on, mixup_alpha, 1.0), jnp.where(cut_on, cutmix_alpha, 1.0)  # a valid Beta where off
    lam_mix = jnp.where(mix_on, jax.random.beta(k_mix, ma, ma, (m,), f32), 1.0)
    lam_mix = jnp.where(use_cutmix, jax.random.beta(k_cut, ca, ca, (m,), f32), lam_mix)
    lam = jnp.where(apply, lam_mix, 1.0)
    boxed = use_cutmix & (lam != 1)
    if cut_range is None:
        ratio = jnp.sqrt(1.0 - lam_mix)
        cut_h, cut_w = jnp.floor(height * ratio).astype(i32), jnp.floor(width * ratio).astype(i32)
        cy = jax.random.randint(k_y, (m,), 0, height, dtype=i32)
        cx = jax.random.randint(k_x, (m,), 0, width, dtype=i32)
        y1, y2 = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + (cut_h + 1) // 2, 0, height)
        x1, x2 = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + (cut_w + 1) // 2, 0, width)
    else:
        lo_h, hi_h, lo_w, hi_w = cut_range
        cut_h = jax.random.randint(k_h, (m,), lo_h, hi_h, dtype=i32)
        cut_w = jax.random.randint(k_w, (m,), lo_w, hi_w, dtype=i32)
        y1 = jax.random.randint(k_y, (m,), 0, height - cut_h + 1, dtype=i32)
        x1 = jax.random.randint(k_x, (m,), 0, width - cut_w + 1, dtype=i32)
        y2, x2 = y1 + cut_h, x1 + cut_w
    bh, bw = jnp.where(boxed, y2 - y1, 0), jnp.where(boxed, x2 - x1, 0)
    if correct_lam or cut_range is not None:
        lam = jnp.where(boxed, jnp.asarray(_pixel_shares(height * width))[height * width - bh * bw], lam)
    fields = [lam.astype(f32), boxed, jnp.where(boxed, y1, 0), jnp.where(boxed, x1, 0), bh, bw]
    out = [_expand_to_batch(v, n, mode) for v in fields]
    return MixupCutmixParams(*out, perm=jnp.arange(n - 1, -1, -1, dtype=i32))


def _smoothed(soft, targets, smoothing: float, k: int):
    """timm's ``mixup_target`` smoothing: labels get ``1 - ε + ε/K`` and ``ε/K`` (written as those
    two values, as timm's ``one_hot``); soft targets ``t·(1-ε) + ε/K``."""
    if smoothing == 0:
        return soft
    off = smoothing / k
    if targets.ndim == 1:
        return jnp.where(soft > 0, jnp.asarray(1.0 - smoothing + off, soft.dtype), jnp.asarray(off, soft.dtype))
    return soft * (1.0 - smoothing) + off


def mixup_cutmix(images, targets, params: MixupCutmixParams, *, num_classes: int | None = None, label_smoothing: float = 0.0):
    """Kernel of timm-style mixup/CutMix switching, image by image.

    With ``j = perm[i]`` and ``λ = lam[i]``: a CutMix image takes image j's pixels inside its box
    (``where``, pixels copied); a mixup image is ``x_i·λ + x_j·(1-λ)`` (uint8: blended in float32
    and rounded half to even, as timm's ``FastCollateMixup``); targets, smoothed first as timm's
    ``mixup_target``, are ``t_i·λ + t_j·(1-λ)``.

    Args:
        images: ``[N, H, W, C]`` uint8 or float; returned in the same dtype.
        targets: ``[N]`` integer labels (then ``num_classes`` is required) or ``[N, K]`` soft targets.
        params: :class:`MixupCutmixParams` (value checks on concrete values only).
        label_smoothing: ``ε`` in ``[0, 1]`` (static; timm ``Mixup``'s default is 0.1; 0 here).

    Returns:
        ``(mixed_images, soft_targets)``, soft targets ``[N, K]`` float (float32 for labels).

    .. warning::
       timm's per-batch mode computes ``1 - λ`` in float64 and rounds it to float32; here
       ``1 - λ`` is computed in float32 from the float32 ``λ`` of the record (as timm's per-pair
       and per-element modes do), so per-batch results can differ from timm's by an ulp; XLA
       may also fuse the blend's multiply-add (one rounding instead of two).

    References:
        Zhang et al., "mixup", ICLR 2018; Yun et al., "CutMix", ICCV 2019; timm
        ``timm.data.Mixup``.
    """
    n, height, width, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    eps = check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)
    check_record("params", params, MixupCutmixParams)
    lam, use_cutmix = params.lam, params.use_cutmix
    if not hasattr(lam, "dtype") or not jnp.issubdtype(lam.dtype, jnp.floating) or tuple(lam.shape) != (n,):
        raise TypeError(f"`params.lam` must be a floating array of shape ({n},)")
    if is_concrete(lam) and not bool(np.all((np.asarray(lam) >= 0) & (np.asarray(lam) <= 1))):  # NaN fails both
        raise ValueError(f"`params.lam` must lie in [0, 1], got {lam.tolist()}")
    if not hasattr(use_cutmix, "dtype") or use_cutmix.dtype != jnp.bool_ or tuple(use_cutmix.shape) != (n,):
        raise TypeError(f"`params.use_cutmix` must be a bool array of shape ({n},)")
    top, left, bh, bw = _check_boxes(params, n, height, width)
    _check_index("params.perm", params.perm, (n,), n)
    perm = jnp.asarray(params.perm, jnp.int32)

    images = jnp.asarray(images)
    src = images[perm]
    pasted = jnp.where(_box_mask(top, left, bh, bw, height, width)[..., None], src, images)
    uint8 = images.dtype == jnp.uint8
    work, src_w = (images.astype(jnp.float32), src.astype(jnp.float32)) if uint8 else (images, src)
    lam_x = lam.astype(work.dtype).reshape(-1, 1, 1, 1)
    blended = work * lam_x + src_w * (1 - lam_x)
    if uint8:
        blended = jnp.clip(jnp.round(blended), 0, 255).astype(jnp.uint8)
    mixed = jnp.where(use_cutmix.reshape(-1, 1, 1, 1), pasted, blended)
    soft = _smoothed(soft, targets, eps, soft.shape[1])
    lam_t = lam.astype(soft.dtype)[:, None]
    return mixed, soft * lam_t + soft[perm] * (1 - lam_t)


def random_mixup_cutmix(
    key,
    images,
    targets,
    *,
    mixup_alpha: float = 1.0,
    cutmix_alpha: float = 0.0,
    cutmix_minmax=None,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
    correct_lam: bool = True,
    label_smoothing: float = 0.1,
    num_classes: int = 1000,
):
    """Sample (:func:`sample_mixup_cutmix_params`) and apply (:func:`mixup_cutmix`) with timm
    ``Mixup``'s arguments and defaults: ``(mixed_images, soft_targets)``. All but ``key``,
    ``images`` and ``targets`` are static, but for the four numbers that may be traced
    (:func:`sample_mixup_cutmix_params`)."""
    n, height, width, _ = check_images("images", images)
    if n == 0:  # an empty batch stays empty, as with torch_impl's module
        return _empty_batch(images, targets, num_classes)
    params = sample_mixup_cutmix_params(
        key,
        n,
        (height, width),
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        cutmix_minmax=cutmix_minmax,
        prob=prob,
        switch_prob=switch_prob,
        mode=mode,
        correct_lam=correct_lam,
    )
    return mixup_cutmix(images, targets, params, num_classes=num_classes, label_smoothing=label_smoothing)


# ------------------------------------------------------------------------------------------
# The trainer's entry: collected by jax_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------

def _trainer_sample_cutmix(key, n, trainer):
    c = trainer.config
    return sample_mixup_cutmix_params(
        key, n, trainer.image_size, mixup_alpha=c.mixup, cutmix_alpha=c.cutmix, cutmix_minmax=c.cutmix_minmax,
        prob=c.mix_prob, switch_prob=c.mix_switch_prob, mode=c.mix_mode,
    )


# CutMix alone, or (with mixup on, which it then takes over) timm's mixup/CutMix switching; label
# smoothing is already folded into the soft targets, as timm's mixup_target does.
TRICK_IMPLS = {
    "cutmix": TrickImpl(
        _trainer_sample_cutmix, lambda x, y, p, tr: mixup_cutmix(x, y, p, num_classes=target_classes(y, tr))
    ),
}
