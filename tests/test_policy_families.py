"""RandAugment, TrivialAugmentWide and AugMix: op sets and bins vs torchvision v2, each image equal to
torchvision's own transform on that image alone with the same draws (every op, bin and sign of the
new magnitude ranges), torch == jax, samplers' distributions, modules, bad input."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import jax_impl.policies as JP
import torch_impl.policies as TP
import twintricks.policies as P
from parity import strategies as S
from parity.convert import images_from_jax, images_from_torch, images_to_jax, images_to_torch

import torchvision.transforms.v2 as tv  # noqa: E402 (a dev dependency: never skipped)

NEAREST = tv.InterpolationMode.NEAREST
TV_CLASSES = {"randaugment": tv.RandAugment, "trivialaugment_wide": tv.TrivialAugmentWide, "augmix": tv.AugMix}
# Sizes whose C·H·W is a multiple of 32 for C = 1 and 3: torchvision's Contrast rounds its loop
# remainder differently (see torch_impl.ops), everywhere else every op is exact.
SIZES = [(8, 8), (5, 32), (32, 7), (4, 8), (32, 32), (16, 6)]


# --------------------------------------------------------------------------------------------
# Op sets and bins (framework-free, in twintricks.policies)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", P.FAMILIES)
def test_op_sets_and_signs_equal_torchvision(family):
    space = TV_CLASSES[family]._AUGMENTATION_SPACE
    assert P.FAMILY_OPS[family] == tuple(space)  # same order: op ids are torchvision's draws
    assert {op for op, (_, signed) in space.items() if signed} == {op for op in P.FAMILY_OPS[family] if op in P.SIGNED_OPS}
    if family == "augmix":
        assert P.AUGMIX_PARTIAL_OPS == tuple(tv.AugMix._PARTIAL_AUGMENTATION_SPACE)
        assert P.AUGMIX_NUM_BINS == tv.AugMix()._PARAMETER_MAX


@pytest.mark.parametrize("family", P.FAMILIES)
def test_bins_equal_torchvision(family):
    space = TV_CLASSES[family]._AUGMENTATION_SPACE
    for num_bins in [2, 3, 9, 10, 11, 31, 64, 101]:
        for h, w in [(1, 1), (7, 9), (32, 32), (224, 224), (331, 500)]:
            for op, (fn, _) in space.items():
                ref = fn(num_bins, h, w)
                ours = P.family_bins(family, op, num_bins, h, w)
                assert (ours is None) if ref is None else ours == tuple(float(v) for v in ref), (op, num_bins, h, w)


def test_posterize_bins_equal_torch_float32_for_every_count():
    for n in range(2, 200):
        for top, levels, family in [(8, 4, "randaugment"), (8, 6, "trivialaugment_wide"), (4, 4, "augmix")]:
            ref = (top - (torch.arange(n) / ((n - 1) / levels))).round().int()
            assert P.family_bins(family, "Posterize", n, 1, 1) == tuple(float(v) for v in ref), (family, n)


def test_family_metadata_bad_input():
    with pytest.raises(ValueError, match="op"):
        P.family_bins("randaugment", "Invert", 31, 8, 8)  # not in RandAugment's set
    with pytest.raises(ValueError, match="op"):
        P.check_family_op("augmix", "Zoom")
    with pytest.raises(ValueError, match="family"):
        P.family_arrays("autoaugment2", 10, 8, 8)
    with pytest.raises(ValueError, match="num_bins"):
        P.family_bins("trivialaugment_wide", "Rotate", 1, 8, 8)


# --------------------------------------------------------------------------------------------
# The torchvision reference: torchvision's own transform on each image, its draws replayed
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def replayed(answers):
    """Answer torchvision's ``torch.randint`` / ``torch.rand`` calls from ``answers`` in order."""
    it = iter(answers)
    real_rand, real_randint = torch.rand, torch.randint

    def fake(kind):
        def call(*a, **k):
            got, value = next(it)
            assert got == kind, (got, kind)
            return torch.tensor(value) if kind == "rand" or not k.get("size") else torch.tensor([value])
        return call

    torch.rand, torch.randint = fake("rand"), fake("randint")
    try:
        yield
        assert next(it, None) is None, "torchvision drew less than the record holds"
    finally:
        torch.rand, torch.randint = real_rand, real_randint


