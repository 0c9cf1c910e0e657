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


def tv_randaugment(images, params, magnitude=9, num_magnitude_bins=31, fill=None):
    t = tv.RandAugment(num_ops=params.op.shape[1], magnitude=magnitude, num_magnitude_bins=num_magnitude_bins, fill=fill)
    outs = []
    for i in range(images.shape[0]):
        answers = []
        for k in range(params.op.shape[1]):
            answers += _op_answers("randaugment", int(params.op[i, k]), None, bool(params.negate[i, k]), False)
        with replayed(answers):
            outs.append(t(images[i]))
    return torch.stack(outs)


def tv_trivialaugment_wide(images, params, num_magnitude_bins=31, fill=None):
    t = tv.TrivialAugmentWide(num_magnitude_bins=num_magnitude_bins, fill=fill)
    outs = []
    for i in range(images.shape[0]):
        answers = _op_answers("trivialaugment_wide", int(params.op[i]), int(params.magnitude[i]), bool(params.negate[i]), True)
        with replayed(answers):
            outs.append(t(images[i]))
    return torch.stack(outs)


def tv_augmix(images, params, all_ops=True, fill=None, chain_depth=-1):
    """torchvision's AugMix (nearest) on each image: its Dirichlet draws answered with ``m = (v_0, 1)``
    and ``w = (v_1, …, v_W)``, so that its weights ``(m_0, w·m_1)`` are the record's exactly."""
    n, width, d = params.op.shape
    outs = []
    for i in range(n):
        t = tv.AugMix(severity=10, mixture_width=width, chain_depth=chain_depth, all_ops=all_ops, interpolation=NEAREST, fill=fill)
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
