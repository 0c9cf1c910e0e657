"""mixup in JAX: ``sample_mixup_params``, the kernel ``mixup`` and ``random_mixup``. Images
``[N, H, W, C]``; targets ``[N]`` labels (with ``num_classes``) or ``[N, K]`` soft targets, returned
as ``[N, K]`` soft targets.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl._checks import check_images, check_record, hyperparameter, is_concrete
from jax_impl.mixing._common import _check_index, _empty_batch, _soft_targets
from twintricks.checks import check_bool, check_int, check_same_leading
from twintricks.mixing import check_beta_parameter
from twintricks.tricks import TrickImpl, target_classes

__all__ = ["MixupParams", "sample_mixup_params", "mixup", "random_mixup"]


class MixupParams(NamedTuple):
    """One mixup draw: ``lam`` float32 (``[]`` per batch, or ``[N]`` per sample) and ``perm`` ``[N]``."""

    lam: jax.Array
    perm: jax.Array


def sample_mixup_params(key, batch_size: int, *, alpha: float = 1.0, per_sample: bool = False) -> MixupParams:
    """Draw ``λ ~ Beta(α, α)`` (one per batch, or one per image with ``per_sample``) and a
    uniformly random permutation of the batch.

    ``α = 0`` means no mixing (``λ = 1``), as in the reference code; ``α < 0`` is an error. ``alpha``
    may be traced (``jit``, ``vmap``): then it is not checked, and ``α <= 0`` means no mixing.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n = check_int("batch_size", batch_size, low=1)
    a, _ = hyperparameter("alpha", alpha, functools.partial(check_beta_parameter, allow_zero=True), 1.0)
    k_lam, k_perm = jax.random.split(key)
    shape = (n,) if check_bool("per_sample", per_sample) else ()
    if isinstance(a, jax.Array):  # traced: α = 0 (no mixing) is decided on the device
        on = a > 0
        lam = jnp.where(on, jax.random.beta(k_lam, jnp.where(on, a, 1.0), jnp.where(on, a, 1.0), shape, jnp.float32), 1.0)
    else:
        lam = jax.random.beta(k_lam, a, a, shape, dtype=jnp.float32) if a > 0 else jnp.ones(shape, jnp.float32)
    return MixupParams(lam, jax.random.permutation(k_perm, n))


def mixup(images, targets, params: MixupParams, *, num_classes: int | None = None):
    """mixup kernel: ``x̃ = λ·x + (1-λ)·x[perm]``, ``t̃ = λ·t + (1-λ)·t[perm]``.

    Args:
        images: ``[N, H, W, C]`` uint8 or float.
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
       within an ulp of a .5 tie can round to a level one apart from :mod:`torch_impl.mixing._mixup`.

    References:
        Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    """
    n, _, _, _ = check_images("images", images)
    soft = _soft_targets(targets, num_classes)
    check_same_leading(["images", "targets"], [images, soft])
    check_record("params", params, MixupParams)
    lam, perm = params
    if not hasattr(lam, "dtype") or not jnp.issubdtype(lam.dtype, jnp.floating):
        raise TypeError("`params.lam` must be a floating array")
    if tuple(lam.shape) not in ((), (n,)):
        raise ValueError(f"`params.lam` must have shape () or ({n},), got {tuple(lam.shape)}")
    if is_concrete(lam) and not bool(np.all((np.asarray(lam) >= 0) & (np.asarray(lam) <= 1))):  # NaN fails both
        raise ValueError(f"`params.lam` must lie in [0, 1], got {lam.tolist()}")
    _check_index("params.perm", perm, (n,), n)

    images = jnp.asarray(images)
    uint8 = images.dtype == jnp.uint8
    work = images.astype(jnp.float32) if uint8 else images
    lam_x = lam.astype(work.dtype).reshape(-1, 1, 1, 1) if lam.ndim else lam.astype(work.dtype)
    mixed = lam_x * work + (1 - lam_x) * work[perm]
    if uint8:
        mixed = jnp.clip(jnp.round(mixed), 0, 255).astype(jnp.uint8)
    lam_t = lam.astype(soft.dtype).reshape(-1, 1) if lam.ndim else lam.astype(soft.dtype)
    return mixed, lam_t * soft + (1 - lam_t) * soft[perm]


def random_mixup(key, images, targets, *, alpha: float = 1.0, num_classes: int | None = None, per_sample: bool = False):
    """Sample (:func:`sample_mixup_params`) and apply (:func:`mixup`) in one call."""
    n, _, _, _ = check_images("images", images)
    if n == 0:  # an empty batch stays empty, as with torch_impl's module
        return _empty_batch(images, targets, num_classes)
    params = sample_mixup_params(key, n, alpha=alpha, per_sample=per_sample)
    return mixup(images, targets, params, num_classes=num_classes)


# ------------------------------------------------------------------------------------------
# The trainer's entry: collected by jax_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------

TRICK_IMPLS = {
    "mixup": TrickImpl(
        lambda key, n, tr: sample_mixup_params(key, n, alpha=tr.config.mixup),
        lambda x, y, p, tr: mixup(x, y, p, num_classes=target_classes(y, tr)),
    ),
}
