"""Bilinear interpolation in the geometric ops and the four policies (issue 24), both backends, against
torchvision's own kernels image by image; and the policy items of issue 22 (AugMix weights checked,
jax RandAugment with no ops, a traceable RandAugment magnitude)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_impl.ops as JO
import jax_impl.policies as JP
import torch_impl.ops as TO
import torch_impl.policies as TP
import twintricks.policies as P
from parity.convert import images_from_torch, images_to_torch
from test_policies import torchvision_reference
from test_policy_families import _every_bin_images, _every_bin_record, tv_augmix, tv_randaugment, tv_trivialaugment_wide

import torchvision.transforms.v2 as tv  # noqa: E402 (a dev dependency: never skipped)
import torchvision.transforms.v2.functional as TF  # noqa: E402

BILINEAR = tv.InterpolationMode.BILINEAR
# Per op: magnitudes (both signs, zero, the wide ranges' ends, a multiple of 90°) and torchvision's call.
OP_CASES = {
    "shear_x": ([-0.99, -0.3, 0.0, 0.1, 0.45, 0.99], lambda x, m, kw: TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(math.atan(m)), 0.0], center=[0, 0], **kw)),
    "shear_y": ([-0.99, -0.3, 0.0, 0.1, 0.45, 0.99], lambda x, m, kw: TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, math.degrees(math.atan(m))], center=[0, 0], **kw)),
    "translate_x": ([-14.0, -5.7, 0.0, 1.0, 3.2, 20.0], lambda x, m, kw: TF.affine(
        x, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0], **kw)),
    "translate_y": ([-14.0, -5.7, 0.0, 1.0, 3.2, 20.0], lambda x, m, kw: TF.affine(
        x, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0], **kw)),
    "rotate": ([-135.0, -30.0, 7.5, 90.0, 133.0, 200.0], lambda x, m, kw: TF.rotate(x, m, **kw)),
}
FILLS = [None, 0, 77, (10, 200, 30)]


def to_j(images_nchw):
    """A torch NCHW batch as the jax NHWC array jax_impl takes."""
    return jnp.asarray(images_from_torch(images_nchw))


def from_j(images_nhwc):
    """jax_impl's NHWC output as a torch NCHW batch, to compare with torch's."""
    return images_to_torch(np.asarray(images_nhwc))


def _op_images(dtype, seed):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (6, 3, 13, 17), dtype=np.uint8))
    images[::3] = images[::3] // 64 * 64  # few levels: ties
    return images if dtype == torch.uint8 else images.to(dtype) / 255


def _fill(fill, dtype):
    if fill is None or dtype == torch.uint8:
        return fill
    return [v / 255 for v in fill] if isinstance(fill, tuple) else fill / 255


def _tv_op(name, images, fill):
    mags, call = OP_CASES[name]
    kw = dict(interpolation=BILINEAR, fill=None if fill is None else (list(fill) if isinstance(fill, (tuple, list)) else fill))
    return torch.stack([call(images[i], m, kw) for i, m in enumerate(mags)])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_torch_ops_bilinear_equal_torchvision_kernel(dtype):
    """Every geometric op, each image its own magnitude, four fills (None: torchvision's default, no
    mask blend; 0 blends the mask): torchvision's ``affine``/``rotate`` on that image, bit for bit."""
    for seed, fill in enumerate(FILLS):
        images, f = _op_images(dtype, seed), _fill(fill, dtype)
        for name, (mags, _) in OP_CASES.items():
            ours = getattr(TO, name)(images, torch.tensor(mags, dtype=torch.float64), fill=f, interpolation="bilinear")
            assert torch.equal(ours, _tv_op(name, images, f)), (name, fill)


# jax float32: exact.fma's Sum2 is correctly rounded except where the exact sum lies within ~2^-40
# of a float32 rounding midpoint; on op cases like these that happened on 8 of 513,360 float values
# (one ulp, <= 2^-24 on values <= 1; probes on 6 random magnitudes per op, 4 fills, seed 0), and on
# 0 here. uint8: the rounding to an integer hides it (0 differing pixels in both probes).
JAX_FLOAT_ULP_SHARE = 1e-4


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_jax_ops_bilinear_equal_torchvision_kernel(dtype):
    """The same cases through jax_impl: uint8 bit for bit; float32 within one ulp on a measured share."""
    differing = total = 0
    for seed, fill in enumerate(FILLS):
        if fill in (0, 77):
            continue  # (the torch test covers them; each fill is one more jax compile)
        images, f = _op_images(dtype, seed), _fill(fill, dtype)
        for name, (mags, _) in OP_CASES.items():
            ours = from_j(getattr(JO, name)(to_j(images), np.asarray(mags), fill=f, interpolation="bilinear"))
            ref = _tv_op(name, images, f)
            if dtype == torch.uint8:
                assert torch.equal(ours, ref), (name, fill)
            else:
                assert float((ours - ref).abs().max()) <= 2.0**-24, (name, fill)
                differing += int((ours != ref).sum())
                total += ref.numel()
    assert differing <= JAX_FLOAT_ULP_SHARE * total


