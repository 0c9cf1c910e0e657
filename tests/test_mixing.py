"""mixup and RICAP in both packages.

Kernel parity torch vs jax is in the registry (tests/test_parity.py). Here: the papers'
algorithms (the seeds' loss forms, RICAP's crop-and-concatenate reference written literally with
NumPy slicing), invariants, the samplers' distributions (KS / chi-square with fixed seeds), jax
jit/vmap vs eager and compile counts, torch.compile, torch inputs left unmodified, bad input.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from scipy import stats

import jax_impl.mixing as JM
import torch_impl.mixing as TM
from parity import strategies as S
from parity.convert import images_to_torch, nchw_to_nhwc

P_MIN = 1e-3  # statistical tests use fixed seeds, so they are deterministic; this is the bar


def _onehot(targets, k):
    t = np.asarray(targets)
    return np.eye(k, dtype=np.float64)[t] if t.ndim == 1 else t.astype(np.float64)


# The hypothesis tests call the jax kernels jitted (one compilation per drawn shape instead of
# one per eager op); eager vs jit is checked separately below.
_ricap_jit = jax.jit(JM.ricap, static_argnames="num_classes")
_mixup_jit = jax.jit(JM.mixup, static_argnames="num_classes")


def _torch_params(cls, params):
    return cls(**{k: torch.from_numpy(np.array(v)) for k, v in params.items()})


def _jax_params(cls, params):
    return cls(**{k: jnp.asarray(v if np.asarray(v).dtype.kind in "fb" else np.asarray(v, np.int32)) for k, v in params.items()})


# ------------------------------------------------------------------------------------------
# RICAP: the reference algorithm, literally
# ------------------------------------------------------------------------------------------


def ricap_reference(images_nchw, targets, k, p):
    """Takahashi et al.'s published code with NumPy slicing: crop four patches (one loop per
    image, since offsets may be per image), ``cat(cat(c0, c1, H), cat(c2, c3, H), W)``, and
    ``Σ W_k·t[perm_k]``."""
    n, _, height, width = images_nchw.shape
    w, h = int(p["split_row"]), int(p["split_col"])  # the reference's names
    w_ = [w, height - w, w, height - w]
    h_ = [h, h, width - h, width - h]
    onehot = _onehot(targets, k)
    crops, mixed = [], 0.0
    for j in range(4):
        idx, x_k, y_k = p["perms"][j], p["top"][j], p["left"][j]
        crops.append(
            np.stack([images_nchw[idx[i], :, x_k[i] : x_k[i] + w_[j], y_k[i] : y_k[i] + h_[j]] for i in range(n)])
        )
        mixed = mixed + w_[j] * h_[j] / (height * width) * onehot[idx]
    patched = np.concatenate(
        (np.concatenate((crops[0], crops[1]), 2), np.concatenate((crops[2], crops[3]), 2)), 3
    )
    return patched, mixed


@given(S.ricap_cases())
def test_ricap_matches_reference_algorithm(case):
    k, p = case["num_classes"], case["params"]
    ref_images, ref_targets = ricap_reference(np.moveaxis(case["images"], -1, 1), case["targets"], k, p)

    images_t, targets_t = TM.ricap(
        images_to_torch(case["images"]), torch.from_numpy(case["targets"]), _torch_params(TM.RicapParams, p), num_classes=k
    )
    np.testing.assert_array_equal(images_t.numpy(), ref_images)  # pixels are copied: exact
    assert images_t.dtype == images_to_torch(case["images"]).dtype
    # float32 weights and sums vs float64: a few ulps of values <= 1
    np.testing.assert_allclose(targets_t.numpy(), ref_targets, rtol=0, atol=1e-6)

    images_j, targets_j = _ricap_jit(
        jnp.asarray(case["images"]), jnp.asarray(case["targets"]), _jax_params(JM.RicapParams, p), num_classes=k
    )
    np.testing.assert_array_equal(np.asarray(images_j), np.moveaxis(ref_images, 1, -1))
    np.testing.assert_allclose(np.asarray(targets_j), ref_targets, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(targets_j).sum(1), 1.0, rtol=0, atol=1e-6)  # weights sum to 1


@given(S.ricap_cases(dtype=np.float32))
def test_ricap_soft_targets_equal_the_seeds_weighted_losses(case):
    """Σ_k W_k·CE(out, c_k), the reference's loss, equals CE against the mixed soft targets."""
    k, p = case["num_classes"], case["params"]
    labels = np.asarray(case["targets"])
    if labels.ndim != 1:
        labels = labels.argmax(1)
    n, height, width, _ = case["images"].shape
    _, soft = TM.ricap(images_to_torch(case["images"]), torch.from_numpy(labels), _torch_params(TM.RicapParams, p), num_classes=k)
    z = torch.randn(n, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    w, h = int(p["split_row"]), int(p["split_col"])
    areas = [w * h, (height - w) * h, w * (width - h), (height - w) * (width - h)]
    seed = sum(a / (height * width) * F.cross_entropy(z, torch.from_numpy(labels[p["perms"][j]])) for j, a in enumerate(areas))
    ours = F.cross_entropy(z, soft.double())
    torch.testing.assert_close(ours, seed, rtol=1e-6, atol=1e-6)  # float32 soft targets


def test_ricap_degenerate_boundaries():
    images = np.arange(2 * 4 * 3 * 1, dtype=np.uint8).reshape(2, 4, 3, 1)
    perms = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    for w, h, only in ((0, 0, 3), (4, 3, 0), (0, 3, 1), (4, 0, 2)):
        p = dict(split_row=np.asarray(w), split_col=np.asarray(h), perms=perms, top=np.zeros((4, 2), np.int64), left=np.zeros((4, 2), np.int64))
        out, soft = JM.ricap(jnp.asarray(images), jnp.array([0, 1]), _jax_params(JM.RicapParams, p), num_classes=2)
        # the only non-empty patch is the whole image of perms[only]
        np.testing.assert_array_equal(np.asarray(out), images[perms[only]])
        np.testing.assert_array_equal(np.asarray(soft), np.eye(2)[perms[only]])
        out_t, soft_t = TM.ricap(images_to_torch(images), torch.tensor([0, 1]), _torch_params(TM.RicapParams, p), num_classes=2)
        np.testing.assert_array_equal(nchw_to_nhwc(out_t).numpy(), images[perms[only]])
        np.testing.assert_array_equal(soft_t.numpy(), np.eye(2)[perms[only]])


# ------------------------------------------------------------------------------------------
# mixup
# ------------------------------------------------------------------------------------------


@given(S.mixup_cases())
def test_mixup_matches_formula_and_seed_loss(case):
    k, p = case["num_classes"], case["params"]
    x = case["images"].astype(np.float64)
    lam = np.asarray(p["lam"], np.float64)
    lam_x = lam.reshape(-1, 1, 1, 1) if lam.ndim else lam
    lam_t = lam.reshape(-1, 1) if lam.ndim else lam
    ref = lam_x * x + (1 - lam_x) * x[p["perm"]]
    onehot = _onehot(case["targets"], k)
    ref_t = lam_t * onehot + (1 - lam_t) * onehot[p["perm"]]

    images_t, targets_t = TM.mixup(
        images_to_torch(case["images"]), torch.from_numpy(case["targets"]), _torch_params(TM.MixupParams, p), num_classes=k
    )
    images_j, targets_j = _mixup_jit(
        jnp.asarray(case["images"]), jnp.asarray(case["targets"]), _jax_params(JM.MixupParams, p), num_classes=k
    )
    for images, targets in ((nchw_to_nhwc(images_t).numpy(), targets_t.numpy()), (np.asarray(images_j), np.asarray(targets_j))):
        assert images.dtype == case["images"].dtype and images.shape == case["images"].shape
        if images.dtype == np.uint8:
            # float32 blend rounded half to even: within a rounding step of the exact value
            assert np.abs(images - ref).max() <= 0.5 + 1e-4
        else:
            np.testing.assert_allclose(images, ref, rtol=0, atol=3e-7)  # float32 blend of values <= 1
        np.testing.assert_allclose(targets, ref_t, rtol=0, atol=3e-7)
        np.testing.assert_allclose(targets.sum(1), 1.0, rtol=0, atol=1e-6)

    # The seed's loss: λ·CE(z, y_a) + (1-λ)·CE(z, y_b) == CE(z, mixed soft targets), per sample.
    n = x.shape[0]
    z = torch.randn(n, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    ya, yb = torch.from_numpy(onehot), torch.from_numpy(onehot[p["perm"]])
    lam_n = torch.from_numpy(np.broadcast_to(lam, (n,)).copy())
    seed = lam_n * F.cross_entropy(z, ya, reduction="none") + (1 - lam_n) * F.cross_entropy(z, yb, reduction="none")
    torch.testing.assert_close(F.cross_entropy(z, targets_t.double(), reduction="none"), seed, rtol=1e-6, atol=1e-6)


def test_mixup_inplace_modifies_the_input_iff_asked():
    """``inplace=True`` (kernel and module) writes the mixed batch into the input and returns it,
    as timm's Mixup does, with the values of the default, which leaves its input unmodified
    (float32 and uint8, one λ per batch and one per image). A batch autograd tracks is refused."""
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    for x in (torch.rand(6, 3, 5, 4, generator=g), torch.randint(0, 256, (6, 3, 5, 4), dtype=torch.uint8, generator=g)):
        before = x.clone()
        for per_sample in (False, True):
            params = TM.sample_mixup_params(6, alpha=0.7, per_sample=per_sample, generator=torch.Generator().manual_seed(1))
            ref_x, ref_t = TM.mixup(x, y, params, num_classes=5)
            assert torch.equal(x, before) and not torch.equal(ref_x, x)
            copy = x.clone()
            out, t = TM.mixup(copy, y, params, num_classes=5, inplace=True)
            assert out.data_ptr() == copy.data_ptr() and torch.equal(copy, ref_x) and torch.equal(t, ref_t)
            mod = functools.partial(TM.Mixup, 0.7, 5, per_sample=per_sample)
            ref_x, ref_t = mod(generator=torch.Generator().manual_seed(2))(x, y)
            assert torch.equal(x, before)
            copy = x.clone()
            out, t = mod(generator=torch.Generator().manual_seed(2), inplace=True)(copy, y)
            assert out.data_ptr() == copy.data_ptr() and torch.equal(copy, ref_x) and torch.equal(t, ref_t)
    assert "inplace=True" in repr(TM.Mixup(inplace=True)) and "inplace" not in repr(TM.Mixup())
    leaf = torch.rand(2, 3, 4, 4, requires_grad=True)
    with pytest.raises(ValueError, match="inplace"):
        TM.Mixup(1.0, 3, inplace=True)(leaf, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="inplace"):
        TM.Mixup(inplace=1)


def test_mixup_lambda_one_is_identity_and_alpha_zero_gives_it():
    images = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1])
    params = TM.sample_mixup_params(4, alpha=0.0, generator=torch.Generator().manual_seed(0))
    assert float(params.lam) == 1.0
    out, soft = TM.mixup(images, labels, params, num_classes=3)
    assert torch.equal(out, images) and torch.equal(soft, F.one_hot(labels, 3).float())
    pj = JM.sample_mixup_params(jax.random.key(0), 4, alpha=0.0, per_sample=True)
    np.testing.assert_array_equal(np.asarray(pj.lam), np.ones(4))


