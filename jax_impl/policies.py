"""The AutoAugment family with every draw made per image, applied batched (JAX): AutoAugment,
RandAugment, TrivialAugmentWide and AugMix.

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
Solarize, AutoContrast, Equalize, Invert) share one per-image ``[256, C]`` lookup table (LUT) per
slot, built by each op's own kernel on the 256 values, and one gather: one loop over the images
that drew any of them, which also computes the image statistics (histograms, min/max, mean) a
chunk's ops need (:func:`_lut_lookup`). Color and Sharpness
use a cheaper exact fused multiply-add for their magnitude bins (:func:`jax_impl.exact.fma8`).

.. warning:: uint8 work is rounded up to whole chunks of ``ceil(N/16)`` images per candidate.
   Float images keep a coarser scheme (:func:`_on_drawn_quarter`: a ``ceil(N/4)`` subset or the
   whole batch): float Contrast's mean is a float32 sum whose rounding can depend on how many
   images XLA's ``dot`` sees, so float results keep these two batch sizes. torch_impl's eager
   CPU path runs each op on exactly the images that drew it.

RandAugment, TrivialAugmentWide and AugMix (:func:`randaugment`, :func:`trivialaugment_wide`,
:func:`augmix`) run their slots through the same :func:`_apply_slot` (AugMix's chains as one
batch of ``W·N`` images); they equal torch_impl's on the same record (uint8: bit for bit).

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.AutoAugment``. RandAugment, TrivialAugmentWide, AugMix:
    see their kernels.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl import exact, kernels
from jax_impl._checks import check_images, is_concrete
from jax_impl._policy_checks import check_family_images as _check_family_images
from jax_impl._policy_checks import check_int_field as _check_int_field
from jax_impl._policy_checks import check_record as _check_record
from jax_impl._policy_checks import check_shape as _check_shape
from jax_impl._policy_checks import magnitude_array as _magnitude_array
from jax_impl.ops import check_op_images, fill_values
from twintricks.checks import check_int, check_ndim, check_same_leading
from twintricks.policies import (
    AUGMIX_MAX_DEPTH,
    AUGMIX_NUM_BINS,
    AUGMIX_OPS,
    AUGMIX_PARTIAL_OPS,
    FAMILY_OPS,
    GEOMETRIC_OPS,
    LUT_OPS,
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
    magnitude_bins,
    policy_arrays,
    policy_name,
)

__all__ = [
    "AutoAugmentParams",
    "sample_autoaugment_params",
    "autoaugment",
    "random_autoaugment",
    "RandAugmentParams",
    "sample_randaugment_params",
    "randaugment",
    "random_randaugment",
    "TrivialAugmentWideParams",
    "sample_trivialaugment_wide_params",
    "trivialaugment_wide",
    "random_trivialaugment_wide",
    "AugMixParams",
    "sample_augmix_params",
    "augmix",
    "random_augmix",
]


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


def _varying_as(x, *refs):
    """``x`` cast to vary over every manual mesh axis one of ``refs`` varies over (inside
    ``shard_map``, a loop's or a conditional's initial value must have its body's type; elsewhere
    there are no such axes and ``x`` is returned as it is)."""
    if not hasattr(jax, "typeof"):  # a jax without varying-axis types
        return x

    def vma(a):  # jax >= 0.10: aval.manual_axis_type.varying; 0.7-0.9: aval.vma
        t = jax.typeof(a)
        m = getattr(t, "manual_axis_type", None)
        return set(m.varying) if m is not None else set(getattr(t, "vma", ()))

    missing = set().union(*map(vma, refs)) - vma(x)
    return jax.lax.pcast(x, tuple(sorted(missing)), to="varying") if missing else x


def _on_drawn(sel, kernel, images, args: tuple, like, key=None):
    """``like`` with the images where ``sel`` replaced by ``kernel(images, *args)``'s (images independent).

    Static shapes without running the kernel on the whole batch: the selected images are taken
    in fixed-size chunks of :func:`_chunk_size` images (selected ones first, ``args`` ``[N, ...]``
    gathered alike), and a ``fori_loop`` with a traced trip count ``ceil(count / chunk)`` runs
    the kernel once per chunk (never when no image is selected) and scatters its results for the
    selected images into ``like``. The last chunk may overlap the previous one (it recomputes the
    same values). The loop also materialises every operand, so XLA never fuses a producer (a
    LUT's arithmetic) into the per-pixel code. Under ``vmap`` the trip count is the
    largest over the mapped axis. ``key`` (``[N]`` int32 >= -1, e.g. each image's op): the selected
    images are ordered by it, so a chunk mostly holds images with the same key.
    """
    n = images.shape[0]
    if n == 0:
        return like
    k = min(_chunk_size(n), n)
    like = _varying_as(like, sel, images, *args)
    count = jnp.sum(sel.astype(jnp.int32))
    rank = jnp.logical_not(sel) if key is None else jnp.where(sel, key, jnp.iinfo(jnp.int32).max)
    order = jnp.argsort(rank, stable=True).astype(jnp.int32)

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
    like = _varying_as(like, sel, images, *args)
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


def _lut_kernels(c: int) -> dict:
    """Each pixel-wise op's LUT maker: ``kernel(images that drew it [k, H, W, C], their magnitudes
    [k])`` -> LUTs ``[k, 1, 256, C]`` (uint8, value-major).

    On uint8 images Brightness, Contrast, Posterize, Solarize, AutoContrast, Equalize and Invert
    map every value through a function of that value and per-image (per-channel) statistics, so
    each op's LUT is its kernel (:mod:`jax_impl.kernels`) applied to the 256 possible values laid
    out as an image, with the statistics of the real image passed in: the same float32 operations,
    so the same bytes. The statistics-free ones (:data:`~twintricks.policies.STATIC_LUT_OPS`) read
    only ``images.shape[0]``.
    """
    v1 = jnp.arange(256, dtype=jnp.uint8)[:, None]

    def values(k):
        """The 256 values as ``k`` images ``[k, 1, 256, C]``."""
        return jnp.broadcast_to(v1, (k, 1, 256, c))

    def ratio_alpha(m):
        return (1.0 + m).reshape(-1, 1, 1, 1), (-m).reshape(-1, 1, 1, 1)

    return {
        "Brightness": lambda x, m: kernels.brightness(values(x.shape[0]), ratio_alpha(m)[0]),
        "Contrast": lambda x, m: kernels.contrast(values(x.shape[0]), *ratio_alpha(m), kernels.contrast_mean(x)),
        "Posterize": lambda x, m: kernels.posterize(values(x.shape[0]), m.astype(jnp.int32)),
        "Solarize": lambda x, m: kernels.solarize(values(x.shape[0]), (m * 255.0).astype(jnp.float32).reshape(-1, 1, 1, 1)),
        "AutoContrast": lambda x, m: kernels.autocontrast(values(x.shape[0]), kernels.channel_min_max(x)),
        "Equalize": lambda x, m: jnp.swapaxes(kernels.equalize_lut(kernels.histograms(x)), 1, 2)[:, None],
        "Invert": lambda x, m: kernels.invert(values(x.shape[0])),
    }


def _free_luts(op, mag, c: int, slot_ops: set):
    """The LUTs ``[N, 1, 256, C]`` of the slot's statistics-free ops for the whole batch (256
    values an image, with the op's :data:`~twintricks.policies.PLACEHOLDER_MAGNITUDES` where the
    image drew another op: cheaper than a loop over the images that drew them), the identity for
    the other images."""
    n = op.shape[0]
    lut = jnp.broadcast_to(jnp.arange(256, dtype=jnp.uint8)[:, None], (n, 1, 256, c))
    makers = _lut_kernels(c)
    for name in LUT_OPS:
        if name in STATIC_LUT_OPS and name in slot_ops:
            sel = op == OPS.index(name)
            m = jnp.where(sel, mag, jnp.float32(PLACEHOLDER_MAGNITUDES.get(name, 0.0)))
            lut = jnp.where(sel[:, None, None, None], makers[name](lut, m), lut)
    return lut


def _lut_lookup(slot_ops: set, c: int):
    """The LUT candidate's kernel ``(images [k, H, W, C], ops [k], magnitudes [k], statistics-free
    LUTs [k, 1, 256, C]) -> images``: the LUTs of the ops that need the image's statistics
    (Contrast, AutoContrast, Equalize) made here, each only when an image of the chunk drew it (a
    conditional; :func:`_on_drawn` orders the images by op, so a chunk rarely mixes them), then one
    lookup. The LUTs come out of an always-taken conditional, so XLA materialises them once
    instead of fusing their arithmetic into the per-pixel lookup."""
    makers = _lut_kernels(c)
    stat_ops = [name for name in LUT_OPS if name in slot_ops and name not in STATIC_LUT_OPS]

    def kernel(x, o, m, base):
        # Inside shard_map a conditional's branches must vary over the same mesh axes: every LUT
        # below is cast to vary as the chunk's images, ops, magnitudes and base LUTs do.
        def build():
            lut = _varying_as(base, x, o, m)
            for name in stat_ops:
                need = o == OPS.index(name)
                made = jax.lax.cond(jnp.any(need), lambda lut=lut, name=name: _varying_as(makers[name](x, m), lut),
                                    lambda lut=lut: lut)
                lut = jnp.where(need[:, None, None, None], made, lut)
            return lut[:, 0]

        v = m[:1]  # ``v == v | v != v`` holds for every float: always taken, opaque to XLA
        lut = jax.lax.cond(jnp.any((v == v) | (v != v)), build,
                           lambda: _varying_as(jnp.zeros(base[:, 0].shape, base.dtype), x, o, m, base))
        return kernels.lookup(x, lut)

    return kernel


def _apply_slot(images, op, mag, theta, slot_ops: set, fill, bins: bool = True, interpolation: str = "nearest"):
    """One operation slot: ``op`` ``[N]`` (-1: none), ``mag`` ``[N]`` float32 signed magnitudes,
    ``theta`` ``[N, 6]`` the geometric matrix (identity where the op is not geometric). ``bins``:
    the magnitudes are bins on which :func:`jax_impl.exact.fma8` was checked exact (Color and
    Sharpness on uint8 use it), else the general :func:`jax_impl.exact.fma`.

    Each candidate runs through :func:`_on_drawn` (uint8) or :func:`_on_drawn_quarter` (float),
    which also materialise its inputs and result (XLA does not fuse across a loop or conditional):
    fused into one select chain with the other candidates, XLA's CPU code for the per-pixel ops got
    several times slower (``optimization_barrier`` is expanded away before fusion there). The
    candidates are chained (each writes its images into the previous one's output): every image
    drew at most one operation per slot.
    """
    n, h, w, c = images.shape
    dtype = kernels.compute_dtype(images)

    def select(name):
        sel = op == OPS.index(name)
        return sel, jnp.where(sel, mag, jnp.float32(PLACEHOLDER_MAGNITUDES.get(name, 0.0)))

    def ratio_alpha(m):  # m: [k] for the k images a kernel runs on
        return (1.0 + m).astype(dtype).reshape(-1, 1, 1, 1), (-m).astype(dtype).reshape(-1, 1, 1, 1)

    candidates = []  # (selected images [N] bool, kernel(images, *args), per-image args [N, ...])
    if any(name in slot_ops for name in GEOMETRIC_OPS):
        is_geo = jnp.isin(op, jnp.asarray([OPS.index(name) for name in GEOMETRIC_OPS]))
        # The grid's split products for every image once, outside the per-pixel loop body.
        terms = kernels.grid_terms(exact.run_time(theta, images), h, w, kernels.grid_dtype(images))
        candidates.append((is_geo, lambda x, *t: kernels.warp(x, t, fill=fill, interpolation=interpolation), terms))
    if not kernels.is_float(images) and any(name in slot_ops for name in LUT_OPS):
        # uint8: every pixel-wise op through one LUT lookup (statistics-free LUTs built for the
        # whole batch; those that need statistics, and the lookup, in one loop over the images).
        is_lut = jnp.isin(op, jnp.asarray([OPS.index(name) for name in LUT_OPS if name in slot_ops]))
        lut = _free_luts(op, mag, c, set(slot_ops))
        if _chunk_size(n) <= 2:
            candidates.append((is_lut, _lut_lookup(set(slot_ops), c), (op, mag, lut)))
        else:
            # Chunks of 3+ images mix ops more often, and a mixed chunk computes each of its ops'
            # statistics for all its images (AugMix's 3·32 images: measured slower): the
            # statistics in their own loops over the images that drew each op.
            makers = _lut_kernels(c)
            for name in LUT_OPS:
                if name in slot_ops and name not in STATIC_LUT_OPS:
                    lut = _on_drawn(op == OPS.index(name), makers[name], images, (mag,), lut)
            candidates.append((is_lut, kernels.lookup, (lut[:, 0],)))
        slot_ops = set(slot_ops) - set(LUT_OPS)
    if "Brightness" in slot_ops:
        sel, m = select("Brightness")
        candidates.append((sel, lambda x, m: kernels.brightness(x, ratio_alpha(m)[0]), (m,)))
    if "Color" in slot_ops and c == 3:
        sel, m = select("Color")
        candidates.append((sel, lambda x, m: kernels.color(x, *ratio_alpha(m), bins=bins), (m,)))
    if "Contrast" in slot_ops:
        sel, m = select("Contrast")
        candidates.append((sel, lambda x, m: kernels.contrast(x, *ratio_alpha(m)), (m,)))
    if "Sharpness" in slot_ops and h > 2 and w > 2:
        sel, m = select("Sharpness")
        candidates.append((sel, lambda x, m: kernels.sharpness(x, ratio_alpha(m)[1], bins=bins), (m,)))
    if "Posterize" in slot_ops:
        sel, m = select("Posterize")
        candidates.append((sel, lambda x, m: kernels.posterize(x, m.astype(jnp.int32)), (m,)))
    if "Solarize" in slot_ops:
        sel, m = select("Solarize")
        threshold = (m * kernels.max_value(images.dtype)).astype(dtype)
        candidates.append((sel, lambda x, t: kernels.solarize(x, t.reshape(-1, 1, 1, 1)), (threshold,)))
    if "AutoContrast" in slot_ops:
        candidates.append((op == OPS.index("AutoContrast"), kernels.autocontrast, ()))
    if "Equalize" in slot_ops:
        candidates.append((op == OPS.index("Equalize"), kernels.equalize, ()))
    if "Invert" in slot_ops:
        candidates.append((op == OPS.index("Invert"), kernels.invert, ()))
    out = images
    for sel, kernel, args in candidates:  # each image drew at most one: chain them
        if kernels.is_float(images):
            out = _on_drawn_quarter(sel, kernel, images, args, out)
        else:  # chunks by op: the LUT candidate's statistics then rarely run for a mixed chunk
            out = _on_drawn(sel, kernel, images, args, out, key=op)
    return out


@functools.partial(jax.jit, static_argnames=("policy", "fill", "interpolation"))
def _autoaugment(images, sub, apply, negate, *, policy: str, fill, interpolation: str = "nearest"):
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
        return _apply_slot(out, op[:, slot], m[:, slot], theta[:, slot], slot_ops, fill, interpolation=interpolation)

    return jax.lax.fori_loop(0, 2, body, images)


def autoaugment(images, params: AutoAugmentParams, *, policy: str, fill=None, interpolation="nearest"):
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
        fill: number or per-channel sequence for pixels that come from outside (static); None
            (default): torchvision's default (see :func:`torch_impl.kernels.affine_bilinear`).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (static; see :func:`randaugment`).
    """
    policy = policy_name(policy)
    interpolation = check_interpolation(interpolation)
    n, h, w, c = check_images("images", images)
    if c not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels [N, H, W, C], got C={c}")
    check_op_images("images", images)
    fill = fill_values(fill, c, images.dtype)
    params = _check_params(params, n, len(POLICIES[policy]))
    return _autoaugment(
        images, jnp.asarray(params.sub_policy), jnp.asarray(params.apply, bool), jnp.asarray(params.negate, bool),
        policy=policy, fill=_warp_fill(fill, interpolation), interpolation=interpolation,
    )


def random_autoaugment(key, images, *, policy: str = "imagenet", fill=None, interpolation="nearest"):
    """Sample per-image AutoAugment draws with ``key`` and apply them (defaults as torchvision's)."""
    n = check_images("images", images)[0]
    return autoaugment(images, sample_autoaugment_params(key, n, policy=policy), policy=policy, fill=fill,
                       interpolation=interpolation)


# ============================================================================================
# RandAugment, TrivialAugmentWide, AugMix: each image draws its own ops, bins and signs
# ============================================================================================
#
# The twin of the torch_impl section: each image's (op, magnitude bin, sign) per operation slot
# becomes an op id of :data:`twintricks.policies.OPS` (-1: nothing), a signed float32 magnitude
# and an inverse affine matrix from a host cache (float64 like torchvision, for the static image
# size), and :func:`_apply_slot` applies the slots in a ``fori_loop`` (one compiled body).


class RandAugmentParams(NamedTuple):
    """Per-image RandAugment draws (field names identical in :mod:`torch_impl.policies`).

    Attributes:
        op: ``[N, num_ops]`` int32, index into :data:`twintricks.policies.RANDAUGMENT_OPS`.
        negate: ``[N, num_ops]`` bool, whether a signed operation's magnitude is negated.
    """

    op: jax.Array
    negate: jax.Array


class TrivialAugmentWideParams(NamedTuple):
    """Per-image TrivialAugmentWide draws (field names identical in :mod:`torch_impl.policies`).

    Attributes:
        op: ``[N]`` int32, index into :data:`twintricks.policies.TRIVIALAUGMENT_WIDE_OPS`.
        magnitude: ``[N]`` int32, the magnitude bin in ``[0, num_magnitude_bins)``.
        negate: ``[N]`` bool.
    """

    op: jax.Array
    magnitude: jax.Array
    negate: jax.Array


class AugMixParams(NamedTuple):
    """Per-image AugMix draws (field names identical in :mod:`torch_impl.policies`).

    Attributes:
        op: ``[N, W, D]`` int32, index into :data:`twintricks.policies.AUGMIX_OPS`.
        magnitude: ``[N, W, D]`` int32, the magnitude bin in ``[0, 10)``.
        negate: ``[N, W, D]`` bool.
        depth: ``[N, W]`` int32 in ``[1, D]``: chain ``j`` applies its first ``depth[:, j]`` ops.
        weights: ``[N, 1 + W]`` float32: the original's weight ``m ~ Beta(α, α)``, then each
            chain's ``(1 - m)·w_j`` with ``w ~ Dirichlet(α, …, α)``.
    """

    op: jax.Array
    magnitude: jax.Array
    negate: jax.Array
    depth: jax.Array
    weights: jax.Array


def sample_randaugment_params(key, batch_size: int, *, num_ops: int = 2) -> RandAugmentParams:
    """Draw, per image, ``num_ops`` operations (uniform over the 14, Identity included) and their
    signs (``u <= 0.5``). ``key`` is split two ways (ops, signs)."""
    n = check_int("batch_size", batch_size, low=0)
    k = check_int("num_ops", num_ops, low=0)
    k_op, k_neg = jax.random.split(key)
    op = jax.random.randint(k_op, (n, k), 0, len(RANDAUGMENT_OPS), dtype=jnp.int32)
    return RandAugmentParams(op, jax.random.uniform(k_neg, (n, k)) <= 0.5)


def sample_trivialaugment_wide_params(key, batch_size: int, *, num_magnitude_bins: int = 31) -> TrivialAugmentWideParams:
    """Draw, per image, one operation (uniform over the 14), a magnitude bin (uniform) and a sign.
    ``key`` is split three ways."""
    n = check_int("batch_size", batch_size, low=0)
    bins = check_num_bins(num_magnitude_bins)
    k_op, k_bin, k_neg = jax.random.split(key, 3)
    op = jax.random.randint(k_op, (n,), 0, len(TRIVIALAUGMENT_WIDE_OPS), dtype=jnp.int32)
    magnitude = jax.random.randint(k_bin, (n,), 0, bins, dtype=jnp.int32)
    return TrivialAugmentWideParams(op, magnitude, jax.random.uniform(k_neg, (n,)) <= 0.5)


def _dirichlet(key, alpha: float, n: int, k: int) -> jax.Array:
    """``[n, k]`` float32 draws of ``Dirichlet(α·1_k)``. For ``α = 1`` (AugMix's default),
    standard exponentials over their sum: Gamma(1) is Exp(1), so this is the distribution of
    ``jax.random.dirichlet`` without its gamma rejection loop, which costs about 2 CPU-s of XLA
    compile per draw site (the sampler's two draws: 5.5 -> 3.1 CPU-s to compile, measured). Other
    ``α`` use ``jax.random.dirichlet``. A row of zeros (all ``k`` exponentials 0, probability about
    ``2^-24k``) gives equal weights instead of 0/0."""
    if alpha != 1.0:
        return jax.random.dirichlet(key, jnp.full((k,), alpha, jnp.float32), (n,))
    e = jax.random.exponential(key, (n, k), jnp.float32)
    total = e.sum(axis=1, keepdims=True)
    return jnp.where(total > 0, e / total, jnp.float32(1 / k))


def sample_augmix_params(
    key, batch_size: int, *, severity: int = 3, mixture_width: int = 3, chain_depth: int = -1, alpha: float = 1.0,
    all_ops: bool = True,
) -> AugMixParams:
    """Draw, per image, AugMix's weights and chains (the distribution of torchvision v2's ``AugMix``).

    ``m ~ Dirichlet(α, α)``, ``w ~ Dirichlet(α·1_W)`` (float32, :func:`_dirichlet`),
    ``weights = [m[0], m[1]·w]``; depths ``chain_depth`` if positive, else uniform in 1..3; ops
    uniform over the 13 ops (``all_ops``) or the first 9; bins uniform in ``[0, severity)``; signs
    ``u <= 0.5``. ``key`` is split six ways.
    """
    n = check_int("batch_size", batch_size, low=0)
    severity, width, depth, alpha, all_ops = check_augmix_args(severity, mixture_width, chain_depth, alpha, all_ops)
    d = depth if depth > 0 else AUGMIX_MAX_DEPTH
    num_ops = len(AUGMIX_OPS if all_ops else AUGMIX_PARTIAL_OPS)
    k_m, k_w, k_depth, k_op, k_bin, k_neg = jax.random.split(key, 6)
    m, w = _dirichlet(k_m, alpha, n, 2), _dirichlet(k_w, alpha, n, width)
    weights = jnp.concatenate([m[:, :1], w * m[:, 1:]], axis=1)
    if depth > 0:
        depths = jnp.full((n, width), depth, jnp.int32)
    else:
        depths = jax.random.randint(k_depth, (n, width), 1, AUGMIX_MAX_DEPTH + 1, dtype=jnp.int32)
    op = jax.random.randint(k_op, (n, width, d), 0, num_ops, dtype=jnp.int32)
    magnitude = jax.random.randint(k_bin, (n, width, d), 0, severity, dtype=jnp.int32)
    negate = jax.random.uniform(k_neg, (n, width, d)) <= 0.5
    return AugMixParams(op, magnitude, negate, depths, weights)


@functools.lru_cache(maxsize=None)
def _family_constants(family: str, num_bins: int, height: int, width: int):
    """A family's per-op arrays (host): op ids ``[K]`` (-1: Identity), unsigned magnitudes ``[K, B]``
    (float32), signedness ``[K]``, and per row ``(k·B + b)·2 + negated`` the float32 inverse affine
    matrices ``[2KB, 6]`` computed in float64 as torchvision does (identity for other ops)."""
    op_id, mag, signed = family_arrays(family, num_bins, height, width)
    k, b = len(op_id), num_bins
    mags = np.asarray(mag, np.float64)
    identity = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], np.float32)
    matrices = np.broadcast_to(identity, (k, b, 2, 6)).copy()
    for j, i in enumerate(op_id):
        op = OPS[i] if i >= 0 else "Identity"
        if op not in GEOMETRIC_OPS:
            continue
        values = np.stack([mags[j], -mags[j]], axis=-1).reshape(-1)
        if op in ("ShearX", "ShearY"):
            theta = kernels.shear_matrix(values, height, width, 0 if op == "ShearX" else 1)
        elif op in ("TranslateX", "TranslateY"):
            theta = kernels.translate_matrix(values, 0 if op == "TranslateX" else 1)
        else:
            theta = kernels.rotate_matrix(values)
        matrices[j] = np.asarray(theta, np.float32).reshape(b, 2, 6)
    return (
        np.asarray(op_id, np.int32),
        mags.astype(np.float32),
        np.asarray(signed, bool),
        matrices.reshape(2 * k * b, 6),
    )