def _op_answers(family, op, bin_, negate, draw_bin: bool):
    name = P.FAMILY_OPS[family][op]
    out = [("randint", op)]
    if P.family_bins(family, name, 10, 8, 8) is not None:
        if draw_bin:
            out.append(("randint", bin_))
        if name in P.SIGNED_OPS:
            out.append(("rand", 0.0 if negate else 1.0))
    return out


def tv_randaugment(images, params, magnitude=9, num_magnitude_bins=31, fill=None, interpolation=NEAREST):
    t = tv.RandAugment(num_ops=params.op.shape[1], magnitude=magnitude, num_magnitude_bins=num_magnitude_bins, fill=fill,
                       interpolation=interpolation)
    outs = []
    for i in range(images.shape[0]):
        answers = []
        for k in range(params.op.shape[1]):
            answers += _op_answers("randaugment", int(params.op[i, k]), None, bool(params.negate[i, k]), False)
        with replayed(answers):
            outs.append(t(images[i]))
    return torch.stack(outs)


def tv_trivialaugment_wide(images, params, num_magnitude_bins=31, fill=None, interpolation=NEAREST):
    t = tv.TrivialAugmentWide(num_magnitude_bins=num_magnitude_bins, fill=fill, interpolation=interpolation)
    outs = []
    for i in range(images.shape[0]):
        answers = _op_answers("trivialaugment_wide", int(params.op[i]), int(params.magnitude[i]), bool(params.negate[i]), True)
        with replayed(answers):
            outs.append(t(images[i]))
    return torch.stack(outs)


def tv_augmix(images, params, all_ops=True, fill=None, chain_depth=-1, interpolation=NEAREST):
    """torchvision's AugMix (nearest) on each image: its Dirichlet draws answered with ``m = (v_0, 1)``
    and ``w = (v_1, …, v_W)``, so that its weights ``(m_0, w·m_1)`` are the record's exactly."""
    n, width, d = params.op.shape
    outs = []
    for i in range(n):
        t = tv.AugMix(severity=10, mixture_width=width, chain_depth=chain_depth, all_ops=all_ops, interpolation=interpolation, fill=fill)
        weights = params.weights[i].float()
        draws = iter([torch.stack([weights[0], torch.tensor(1.0)])[None], weights[1:][None]])
        t._sample_dirichlet = lambda alpha, _d=draws: next(_d)
        answers = []
        for j in range(width):
            depth = int(params.depth[i, j])
            if chain_depth <= 0:
                answers.append(("randint", depth))
            for k in range(depth):
                answers += _op_answers("augmix", int(params.op[i, j, k]), int(params.magnitude[i, j, k]), bool(params.negate[i, j, k]), True)
        with replayed(answers):
            outs.append(t(images[i]))
    return torch.stack(outs)


def _images(data, n, dtype=np.uint8):
    h, w = data.draw(st.sampled_from(SIZES))
    c = data.draw(st.sampled_from([1, 3]))
    return images_to_torch(data.draw(S.image_batches(dtype=dtype, shape=(n, h, w, c))))


@given(data=st.data())
def test_randaugment_each_image_equals_torchvision(data):
    images = _images(data, 6)
    num_ops = data.draw(st.integers(0, 3))
    bins = data.draw(st.sampled_from([10, 31]))
    magnitude = data.draw(st.integers(0, bins - 1))
    seed = data.draw(st.integers(0, 2**31))
    params = TP.sample_randaugment_params(6, num_ops=num_ops, generator=torch.Generator().manual_seed(seed))
    ours = TP.randaugment(images, params, magnitude=magnitude, num_magnitude_bins=bins)
    assert torch.equal(ours, tv_randaugment(images, params, magnitude, bins))


@given(data=st.data())
def test_trivialaugment_wide_each_image_equals_torchvision(data):
    images = _images(data, 6)
    bins = data.draw(st.sampled_from([2, 10, 31]))
    seed = data.draw(st.integers(0, 2**31))
    params = TP.sample_trivialaugment_wide_params(6, num_magnitude_bins=bins, generator=torch.Generator().manual_seed(seed))
    fill = data.draw(st.sampled_from([0, 77]))
    ours = TP.trivialaugment_wide(images, params, num_magnitude_bins=bins, fill=fill)
    assert torch.equal(ours, tv_trivialaugment_wide(images, params, bins, fill=float(fill)))