# ------------------------------------------------------------------------------------------
# Gradients with respect to float images
# ------------------------------------------------------------------------------------------


def test_image_gradients_match_the_analytic_ones():
    """mixup: ∂/∂x_i Σ W·x̃ = λ·W_i + (1-λ)·W_{perm⁻¹(i)}; RICAP: each source pixel receives the
    weights of the output pixels copied from it (found by running the reference algorithm on
    an image of pixel ids)."""
    rng = np.random.default_rng(4)
    n, c, height, width = 3, 2, 5, 4
    x = rng.random((n, height, width, c)).astype(np.float32)  # NHWC
    weights = rng.normal(size=x.shape).astype(np.float32)
    labels = np.array([0, 1, 0])

    mp = dict(lam=np.asarray(0.3, np.float32), perm=np.array([2, 0, 1]))
    inv = np.argsort(mp["perm"])
    expected_mixup = 0.3 * weights + 0.7 * weights[inv]

    rp = {k: v.numpy() for k, v in TM.sample_ricap_params(n, (height, width), per_image_offsets=True, generator=torch.Generator().manual_seed(2))._asdict().items()}
    ids = np.arange(x.size // c, dtype=np.float64).reshape(n, 1, height, width)
    src, _ = ricap_reference(ids, labels, 2, rp)
    expected_ricap = np.stack(
        [np.bincount(src.astype(np.int64).ravel(), weights=weights[..., ch].ravel(), minlength=ids.size) for ch in range(c)], -1
    ).reshape(x.shape)
    assert expected_ricap.shape == x.shape

    for kernel, params_dict, expected in ((TM.mixup, mp, expected_mixup), (TM.ricap, rp, expected_ricap)):
        cls = TM.MixupParams if kernel is TM.mixup else TM.RicapParams
        xt = images_to_torch(x).requires_grad_()
        out, _ = kernel(xt, torch.from_numpy(labels), _torch_params(cls, params_dict), num_classes=2)
        (out * images_to_torch(weights)).sum().backward()
        np.testing.assert_allclose(nchw_to_nhwc(xt.grad).numpy(), expected, rtol=1e-6, atol=1e-6)  # float32 sums

    for kernel, cls, params_dict, expected in (
        (JM.mixup, JM.MixupParams, mp, expected_mixup),
        (JM.ricap, JM.RicapParams, rp, expected_ricap),
    ):
        params = _jax_params(cls, params_dict)
        grad = jax.grad(lambda z: jnp.sum(kernel(z, jnp.asarray(labels), params, num_classes=2)[0] * weights))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6, atol=1e-6)  # float32 sums


# ------------------------------------------------------------------------------------------
# Samplers: distributions (fixed seeds)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_lambda_is_beta(alpha):
    g = torch.Generator().manual_seed(123)
    per_batch = np.array([float(TM.sample_mixup_params(2, alpha=alpha, generator=g).lam) for _ in range(1000)])
    per_sample = TM.sample_mixup_params(1000, alpha=alpha, per_sample=True, generator=g).lam.numpy()
    draws = [per_batch, per_sample]
    if alpha == 0.2:  # jax: one α only, compiling jax.random.beta's sampler is slow on CI
        keys = jax.random.split(jax.random.key(7), 1000)
        per_key = jax.jit(jax.vmap(lambda k: JM.sample_mixup_params(k, 2, alpha=alpha)))(keys)
        draws += [np.asarray(per_key.lam), np.asarray(per_key.lam)]
    for lam in draws:
        assert ((lam >= 0) & (lam <= 1)).all()
        assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > P_MIN


def _perm_counts(perms):
    codes = [tuple(int(v) for v in p) for p in perms]
    keys = sorted(set(codes))
    return keys, np.array([codes.count(c) for c in keys])


def test_permutations_are_uniform():
    g = torch.Generator().manual_seed(5)
    torch_mixup = [TM.sample_mixup_params(3, generator=g).perm.numpy() for _ in range(600)]
    torch_ricap = [p for _ in range(150) for p in TM.sample_ricap_params(3, 4, generator=g).perms.numpy()]
    keys = jax.random.split(jax.random.key(3), 600)
    jax_mixup = np.asarray(jax.jit(jax.vmap(lambda k: JM.sample_mixup_params(k, 3, alpha=0.0).perm))(keys))
    jax_ricap = np.asarray(_jax_ricap_draws(0.3).perms).reshape(-1, RICAP_N)  # 3200 permutations of 4
    for perms in (torch_mixup, torch_ricap, jax_mixup, jax_ricap):
        n = len(perms[0])
        keys_seen, counts = _perm_counts(perms)
        assert len(keys_seen) == math.factorial(n) and all(sorted(k) == list(range(n)) for k in keys_seen)
        assert stats.chisquare(counts).pvalue > P_MIN


def _rounded_beta_probs(size, beta):
    """P(round(size·B) = j), B ~ Beta(β, β), for j = 0..size (ties have probability 0)."""
    edges = np.clip((np.arange(size + 2) - 0.5) / size, 0, 1)
    return np.diff(stats.beta(beta, beta).cdf(edges))


RICAP_H, RICAP_W, RICAP_N = 6, 5, 4


@functools.lru_cache(maxsize=None)
def _jax_ricap_draws(beta):
    """800 jax RICAP draws for ``[RICAP_N]`` batches of ``(RICAP_H, RICAP_W)`` images (compiled once)."""
    sample = jax.jit(jax.vmap(lambda k: JM.sample_ricap_params(k, RICAP_N, (RICAP_H, RICAP_W), beta=beta)))
    return sample(jax.random.split(jax.random.key(2), 800))