# (family, number of bins) whose Color/Sharpness magnitudes were checked to make
# :func:`jax_impl.exact.fma8` exact on uint8 (tests/test_policy_families.py); others use exact.fma.
_FMA8_CHECKED = frozenset({("randaugment", 10), ("randaugment", 31), ("trivialaugment_wide", 31), ("augmix", AUGMIX_NUM_BINS)})


def _draws(images, family: str, num_bins: int, op, bin_, negate, active=None):
    """Each image's slots ``[N, S]`` as :func:`_apply_slot` arguments: op ids, signed magnitudes, matrices."""
    n, h, w, c = images.shape
    op_ids, mags, signed, matrices = _family_constants(family, num_bins, h, w)
    op = op.astype(jnp.int32)
    bin_ = bin_.astype(jnp.int32)
    neg = negate.astype(bool) & jnp.asarray(signed)[op]
    cell = op * num_bins + bin_
    m = jnp.asarray(mags).reshape(-1)[cell]
    m = jnp.where(neg, -m, m)
    gop = jnp.asarray(op_ids)[op]
    if active is not None:
        gop = jnp.where(active, gop, -1)
    theta = jnp.asarray(matrices)[cell * 2 + neg.astype(jnp.int32)]
    return gop, m, theta


def _warp_fill(fill, interpolation: str):
    """The static ``fill`` the kernels get: all zeros is None for nearest (the same pixels: one
    compiled body for both); bilinear blends a zero fill with the mask, as torchvision does."""
    return None if interpolation == "nearest" and fill is not None and not any(fill) else fill


