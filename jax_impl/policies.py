"""AutoAugment with a sub-policy, apply decisions and signs drawn for every image, applied batched (JAX).

The JAX twin of :mod:`torch_impl.policies` (same policies, same parameter record, same results
on the same record). :func:`sample_autoaugment_params` draws, per image, the sub-policy index,
whether each of its two operations fires and the signs; :func:`autoaugment` applies them to an
``[N, H, W, C]`` batch in one jitted computation with static shapes: per operation slot, each
operation the policy can put there runs with per-image magnitudes (the five geometric ops share
one affine warp) on the images that drew it. The affine matrices come from a host cache of the
policy's discrete magnitudes (computed in float64 like torchvision for the static image size), so
the geometric ops are exact under ``jit`` too. The two slots run as one ``fori_loop`` body over
the union of the policy's ops (compiled once). On uint8 images each candidate runs only on the
images that drew it, in chunks of ``ceil(N/16)`` images (:func:`_on_drawn`: a loop with a traced
trip count, none when no image drew it), and the pixel-wise ops (Brightness, Contrast, Posterize,
Solarize, AutoContrast, Equalize, Invert) share one per-image ``[N, C, 256]`` lookup table (LUT) per
slot, built by each op's own kernel on the 256 values, and one gather. Color and Sharpness
use a cheaper exact fused multiply-add for their magnitude bins (:func:`jax_impl.exact.fma8`).

.. warning:: uint8 work is rounded up to whole chunks of ``ceil(N/16)`` images per candidate.
   Float images keep a coarser scheme (:func:`_on_drawn_quarter`: a ``ceil(N/4)`` subset or the
   whole batch): float Contrast's mean is a float32 sum whose rounding can depend on how many
   images XLA's ``dot`` sees, so float results keep these two batch sizes. torch_impl's eager
   CPU path runs each op on exactly the images that drew it.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.AutoAugment``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl import kernels
from jax_impl._checks import check_images, is_concrete
from jax_impl.ops import check_op_images, fill_values
from twintricks.checks import check_int, check_ndim, check_same_leading
from twintricks.policies import GEOMETRIC_OPS, LUT_OPS, OPS, POLICIES, magnitude_bins, policy_arrays, policy_name

__all__ = ["AutoAugmentParams", "sample_autoaugment_params", "autoaugment", "random_autoaugment"]


class AutoAugmentParams(NamedTuple):
    """Per-image AutoAugment draws (field names identical in :mod:`torch_impl.autoaugment`).

    Attributes:
        sub_policy: ``[N]`` int32, index into the policy's 25 sub-policies.
        apply: ``[N, 2]`` bool, whether each of the sub-policy's two operations fires.
        negate: ``[N, 2]`` bool, whether a signed operation's magnitude is negated (ignored for
            unsigned operations).
    """

    sub_policy: jax.Array
    apply: jax.Array
    negate: jax.Array


_policy_arrays = functools.lru_cache(maxsize=None)(policy_arrays)


@functools.lru_cache(maxsize=None)
def _matrix_cache(policy: str, height: int, width: int) -> np.ndarray:
    """Float32 inverse affine matrices ``[25, 2, 2, 6]`` per (sub-policy, slot, negated), identity for
    non-geometric ops, computed on the host in float64 exactly as torchvision does."""
    identity = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], np.float32)
    matrices = np.broadcast_to(identity, (len(POLICIES[policy]), 2, 2, 6)).copy()
    for i, sub in enumerate(POLICIES[policy]):
        for k, (op, _, b) in enumerate(sub):
            if op not in GEOMETRIC_OPS:
                continue
            m = magnitude_bins(op, height, width)[b]
            values = np.array([m, -m], np.float64)
            if op in ("ShearX", "ShearY"):
                theta = kernels.shear_matrix(values, height, width, 0 if op == "ShearX" else 1)
            elif op in ("TranslateX", "TranslateY"):
                theta = kernels.translate_matrix(values, 0 if op == "TranslateX" else 1)
            else:
                theta = kernels.rotate_matrix(values)
            matrices[i, k] = theta
    return matrices


def sample_autoaugment_params(key, batch_size: int, *, policy: str) -> AutoAugmentParams:
    """Draw, per image, a sub-policy (uniform), its two apply decisions and two signs.

    ``apply[i, k] = u <= p`` and ``negate[i, k] = v <= 0.5`` with ``u, v ~ U[0, 1)`` (torchvision's
    rule ``torch.rand(()) <= p``). ``key`` is split three ways (sub-policy, apply, negate).
    """
    n = check_int("batch_size", batch_size, low=0)
    policy = policy_name(policy)
    prob = jnp.asarray([[p for _, p, _ in sub] for sub in POLICIES[policy]], jnp.float32)
    k_sub, k_apply, k_neg = jax.random.split(key, 3)
    sub = jax.random.randint(k_sub, (n,), 0, len(POLICIES[policy]), dtype=jnp.int32)
    apply = jax.random.uniform(k_apply, (n, 2)) <= prob[sub]
    negate = jax.random.uniform(k_neg, (n, 2)) <= 0.5
    return AutoAugmentParams(sub, apply, negate)


def _check_params(params, n: int, num_sub: int) -> AutoAugmentParams:
    if not isinstance(params, tuple) or len(params) != 3:
        raise TypeError(f"`params` must be an AutoAugmentParams, got {type(params).__name__}")
    params = AutoAugmentParams(*params)
    check_ndim("params.sub_policy", params.sub_policy, 1, "[N]")
    check_ndim("params.apply", params.apply, 2, "[N, 2]")
    check_ndim("params.negate", params.negate, 2, "[N, 2]")
    check_same_leading(
        ["images", "params.sub_policy", "params.apply", "params.negate"],
        [np.empty((n, 0)), params.sub_policy, params.apply, params.negate],
    )
    if params.apply.shape[1] != 2 or params.negate.shape[1] != 2:
        raise ValueError(f"`params.apply` / `params.negate` must be [N, 2], got {tuple(params.apply.shape)}")
    if not jnp.issubdtype(jnp.asarray(params.sub_policy).dtype, jnp.integer):
        raise TypeError(f"`params.sub_policy` must be integers, got {jnp.asarray(params.sub_policy).dtype}")
    if is_concrete(params.sub_policy) and n:
        sub = np.asarray(params.sub_policy)
        if sub.min() < 0 or sub.max() >= num_sub:
            raise ValueError(f"`params.sub_policy` must lie in [0, {num_sub}), got {sub.tolist()}")
    return params




def _chunk_size(n: int) -> int:
    """Images per step of :func:`_on_drawn`: a sixteenth of the batch (at least 1)."""
    return max(1, -(-n // 16))


def _on_drawn(sel, kernel, images, args: tuple, like):
    """``like`` with the images where ``sel`` replaced by ``kernel(images, *args)``'s (images independent).

    Static shapes without running the kernel on the whole batch: the selected images are taken
    in fixed-size chunks of :func:`_chunk_size` images (selected ones first, ``args`` ``[N, ...]``
    gathered alike), and a ``fori_loop`` with a traced trip count ``ceil(count / chunk)`` runs
    the kernel once per chunk (never when no image is selected) and scatters its results for the
    selected images into ``like``. The last chunk may overlap the previous one (it recomputes the
    same values). The loop also materialises every operand, so XLA never fuses a producer (a
    LUT's arithmetic) into the per-pixel code. Under ``vmap`` the trip count is the
    largest over the mapped axis.
    """
    n = images.shape[0]
    if n == 0:
        return like
    k = min(_chunk_size(n), n)
    count = jnp.sum(sel.astype(jnp.int32))
    order = jnp.argsort(jnp.logical_not(sel), stable=True).astype(jnp.int32)

    def body(i, out):
        idx = jax.lax.dynamic_slice(order, (jnp.minimum(i * k, n - k),), (k,))
        res = kernel(images[idx], *(a[idx] for a in args))
        keep = sel[idx].reshape((k,) + (1,) * (res.ndim - 1))
        return out.at[idx].set(jnp.where(keep, res, out[idx]), unique_indices=True)

    return jax.lax.fori_loop(0, (count + k - 1) // k, body, like)


def _on_drawn_quarter(sel, kernel, images, args: tuple, like):
    """:func:`_on_drawn` for float images: the kernel runs on a fixed ``ceil(N/4)``-image subset
    when at most that many images are selected, else on the whole batch (a ``lax.switch``; skipped
    when none is). Float Contrast's mean is a float32 sum whose rounding can depend on how many
    images XLA's ``dot`` sees, so float results keep these two batch sizes."""
    n = images.shape[0]
    k = -(-n // 4)
    count = jnp.sum(sel.astype(jnp.int32))
    bcast = sel.reshape((n,) + (1,) * (like.ndim - 1))

    def skip(x, *a):
        return like

    def part(x, *a):
        idx = jnp.argsort(jnp.logical_not(sel), stable=True)[:k]
        return jnp.where(bcast, like.at[idx].set(kernel(x[idx], *(v[idx] for v in a))), like)

    def full(x, *a):
        return jnp.where(bcast, kernel(x, *a), like)

    branch = (count > 0).astype(jnp.int32) + (count > k).astype(jnp.int32)
    return jax.lax.switch(branch, (skip, part, full), images, *args)


def _slot_lut(images, op, mag, slot_ops: set):
    """Per-image lookup tables (LUTs) ``[N, 256, C]`` (uint8, value-major) for the slot's pixel-wise ops.

    On uint8 images Brightness, Contrast, Posterize, Solarize, AutoContrast, Equalize and Invert
    map every value through a function of that value and per-image (per-channel) statistics, so
    each op's LUT is its kernel (:mod:`jax_impl.kernels`) applied to the 256 possible values laid
    out as an image, with the statistics of the real image passed in: the same float32 operations,
    so the same bytes. Each op's LUTs (and the statistics they need) are computed only for the
    images that drew it (:func:`_on_drawn`); the others keep the identity.
    """
    n, h, w, c = images.shape
    v1 = jnp.arange(256, dtype=jnp.uint8)[:, None]

    def values(k):
        """The 256 values as ``k`` images ``[k, 1, 256, C]``."""
        return jnp.broadcast_to(v1, (k, 1, 256, c))

    def ratio_alpha(m):
        return (1.0 + m).reshape(-1, 1, 1, 1), (-m).reshape(-1, 1, 1, 1)

    lut_kernels = {  # kernel(images that drew the op [k, H, W, C], their magnitudes [k]) -> LUTs
        "Brightness": lambda x, m: kernels.brightness(values(x.shape[0]), ratio_alpha(m)[0]),
        "Contrast": lambda x, m: kernels.contrast(values(x.shape[0]), *ratio_alpha(m), kernels.contrast_mean(x)),
        "Posterize": lambda x, m: kernels.posterize(values(x.shape[0]), m.astype(jnp.int32)),
        "Solarize": lambda x, m: kernels.solarize(values(x.shape[0]), (m * 255.0).astype(jnp.float32).reshape(-1, 1, 1, 1)),
        "AutoContrast": lambda x, m: kernels.autocontrast(values(x.shape[0]), kernels.channel_min_max(x)),
        "Equalize": lambda x, m: jnp.swapaxes(kernels.equalize_lut(kernels.histograms(x)), 1, 2)[:, None],
        "Invert": lambda x, m: kernels.invert(values(x.shape[0])),
    }
    lut = jnp.broadcast_to(v1, (n, 1, 256, c))
    for name in LUT_OPS:
        if name in slot_ops:
            lut = _on_drawn(op == OPS.index(name), lut_kernels[name], images, (mag,), lut)
    return lut[:, 0]


def _apply_slot(images, op, mag, theta, slot_ops: set, fill):
    """One operation slot: ``op`` ``[N]`` (-1: none), ``mag`` ``[N]`` float32 signed magnitudes,
    ``theta`` ``[N, 6]`` the geometric matrix (identity where the op is not geometric).

    Each candidate runs through :func:`_on_drawn` (uint8) or :func:`_on_drawn_quarter` (float),
    which also materialise its inputs and result (XLA does not fuse across a loop or conditional):
    fused into one select chain with the other candidates, XLA's CPU code for the per-pixel ops got
    several times slower (``optimization_barrier`` is expanded away before fusion there). The
    candidates are chained (each writes its images into the previous one's output): every image
    drew at most one operation per slot.
    """
    n, h, w, c = images.shape
    dtype = kernels.compute_dtype(images)

    def select(name, neutral=0.0):
        sel = op == OPS.index(name)
        return sel, jnp.where(sel, mag, jnp.float32(neutral))

    def ratio_alpha(m):  # m: [k] for the k images a kernel runs on
        return (1.0 + m).astype(dtype).reshape(-1, 1, 1, 1), (-m).astype(dtype).reshape(-1, 1, 1, 1)

    candidates = []  # (selected images [N] bool, kernel(images, *args), per-image args [N, ...])
    if any(name in slot_ops for name in GEOMETRIC_OPS):
        is_geo = jnp.isin(op, jnp.asarray([OPS.index(name) for name in GEOMETRIC_OPS]))
        # The grid's split products for every image once, outside the per-pixel loop body.
        terms = kernels.grid_terms(theta, h, w, kernels.grid_dtype(images))
        candidates.append((is_geo, lambda x, *t: kernels.warp_nearest(x, t, fill=fill), terms))
    if not kernels.is_float(images) and any(name in slot_ops for name in LUT_OPS):
        # uint8: every pixel-wise op through one LUT lookup (LUTs built for the whole batch,
        # identity for the other images; the statistics only for the images that need them).
        is_lut = jnp.isin(op, jnp.asarray([OPS.index(name) for name in LUT_OPS if name in slot_ops]))
        lut = _slot_lut(images, op, mag, set(slot_ops))
        candidates.append((is_lut, kernels.lookup, (lut,)))
        slot_ops = set(slot_ops) - set(LUT_OPS)
    if "Brightness" in slot_ops:
        sel, m = select("Brightness")
        candidates.append((sel, lambda x, m: kernels.brightness(x, ratio_alpha(m)[0]), (m,)))
    if "Color" in slot_ops and c == 3:
        sel, m = select("Color")
        candidates.append((sel, lambda x, m: kernels.color(x, *ratio_alpha(m), bins=True), (m,)))
    if "Contrast" in slot_ops:
        sel, m = select("Contrast")
        candidates.append((sel, lambda x, m: kernels.contrast(x, *ratio_alpha(m)), (m,)))
    if "Sharpness" in slot_ops and h > 2 and w > 2:
        sel, m = select("Sharpness")
        candidates.append((sel, lambda x, m: kernels.sharpness(x, ratio_alpha(m)[1], bins=True), (m,)))
    if "Posterize" in slot_ops:
        sel, m = select("Posterize", 8.0)
        candidates.append((sel, lambda x, m: kernels.posterize(x, m.astype(jnp.int32)), (m,)))
    if "Solarize" in slot_ops:
        sel, m = select("Solarize", 1.0)
        threshold = (m * kernels.max_value(images.dtype)).astype(dtype)
        candidates.append((sel, lambda x, t: kernels.solarize(x, t.reshape(-1, 1, 1, 1)), (threshold,)))
    if "AutoContrast" in slot_ops:
        candidates.append((op == OPS.index("AutoContrast"), kernels.autocontrast, ()))
    if "Equalize" in slot_ops:
        candidates.append((op == OPS.index("Equalize"), kernels.equalize, ()))
    if "Invert" in slot_ops:
        candidates.append((op == OPS.index("Invert"), kernels.invert, ()))
    out = images
    on_drawn = _on_drawn_quarter if kernels.is_float(images) else _on_drawn
    for sel, kernel, args in candidates:  # each image drew at most one: chain them
        out = on_drawn(sel, kernel, images, args, out)
    return out


@functools.partial(jax.jit, static_argnames=("policy", "fill"))
def _autoaugment(images, sub, apply, negate, *, policy: str, fill):
    n, h, w, c = images.shape
    op_id, _, mag, signed = _policy_arrays(policy, h, w)
    sub = sub.astype(jnp.int32)
    op = jnp.asarray(op_id, jnp.int32)[sub]
    m = jnp.asarray(mag, jnp.float32)[sub]
    neg = negate & jnp.asarray(signed)[sub]
    m = jnp.where(neg, -m, m)
    op = jnp.where(apply, op, -1)
    theta = jnp.asarray(_matrix_cache(policy, h, w))[sub]  # [N, 2, 2, 6]
    theta = jnp.where(neg[..., None], theta[:, :, 1], theta[:, :, 0])  # [N, 2, 6]
    slot_ops = {op_name for sub_policy in POLICIES[policy] for op_name, _, _ in sub_policy}

    def body(slot, out):  # one compiled body for both slots (halves the compile time)
        return _apply_slot(out, op[:, slot], m[:, slot], theta[:, slot], slot_ops, fill)

    return jax.lax.fori_loop(0, 2, body, images)


def autoaugment(images, params: AutoAugmentParams, *, policy: str, fill=0):
    """Apply each image's AutoAugment sub-policy (drawn in ``params``) to an ``[N, H, W, C]`` batch.

    For image ``i`` with ``s = params.sub_policy[i]`` and the policy's sub-policy
    ``((op0, p0, b0), (op1, p1, b1))``: if ``params.apply[i, 0]``, apply ``op0`` with the
    magnitude of bin ``b0`` (negated if ``params.negate[i, 0]`` and the op is signed), then
    likewise ``op1``. Semantics, bins and kernels are torchvision v2's (:mod:`jax_impl.ops`);
    equals :func:`torch_impl.autoaugment` on the same record.

    Args:
        images: ``[N, H, W, C]`` uint8 (C in {1, 3}), or float in [0, 1] (range checked when concrete).
        params: from :func:`sample_autoaugment_params` with the same ``policy``.
        policy: ``"imagenet"``, ``"cifar10"`` or ``"svhn"`` (static).
        fill: number or per-channel sequence for pixels that come from outside (static).
    """
    policy = policy_name(policy)
    n, h, w, c = check_images("images", images)
    if c not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels [N, H, W, C], got C={c}")
    check_op_images("images", images)
    fill = fill_values(fill, c, images.dtype)
    params = _check_params(params, n, len(POLICIES[policy]))
    return _autoaugment(
        images, jnp.asarray(params.sub_policy), jnp.asarray(params.apply, bool), jnp.asarray(params.negate, bool),
        policy=policy, fill=fill,
    )


def random_autoaugment(key, images, *, policy: str = "imagenet", fill=0):
    """Sample per-image AutoAugment draws with ``key`` and apply them (defaults as torchvision's)."""
    n = check_images("images", images)[0]
    return autoaugment(images, sample_autoaugment_params(key, n, policy=policy), policy=policy, fill=fill)