@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_ricap_boundary_and_offsets_distribution(beta):
    height, width, n = RICAP_H, RICAP_W, RICAP_N
    g = torch.Generator().manual_seed(11)
    torch_draws = [TM.sample_ricap_params(n, (height, width), beta=beta, generator=g) for _ in range(800)]
    backends = [
        (np.array([int(d.split_row) for d in torch_draws]), np.array([int(d.split_col) for d in torch_draws]),
         np.stack([d.top.numpy() for d in torch_draws]), np.stack([d.left.numpy() for d in torch_draws])),
    ]
    if beta == 0.3:  # jax: the default β only, compiling jax.random.beta's sampler is slow on CI
        d = _jax_ricap_draws(beta)
        backends.append((np.asarray(d.split_row), np.asarray(d.split_col), np.asarray(d.top), np.asarray(d.left)))
    jitter = np.random.default_rng(0)
    for ws, hs, tops, lefts in backends:
        for values, size in ((ws, height), (hs, width)):
            counts = np.bincount(values, minlength=size + 1)
            assert stats.chisquare(counts, _rounded_beta_probs(size, beta) * len(values)).pvalue > P_MIN
        rows = np.stack([ws, height - ws, ws, height - ws], 1)
        cols = np.stack([hs, hs, width - hs, width - hs], 1)
        assert (tops >= 0).all() and (tops + rows[:, :, None] <= height).all()
        assert (lefts >= 0).all() and (lefts + cols[:, :, None] <= width).all()
        assert (tops == tops[:, :, :1]).all() and (lefts == lefts[:, :, :1]).all()  # reference mode
        # each offset given the boundary is uniform on {0..free}: (offset + U)/(free + 1) with
        # U ~ U[0, 1) independent is then exactly U[0, 1) (randomized probability transform)
        for offsets, free in ((tops[:, :, 0], height - rows), (lefts[:, :, 0], width - cols)):
            u = (offsets + jitter.random(offsets.shape)) / (free + 1)
            assert stats.kstest(u.ravel(), "uniform").pvalue > P_MIN


def test_ricap_per_image_offsets_vary_within_the_batch():
    p = TM.sample_ricap_params(64, 16, per_image_offsets=True, generator=torch.Generator().manual_seed(0))
    q = JM.sample_ricap_params(jax.random.key(0), 64, 16, per_image_offsets=True)
    for w, top in ((int(p.split_row), p.top.numpy()), (int(q.split_row), np.asarray(q.top))):
        assert top.shape == (4, 64)
        rows = [w, 16 - w, w, 16 - w]
        for k in range(4):
            assert top[k].min() >= 0 and top[k].max() <= 16 - rows[k]
            if rows[k] < 16:  # some room to move: 64 draws are not all equal
                assert len(set(top[k].tolist())) > 1


# ------------------------------------------------------------------------------------------
# jax: jit and vmap vs eager, compile once; torch.compile
# ------------------------------------------------------------------------------------------


def _ricap_case(seed, n=3, height=5, width=4):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, height, width, 2)).astype(np.uint8)
    labels = rng.integers(0, 3, n)
    # drawn by the torch sampler (cheap) and handed to jax as int32 arrays
    p = TM.sample_ricap_params(n, (height, width), beta=0.5, per_image_offsets=bool(seed % 2), generator=torch.Generator().manual_seed(seed))
    return images, labels, JM.RicapParams(*(jnp.asarray(x.numpy(), jnp.int32) for x in p))


def test_jax_jit_vmap_match_eager_and_compile_once():
    # fresh wrappers: jax shares one compilation cache between jax.jit(f)s of the same f
    ricap_jit = jax.jit(lambda x, y, p, num_classes: JM.ricap(x, y, p, num_classes=num_classes), static_argnums=3)
    mixup_jit = jax.jit(lambda x, y, p, num_classes: JM.mixup(x, y, p, num_classes=num_classes), static_argnums=3)
    for seed in range(2):  # seed 0: per-batch λ and offsets; seed 1: per-sample λ, per-image offsets
        images, labels, params = _ricap_case(seed)
        eager = JM.ricap(jnp.asarray(images), jnp.asarray(labels), params, num_classes=3)
        jitted = ricap_jit(images, labels, params, num_classes=3)
        np.testing.assert_array_equal(np.asarray(jitted[0]), np.asarray(eager[0]))
        np.testing.assert_allclose(jitted[1], eager[1], rtol=0, atol=2.5e-7)  # fused multiply-adds: 1 ulp
        mp = JM.sample_mixup_params(jax.random.key(seed), 3, alpha=0.4, per_sample=bool(seed % 2))
        e_img, e_t = JM.mixup(jnp.asarray(images), jnp.asarray(labels), mp, num_classes=3)
        j_img, j_t = mixup_jit(images, labels, mp, num_classes=3)
        assert np.abs(np.asarray(j_img, np.int32) - np.asarray(e_img, np.int32)).max() <= 1  # 1 ulp before rounding
        np.testing.assert_allclose(j_t, e_t, rtol=0, atol=2.5e-7)
    assert ricap_jit._cache_size() == 1  # new params, same shapes: no recompilation
    assert mixup_jit._cache_size() == 2  # one per lam shape ([] and [N])

    # vmap over a leading axis of independent batches == one call per batch
    cases = [_ricap_case(s) for s in (10, 12, 14)]
    images = jnp.stack([jnp.asarray(c[0]) for c in cases])
    labels = jnp.stack([jnp.asarray(c[1]) for c in cases])
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *[c[2] for c in cases])
    v_img, v_t = jax.vmap(lambda x, y, p: JM.ricap(x, y, p, num_classes=3))(images, labels, params)
    for i, (img, lab, p) in enumerate(cases):
        e_img, e_t = JM.ricap(jnp.asarray(img), jnp.asarray(lab), p, num_classes=3)
        np.testing.assert_array_equal(np.asarray(v_img[i]), np.asarray(e_img))
        np.testing.assert_allclose(v_t[i], e_t, rtol=0, atol=2.5e-7)


def test_random_wrappers_jit():
    images = jnp.zeros((4, 6, 6, 3), jnp.float32) + jnp.arange(4.0)[:, None, None, None]
    labels = jnp.array([0, 1, 2, 3])
    f = jax.jit(lambda k, x, y: JM.random_ricap(k, x, y, beta=0.3, num_classes=4))
    out, soft = f(jax.random.key(0), images, labels)
    assert out.shape == images.shape and soft.shape == (4, 4)
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)
    g = jax.jit(lambda k, x, y: JM.random_mixup(k, x, y, alpha=1.0, num_classes=4))
    out, soft = g(jax.random.key(1), images, labels)
    # an image made of constant values c_i mixes to λ·c_i + (1-λ)·c_perm(i), the same as its targets' weights
    np.testing.assert_allclose(out[:, 0, 0, 0], soft @ jnp.arange(4.0), rtol=1e-6, atol=1e-6)


def test_torch_compile_fullgraph_once():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    ricap_c = torch.compile(lambda x, y, p: TM.ricap(x, y, p, num_classes=3), backend=counter, fullgraph=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randint(0, 256, (3, 2, 5, 4), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 3, (3,), generator=g)
        p = TM.sample_ricap_params(3, (5, 4), beta=0.5, generator=g)
        out, soft = ricap_c(x, y, p)
        ref_out, ref_soft = TM.ricap(x, y, p, num_classes=3)
        assert torch.equal(out, ref_out)
        torch.testing.assert_close(soft, ref_soft)
    assert counter.frame_count == 1
    mixup_c = torch.compile(lambda x, y, p: TM.mixup(x, y, p, num_classes=3), backend=counter, fullgraph=True)
    for _ in range(2):
        p = TM.sample_mixup_params(3, alpha=0.4, generator=g)
        out, soft = mixup_c(x, y, p)
        ref_out, ref_soft = TM.mixup(x, y, p, num_classes=3)
        assert torch.equal(out, ref_out)
        torch.testing.assert_close(soft, ref_soft)
    assert counter.frame_count == 2


# ------------------------------------------------------------------------------------------
# torch modules and inputs
# ------------------------------------------------------------------------------------------


def test_torch_modules_reproducible_and_inputs_unmodified():
    x = torch.rand(5, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 4])
    soft = F.one_hot(y, 5).float() * 0.9 + 0.02
    copies = [t.clone() for t in (x, y, soft)]
    for make in (
        lambda: TM.Mixup(alpha=1.0, num_classes=5, generator=torch.Generator().manual_seed(3)),
        lambda: TM.Mixup(alpha=0.5, num_classes=5, per_sample=True, generator=torch.Generator().manual_seed(3)),
        lambda: TM.RICAP(beta=0.3, num_classes=5, generator=torch.Generator().manual_seed(3)),
        lambda: TM.RICAP(num_classes=5, per_image_offsets=True, generator=torch.Generator().manual_seed(3)),
    ):
        a_img, a_t = make()(x, y)
        b_img, b_t = make()(x, y)
        assert torch.equal(a_img, b_img) and torch.equal(a_t, b_t)
        assert a_img.shape == x.shape and a_img.dtype == x.dtype and a_t.shape == (5, 5)
        make()(x, soft)
        make()((x * 255).to(torch.uint8), y)
    for before, after in zip(copies, (x, y, soft)):
        assert torch.equal(before, after)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