def _chain(images, family: str, num_bins: int, gop, m, theta, fill, interpolation: str = "nearest"):
    """Apply the slots ``[N, S]`` one after the other (one compiled body for all slots; none: the
    images unchanged, as torch returns them for ``num_ops=0``)."""
    if gop.shape[1] == 0:
        return images
    slot_ops = {name for name in FAMILY_OPS[family] if name != "Identity"}
    bins = (family, num_bins) in _FMA8_CHECKED

    def body(slot, out):
        return _apply_slot(out, gop[:, slot], m[:, slot], theta[:, slot], slot_ops, fill, bins, interpolation)

    return jax.lax.fori_loop(0, gop.shape[1], body, images)


@functools.partial(jax.jit, static_argnames=("family", "num_bins", "fill", "interpolation"))
def _apply_family(images, op, bin_, negate, *, family: str, num_bins: int, fill, interpolation: str = "nearest"):
    gop, m, theta = _draws(images, family, num_bins, op, bin_, negate)
    return _chain(images, family, num_bins, gop, m, theta, fill, interpolation)


def randaugment(images, params: RandAugmentParams, *, magnitude: int = 9, num_magnitude_bins: int = 31, fill=None,
                interpolation="nearest"):
    """Apply each image's RandAugment operations (drawn in ``params``) to an ``[N, H, W, C]`` batch.

    Image ``i`` gets ``op[i, 0]``, ``op[i, 1]``, … (:data:`twintricks.policies.RANDAUGMENT_OPS`)
    with the magnitude of bin ``magnitude`` of ``num_magnitude_bins`` (AutoAugment's ranges),
    negated where ``negate`` says and the op is signed; torchvision v2's ``RandAugment`` bins and
    kernels. Equals :func:`torch_impl.policies.randaugment` on the same record.

    Args:
        images: ``[N, H, W, C]`` uint8 (C in {1, 3}), or float in [0, 1] (range checked when concrete).
        params: from :func:`sample_randaugment_params`.
        magnitude: the bin index in ``[0, num_magnitude_bins)``: a Python int, or an integer
            array of shape ``()`` or ``[N]`` (one bin per image), which may be traced (under
            ``jit``/``vmap``/a ``grad``; its range is checked only when concrete).
        num_magnitude_bins: at least 2 (static).
        fill: number or per-channel sequence for pixels from outside (static); None (default):
            torchvision's default (zeros; with bilinear, not the same as 0 at the border).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (or torchvision's
            ``InterpolationMode``; static) for the geometric ops: bilinear equals torchvision's
            bytes (uint8) unless a float32 sum lies within ~2^-40 of a rounding boundary (see
            :func:`jax_impl.kernels.affine_bilinear`). Bicubic is refused (torchvision's
            ``affine``/``rotate`` refuse it for tensors).

    References:
        Cubuk, Zoph, Shlens, Le. "RandAugment: Practical automated data augmentation with a
        reduced search space", CVPR Workshops 2020.
    """
    n, fill = _check_family_images(images, fill)
    interpolation = check_interpolation(interpolation)
    bins = check_num_bins(num_magnitude_bins)
    params = _check_record(params, RandAugmentParams)
    _check_shape("op", params.op, (n, None))
    s = params.op.shape[1]
    op = _check_int_field("op", params.op, 0, len(RANDAUGMENT_OPS), (n, s))
    _check_shape("negate", params.negate, (n, s))
    if isinstance(magnitude, (int, np.integer)) and not isinstance(magnitude, bool):
        mag = jnp.int32(check_randaugment_args(0, int(magnitude), bins)[1])
    else:  # an array (traceable): one bin, or one per image
        mag = _magnitude_array(magnitude)
        if not jnp.issubdtype(mag.dtype, jnp.integer) or mag.ndim > 1 or (mag.ndim == 1 and mag.shape[0] != n):
            raise TypeError(f"`magnitude` must be an int or an integer array of shape () or [{n}], got {mag.dtype} {list(mag.shape)}")
        if is_concrete(mag) and mag.size and not (0 <= int(mag.min()) and int(mag.max()) < bins):
            raise ValueError(f"`magnitude` must lie in [0, {bins - 1}], got values in [{int(mag.min())}, {int(mag.max())}]")
    bin_ = jnp.broadcast_to(jnp.reshape(mag.astype(jnp.int32), (-1, 1)), (n, s)) if mag.ndim else jnp.full((n, s), mag, jnp.int32)
    return _apply_family(images, op, bin_, jnp.asarray(params.negate, bool), family="randaugment", num_bins=bins,
                         fill=_warp_fill(fill, interpolation), interpolation=interpolation)