@given(data=st.data())
def test_augmix_each_image_equals_torchvision(data):
    """Same chains and same float32 weights: the same float32 mixing, so the same bytes."""
    images = _images(data, 4)
    seed = data.draw(st.integers(0, 2**31))
    chain_depth = data.draw(st.sampled_from([-1, 1, 2]))
    all_ops = data.draw(st.booleans())
    params = TP.sample_augmix_params(
        4, severity=data.draw(st.integers(1, 10)), mixture_width=data.draw(st.integers(1, 3)), chain_depth=chain_depth,
        alpha=data.draw(st.sampled_from([0.3, 1.0])), all_ops=all_ops, generator=torch.Generator().manual_seed(seed),
    )
    ours = TP.augmix(images, params, all_ops=all_ops)
    assert torch.equal(ours, tv_augmix(images, params, all_ops=all_ops, chain_depth=chain_depth))


def _every_bin_record(family, num_bins):
    """One image per (op, bin, sign) of the family: the op ids, bins and signs ``[M]``."""
    ops, bins, negs = [], [], []
    for k, name in enumerate(P.FAMILY_OPS[family]):
        has_bins = P.family_bins(family, name, num_bins, 8, 8) is not None
        for b in range(num_bins if has_bins else 1):
            for neg in ((False, True) if name in P.SIGNED_OPS else (False,)):
                ops.append(k), bins.append(b), negs.append(neg)
    return torch.tensor(ops), torch.tensor(bins), torch.tensor(negs)


def _every_bin_images(m, h, w, seed):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (m, 3, h, w), dtype=np.uint8))
    images[::3] = images[::3] // 64 * 64  # few levels: ties in the blends, flat channels
    return images


@pytest.mark.parametrize("h,w", [(32, 32), (15, 32)])
def test_trivialaugment_wide_every_op_bin_and_sign_equals_torchvision(h, w):
    """The wide ranges (shear/enhance 0.99, translate 32 px, rotate 135°, Posterize 2 bits): every bin."""
    op, bin_, neg = _every_bin_record("trivialaugment_wide", 31)
    images = _every_bin_images(op.numel(), h, w, 0)
    params = TP.TrivialAugmentWideParams(op, bin_, neg)
    ours = TP.trivialaugment_wide(images, params, fill=(10, 20, 30))
    assert torch.equal(ours, tv_trivialaugment_wide(images, params, fill=[10.0, 20.0, 30.0]))