def _bad_calls(M, arr, nchw):
    x = arr(np.zeros((2, 3, 4, 4) if nchw else (2, 4, 4, 3), np.float32))
    y = arr(np.array([0, 1]))
    mp = M.MixupParams(arr(np.asarray(0.5, np.float32)), arr(np.array([1, 0])))
    rp = M.RicapParams(
        split_row=arr(np.asarray(2)), split_col=arr(np.asarray(1)), perms=arr(np.array([[0, 1]] * 4)),
        top=arr(np.zeros((4, 2), np.int64)), left=arr(np.zeros((4, 2), np.int64)),
    )
    key = [jax.random.key(0)] if M is JM else []
    return [
        (ValueError, "alpha", lambda: M.sample_mixup_params(*key, 2, alpha=-0.1)),
        (ValueError, "batch_size", lambda: M.sample_mixup_params(*key, 0)),
        (ValueError, "beta", lambda: M.sample_ricap_params(*key, 2, 4, beta=0.0)),
        (ValueError, "beta", lambda: M.sample_ricap_params(*key, 2, 4, beta=-1.0)),
        (ValueError, "image_size", lambda: M.sample_ricap_params(*key, 2, (0, 4))),
        (ValueError, "images", lambda: M.mixup(x[0], y, mp, num_classes=2)),
        (TypeError, "images", lambda: M.mixup(arr(np.zeros((2, 3, 4, 4), np.int32)), y, mp, num_classes=2)),
        (ValueError, "num_classes", lambda: M.mixup(x, y, mp)),
        (ValueError, "targets", lambda: M.mixup(x, arr(np.array([0, 5])), mp, num_classes=2)),
        (ValueError, "batch sizes", lambda: M.mixup(x, arr(np.array([0, 1, 1])), mp, num_classes=2)),
        (ValueError, "lam", lambda: M.mixup(x, y, M.MixupParams(arr(np.ones(3, np.float32)), mp.perm), num_classes=2)),
        (ValueError, "lam", lambda: M.mixup(x, y, M.MixupParams(arr(np.asarray(1.5, np.float32)), mp.perm), num_classes=2)),
        (ValueError, "perm", lambda: M.mixup(x, y, M.MixupParams(mp.lam, arr(np.array([2, 0]))), num_classes=2)),
        (ValueError, "images", lambda: M.ricap(x[0], y, rp, num_classes=2)),
        (ValueError, "targets", lambda: M.ricap(x, arr(np.array([0, 2])), rp, num_classes=2)),
        (ValueError, "perms", lambda: M.ricap(x, y, rp._replace(perms=arr(np.array([[0, 1]] * 3))), num_classes=2)),
        (ValueError, "params.split_row", lambda: M.ricap(x, y, rp._replace(split_row=arr(np.asarray(5))), num_classes=2)),
        (ValueError, "top", lambda: M.ricap(x, y, rp._replace(top=arr(np.full((4, 2), 3))), num_classes=2)),
        (TypeError, "params.split_col", lambda: M.ricap(x, y, rp._replace(split_col=arr(np.asarray(1.0, np.float32))), num_classes=2)),
    ]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_bad_input_raises_clear_errors(backend):
    M, arr, nchw = (TM, torch.as_tensor, True) if backend == "torch" else (JM, jnp.asarray, False)
    for exc, word, call in _bad_calls(M, arr, nchw):
        with pytest.raises(exc, match=word):
            call()


def test_torch_modules_validate_at_construction():
    with pytest.raises(ValueError, match="alpha"):
        TM.Mixup(alpha=-1.0)
    with pytest.raises(ValueError, match="beta"):
        TM.RICAP(beta=0.0)


# ------------------------------------------------------------------------------------------
# Silent wrong answers (non-finite hyperparameters, records for another batch or image size)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_non_finite_values_and_foreign_records_are_rejected(backend):
    M, arr, nchw = (TM, torch.as_tensor, True) if backend == "torch" else (JM, jnp.asarray, False)
    key = [jax.random.key(0)] if M is JM else []
    x = arr(np.zeros((2, 3, 4, 4) if nchw else (2, 4, 4, 3), np.float32))
    y = arr(np.array([0, 1]))
    perm = arr(np.array([1, 0]))
    x_big = arr(np.zeros((2, 3, 8, 8) if nchw else (2, 8, 8, 3), np.float32))
    rp_big = M.sample_ricap_params(*key, 2, 8, beta=0.3)  # drawn for 8x8 images
    for lam in (np.nan, -np.inf, np.inf):
        with pytest.raises(ValueError, match="params.lam"):
            M.mixup(x, y, M.MixupParams(arr(np.asarray(lam, np.float32)), perm), num_classes=2)
        with pytest.raises(ValueError, match="params.lam"):
            M.mixup(x, y, M.MixupParams(arr(np.array([0.5, lam], np.float32)), perm), num_classes=2)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            M.sample_mixup_params(*key, 2, alpha=bad)
        with pytest.raises(ValueError, match="beta"):
            M.sample_ricap_params(*key, 2, 4, beta=bad)
    with pytest.raises(ValueError, match="perm"):  # a record drawn for a batch of 3
        M.mixup(x, y, M.MixupParams(arr(np.asarray(0.5, np.float32)), arr(np.array([2, 0, 1]))), num_classes=2)
    if int(rp_big.split_row) > 4 or int(rp_big.split_col) > 4 or bool((np.asarray(rp_big.top) > 0).any()):
        with pytest.raises(ValueError, match="params"):  # a record drawn for 8x8 images, given 4x4 ones
            M.ricap(x, y, rp_big, num_classes=2)
    M.ricap(x_big, y, rp_big, num_classes=2)  # the right size passes
    for call in (lambda: M.mixup(x, y, None, num_classes=2), lambda: M.ricap(x, y, None, num_classes=2)):
        with pytest.raises(TypeError, match="`params` must be a"):
            call()
    with pytest.raises(TypeError, match="`params` must be a RicapParams"):
        M.ricap(x, y, M.MixupParams(arr(np.asarray(0.5, np.float32)), perm), num_classes=2)
    if backend == "torch":
        for bad in (np.inf, np.nan):
            with pytest.raises(ValueError, match="alpha"):
                TM.Mixup(alpha=bad)
            with pytest.raises(ValueError, match="beta"):
                TM.RICAP(beta=bad)
    else:
        with pytest.raises(ValueError, match="alpha"):
            JM.random_mixup(jax.random.key(0), x, y, alpha=np.inf, num_classes=2)
        with pytest.raises(ValueError, match="beta"):
            JM.random_ricap(jax.random.key(0), x, y, beta=np.inf, num_classes=2)


# ------------------------------------------------------------------------------------------
# CutMix: torchvision v2 on its own draw, a literal NumPy reference, the sampler's distribution
# ------------------------------------------------------------------------------------------


def _cutmix_record_from_box(box, n):
    """torchvision's ``(x1, y1, x2, y2)`` box and its ``roll(1)`` pairing as our record (dict)."""
    x1, y1, x2, y2 = box
    full = lambda v: np.full(n, v, np.int64)  # noqa: E731
    return dict(top=full(y1), left=full(x1), height=full(y2 - y1), width=full(x2 - x1), perm=(np.arange(n) - 1) % n)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_equals_torchvision_on_its_draw(seed):
    from torchvision.transforms import v2

    g = torch.Generator().manual_seed(100 + seed)
    n, k = 5, 7
    dtype = torch.uint8 if seed % 2 else torch.float32
    x = torch.randint(0, 256, (n, 3, 9, 13), generator=g).to(dtype)
    labels = torch.randint(0, k, (n,), generator=g)
    soft_in = torch.softmax(torch.randn(n, k, generator=g), 1)
    for y in (labels, soft_in):
        tv = v2.CutMix(alpha=[0.3, 1.0, 2.0][seed % 3], num_classes=k)
        torch.manual_seed(seed)
        box = tv.make_params([x])["box"]
        torch.manual_seed(seed)
        want_x, want_y = tv(x, y)
        p = _cutmix_record_from_box(box, n)
        got_x, got_y = TM.cutmix(x, y, _torch_params(TM.CutMixParams, p), num_classes=k)
        assert torch.equal(got_x, want_x)  # pixels are copied: exact
        # float32 weights: one division here, float64 then float32 in torchvision (an ulp at most)
        torch.testing.assert_close(got_y, want_y, rtol=0, atol=1.2e-7)
        jx, jy = JM.cutmix(jnp.asarray(nchw_to_nhwc(x).numpy()), jnp.asarray(y.numpy()), _jax_params(JM.CutMixParams, p), num_classes=k)
        np.testing.assert_array_equal(np.asarray(jx), nchw_to_nhwc(want_x).numpy())
        np.testing.assert_allclose(np.asarray(jy), want_y.numpy(), rtol=0, atol=1.2e-7)