def trivialaugment_wide(images, params: TrivialAugmentWideParams, *, num_magnitude_bins: int = 31, fill=None,
                        interpolation="nearest"):
    """Apply each image's TrivialAugmentWide operation (drawn in ``params``) to an ``[N, H, W, C]`` batch.

    Image ``i`` gets ``op[i]`` with bin ``magnitude[i]`` of TrivialAugmentWide's wide ranges
    (:func:`twintricks.policies.family_bins`), negated where ``negate`` says and the op is
    signed. Equals :func:`torch_impl.policies.trivialaugment_wide` on the same record.

    Args:
        images: ``[N, H, W, C]`` uint8 (C in {1, 3}), or float in [0, 1].
        params: from :func:`sample_trivialaugment_wide_params` with the same ``num_magnitude_bins``.
        num_magnitude_bins: at least 2 (static).
        fill: number or per-channel sequence for pixels from outside (static; see :func:`randaugment`).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (static; see :func:`randaugment`).

    References:
        Müller, Hutter. "TrivialAugment: Tuning-free Yet State-of-the-Art Data Augmentation", ICCV 2021.
    """
    n, fill = _check_family_images(images, fill)
    interpolation = check_interpolation(interpolation)
    bins = check_num_bins(num_magnitude_bins)
    params = _check_record(params, TrivialAugmentWideParams)
    op = _check_int_field("op", params.op, 0, len(TRIVIALAUGMENT_WIDE_OPS), (n,))
    bin_ = _check_int_field("magnitude", params.magnitude, 0, bins, (n,))
    _check_shape("negate", params.negate, (n,))
    return _apply_family(
        images, op[:, None], bin_[:, None], jnp.asarray(params.negate, bool)[:, None],
        family="trivialaugment_wide", num_bins=bins, fill=_warp_fill(fill, interpolation), interpolation=interpolation,
    )