@pytest.mark.parametrize("magnitude", [0, 9, 17, 30])
def test_randaugment_every_op_and_sign_equals_torchvision(magnitude):
    op, _, neg = _every_bin_record("randaugment", 1 if False else 2)
    op, neg = op.unique_consecutive(), None  # one image per op, both signs below
    op = op.repeat_interleave(2)
    neg = torch.tensor([False, True]).repeat(op.numel() // 2)
    images = _every_bin_images(op.numel(), 32, 32, magnitude)
    params = TP.RandAugmentParams(op.view(-1, 1), neg.view(-1, 1))
    ours = TP.randaugment(images, params, magnitude=magnitude)
    assert torch.equal(ours, tv_randaugment(images, params, magnitude=magnitude))


def test_augmix_every_op_bin_and_sign_equals_torchvision():
    """AugMix's ranges (translate a third of the side, Posterize 4 → 0 bits), one op per chain, and
    the mixing with drawn weights."""
    op, bin_, neg = _every_bin_record("augmix", 10)
    m = op.numel()
    images = _every_bin_images(m, 32, 32, 3)
    weights = TP.sample_augmix_params(m, generator=torch.Generator().manual_seed(0)).weights
    params = TP.AugMixParams(op.view(m, 1, 1), bin_.view(m, 1, 1), neg.view(m, 1, 1), torch.ones(m, 1, dtype=torch.int64), weights[:, :2] / weights[:, :2].sum(1, keepdim=True))
    ours = TP.augmix(images, params)
    assert torch.equal(ours, tv_augmix(images, params, chain_depth=1))
    # weights (0, 1): the chain's image itself
    alone = params._replace(weights=torch.tensor([[0.0, 1.0]]).expand(m, 2))
    assert torch.equal(TP.augmix(images, alone), tv_augmix(images, alone, chain_depth=1))


def test_float_images_equal_torchvision():
    """Float images: torchvision's float kernels (Contrast's loop remainder aside: sizes where C·H·W
    is a multiple of 32), the same float32 mixing."""
    g = torch.Generator().manual_seed(1)
    images = torch.rand(12, 3, 8, 8, generator=g)
    p = TP.sample_randaugment_params(12, num_ops=3, generator=g)
    assert torch.equal(TP.randaugment(images, p), tv_randaugment(images, p))
    p = TP.sample_trivialaugment_wide_params(12, generator=g)
    assert torch.equal(TP.trivialaugment_wide(images, p), tv_trivialaugment_wide(images, p))
    p = TP.sample_augmix_params(12, generator=g)
    assert torch.equal(TP.augmix(images, p), tv_augmix(images, p))


def test_backends_export_the_families():
    import jax_impl
    import torch_impl

    for name in ("RandAugment", "TrivialAugmentWide", "AugMix", "randaugment", "trivialaugment_wide", "augmix"):
        assert getattr(torch_impl, name).__module__ == "torch_impl.policies" and name in torch_impl.__all__
    for name in ("random_randaugment", "random_trivialaugment_wide", "random_augmix", "randaugment", "augmix"):
        assert getattr(jax_impl, name).__module__ == "jax_impl.policies" and name in jax_impl.__all__
    for cls in ("RandAugmentParams", "TrivialAugmentWideParams", "AugMixParams"):
        assert getattr(TP, cls)._fields == getattr(JP, cls)._fields


# --------------------------------------------------------------------------------------------
# torch == jax (the registry entries cover drawn records; here fills, 1 channel, every bin)
# --------------------------------------------------------------------------------------------


def _to_jax(params):
    import jax.numpy as jnp

    cls = getattr(JP, type(params).__name__)
    return cls(*(jnp.asarray(np.asarray(a).astype(np.int32) if a.dtype == torch.int64 else np.asarray(a)) for a in params))


def _both(family, images_nchw, params, **kwargs):
    t = images_from_torch(getattr(TP, family)(images_nchw, params, **kwargs))
    j = images_from_jax(getattr(JP, family)(images_to_jax(images_from_torch(images_nchw)), _to_jax(params), **kwargs))
    return t, j


def test_trivialaugment_wide_every_op_bin_and_sign_torch_equals_jax():
    op, bin_, neg = _every_bin_record("trivialaugment_wide", 31)
    images = _every_bin_images(op.numel(), 15, 16, 1)
    t, j = _both("trivialaugment_wide", images, TP.TrivialAugmentWideParams(op, bin_, neg), fill=(10, 20, 30))
    assert np.array_equal(t, j)


def test_augmix_every_op_bin_and_sign_torch_equals_jax():
    op, bin_, neg = _every_bin_record("augmix", 10)
    m = op.numel()
    images = _every_bin_images(m, 15, 16, 2)[:, :1]
    w = TP.sample_augmix_params(m, mixture_width=1, generator=torch.Generator().manual_seed(4)).weights
    params = TP.AugMixParams(op.view(m, 1, 1), bin_.view(m, 1, 1), neg.view(m, 1, 1), torch.ones(m, 1, dtype=torch.int64), w)
    t, j = _both("augmix", images, params, fill=9)
    assert np.array_equal(t, j)


@pytest.mark.parametrize("family", P.FAMILIES)
def test_jax_jit_and_vmap_equal_eager(family):
    """One compilation for new draws; ``jit`` and ``vmap`` over groups give the eager bytes."""
    import jax

    rng = np.random.default_rng(7)
    images = images_to_jax(rng.integers(0, 256, (12, 8, 9, 3), dtype=np.uint8))
    wrapper = getattr(JP, f"random_{family}")
    fn = jax.jit(lambda key, x: wrapper(key, x))
    outs = [fn(jax.random.key(i), images) for i in range(3)]
    assert fn._cache_size() == 1
    assert np.array_equal(np.asarray(outs[2]), np.asarray(wrapper(jax.random.key(2), images)))
    params = getattr(JP, f"sample_{family}_params")(jax.random.key(5), 12)
    kernel = getattr(JP, family)
    eager = np.asarray(kernel(images, params))
    assert np.array_equal(np.asarray(jax.jit(kernel)(images, params)), eager)
    grouped = jax.vmap(lambda x, p: kernel(x, type(params)(*p)))(
        images.reshape(3, 4, 8, 9, 3), tuple(a.reshape((3, 4) + a.shape[1:]) for a in params)
    )
    assert np.array_equal(np.asarray(grouped).reshape(eager.shape), eager)


def test_fma8_exact_on_the_families_blends():
    """jax_impl uses the cheap ``fma8`` for Color/Sharpness only on the (family, bin count) pairs in
    ``_FMA8_CHECKED``: checked here on every bin, sign and operand (as tests/test_ops.py does for
    AutoAugment's bins), against a true fused multiply-add in float64."""
    import jax
    import jax.numpy as jnp

    import jax_impl.exact as JX

    def f32_fma(a, b, c):
        return (np.float64(np.float32(b)) * np.asarray(a, np.float64) + np.asarray(c, np.float32).astype(np.float64)).astype(np.float32)

    fma8 = jax.jit(lambda a, b, c: JX.fma8(*jnp.broadcast_arrays(a, b, c)))
    v = np.arange(256, dtype=np.float32)
    d = np.arange(-255, 256, dtype=np.float32)
    for family, num_bins in JP._FMA8_CHECKED:
        bins = [b for op in ("Color", "Sharpness") for b in P.family_bins(family, op, num_bins, 8, 8)]
        m = np.asarray(sorted(set(bins + [-b for b in bins])), np.float64)
        ratio, alpha = (1.0 + m).astype(np.float32)[:, None, None], (-m).astype(np.float32)[:, None, None]
        product = (v[None, :, None] * ratio).astype(np.float32)
        assert np.array_equal(np.asarray(fma8(v[None, None, :], alpha, product)), f32_fma(v[None, None, :], alpha, product))
        assert np.array_equal(np.asarray(fma8(d[None, :, None], alpha, v[None, None, :])), f32_fma(d[None, :, None], alpha, v[None, None, :]))


def test_other_bin_counts_torch_equals_jax():
    """A bin count outside ``_FMA8_CHECKED`` takes the general exact FMA in jax: same bytes."""
    rng = np.random.default_rng(8)
    images = torch.from_numpy(rng.integers(0, 256, (28, 3, 8, 8), dtype=np.uint8))
    op = torch.tensor([7, 9] * 14)  # Color, Sharpness
    params = TP.TrivialAugmentWideParams(op, torch.arange(28) % 13, torch.arange(28) % 3 == 0)
    t, j = _both("trivialaugment_wide", images, params, num_magnitude_bins=13)
    assert np.array_equal(t, j)


# --------------------------------------------------------------------------------------------
# Samplers: uniform ops / bins / depths, signs 1/2, Dirichlet weights (fixed seeds)
# --------------------------------------------------------------------------------------------

N_SAMPLES = 20000


def _sample(backend, family, seed, **kwargs):
    if backend == "torch":
        p = getattr(TP, f"sample_{family}_params")(N_SAMPLES, generator=torch.Generator().manual_seed(seed), **kwargs)
    else:
        import jax

        p = getattr(JP, f"sample_{family}_params")(jax.random.key(seed), N_SAMPLES, **kwargs)
    return type(p)(*(np.asarray(a) for a in p))


def _uniform(values, k):
    counts = np.bincount(values.reshape(-1), minlength=k)
    assert len(counts) == k
    assert stats.chisquare(counts).pvalue > 1e-3, counts


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_randaugment_and_trivialaugment_samplers(backend):
    p = _sample(backend, "randaugment", 11, num_ops=3)
    assert p.op.shape == p.negate.shape == (N_SAMPLES, 3) and p.negate.dtype == np.bool_
    _uniform(p.op, 14)
    assert stats.binomtest(int(p.negate.sum()), p.negate.size, 0.5).pvalue > 1e-3
    assert _sample(backend, "randaugment", 1, num_ops=0).op.shape == (N_SAMPLES, 0)
    p = _sample(backend, "trivialaugment_wide", 12, num_magnitude_bins=7)
    assert p.op.shape == p.magnitude.shape == p.negate.shape == (N_SAMPLES,)
    _uniform(p.op, 14)
    _uniform(p.magnitude, 7)
    assert stats.binomtest(int(p.negate.sum()), p.negate.size, 0.5).pvalue > 1e-3


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_augmix_sampler(backend, alpha):
    p = _sample(backend, "augmix", 13, severity=4, mixture_width=3, alpha=alpha, all_ops=False)
    assert p.op.shape == (N_SAMPLES, 3, 3) and p.depth.shape == (N_SAMPLES, 3) and p.weights.shape == (N_SAMPLES, 4)
    assert p.weights.dtype == np.float32
    _uniform(p.op, 9)
    _uniform(p.magnitude, 4)
    _uniform(p.depth - 1, 3)
    # The original's weight is Beta(α, α); the chains share the rest by Dirichlet(α, α, α): each
    # chain's share w_j = weight / (1 - m) is Beta(α, 2α).
    assert np.allclose(p.weights.sum(axis=1), 1.0, atol=1e-6) and (p.weights >= 0).all()
    P.check_augmix_weights(p.weights.astype(np.float64), float(np.finfo(np.float32).eps))  # the kernels' check passes
    assert stats.kstest(p.weights[:, 0], stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    share = p.weights[:, 1] / p.weights[:, 1:].sum(axis=1)
    ok = np.isfinite(share)
    assert stats.kstest(share[ok], stats.beta(alpha, 2 * alpha).cdf).pvalue > 1e-3
    fixed = _sample(backend, "augmix", 14, chain_depth=2, all_ops=True)
    assert fixed.op.shape == (N_SAMPLES, 3, 2) and (fixed.depth == 2).all()
    _uniform(fixed.op, 13)
    _uniform(fixed.magnitude, 3)


# --------------------------------------------------------------------------------------------
# Modules, paths, inputs untouched
# --------------------------------------------------------------------------------------------

MODULES = {"randaugment": TP.RandAugment, "trivialaugment_wide": TP.TrivialAugmentWide, "augmix": TP.AugMix}


@pytest.mark.parametrize("family", P.FAMILIES)
def test_torch_module_per_image_reproducible_and_input_untouched(family):
    from torch_impl.transform import RandomTransform

    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (32, 3, 8, 8), dtype=np.uint8))
    before = images.clone()
    cls = MODULES[family]
    assert issubclass(cls, RandomTransform)
    out1 = cls(generator=torch.Generator().manual_seed(0))(images)
    out2 = cls(generator=torch.Generator().manual_seed(0))(images)
    assert torch.equal(out1, out2) and torch.equal(images, before)
    assert out1.shape == images.shape and out1.dtype == torch.uint8 and out1.data_ptr() != images.data_ptr()
    params = getattr(TP, f"sample_{family}_params")(32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out1, getattr(TP, family)(images, params))
    assert len(set(map(tuple, params.op.reshape(32, -1).tolist()))) > 1  # different draws within one batch
    single = cls(generator=torch.Generator().manual_seed(0))(images[0])  # v2 habit: one [C, H, W] image
    assert single.shape == images[0].shape
    assert repr(cls())