def cutmix_reference(images_nhwc, onehot, p):
    """The CutMix paper's algorithm image by image with NumPy slicing: paste the box, then
    ``λ = 1 - box area / (H·W)`` and ``λ·y_i + (1-λ)·y_perm[i]``."""
    out = images_nhwc.copy()
    n, height, width, _ = images_nhwc.shape
    targets = np.empty_like(onehot)
    for i in range(n):
        t, l, h, w, j = (int(p[f][i]) for f in ("top", "left", "height", "width", "perm"))
        out[i, t : t + h, l : l + w] = images_nhwc[j, t : t + h, l : l + w]
        lam = 1 - h * w / (height * width)
        targets[i] = lam * onehot[i] + (1 - lam) * onehot[j]
    return out, targets


_cutmix_jit = jax.jit(JM.cutmix, static_argnames="num_classes")
_mixup_cutmix_jit = jax.jit(JM.mixup_cutmix, static_argnames=("num_classes", "label_smoothing"))


@given(S.cutmix_cases())
def test_cutmix_matches_reference_and_invariants(case):
    k, p = case["num_classes"], case["params"]
    ref_x, ref_t = cutmix_reference(case["images"], _onehot(case["targets"], k), p)
    tx, tt = TM.cutmix(images_to_torch(case["images"]), torch.from_numpy(case["targets"]), _torch_params(TM.CutMixParams, p), num_classes=k)
    jx, jt = _cutmix_jit(jnp.asarray(case["images"]), jnp.asarray(case["targets"]), _jax_params(JM.CutMixParams, p), num_classes=k)
    for images, targets in ((nchw_to_nhwc(tx).numpy(), tt.numpy()), (np.asarray(jx), np.asarray(jt))):
        np.testing.assert_array_equal(images, ref_x)
        np.testing.assert_allclose(targets, ref_t, rtol=0, atol=3e-7)  # float32 weights and sums of values <= 1
        np.testing.assert_allclose(targets.sum(1), 1.0, rtol=0, atol=1e-6)


@given(S.mixup_cutmix_cases())
def test_mixup_cutmix_matches_reference_and_invariants(case):
    """Image by image: a CutMix image is its partner inside its box and itself outside; a mixup
    image is ``x·λ + x'·(1-λ)`` (uint8 within a rounding step); targets are timm's smoothed
    ``t·λ + t'·(1-λ)`` and sum to 1."""
    k, p, eps = case["num_classes"], case["params"], case["label_smoothing"]
    x = case["images"]
    onehot = _onehot(case["targets"], k)
    smooth = onehot * (1 - eps) + eps / k
    tx, tt = TM.mixup_cutmix(images_to_torch(x), torch.from_numpy(case["targets"]), _torch_params(TM.MixupCutmixParams, p), num_classes=k, label_smoothing=eps)
    jx, jt = _mixup_cutmix_jit(jnp.asarray(x), jnp.asarray(case["targets"]), _jax_params(JM.MixupCutmixParams, p), num_classes=k, label_smoothing=eps)
    for images, targets in ((nchw_to_nhwc(tx).numpy(), tt.numpy()), (np.asarray(jx), np.asarray(jt))):
        assert images.dtype == x.dtype and images.shape == x.shape
        for i in range(x.shape[0]):
            j, lam = int(p["perm"][i]), np.float64(p["lam"][i])
            if p["use_cutmix"][i]:
                want = x[i].copy()
                t, l, h, w = (int(p[f][i]) for f in ("top", "left", "height", "width"))
                want[t : t + h, l : l + w] = x[j, t : t + h, l : l + w]
                np.testing.assert_array_equal(images[i], want)
            else:
                want = x[i].astype(np.float64) * lam + x[j].astype(np.float64) * (1 - lam)
                # uint8: float32 blend rounded half to even; float32: a few ulps of values <= 1
                np.testing.assert_allclose(images[i], want, rtol=0, atol=0.5 + 1e-4 if x.dtype == np.uint8 else 3e-7)
            np.testing.assert_allclose(targets[i], smooth[i] * lam + smooth[j] * (1 - lam), rtol=0, atol=3e-7)
        np.testing.assert_allclose(targets.sum(1), 1.0, rtol=0, atol=1e-6)


def test_cutmix_sampler_boxes_are_torchvisions():
    """Box sides and corners of our samplers vs torchvision's ``make_params`` (fixed seeds):
    chi-square tests of homogeneity on the value counts, and the same pairing."""
    from torchvision.transforms import v2

    n_draws, height, width, alpha = 1500, 9, 12, 1.0
    tv = v2.CutMix(alpha=alpha, num_classes=2)
    torch.manual_seed(0)
    boxes = np.array([tv.make_params([torch.zeros(1, 1, height, width)])["box"] for _ in range(n_draws)])
    ref = dict(top=boxes[:, 1], left=boxes[:, 0], height=boxes[:, 3] - boxes[:, 1], width=boxes[:, 2] - boxes[:, 0])
    ours_t = TM.sample_cutmix_params(n_draws, (height, width), alpha=alpha, per_sample=True, generator=torch.Generator().manual_seed(1))
    ours_j = JM.sample_cutmix_params(jax.random.key(1), n_draws, (height, width), alpha=alpha, per_sample=True)
    for ours in (ours_t, ours_j):
        assert np.array_equal(np.asarray(ours.perm), (np.arange(n_draws) - 1) % n_draws)
        for field, values in ref.items():
            a, b = np.asarray(getattr(ours, field)), values
            keys = np.union1d(a, b)
            table = np.array([[np.sum(a == v) for v in keys], [np.sum(b == v) for v in keys]])
            table = table[:, table.sum(0) >= 5]  # chi-square needs populated cells
            assert stats.chi2_contingency(table).pvalue > P_MIN, field
    one_box = TM.sample_cutmix_params(6, 8, generator=torch.Generator().manual_seed(2))  # per batch: one box
    assert all(len(set(getattr(one_box, f).tolist())) == 1 for f in ("top", "left", "height", "width"))


# ------------------------------------------------------------------------------------------
# timm-style mixup/CutMix switching: timm's own Mixup on its own draw
# ------------------------------------------------------------------------------------------


def _timm_run_recording(monkeypatch, mix, x, y):
    """Run ``timm.data.Mixup`` and record its draws: the (λ, use_cutmix) of each batch / pair /
    element and every CutMix box with its corrected λ, in call order."""
    import timm.data.mixup as tm

    draws, boxes = [], []
    per_elem, per_batch, bbox = mix._params_per_elem, mix._params_per_batch, tm.cutmix_bbox_and_lam

    def rec_elem(m):
        lam, use = per_elem(m)
        draws.append((lam.copy(), use.copy()))
        return lam, use

    def rec_batch():
        lam, use = per_batch()
        draws.append((np.array([lam]), np.array([use])))
        return lam, use

    def rec_bbox(*args, **kwargs):
        out = bbox(*args, **kwargs)
        boxes.append(out)
        return out

    monkeypatch.setattr(mix, "_params_per_elem", rec_elem)
    monkeypatch.setattr(mix, "_params_per_batch", rec_batch)
    monkeypatch.setattr(tm, "cutmix_bbox_and_lam", rec_bbox)
    out_x, out_y = mix(x.clone(), y)
    monkeypatch.undo()
    return out_x, out_y, draws[0], boxes