def test_interpolation_argument():
    """InterpolationMode or its name in any case; bicubic refused with the reason; not a string: TypeError."""
    images = _op_images(torch.uint8, 0)
    a = TO.rotate(images, 30.0, interpolation=BILINEAR)
    assert torch.equal(a, TO.rotate(images, 30.0, interpolation="BILINEAR"))
    assert not torch.equal(a, TO.rotate(images, 30.0))  # nearest is the default, and differs
    for bad in ("bicubic", tv.InterpolationMode.BICUBIC, "box"):
        with pytest.raises(ValueError, match="interpolation.*affine and rotate"):
            TO.rotate(images, 30.0, interpolation=bad)
        with pytest.raises(ValueError, match="interpolation"):
            JP.randaugment(to_j(images), JP.RandAugmentParams(np.zeros((6, 1), np.int32), np.zeros((6, 1), bool)),
                           interpolation=bad)
    with pytest.raises(TypeError, match="interpolation"):
        TP.RandAugment(interpolation=2)
    assert TP.AugMix(interpolation=BILINEAR).interpolation == "bilinear"


# --------------------------------------------------------------------------------------------
# The policies: each image torchvision's outcome with bilinear, torch == jax
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", [None, (10, 20, 30)])
def test_policies_bilinear_each_image_equals_torchvision(fill):  # jax: fill None only (one compile each)
    """Every TrivialAugmentWide (op, bin, sign), RandAugment's ops with both signs, AugMix's geometric
    ops and an AutoAugment batch, uint8, bilinear: torchvision's transform on each image alone."""
    tv_fill = None if fill is None else list(map(float, fill))
    op, bin_, neg = _every_bin_record("trivialaugment_wide", 31)
    geo = torch.isin(op, torch.tensor([P.TRIVIALAUGMENT_WIDE_OPS.index(n) for n in P.GEOMETRIC_OPS]))
    keep = (geo & (bin_ % 3 == 0)) | (torch.arange(op.numel()) % 11 == 0)  # a third of the geometric bins
    op, bin_, neg = op[keep], bin_[keep], neg[keep]
    images = _every_bin_images(op.numel(), 12, 15, 0)
    params = TP.TrivialAugmentWideParams(op, bin_, neg)
    ours = TP.trivialaugment_wide(images, params, fill=fill, interpolation="bilinear")
    assert torch.equal(ours, tv_trivialaugment_wide(images, params, fill=tv_fill, interpolation=BILINEAR))
    if fill is None:
        jax_out = JP.trivialaugment_wide(to_j(images), JP.TrivialAugmentWideParams(*(np.asarray(t) for t in params)),
                                         fill=fill, interpolation="bilinear")
        assert torch.equal(from_j(jax_out), ours)

    g = torch.Generator().manual_seed(3)
    images = _every_bin_images(10, 12, 15, 1)
    p = TP.sample_randaugment_params(10, num_ops=2, generator=g)
    ours = TP.randaugment(images, p, magnitude=20, fill=fill, interpolation=BILINEAR)
    assert torch.equal(ours, tv_randaugment(images, p, magnitude=20, fill=tv_fill, interpolation=BILINEAR))
    p = TP.sample_augmix_params(10, generator=g)
    ours = TP.augmix(images, p, fill=fill, interpolation="bilinear")
    assert torch.equal(ours, tv_augmix(images, p, fill=tv_fill, interpolation=BILINEAR))
    # (jax AugMix bilinear: the registry's policy_families_bilinear, one compile fewer here)
    p = TP.sample_autoaugment_params(10, policy="imagenet", generator=g)
    ours = TP.autoaugment(images, p, policy="imagenet", fill=fill, interpolation="bilinear")
    assert torch.equal(ours, torchvision_reference(images, p, "imagenet", fill=tv_fill, interpolation=BILINEAR))


def test_policies_bilinear_float_images_equal_torchvision():
    """float32 images: torchvision's float kernels, bit for bit (jax's float warp: the ops test)."""
    g = torch.Generator().manual_seed(5)
    images = torch.rand(10, 3, 8, 8, generator=g)
    p = TP.sample_trivialaugment_wide_params(10, generator=g)
    ours = TP.trivialaugment_wide(images, p, interpolation="bilinear")
    assert torch.equal(ours, tv_trivialaugment_wide(images, p, interpolation=BILINEAR))
    p = TP.sample_augmix_params(10, generator=g)
    assert torch.equal(TP.augmix(images, p, interpolation="bilinear"), tv_augmix(images, p, interpolation=BILINEAR))