@pytest.mark.parametrize("family", P.FAMILIES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_torch_static_path_equals_subset_path(family, dtype):
    """The whole-batch ``where`` path (compile, accelerators) equals the eager CPU subset/LUT path."""
    g = torch.Generator().manual_seed(6)
    images = torch.randint(0, 256, (48, 3, 10, 9), generator=g, dtype=torch.uint8)
    if dtype == torch.float32:
        images = images.float() / 255
    params = getattr(TP, f"sample_{family}_params")(48, generator=g)
    kernel = getattr(TP, family)
    subset = kernel(images, params, fill=(1, 2, 3))
    real = TP._static
    try:
        TP._static = lambda x: True
        static = kernel(images, params, fill=(1, 2, 3))
    finally:
        TP._static = real
    assert torch.equal(static, subset)


@pytest.mark.parametrize("family", P.FAMILIES)
def test_torch_compile_full_graph_same_bytes(family):
    """One graph, no breaks, and the compiled-code arithmetic gives the eager bytes (dynamo's eager
    backend runs that code path cheaply)."""
    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (24, 3, 13, 11), generator=g, dtype=torch.uint8)
    params = getattr(TP, f"sample_{family}_params")(24, generator=g)
    kernel = getattr(TP, family)
    torch._dynamo.reset()
    fn = torch.compile(lambda x, p: kernel(x, p, fill=(5, 6, 7)), backend="eager", fullgraph=True)
    assert torch.equal(fn(images, params), kernel(images, params, fill=(5, 6, 7)))