def _record_from_timm(draw, boxes, n, mode):
    """Our :class:`MixupCutmixParams` fields from timm's recorded draws."""
    lam, use = (np.asarray(v) for v in draw)
    m = len(lam)
    lam = lam.astype(np.float64)
    top, left, height, width = (np.zeros(m, np.int64) for _ in range(4))
    boxed = use & (lam != 1)
    it = iter(boxes)
    for i in np.flatnonzero(boxed):
        (yl, yh, xl, xh), lam_i = next(it)
        top[i], left[i], height[i], width[i], lam[i] = int(yl), int(xl), int(yh - yl), int(xh - xl), lam_i
    assert next(it, None) is None
    fields = [lam.astype(np.float32), boxed, top, left, height, width]
    if mode == "batch":
        fields = [np.broadcast_to(f, (n,)).copy() for f in fields]
    elif mode == "pair":
        fields = [np.concatenate([f, f[::-1]]) for f in fields]
    return dict(zip(("lam", "use_cutmix", "top", "left", "height", "width"), fields), perm=np.arange(n - 1, -1, -1))


TIMM_CONFIGS = [
    dict(mixup_alpha=0.8, cutmix_alpha=1.0),
    dict(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.0),
    dict(mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=False),
    dict(mixup_alpha=0.8, cutmix_alpha=1.0, cutmix_minmax=(0.2, 0.8), prob=0.7, switch_prob=0.3),
]


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("config", range(len(TIMM_CONFIGS)))
def test_mixup_cutmix_equals_timm_on_its_draw(monkeypatch, mode, config):
    from timm.data import Mixup

    kwargs = dict(TIMM_CONFIGS[config], mode=mode, num_classes=6)
    kwargs.setdefault("label_smoothing", 0.1)
    g = torch.Generator().manual_seed(config)
    n = 8
    x = torch.rand(n, 3, 10, 11, generator=g)
    y = torch.randint(0, 6, (n,), generator=g)
    for seed in range(4):
        np.random.seed(1000 * config + seed)
        want_x, want_y, draw, boxes = _timm_run_recording(monkeypatch, Mixup(**kwargs), x, y)
        p = _record_from_timm(draw, boxes, n, mode)
        smoothing = kwargs["label_smoothing"]
        got_x, got_y = TM.mixup_cutmix(x, y, _torch_params(TM.MixupCutmixParams, p), num_classes=6, label_smoothing=smoothing)
        jx, jy = _mixup_cutmix_jit(jnp.asarray(nchw_to_nhwc(x).numpy()), jnp.asarray(y.numpy()), _jax_params(JM.MixupCutmixParams, p), num_classes=6, label_smoothing=smoothing)
        if mode == "batch":
            # timm's batch mode rounds 1 - λ from float64, ours from the float32 λ: an ulp of
            # a weight, times values <= 1
            atol = 2.5e-7
        else:
            atol = 0.0  # the same float32 arithmetic as timm's per-pair / per-element loops
        np.testing.assert_allclose(got_x.numpy(), want_x.numpy(), rtol=0, atol=atol)
        np.testing.assert_allclose(got_y.numpy(), want_y.numpy(), rtol=0, atol=atol)
        # jax: XLA may fuse the blend's multiply-add (one rounding instead of two)
        np.testing.assert_allclose(np.asarray(jx), nchw_to_nhwc(want_x).numpy(), rtol=0, atol=2.5e-7)
        np.testing.assert_allclose(np.asarray(jy), want_y.numpy(), rtol=0, atol=2.5e-7)


def _timm_draws(kwargs, n_draws, seed):
    """timm's parameters for ``n_draws`` single-element draws (elem mode, batch of ``n_draws``)."""
    from timm.data import Mixup

    import timm.data.mixup as tm

    mix = Mixup(**kwargs, mode="elem", num_classes=2)
    np.random.seed(seed)
    lam, use = mix._params_per_elem(n_draws)
    heights = []
    for i in np.flatnonzero(use & (lam != 1)):
        (yl, yh, xl, xh), lam[i] = tm.cutmix_bbox_and_lam((10, 11), lam[i], ratio_minmax=mix.cutmix_minmax, correct_lam=mix.correct_lam)
        heights.append(yh - yl)
    return lam, use & (lam != 1), np.array(heights)


@pytest.mark.parametrize("config", [0, 3])
def test_mixup_cutmix_sampler_matches_timms_distribution(config):
    kwargs = {k: v for k, v in TIMM_CONFIGS[config].items() if k != "label_smoothing"}
    n = 3000
    t_lam, t_cut, t_heights = _timm_draws(kwargs, n, seed=config)
    ours = [
        TM.sample_mixup_cutmix_params(n, (10, 11), mode="elem", generator=torch.Generator().manual_seed(3), **kwargs),
        JM.sample_mixup_cutmix_params(jax.random.key(3), n, (10, 11), mode="elem", **kwargs),
    ]
    for p in ours:
        lam, cut, heights = np.asarray(p.lam), np.asarray(p.use_cutmix), np.asarray(p.height)[np.asarray(p.use_cutmix)]
        # switch and apply coins: the same proportions of CutMix and of unmixed images
        assert stats.chi2_contingency([[cut.sum(), n - cut.sum()], [t_cut.sum(), n - t_cut.sum()]]).pvalue > P_MIN
        assert stats.chi2_contingency([[(lam == 1).sum(), n - (lam == 1).sum()], [(t_lam == 1).sum(), n - (t_lam == 1).sum()]]).pvalue > P_MIN
        # λ of the mixup images (continuous) and of the CutMix images, two-sample KS
        for ours_sel, timm_sel in ((~cut & (lam < 1), ~t_cut & (t_lam < 1)), (cut, t_cut)):
            assert stats.ks_2samp(lam[ours_sel], t_lam[timm_sel]).pvalue > P_MIN
        keys = np.union1d(heights, t_heights)
        table = np.array([[np.sum(heights == v) for v in keys], [np.sum(t_heights == v) for v in keys]])
        assert stats.chi2_contingency(table[:, table.sum(0) >= 5]).pvalue > P_MIN
        assert np.array_equal(np.asarray(p.perm), np.arange(n - 1, -1, -1))


def test_mixup_cutmix_pair_and_batch_layouts():
    for p in (
        TM.sample_mixup_cutmix_params(6, 8, mixup_alpha=0.5, cutmix_alpha=1.0, mode="pair", generator=torch.Generator().manual_seed(0)),
        JM.sample_mixup_cutmix_params(jax.random.key(0), 6, 8, mixup_alpha=0.5, cutmix_alpha=1.0, mode="pair"),
    ):
        for f in p._fields[:-1]:
            v = np.asarray(getattr(p, f))
            np.testing.assert_array_equal(v, v[::-1])  # pair (i, N-1-i) shares its draw
    for p in (
        TM.sample_mixup_cutmix_params(5, 8, mixup_alpha=0.5, cutmix_alpha=1.0, generator=torch.Generator().manual_seed(0)),
        JM.sample_mixup_cutmix_params(jax.random.key(0), 5, 8, mixup_alpha=0.5, cutmix_alpha=1.0),
    ):
        for f in p._fields[:-1]:
            assert len(set(np.asarray(getattr(p, f)).tolist())) == 1  # one draw per batch


# ------------------------------------------------------------------------------------------
# CutMix and switching: jax jit/vmap vs eager, torch inputs, modules, bad input
# ------------------------------------------------------------------------------------------


def test_cutmix_and_switching_jax_jit_vmap_match_eager():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (3, 4, 6, 5, 3)).astype(np.uint8))  # 3 batches
    labels = jnp.asarray(rng.integers(0, 4, (3, 4)))
    keys = jax.random.split(jax.random.key(0), 3)
    for sample, kernel, kw in (
        (lambda k: JM.sample_cutmix_params(k, 4, (6, 5), per_sample=True), JM.cutmix, {}),
        (lambda k: JM.sample_mixup_cutmix_params(k, 4, (6, 5), mixup_alpha=0.5, cutmix_alpha=1.0, mode="elem"), JM.mixup_cutmix, dict(label_smoothing=0.1)),
    ):
        params = jax.vmap(sample)(keys)
        eager = [kernel(images[b], labels[b], jax.tree.map(lambda v: v[b], params), num_classes=4, **kw) for b in range(3)]
        # vmapped sampler == eager (one key: eager jax.random.beta runs op by op, slowly)
        for a, e in zip(jax.tree.leaves(sample(keys[1])), jax.tree.leaves(jax.tree.map(lambda v: v[1], params))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
        vx, vt = jax.vmap(lambda x, y, p: kernel(x, y, p, num_classes=4, **kw))(images, labels, params)
        jx, jt = jax.jit(lambda x, y, p: kernel(x, y, p, num_classes=4, **kw))(images[0], labels[0], jax.tree.map(lambda v: v[0], params))
        for b in range(3):
            # uint8 blends: a fused multiply-add may move a .5 tie by one level
            assert np.abs(np.asarray(vx[b], np.int32) - np.asarray(eager[b][0], np.int32)).max() <= 1
            np.testing.assert_allclose(vt[b], eager[b][1], rtol=0, atol=2.5e-7)
        assert np.abs(np.asarray(jx, np.int32) - np.asarray(eager[0][0], np.int32)).max() <= 1
        np.testing.assert_allclose(jt, eager[0][1], rtol=0, atol=2.5e-7)
    f = jax.jit(lambda k, x, y: JM.random_cutmix(k, x, y, alpha=0.5, num_classes=4))
    out, soft = f(keys[0], images[0], labels[0])
    e_out, e_soft = JM.random_cutmix(keys[0], images[0], labels[0], alpha=0.5, num_classes=4)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(e_out))
    np.testing.assert_allclose(soft, e_soft, rtol=0, atol=2.5e-7)
    g = jax.jit(lambda k, x, y: JM.random_mixup_cutmix(k, x, y, mixup_alpha=0.8, cutmix_alpha=1.0, mode="pair", num_classes=4))
    out, soft = g(keys[1], images[0], labels[0])
    assert out.shape == images[0].shape and out.dtype == jnp.uint8
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)