def _mix(acc, weight, x):
    """``acc + weight·x`` (``acc`` None: ``weight·x``) with the product rounded before the sum, as
    torch computes it, whatever XLA fuses: uint8 values split the product exactly
    (:func:`jax_impl.exact.product`); floats go through :func:`jax_impl.exact.fma` with a zero addend."""
    weight = weight.reshape(-1, 1, 1, 1)
    if kernels.is_float(x):
        prod = exact.fma(x.astype(jnp.float32), weight, jnp.zeros((), jnp.float32))
    else:
        prod = exact.product(x.astype(jnp.float32), weight)
    return prod if acc is None else acc + prod


@functools.partial(jax.jit, static_argnames=("fill", "interpolation"))
def _augmix(images, op, bin_, negate, depth, weights, *, fill, interpolation: str = "nearest"):
    """The ``W`` chains as one batch of ``W·N`` images (chain-major), so one compiled slot body
    serves every chain and depth; then the mixing, chain after chain."""
    n, width, d = op.shape
    active = jnp.arange(d)[None, None, :] < depth[:, :, None]

    def chain_major(a):  # [N, W, ...] -> [W·N, ...]
        return jnp.swapaxes(a, 0, 1).reshape((width * n,) + a.shape[2:])

    stacked = jnp.broadcast_to(images[None], (width,) + images.shape).reshape((width * n,) + images.shape[1:])
    gop, m, theta = _draws(stacked, "augmix", AUGMIX_NUM_BINS, chain_major(op), chain_major(bin_), chain_major(negate), chain_major(active))
    augs = _chain(stacked, "augmix", AUGMIX_NUM_BINS, gop, m, theta, fill, interpolation).reshape((width,) + images.shape)
    weights = weights.astype(jnp.float32)
    mix = _mix(None, weights[:, 0], images)
    for j in range(width):
        mix = _mix(mix, weights[:, 1 + j], augs[j])
    return mix.astype(images.dtype)