def test_no_op_draws_return_a_new_equal_tensor():
    images = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (6, 3, 8, 8), dtype=np.uint8))
    for out in (
        TP.randaugment(images, TP.RandAugmentParams(torch.zeros(6, 2, dtype=torch.int64), torch.zeros(6, 2, dtype=torch.bool))),
        TP.randaugment(images, TP.sample_randaugment_params(6, num_ops=0)),
        TP.trivialaugment_wide(images, TP.TrivialAugmentWideParams(torch.zeros(6, dtype=torch.int64), torch.zeros(6, dtype=torch.int64), torch.zeros(6, dtype=torch.bool))),
    ):
        assert torch.equal(out, images) and out.data_ptr() != images.data_ptr()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augmix_invariants(dtype):
    """All weight on the original gives the input exactly (1·x + 0·a in float32), whatever the
    chains; the mix lies between the smallest and largest of the original and the chain images
    (each alone: all weight on it), a convex combination truncated for uint8."""
    g = torch.Generator().manual_seed(9)
    images = torch.randint(0, 256, (20, 3, 8, 8), generator=g, dtype=torch.uint8)
    if dtype == torch.float32:
        images = images.float() / 255
    p = TP.sample_augmix_params(20, mixture_width=2, generator=g)
    original = p._replace(weights=torch.tensor([[1.0, 0.0, 0.0]]).expand(20, 3))
    assert torch.equal(TP.augmix(images, original), images)
    out = TP.augmix(images, p)
    chains = [TP.augmix(images, p._replace(weights=torch.eye(3)[j + 1].expand(20, 3))) for j in range(2)]
    stack = torch.stack([images, *chains]).double()
    eps = 0 if dtype == torch.float32 else 1  # truncation of a sum just below an integer
    assert (out.double() >= stack.amin(0) - eps - 1e-6).all() and (out.double() <= stack.amax(0) + 1e-6).all()


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_input_torch():
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    ra = TP.sample_randaugment_params(2)
    ta = TP.sample_trivialaugment_wide_params(2)
    am = TP.sample_augmix_params(2)
    with pytest.raises(ValueError, match="num_ops"):
        TP.RandAugment(num_ops=-1)
    with pytest.raises(ValueError, match="num_ops"):
        TP.sample_randaugment_params(2, num_ops=-1)
    with pytest.raises(ValueError, match="magnitude"):
        TP.RandAugment(magnitude=31)
    with pytest.raises(ValueError, match="magnitude"):
        TP.randaugment(x, ra, magnitude=10, num_magnitude_bins=10)
    with pytest.raises(ValueError, match="magnitude"):
        TP.randaugment(x, ra, magnitude=-1)
    with pytest.raises(ValueError, match="num_magnitude_bins"):
        TP.TrivialAugmentWide(num_magnitude_bins=1)
    with pytest.raises(ValueError, match="params.op"):
        TP.randaugment(x, ra._replace(op=torch.tensor([[0, 14], [0, 0]])))
    with pytest.raises(ValueError, match="params.magnitude"):
        TP.trivialaugment_wide(x, ta._replace(magnitude=torch.tensor([0, 31])))
    with pytest.raises(ValueError, match="params.magnitude"):
        TP.trivialaugment_wide(x, ta, num_magnitude_bins=int(ta.magnitude.max()))
    with pytest.raises(ValueError, match="params.op"):
        TP.augmix(x, am._replace(op=am.op.clamp(min=0) + 9), all_ops=False)
    with pytest.raises(ValueError, match="params.magnitude"):
        TP.augmix(x, am._replace(magnitude=am.magnitude + 10))
    with pytest.raises(ValueError, match="params.depth"):
        TP.augmix(x, am._replace(depth=am.depth * 0))
    with pytest.raises(ValueError, match="params.weights"):
        TP.augmix(x, am._replace(weights=am.weights[:, :2]))
    with pytest.raises(ValueError, match="severity"):
        TP.AugMix(severity=11)
    with pytest.raises(ValueError, match="mixture_width"):
        TP.sample_augmix_params(2, mixture_width=0)
    with pytest.raises(ValueError, match="alpha"):
        TP.AugMix(alpha=0.0)
    with pytest.raises(TypeError, match="all_ops"):
        TP.AugMix(all_ops=1)
    with pytest.raises(ValueError, match="interpolation"):
        TP.AugMix(interpolation="bicubic")
    with pytest.raises(ValueError, match="interpolation"):
        TP.randaugment(x, ra, interpolation=tv.InterpolationMode.BICUBIC)
    with pytest.raises(ValueError, match="channels"):
        TP.randaugment(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), ra)
    with pytest.raises(ValueError, match="float images must lie in"):
        TP.trivialaugment_wide(x.float() + 2, ta)
    with pytest.raises(ValueError, match="params.op"):
        TP.randaugment(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), ra)
    with pytest.raises(TypeError, match="params"):
        TP.augmix(x, ra)
    with pytest.raises(TypeError, match="params.op"):
        TP.randaugment(x, ra._replace(op=ra.op.float()))