def test_cutmix_and_switching_modules_reproducible_and_inputs_unmodified():
    x = torch.rand(6, 3, 7, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    soft = F.one_hot(y, 5).float() * 0.9 + 0.02
    copies = [t.clone() for t in (x, y, soft)]
    for make in (
        lambda: TM.CutMix(alpha=1.0, num_classes=5, generator=torch.Generator().manual_seed(3)),
        lambda: TM.CutMix(alpha=0.5, num_classes=5, per_sample=True, generator=torch.Generator().manual_seed(3)),
        lambda: TM.MixupCutmix(0.8, 1.0, num_classes=5, generator=torch.Generator().manual_seed(3)),
        lambda: TM.MixupCutmix(0.8, 1.0, mode="pair", num_classes=5, generator=torch.Generator().manual_seed(3)),
        lambda: TM.MixupCutmix(0.0, 1.0, cutmix_minmax=(0.3, 0.9), mode="elem", num_classes=5, generator=torch.Generator().manual_seed(3)),
    ):
        a_img, a_t = make()(x, y)
        b_img, b_t = make()(x, y)
        assert torch.equal(a_img, b_img) and torch.equal(a_t, b_t)
        assert a_img.shape == x.shape and a_img.dtype == x.dtype and a_t.shape == (6, 5)
        make()(x, soft)
        u_img, _ = make()((x * 255).to(torch.uint8), y)
        assert u_img.dtype == torch.uint8
    for before, after in zip(copies, (x, y, soft)):
        assert torch.equal(before, after)
    off = TM.MixupCutmix(num_classes=5, label_smoothing=0.1)
    off.mixup_enabled = False
    out, t = off(x, y)
    assert torch.equal(out, x)
    torch.testing.assert_close(t, F.one_hot(y, 5).float() * 0.9 + 0.02)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize(
    "module, sample, kernel",
    [
        (lambda g: TM.Mixup(alpha=0.4, num_classes=5, generator=g),
         lambda g, n, hw: TM.sample_mixup_params(n, alpha=0.4, generator=g),
         lambda x, y, p: TM.mixup(x, y, p, num_classes=5)),
        (lambda g: TM.Mixup(alpha=0.4, num_classes=5, per_sample=True, generator=g),
         lambda g, n, hw: TM.sample_mixup_params(n, alpha=0.4, per_sample=True, generator=g),
         lambda x, y, p: TM.mixup(x, y, p, num_classes=5)),
        (lambda g: TM.CutMix(alpha=1.0, num_classes=5, generator=g),
         lambda g, n, hw: TM.sample_cutmix_params(n, hw, alpha=1.0, generator=g),
         lambda x, y, p: TM.cutmix(x, y, p, num_classes=5)),
        (lambda g: TM.CutMix(alpha=0.5, num_classes=5, per_sample=True, generator=g),
         lambda g, n, hw: TM.sample_cutmix_params(n, hw, alpha=0.5, per_sample=True, generator=g),
         lambda x, y, p: TM.cutmix(x, y, p, num_classes=5)),
        *[
            (lambda g, kw=kw: TM.MixupCutmix(**kw, num_classes=5, label_smoothing=0.1, generator=g),
             lambda g, n, hw, kw=kw: TM.sample_mixup_cutmix_params(n, hw, **kw, generator=g),
             lambda x, y, p: TM.mixup_cutmix(x, y, p, num_classes=5, label_smoothing=0.1))
            for kw in (
                dict(mixup_alpha=0.8, cutmix_alpha=1.0),
                dict(mixup_alpha=0.8, cutmix_alpha=1.0, mode="pair"),
                dict(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem"),
                dict(mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=(0.3, 0.9), mode="elem", prob=0.7),
                dict(mixup_alpha=0.4, cutmix_alpha=1.0, cutmix_minmax=(0.3, 0.9), prob=0.7, correct_lam=False),
            )
        ],
    ],
    ids=["mixup", "mixup-per-sample", "cutmix", "cutmix-per-sample", "switch-batch", "switch-pair", "switch-elem", "switch-minmax", "switch-batch-minmax"],
)
def test_cutmix_and_switching_modules_equal_sampler_then_kernel(module, sample, kernel, dtype):
    """The modules skip the record checks of the kernels (their own draws are valid), take a
    shared box from the host and, in batch mode, draw in Python scalars and weigh with Python
    floats where the dtype allows (:func:`torch_impl.mixing._common._weights`): they must give the bytes
    of sampler + checked kernel, draw for draw, for integer labels and float64 soft targets."""
    n, hw = 200, (32, 32)
    x = torch.randint(0, 256, (n, 3, *hw), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)).to(dtype)
    y = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(2))
    soft = torch.rand(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mod = module(torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    for targets in (y, y, y, soft, soft, soft):  # several draws: both branches of the switch in batch mode
        out, t = mod(x, targets)
        ref_out, ref_t = kernel(x, targets, sample(g, n, hw))
        assert out.dtype == ref_out.dtype and t.dtype == ref_t.dtype
        assert torch.equal(out, ref_out) and torch.equal(t, ref_t)


def test_mixup_cutmix_batch_draw_equals_the_array_draw():
    """Batch mode draws its one group in Python scalars (``_draw_mixup_cutmix_batch``), pair and
    elem modes in NumPy arrays (``_draw_mixup_cutmix_groups``). Two implementations of one draw:
    the same generator state must give the same λ, choice and box through both."""
    from torch_impl.mixing._common import _host_rng
    from torch_impl.mixing._cutmix import _cut_range, _draw_mixup_cutmix_batch, _draw_mixup_cutmix_groups
    from twintricks.mixing import check_mixup_cutmix_args

    configs = [
        dict(mixup_alpha=1.0, cutmix_alpha=1.0),
        dict(mixup_alpha=0.2, cutmix_alpha=0.0, prob=0.6),
        dict(mixup_alpha=0.0, cutmix_alpha=0.3, correct_lam=False),
        dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.9, cutmix_minmax=(0.2, 0.8)),
        dict(mixup_alpha=0.0, cutmix_alpha=2.0, cutmix_minmax=(0.1, 0.5), correct_lam=False, prob=0.8),
    ]
    boxed_seen = unboxed_seen = 0
    for config in configs:
        kw = dict(cutmix_minmax=None, prob=1.0, switch_prob=0.5, correct_lam=True) | config
        args = check_mixup_cutmix_args(kw["mixup_alpha"], kw["cutmix_alpha"], kw["cutmix_minmax"], kw["prob"], kw["switch_prob"], "batch", kw["correct_lam"])
        for seed in range(150):
            for height, width in ((32, 32), (7, 13)):
                lam, boxed, box = _draw_mixup_cutmix_batch(height, width, args, torch.Generator().manual_seed(seed))
                rng = _host_rng(torch.Generator().manual_seed(seed))
                lam_a, boxed_a, box_a = _draw_mixup_cutmix_groups(1, height, width, args, _cut_range(height, width, args), rng)
                assert (lam, boxed, box) == (float(lam_a[0]), bool(boxed_a[0]), tuple(box_a[:, 0].tolist())), (config, seed)
                assert isinstance(lam, float) and lam == np.float32(lam)
                boxed_seen += boxed
                unboxed_seen += not boxed
    assert boxed_seen > 100 and unboxed_seen > 100


def test_host_rng_follows_the_generator_in_each_thread():
    """The NumPy draws come from a per-thread generator whose state is drawn from the torch
    generator: the same torch state gives the same draws, in any thread and interleaved with
    other threads' draws; the next state gives other draws."""
    import threading

    from torch_impl.mixing._common import _host_rng

    def draws(seed, out, barrier=None):
        g = torch.Generator().manual_seed(seed)
        for _ in range(200):
            rng = _host_rng(g)
            if barrier is not None:
                barrier.wait()  # both threads have set their state before either draws
            out.append(rng.random(3).tolist())

    want = []
    draws(7, want)
    assert len({tuple(d) for d in want}) == len(want)
    got = [[], []]
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=draws, args=(7, got[i], barrier)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] == want and got[1] == want