def test_torch_static_path_equals_eager_bilinear():
    """The fixed-shape path (compile, accelerators) and the eager subset path give the same bytes."""
    images = _every_bin_images(12, 10, 11, 2)
    p = TP.sample_trivialaugment_wide_params(12, generator=torch.Generator().manual_seed(0))
    eager = TP.trivialaugment_wide(images, p, interpolation="bilinear", fill=5)
    static = TP._apply_draws(images, "trivialaugment_wide", 31, p.op.view(-1, 1), p.magnitude.view(-1, 1),
                             p.negate.view(-1, 1), [5.0], static=True, interpolation="bilinear")
    assert torch.equal(eager, static)


# --------------------------------------------------------------------------------------------
# Issue 22: AugMix weights (item 4), jax RandAugment num_ops=0 (item 6), traceable magnitude (item 8)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("weights,match", [
    ([[float("nan"), 0.5, 0.5]], "finite"),
    ([[1.5, -0.5, 0.0]], ">= 0"),
    ([[0.2, 0.2, 0.2]], "sum to 1"),
    ([[0.5, 0.5, 0.001]], "sum to 1"),
])
def test_augmix_weights_checked(backend, weights, match):
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    p = TP.AugMixParams(torch.zeros(1, 2, 1, dtype=torch.int64), torch.zeros(1, 2, 1, dtype=torch.int64),
                        torch.zeros(1, 2, 1, dtype=torch.bool), torch.ones(1, 2, dtype=torch.int64), torch.tensor(weights))
    with pytest.raises(ValueError, match=r"params\.weights.*" + match):
        if backend == "torch":
            TP.augmix(images, p)
        else:
            JP.augmix(to_j(images), JP.AugMixParams(*(np.asarray(t) for t in p)))


@pytest.mark.parametrize("alpha", [0.05, 1.0, 30.0])
def test_sampled_augmix_weights_pass_the_check(alpha):
    """The torch sampler's weights (extreme alphas, several seeds) all pass: the tolerance rejects no
    draw (jax's: in test_policy_families.test_augmix_sampler, on the samples it draws anyway)."""
    for seed in range(5):
        tp = TP.sample_augmix_params(256, mixture_width=4, alpha=alpha, generator=torch.Generator().manual_seed(seed))
        P.check_augmix_weights(tp.weights.double().numpy(), torch.finfo(torch.float32).eps)


def test_jax_randaugment_no_ops_returns_the_images():
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
    p = JP.sample_randaugment_params(jax.random.key(0), 3, num_ops=0)
    assert np.array_equal(np.asarray(JP.randaugment(images, p)), np.asarray(images))
    assert np.array_equal(np.asarray(JP.random_randaugment(jax.random.key(1), images, num_ops=0)), np.asarray(images))


def test_jax_randaugment_magnitude_traceable():
    """A traced magnitude (per-image bins through ``jit(vmap(...))``) gives the bytes of torch_impl's
    RandAugment at each image's bin (torch == jax is the registry's ``randaugment`` check; one jax
    compile here); a concrete out-of-range or float magnitude is refused."""
    images_t = _every_bin_images(8, 8, 8, 4)
    images = to_j(images_t)
    p = JP.sample_randaugment_params(jax.random.key(2), 8, num_ops=2)
    tp = TP.RandAugmentParams(torch.from_numpy(np.asarray(p.op, np.int64)), torch.from_numpy(np.asarray(p.negate)))
    want = [TP.randaugment(images_t, tp, magnitude=m) for m in (3, 17)]
    assert not torch.equal(want[0], want[1])
    per_image = jnp.asarray([3, 17] * 4, jnp.int32)

    def one(x, op, neg, m):  # one image, its magnitude traced
        return JP.randaugment(x[None], JP.RandAugmentParams(op[None], neg[None]), magnitude=m)[0]

    traced = from_j(jax.jit(jax.vmap(one))(images, p.op, p.negate, per_image))
    assert torch.equal(traced[0::2], want[0][0::2]) and torch.equal(traced[1::2], want[1][1::2])
    with pytest.raises(ValueError, match="magnitude"):
        JP.randaugment(images, p, magnitude=jnp.int32(31))
    with pytest.raises(TypeError, match="magnitude"):
        JP.randaugment(images, p, magnitude=jnp.float32(3))