def augmix(images, params: AugMixParams, *, all_ops: bool = True, fill=None, interpolation="nearest"):
    """Apply each image's AugMix chains and mixing (drawn in ``params``) to an ``[N, H, W, C]`` batch.

    Chain ``j`` applies its first ``depth[j]`` ops (:data:`twintricks.policies.AUGMIX_OPS`,
    AugMix's bins) to the image ``x``, giving ``a_j``; the result is
    ``(((m·x) + v_1·a_1) + v_2·a_2) + …`` in float32, each product rounded before its sum, cast
    back (truncated for uint8): torchvision v2's ``AugMix`` step for step. Equals
    :func:`torch_impl.policies.augmix` on the same record.

    Args:
        images: ``[N, H, W, C]`` uint8 (C in {1, 3}), or float32 in [0, 1].
        params: from :func:`sample_augmix_params` (with the same ``all_ops``).
        all_ops: whether the four colour enhancements are allowed (ops ``< 13``, else ``< 9``).
        fill: number or per-channel sequence for pixels from outside (static; see :func:`randaugment`).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (static; see :func:`randaugment`).

    .. warning:: torchvision's ``AugMix`` defaults to bilinear interpolation; this one defaults to
       nearest (the other policies' default): pass ``interpolation="bilinear"`` for torchvision's
       default ``AugMix()``.

    References:
        Hendrycks, Mu, Cubuk, Zoph, Gilmer, Lakshminarayanan. "AugMix: A Simple Data Processing
        Method to Improve Robustness and Uncertainty", ICLR 2020.
    """
    n, fill = _check_family_images(images, fill)
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
    if not jnp.issubdtype(jnp.asarray(params.weights).dtype, jnp.floating):
        raise TypeError(f"`params.weights` must be floating point, got {jnp.asarray(params.weights).dtype}")
    weights = jnp.asarray(params.weights)
    if is_concrete(weights):
        check_augmix_weights(np.asarray(weights, np.float64), float(jnp.finfo(weights.dtype).eps))
    return _augmix(
        images, op, bin_, jnp.asarray(params.negate, bool), depth.astype(jnp.int32), weights,
        fill=_warp_fill(fill, interpolation), interpolation=interpolation,
    )