def test_mixing_blend_is_the_plain_formula():
    """``_blend`` saves passes (in-place updates; uint8 rounded by adding 1.5·2²³ and keeping the
    low byte; λ and 1-λ as Python floats); the result must be the plain formula, bit for bit, for
    uint8 (float32 then round half to even) and float, with a per-batch λ (tensor or float) and a
    per-image one: every level with every level, ties (λ = ½ and odd sums) and λ ∈ {0, 1}
    included."""
    from torch_impl.mixing._common import _blend

    levels = torch.arange(256, dtype=torch.uint8)
    x = torch.stack([levels.repeat_interleave(256), levels.repeat(256)]).reshape(2, 1, 256, 256)  # all pairs
    swap = torch.tensor([1, 0])
    gen = torch.Generator().manual_seed(0)
    n = 300
    y = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen)
    perm = torch.randperm(n, generator=gen)
    draws = torch.rand(20, generator=gen).tolist()
    lams = [0.0, 1.0, 0.5, 0.25, float(np.float32(1 / 3)), float(np.float32(2**-30)), *[float(np.float32(v)) for v in draws]]
    for images, p in ((x, swap), (y, perm)):
        for lam in [*lams, torch.rand(len(p), generator=gen).reshape(-1, 1, 1, 1), torch.tensor(0.37)]:
            lam_t = torch.as_tensor(lam, dtype=torch.float32)
            for dtype in (torch.uint8, torch.float32, torch.float64):
                xf = images.float() if dtype == torch.uint8 else images.to(dtype)
                w = lam_t.to(xf.dtype)
                want = xf * w + xf[p] * (1 - w)
                if dtype == torch.uint8:
                    want = want.round().clamp(0, 255).to(torch.uint8)
                got = _blend(images.to(dtype), p, lam)
                assert got.dtype == dtype and torch.equal(got, want), (lam, dtype)
    # the rounding's last step: int32 → uint8 keeps the low byte (modulo 256, as C++ defines it)
    magic = torch.arange(256, dtype=torch.int32) + 0x4B400000
    assert torch.equal(magic.to(torch.uint8), levels)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_cutmix_and_switching_bad_input(backend):
    M, arr, nchw = (TM, torch.as_tensor, True) if backend == "torch" else (JM, jnp.asarray, False)
    key = [jax.random.key(0)] if M is JM else []
    x = arr(np.zeros((2, 3, 4, 4) if nchw else (2, 4, 4, 3), np.float32))
    y = arr(np.array([0, 1]))
    z = arr(np.zeros(2, np.int64))
    cp = M.CutMixParams(z, z, arr(np.array([2, 4])), arr(np.array([3, 1])), arr(np.array([1, 0])))
    mp = M.MixupCutmixParams(arr(np.array([0.5, 0.5], np.float32)), arr(np.array([True, False])), z, z, z, z, arr(np.array([1, 0])))
    calls = [
        (ValueError, "alpha", lambda: M.sample_cutmix_params(*key, 2, 4, alpha=0.0)),
        (ValueError, "alpha", lambda: M.sample_cutmix_params(*key, 2, 4, alpha=-1.0)),
        (ValueError, "alpha", lambda: M.sample_cutmix_params(*key, 2, 4, alpha=np.inf)),
        (ValueError, "image_size", lambda: M.sample_cutmix_params(*key, 2, (4, 0))),
        (ValueError, "box 1", lambda: M.cutmix(x, y, cp._replace(top=arr(np.array([0, 4]))), num_classes=2)),
        (ValueError, "params.height", lambda: M.cutmix(x, y, cp._replace(height=arr(np.array([-1, 0]))), num_classes=2)),
        (ValueError, "params.perm", lambda: M.cutmix(x, y, cp._replace(perm=arr(np.array([2, 0]))), num_classes=2)),
        (TypeError, "params.top", lambda: M.cutmix(x, y, cp._replace(top=arr(np.zeros(2, np.float32))), num_classes=2)),
        (TypeError, "`params` must be a CutMixParams", lambda: M.cutmix(x, y, None, num_classes=2)),
        (ValueError, "num_classes", lambda: M.cutmix(x, y, cp)),
        (ValueError, "mixup_alpha", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, mixup_alpha=-0.1)),
        (ValueError, "cutmix_alpha", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, cutmix_alpha=np.inf)),
        (ValueError, "nothing to mix", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, mixup_alpha=0.0)),
        (ValueError, "prob", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, prob=1.5)),
        (ValueError, "switch_prob", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, switch_prob=-0.5)),
        (ValueError, "mode", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, mode="batches")),
        (ValueError, "cutmix_minmax", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, cutmix_minmax=(0.8, 0.2))),
        (ValueError, "cutmix_minmax", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, cutmix_minmax=(0.5, 0.6))),
        (ValueError, "batch_size", lambda: M.sample_mixup_cutmix_params(*key, 3, 4, mode="pair")),
        (TypeError, "correct_lam", lambda: M.sample_mixup_cutmix_params(*key, 2, 4, correct_lam="yes")),
        (ValueError, "params.lam", lambda: M.mixup_cutmix(x, y, mp._replace(lam=arr(np.array([np.nan, 0.5], np.float32))), num_classes=2)),
        (TypeError, "params.use_cutmix", lambda: M.mixup_cutmix(x, y, mp._replace(use_cutmix=arr(np.array([1, 0]))), num_classes=2)),
        (ValueError, "box 0", lambda: M.mixup_cutmix(x, y, mp._replace(left=arr(np.array([2, 0])), width=arr(np.array([3, 0]))), num_classes=2)),
        (ValueError, "params.width", lambda: M.mixup_cutmix(x, y, mp._replace(width=arr(np.array([5, 0]))), num_classes=2)),
        (ValueError, "label_smoothing", lambda: M.mixup_cutmix(x, y, mp, num_classes=2, label_smoothing=1.5)),
        (TypeError, "`params` must be a MixupCutmixParams", lambda: M.mixup_cutmix(x, y, cp, num_classes=2)),
    ]
    for exc, word, call in calls:
        with pytest.raises(exc, match=word):
            call()
    if backend == "torch":
        with pytest.raises(ValueError, match="alpha"):
            TM.CutMix(alpha=0.0)
        with pytest.raises(ValueError, match="mode"):
            TM.MixupCutmix(mode="pairs")
        with pytest.raises(ValueError, match="num_classes"):
            TM.MixupCutmix(num_classes=0)


def test_cutmix_and_switching_torch_compile_fullgraph_once():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    g = torch.Generator().manual_seed(0)
    cut_c = torch.compile(lambda x, y, p: TM.cutmix(x, y, p, num_classes=3), backend=counter, fullgraph=True)
    switch_c = torch.compile(lambda x, y, p: TM.mixup_cutmix(x, y, p, num_classes=3, label_smoothing=0.1), backend=counter, fullgraph=True)
    for _ in range(3):
        x = torch.randint(0, 256, (4, 2, 5, 6), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 3, (4,), generator=g)
        p = TM.sample_cutmix_params(4, (5, 6), per_sample=True, generator=g)
        out, soft = cut_c(x, y, p)
        ref_out, ref_soft = TM.cutmix(x, y, p, num_classes=3)
        assert torch.equal(out, ref_out) and torch.equal(soft, ref_soft)
        q = TM.sample_mixup_cutmix_params(4, (5, 6), mixup_alpha=0.5, cutmix_alpha=1.0, mode="elem", generator=g)
        out, soft = switch_c(x, y, q)
        ref_out, ref_soft = TM.mixup_cutmix(x, y, q, num_classes=3, label_smoothing=0.1)
        assert torch.equal(out, ref_out)
        torch.testing.assert_close(soft, ref_soft)
    assert counter.frame_count == 2