def test_bad_input_jax():
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    x = jnp.zeros((2, 8, 8, 3), jnp.uint8)
    ra = JP.sample_randaugment_params(key, 2)
    ta = JP.sample_trivialaugment_wide_params(key, 2)
    am = JP.sample_augmix_params(key, 2)
    with pytest.raises(ValueError, match="num_ops"):
        JP.random_randaugment(key, x, num_ops=-1)
    with pytest.raises(ValueError, match="magnitude"):
        JP.random_randaugment(key, x, magnitude=31)
    with pytest.raises(ValueError, match="magnitude"):
        JP.randaugment(x, ra, magnitude=10, num_magnitude_bins=10)
    with pytest.raises(ValueError, match="num_magnitude_bins"):
        JP.random_trivialaugment_wide(key, x, num_magnitude_bins=0)
    with pytest.raises(ValueError, match="params.op"):
        JP.randaugment(x, ra._replace(op=jnp.array([[0, 14], [0, 0]])))
    with pytest.raises(ValueError, match="params.magnitude"):
        JP.trivialaugment_wide(x, ta._replace(magnitude=jnp.array([0, 31])))
    with pytest.raises(ValueError, match="params.op"):
        JP.augmix(x, am._replace(op=am.op + 9), all_ops=False)
    with pytest.raises(ValueError, match="params.depth"):
        JP.augmix(x, am._replace(depth=am.depth * 0))
    with pytest.raises(ValueError, match="severity"):
        JP.random_augmix(key, x, severity=0)
    with pytest.raises(ValueError, match="alpha"):
        JP.sample_augmix_params(key, 2, alpha=-1.0)
    with pytest.raises(ValueError, match="interpolation"):
        JP.augmix(x, am, interpolation="bicubic")
    with pytest.raises(ValueError, match="channels"):
        JP.randaugment(jnp.zeros((2, 8, 8, 4), jnp.uint8), ra)
    with pytest.raises(ValueError, match="float images must lie in"):
        JP.trivialaugment_wide(x.astype(jnp.float32) - 1, ta)
    with pytest.raises(TypeError, match="params.op"):
        JP.randaugment(x, ra._replace(op=ra.op.astype(jnp.float32)))
    with pytest.raises(TypeError, match="params.magnitude"):
        JP.trivialaugment_wide(x, ta._replace(magnitude=torch.zeros(2, dtype=torch.int64)))