def random_randaugment(key, images, *, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, fill=None,
                       interpolation="nearest"):
    """Sample per-image RandAugment draws with ``key`` and apply them (defaults as torchvision's)."""
    n = check_images("images", images)[0]
    check_randaugment_args(num_ops, 0, num_magnitude_bins)
    params = sample_randaugment_params(key, n, num_ops=num_ops)
    return randaugment(images, params, magnitude=magnitude, num_magnitude_bins=num_magnitude_bins, fill=fill,
                       interpolation=interpolation)


def random_trivialaugment_wide(key, images, *, num_magnitude_bins: int = 31, fill=None, interpolation="nearest"):
    """Sample per-image TrivialAugmentWide draws with ``key`` and apply them (defaults as torchvision's)."""
    n = check_images("images", images)[0]
    params = sample_trivialaugment_wide_params(key, n, num_magnitude_bins=num_magnitude_bins)
    return trivialaugment_wide(images, params, num_magnitude_bins=num_magnitude_bins, fill=fill, interpolation=interpolation)


def random_augmix(key, images, *, severity: int = 3, mixture_width: int = 3, chain_depth: int = -1, alpha: float = 1.0,
                  all_ops: bool = True, fill=None, interpolation="nearest"):
    """Sample per-image AugMix draws with ``key`` and apply them (defaults as torchvision's, nearest)."""
    n = check_images("images", images)[0]
    params = sample_augmix_params(
        key, n, severity=severity, mixture_width=mixture_width, chain_depth=chain_depth, alpha=alpha, all_ops=all_ops
    )
    return augmix(images, params, all_ops=all_ops, fill=fill, interpolation=interpolation)


from twintricks.tricks import TrickImpl  # noqa: E402  (the trainer's entries, collected by jax_impl.train)

TRICK_IMPLS = {
    "autoaugment": TrickImpl(
        lambda key, n, tr: sample_autoaugment_params(key, n, policy=tr.config.autoaugment),
        lambda x, y, p, tr: (autoaugment(x, p, policy=tr.config.autoaugment,
                                         interpolation=tr.config.autoaugment_interpolation), y)),
    "randaugment": TrickImpl(
        lambda key, n, tr: sample_randaugment_params(key, n, num_ops=tr.config.randaugment_ops),
        lambda x, y, p, tr: (randaugment(x, p, magnitude=tr.config.randaugment_magnitude,
                                         num_magnitude_bins=tr.config.randaugment_bins,
                                         interpolation=tr.config.randaugment_interpolation), y)),
    "trivialaugment": TrickImpl(
        lambda key, n, tr: sample_trivialaugment_wide_params(key, n, num_magnitude_bins=tr.config.trivialaugment_bins),
        lambda x, y, p, tr: (trivialaugment_wide(x, p, num_magnitude_bins=tr.config.trivialaugment_bins,
                                                 interpolation=tr.config.trivialaugment_interpolation), y)),
    "augmix": TrickImpl(
        lambda key, n, tr: sample_augmix_params(
            key, n, severity=tr.config.augmix_severity, mixture_width=tr.config.augmix_width,
            chain_depth=tr.config.augmix_depth, alpha=tr.config.augmix_alpha, all_ops=tr.config.augmix_all_ops),
        lambda x, y, p, tr: (augmix(x, p, all_ops=tr.config.augmix_all_ops,
                                    interpolation=tr.config.augmix_interpolation), y)),
}
