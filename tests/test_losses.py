"""Losses: label smoothing, soft-target cross-entropy, knowledge distillation, in both packages.

Kernel parity torch vs jax (values and gradients) is in the registry (tests/test_parity.py). Here:
the external references (torch's CrossEntropyLoss(label_smoothing=), F.kl_div; optax's
smooth_labels / softmax_cross_entropy / kl_divergence_with_log_targets), the invariants, the
gradients, jax jit/vmap vs eager, torch inputs left unmodified, and the bad-input errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import jax_impl.losses as JL
import torch_impl.losses as TL
from parity import strategies as S

# float32 log-softmax against another float32 log-softmax implementation: a few ulps of values
# up to ~60 (logits of ±30), summed over at most 8 samples.
CE_TOL = dict(rtol=1e-5, atol=2e-5)


@st.composite
def ce_cases(draw, *, any_float=True, batch_sizes=S.LOSS_BATCH_SIZES, num_classes=S.LOSS_NUM_CLASSES):
    n, k = draw(st.sampled_from(batch_sizes)), draw(st.sampled_from(num_classes))
    return dict(
        logits=draw(S.logits(n, k)),
        labels=draw(S.int_labels(n, k)),
        soft=draw(S.soft_targets(n, k)),
        k=k,
        smoothing=draw(S.smoothing_values(any_float=any_float)),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
    )


# ------------------------------------------------------------------------------------------
# External references
# ------------------------------------------------------------------------------------------


@given(ce_cases())
@example(
    dict(
        logits=np.array([[30.0, -30.0], [-30.0, 30.0]], np.float32),
        labels=np.array([1, 1]),
        soft=np.array([[0.5, 0.5], [0.0, 1.0]], np.float32),
        k=2,
        smoothing=1.0,
        reduction="sum",
    )
)
def test_torch_label_smoothing_matches_cross_entropy_loss(case):
    for labels in (torch.from_numpy(case["labels"]), torch.from_numpy(case["soft"])):
        z1 = torch.from_numpy(case["logits"]).requires_grad_()
        z2 = torch.from_numpy(case["logits"]).requires_grad_()
        ours = TL.label_smoothing_cross_entropy(z1, labels, smoothing=case["smoothing"], reduction=case["reduction"])
        ref = torch.nn.CrossEntropyLoss(label_smoothing=case["smoothing"], reduction=case["reduction"])(z2, labels)
        torch.testing.assert_close(ours, ref, **CE_TOL)
        (g1,) = torch.autograd.grad(ours.sum(), z1)
        (g2,) = torch.autograd.grad(ref.sum(), z2)
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)  # softmax - t, values in [-1, 1]
        module = TL.LabelSmoothingCrossEntropy(case["smoothing"], case["reduction"])
        torch.testing.assert_close(module(z1, labels), ours)


@given(ce_cases(batch_sizes=(1, 3), num_classes=(2, 10)))  # few shapes: eager jax compiles per shape
def test_jax_label_smoothing_matches_optax(case):
    k, eps = case["k"], case["smoothing"]

    def ref(z, onehot):
        loss = optax.softmax_cross_entropy(z, optax.smooth_labels(onehot, eps))
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda x: x}[case["reduction"]](loss)

    z = jnp.asarray(case["logits"])
    for labels, onehot in (
        (jnp.asarray(case["labels"]), jax.nn.one_hot(case["labels"], k)),
        (jnp.asarray(case["soft"]), jnp.asarray(case["soft"])),
    ):
        ours = lambda z: JL.label_smoothing_cross_entropy(z, labels, smoothing=eps, reduction=case["reduction"])  # noqa: E731
        np.testing.assert_allclose(ours(z), ref(z, onehot), **CE_TOL)
        g1 = jax.grad(lambda z: ours(z).sum())(z)
        g2 = jax.grad(lambda z: ref(z, onehot).sum())(z)
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)  # softmax - t, values in [-1, 1]
        np.testing.assert_allclose(
            JL.smooth_labels(labels, k, eps), optax.smooth_labels(onehot, eps), rtol=0, atol=2.5e-7
        )  # 1 ulp: a fused multiply-add may round once instead of twice


@given(ce_cases(any_float=False))
def test_soft_target_cross_entropy_matches_references(case):
    soft, red = case["soft"], case["reduction"]
    ours_t = TL.soft_target_cross_entropy(torch.from_numpy(case["logits"]), torch.from_numpy(soft), reduction=red)
    ref_t = F.cross_entropy(torch.from_numpy(case["logits"]), torch.from_numpy(soft), reduction=red)
    torch.testing.assert_close(ours_t, ref_t, **CE_TOL)
    torch.testing.assert_close(TL.SoftTargetCrossEntropy(red)(torch.from_numpy(case["logits"]), torch.from_numpy(soft)), ours_t)
    ours_j = JL.soft_target_cross_entropy(jnp.asarray(case["logits"]), jnp.asarray(soft), reduction="none")
    np.testing.assert_allclose(ours_j, optax.softmax_cross_entropy(case["logits"], soft), **CE_TOL)


def test_smooth_labels_formula_and_rows():
    labels = torch.tensor([0, 2, 1])
    expected = np.full((3, 4), 0.2 / 4) + 0.8 * np.eye(4)[[0, 2, 1]]
    for out in (TL.smooth_labels(labels, 4, 0.2), JL.smooth_labels(jnp.asarray(labels.numpy()), 4, 0.2)):
        np.testing.assert_allclose(np.asarray(out), expected, rtol=0, atol=1e-7)  # float32 of a float64 value
        assert np.asarray(out).dtype == np.float32
    np.testing.assert_array_equal(TL.smooth_labels(labels, 4, 0.0).numpy(), np.eye(4)[[0, 2, 1]])
    np.testing.assert_allclose(JL.smooth_labels(jnp.array([3]), 4, 1.0), np.full((1, 4), 0.25))


@given(ce_cases())
def test_smoothed_targets_are_distributions(case):
    for out in (
        TL.smooth_labels(torch.from_numpy(case["soft"]), case["k"], case["smoothing"]).numpy(),
        np.asarray(JL.smooth_labels(jnp.asarray(case["labels"]), case["k"], case["smoothing"])),
    ):
        np.testing.assert_allclose(out.sum(1), 1.0, rtol=0, atol=1e-5)  # K float32 terms
        assert (out >= case["smoothing"] / case["k"] - 1e-7).all()


def test_cross_entropy_is_non_negative_and_minimal_at_targets():
    k = 5
    t = TL.smooth_labels(torch.arange(k), k, 0.1)
    at_target = TL.soft_target_cross_entropy(t.log(), t, reduction="none")  # logits = log t
    entropy = -(t * t.log()).sum(1)
    torch.testing.assert_close(at_target, entropy)
    other = TL.soft_target_cross_entropy(torch.randn(k, k, generator=torch.Generator().manual_seed(0)), t, reduction="none")
    assert (other >= at_target).all() and (other >= 0).all()


# ------------------------------------------------------------------------------------------
# Masked classes (-inf logits)
# ------------------------------------------------------------------------------------------

_INF = float("inf")


@st.composite
def masked_cases(draw):
    """Logits with whole classes masked (-inf in every row), labels on unmasked classes only."""
    n, k = draw(st.sampled_from([1, 3])), draw(st.sampled_from([3, 6]))
    masked = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k - 1, unique=True))
    kept = [c for c in range(k) if c not in masked]
    z = draw(S.logits(n, k))
    z[:, masked] = -np.inf
    labels = np.array(draw(st.lists(st.sampled_from(kept), min_size=n, max_size=n)), np.int64)
    soft = draw(S.soft_targets(n, len(kept)))
    full = np.zeros((n, k), np.float32)
    full[:, kept] = soft
    return dict(logits=z, labels=labels, soft=full, kept=kept, k=k,
                smoothing=draw(st.sampled_from([0.0, 0.1, 1.0])), reduction=draw(st.sampled_from(["mean", "sum", "none"])))


_MASKED_EXAMPLE = dict(
    logits=np.array([[2.0, -np.inf, 0.5], [1.0, 0.0, -np.inf]], np.float32),
    labels=np.array([0, 1]),
    soft=np.array([[0.7, 0.0, 0.3], [0.5, 0.5, 0.0]], np.float32),
    kept=None,  # different classes masked per row
    k=3,
    smoothing=0.0,
    reduction="mean",
)


def _torch_value_grad(fn, z):
    z = torch.from_numpy(z).requires_grad_()
    out = fn(z)
    (g,) = torch.autograd.grad(out.sum(), z)
    return out.detach(), g


@given(masked_cases())
@example(_MASKED_EXAMPLE)
@example(dict(_MASKED_EXAMPLE, smoothing=0.1, reduction="none"))
def test_torch_masked_classes_match_cross_entropy(case):
    """F.cross_entropy with class indices is the reference: finite where no target weight sits
    on a masked class, inf (with the finite gradient softmax - t) once smoothing puts ε/K there."""
    eps, red = case["smoothing"], case["reduction"]
    y = torch.from_numpy(case["labels"])
    ours, g1 = _torch_value_grad(lambda z: TL.label_smoothing_cross_entropy(z, y, smoothing=eps, reduction=red), case["logits"])
    ref, g2 = _torch_value_grad(lambda z: F.cross_entropy(z, y, label_smoothing=eps, reduction=red), case["logits"])
    torch.testing.assert_close(ours, ref, **CE_TOL)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)  # softmax - t, values in [-1, 1]
    assert torch.isfinite(g1).all()
    if eps == 0:
        assert torch.isfinite(ours).all()
    # soft targets with no weight on the masked classes: finite, and equal to the cross-entropy
    # over the kept classes alone (F.cross_entropy itself gives NaN for probability targets here)
    soft = torch.from_numpy(case["soft"])
    ours_soft, g_soft = _torch_value_grad(lambda z: TL.soft_target_cross_entropy(z, soft, reduction=red), case["logits"])
    assert torch.isfinite(ours_soft).all() and torch.isfinite(g_soft).all()
    if case["kept"] is not None:
        kept = case["kept"]
        ref_soft, g_ref = _torch_value_grad(
            lambda z: F.cross_entropy(z, soft[:, kept], reduction=red), case["logits"][:, kept].copy()
        )
        torch.testing.assert_close(ours_soft, ref_soft, **CE_TOL)
        torch.testing.assert_close(g_soft[:, kept], g_ref, rtol=1e-5, atol=1e-6)
        assert (g_soft[:, [c for c in range(case["k"]) if c not in kept]] == 0).all()


@given(masked_cases())
@example(_MASKED_EXAMPLE)
@example(dict(_MASKED_EXAMPLE, smoothing=0.1, reduction="none"))
def test_jax_masked_classes_match_references(case):
    """optax.safe_softmax_cross_entropy (0·log 0 = 0) and torch's F.cross_entropy gradient."""
    eps, red, k = case["smoothing"], case["reduction"], case["k"]
    reduce = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda x: x}[red]
    z = jnp.asarray(case["logits"])
    for labels, onehot in ((jnp.asarray(case["labels"]), jax.nn.one_hot(case["labels"], k)), (jnp.asarray(case["soft"]), jnp.asarray(case["soft"]))):
        ours = lambda z: JL.label_smoothing_cross_entropy(z, labels, smoothing=eps, reduction=red)  # noqa: E731
        ref = reduce(optax.safe_softmax_cross_entropy(z, optax.smooth_labels(onehot, eps)))
        np.testing.assert_allclose(ours(z), ref, **CE_TOL)  # infinities must match exactly
        g = jax.grad(lambda z: ours(z).sum())(z)
        assert np.isfinite(np.asarray(g)).all()
        if labels.ndim == 1:
            y_t = torch.from_numpy(case["labels"]).long()
            _, g_torch = _torch_value_grad(lambda zt: F.cross_entropy(zt, y_t, label_smoothing=eps, reduction=red), case["logits"])
            np.testing.assert_allclose(g, g_torch.numpy(), rtol=1e-5, atol=1e-6)  # softmax - t in [-1, 1]
        if eps == 0:
            assert np.isfinite(np.asarray(ours(z))).all()
    ours_soft = JL.soft_target_cross_entropy(z, jnp.asarray(case["soft"]), reduction="none")
    np.testing.assert_allclose(ours_soft, optax.safe_softmax_cross_entropy(z, jnp.asarray(case["soft"])), **CE_TOL)


def test_masked_label_and_all_masked_rows_behave_as_cross_entropy():
    """A label on a masked class: inf with gradient softmax - onehot; a row masked everywhere: NaN."""
    z = np.array([[2.0, -np.inf, 0.5], [1.0, 0.0, -np.inf]], np.float32)
    y = torch.tensor([1, 0])
    for eps in (0.0, 0.2):
        ours, g1 = _torch_value_grad(lambda z: TL.label_smoothing_cross_entropy(z, y, smoothing=eps, reduction="none"), z)
        ref, g2 = _torch_value_grad(lambda z: F.cross_entropy(z, y, label_smoothing=eps, reduction="none"), z)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(g1, g2)
        gj = jax.grad(lambda z: JL.label_smoothing_cross_entropy(z, jnp.asarray(y.numpy()), smoothing=eps, reduction="none").sum())(jnp.asarray(z))
        np.testing.assert_allclose(gj, g2.numpy(), rtol=1e-6, atol=1e-7)
    all_masked = torch.full((1, 3), -_INF)
    assert torch.isnan(TL.label_smoothing_cross_entropy(all_masked, torch.tensor([0]), smoothing=0.0))
    assert torch.isnan(F.cross_entropy(all_masked, torch.tensor([0])))


@given(masked_cases(), st.sampled_from([1.0, 4.0]), st.sampled_from([0.0, 0.5, 1.0]))
def test_masked_classes_in_distillation(case, T, alpha):
    """Student and teacher mask the same classes: the KL over the kept classes (F.kl_div on the
    kept columns, where F.kl_div on all columns is NaN); kd_loss adds F.cross_entropy."""
    kept = case["kept"]
    z = case["logits"]
    rng = np.random.default_rng(0)
    teacher = np.where(np.isinf(z), -np.inf, rng.normal(size=z.shape) * 3).astype(np.float32)
    s_k, t_k = torch.from_numpy(z[:, kept].copy()), torch.from_numpy(teacher[:, kept].copy())
    ref = F.kl_div(F.log_softmax(s_k / T, -1), F.log_softmax(t_k / T, -1), reduction="batchmean", log_target=True) * T**2
    y = torch.from_numpy(case["labels"])
    ref_kd = alpha * ref + (1 - alpha) * F.cross_entropy(torch.from_numpy(z), y)
    ours, g = _torch_value_grad(lambda s: TL.distillation_loss(s, torch.from_numpy(teacher), temperature=T), z)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)  # as test_distillation_matches_kl_div
    assert torch.isfinite(g).all()
    kd, g = _torch_value_grad(lambda s: TL.kd_loss(s, torch.from_numpy(teacher), y, temperature=T, alpha=alpha), z)
    torch.testing.assert_close(kd, ref_kd, rtol=1e-5, atol=1e-4)
    assert torch.isfinite(g).all()
    zj, tj = jnp.asarray(z), jnp.asarray(teacher)
    np.testing.assert_allclose(JL.distillation_loss(zj, tj, temperature=T), ref.numpy(), rtol=1e-5, atol=1e-4)
    kd_j, g_j = jax.value_and_grad(lambda s: JL.kd_loss(s, tj, jnp.asarray(case["labels"]), temperature=T, alpha=alpha))(zj)
    np.testing.assert_allclose(kd_j, ref_kd.numpy(), rtol=1e-5, atol=1e-4)
    assert np.isfinite(np.asarray(g_j)).all()


def test_kd_loss_alpha_ends_do_not_multiply_infinities_by_zero():
    """α = 1 ignores the cross-entropy even when it is inf (label on a masked class), α = 0 the KL."""
    s = np.array([[0.0, -np.inf, 1.0]], np.float32)
    t = np.array([[0.0, 1.0, 1.0]], np.float32)  # the teacher keeps class 1: KL = inf
    y = np.array([1])  # on the student's masked class: CE = inf
    s_ok = np.array([[0.0, 2.0, 1.0]], np.float32)
    for L, arr in ((TL, torch.as_tensor), (JL, jnp.asarray)):
        d = float(L.distillation_loss(arr(s_ok), arr(t), temperature=2.0))
        assert float(L.kd_loss(arr(s_ok), arr(t), arr(y), temperature=2.0, alpha=1.0)) == pytest.approx(d)
        ce = float(L.label_smoothing_cross_entropy(arr(s), arr(y), smoothing=0.0))
        assert ce == _INF and float(L.kd_loss(arr(s), arr(s), arr(y), alpha=0.0)) == _INF
        assert float(L.kd_loss(arr(s_ok), arr(s), arr(np.array([0])), alpha=0.0)) == pytest.approx(
            float(L.label_smoothing_cross_entropy(arr(s_ok), arr(np.array([0])), smoothing=0.0)))


# ------------------------------------------------------------------------------------------
# torch: autocast, ignore_index, [N, K, d1, ...] as F.cross_entropy
# ------------------------------------------------------------------------------------------


def _bf16_logits(n=16, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=g) * 8).bfloat16()


def test_torch_losses_compute_in_float32_under_autocast():
    """torch.autocast("cpu", bfloat16): the losses return float32 computed in float32, as
    F.cross_entropy; the reference is float64 on the same (bfloat16) logits."""
    z = _bf16_logits()
    teacher = _bf16_logits(seed=1)
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    soft = torch.softmax(torch.randn(16, 10, generator=torch.Generator().manual_seed(3)), 1)
    z64, t64 = z.double(), teacher.double()
    refs = {
        "ls": F.cross_entropy(z64, y, label_smoothing=0.1),
        "soft": F.cross_entropy(z64, soft.double()),
        "distill": F.kl_div(F.log_softmax(z64 / 4, 1), F.log_softmax(t64 / 4, 1), reduction="batchmean", log_target=True) * 16,
    }
    refs["kd"] = 0.9 * refs["distill"] + 0.1 * F.cross_entropy(z64, y)
    lin = torch.nn.Linear(10, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lin(z.float()).dtype == torch.bfloat16  # autocast is on
        ours = {
            "ls": TL.label_smoothing_cross_entropy(z, y, smoothing=0.1),
            "soft": TL.soft_target_cross_entropy(z, soft),
            "distill": TL.distillation_loss(z, teacher, temperature=4.0),
            "kd": TL.kd_loss(z, teacher, y, temperature=4.0, alpha=0.9),
            "module": TL.LabelSmoothingCrossEntropy(0.1)(z, y),
        }
        torch_ce = F.cross_entropy(z, y, label_smoothing=0.1)
    ours["module_ref"] = torch_ce
    refs["module"] = refs["module_ref"] = refs["ls"]
    for name, out in ours.items():
        assert out.dtype == torch.float32, name
        # float32 log-softmax of |z| <= ~40 (T² = 16 for the distillation terms): a few ulps
        torch.testing.assert_close(out.double(), refs[name], rtol=2e-6, atol=1e-5, msg=name)


def test_torch_low_precision_logits_outside_autocast_keep_their_dtype():
    """As F.cross_entropy: bfloat16 logits give a bfloat16 loss, computed in float32 and rounded once."""
    z = _bf16_logits()
    y = torch.arange(16) % 10
    out = TL.label_smoothing_cross_entropy(z, y, smoothing=0.1)
    assert out.dtype == torch.bfloat16 == F.cross_entropy(z, y, label_smoothing=0.1).dtype
    ref = F.cross_entropy(z.double(), y, label_smoothing=0.1)
    assert abs(float(out) - float(ref)) <= float(ref) * 2**-8  # half a bfloat16 ulp (8 bits)


@st.composite
def spatial_ce_cases(draw):
    n, k = draw(st.sampled_from([1, 3])), draw(st.sampled_from([2, 5]))
    spatial = draw(st.sampled_from([(), (4,), (2, 3)]))
    z = draw(S.logits(n * int(np.prod(spatial, dtype=int)), k)).reshape(n, *spatial, k)
    z = np.moveaxis(z, -1, 1).copy()  # [N, K, d1, ...]
    ignore_index = draw(st.sampled_from([-100, 0, 1]))
    labels = draw(S.int_labels(n * int(np.prod(spatial, dtype=int)), k)).reshape(n, *spatial)
    drop = draw(st.lists(st.booleans(), min_size=labels.size, max_size=labels.size))
    labels = np.where(np.array(drop).reshape(labels.shape), ignore_index, labels)
    soft = np.moveaxis(draw(S.soft_targets(labels.size, k)).reshape(n, *spatial, k), -1, 1).copy()
    return dict(logits=z, labels=labels.astype(np.int64), soft=soft, ignore_index=ignore_index,
                smoothing=draw(st.sampled_from([0.0, 0.1, 1.0])), reduction=draw(st.sampled_from(["mean", "sum", "none"])))


@given(spatial_ce_cases())
@example(dict(  # every label ignored: the mean is 0/0 = NaN in both, the sum 0
    logits=np.zeros((2, 3), np.float32), labels=np.array([-100, -100]), soft=np.full((2, 3), 1 / 3, np.float32),
    ignore_index=-100, smoothing=0.1, reduction="mean"))
def test_torch_matches_cross_entropy_with_ignore_index_and_extra_dims(case):
    kw = dict(label_smoothing=case["smoothing"], reduction=case["reduction"])
    y = torch.from_numpy(case["labels"])
    ours, g1 = _torch_value_grad(
        lambda z: TL.label_smoothing_cross_entropy(
            z, y, smoothing=case["smoothing"], reduction=case["reduction"], ignore_index=case["ignore_index"]),
        case["logits"])
    ref, g2 = _torch_value_grad(lambda z: F.cross_entropy(z, y, ignore_index=case["ignore_index"], **kw), case["logits"])
    torch.testing.assert_close(ours, ref, equal_nan=True, **CE_TOL)
    torch.testing.assert_close(g1, g2, equal_nan=True, rtol=1e-5, atol=1e-6)  # softmax - t, in [-1, 1]
    module = TL.LabelSmoothingCrossEntropy(case["smoothing"], case["reduction"], ignore_index=case["ignore_index"])
    torch.testing.assert_close(module(torch.from_numpy(case["logits"]), y), ours, equal_nan=True)
    soft = torch.from_numpy(case["soft"])
    ours_soft, g1 = _torch_value_grad(lambda z: TL.label_smoothing_cross_entropy(z, soft, smoothing=case["smoothing"], reduction=case["reduction"]), case["logits"])
    ref_soft, g2 = _torch_value_grad(lambda z: F.cross_entropy(z, soft, **kw), case["logits"])
    torch.testing.assert_close(ours_soft, ref_soft, **CE_TOL)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)
    if case["reduction"] == "none":
        assert ours.shape == y.shape


def test_torch_unbatched_logits_and_spatial_distillation():
    """[K] logits with a 0-d label, as F.cross_entropy; [N, K, H, W] distillation sums positions."""
    z = torch.tensor([1.0, -2.0, 0.5])
    torch.testing.assert_close(
        TL.label_smoothing_cross_entropy(z, torch.tensor(2), smoothing=0.1), F.cross_entropy(z, torch.tensor(2), label_smoothing=0.1))
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 5, 3, 4, generator=g)
    ref = F.kl_div(F.log_softmax(s / 2, 1), F.log_softmax(t / 2, 1), reduction="batchmean", log_target=True) * 4
    torch.testing.assert_close(TL.distillation_loss(s, t, temperature=2.0), ref, rtol=1e-5, atol=1e-5)
    assert TL.distillation_loss(s, t, temperature=2.0, reduction="none").shape == (2, 3, 4)
    jl = JL.distillation_loss(jnp.asarray(s.movedim(1, -1).numpy()), jnp.asarray(t.movedim(1, -1).numpy()), temperature=2.0)
    np.testing.assert_allclose(jl, ref.numpy(), rtol=1e-5, atol=1e-5)  # the jax twin, classes last


# ------------------------------------------------------------------------------------------
# jax: any leading dimensions (classes last), traceable hyperparameters
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", [(), (4,), (2, 3), (2, 1, 3)])
def test_jax_losses_accept_any_leading_dims_as_optax(lead):
    rng = np.random.default_rng(5)
    k, eps = 6, 0.2
    z = jnp.asarray(rng.normal(size=(*lead, k)) * 4, jnp.float32)
    y = jnp.asarray(rng.integers(0, k, lead))
    onehot = jax.nn.one_hot(y, k)
    ref = optax.softmax_cross_entropy(z, optax.smooth_labels(onehot, eps))
    for red, fn in (("none", lambda x: x), ("mean", jnp.mean), ("sum", jnp.sum)):
        out = JL.label_smoothing_cross_entropy(z, y, smoothing=eps, reduction=red)
        assert out.shape == fn(ref).shape
        np.testing.assert_allclose(out, fn(ref), **CE_TOL)
        np.testing.assert_allclose(JL.soft_target_cross_entropy(z, onehot, reduction=red), fn(optax.softmax_cross_entropy(z, onehot)), **CE_TOL)
    np.testing.assert_allclose(JL.smooth_labels(y, k, eps), optax.smooth_labels(onehot, eps), rtol=0, atol=2.5e-7)  # 1 ulp (fma)
    # the torch twin on the same data with the classes moved to axis 1
    if lead:
        zt = torch.from_numpy(np.moveaxis(np.asarray(z), -1, 1).copy())
        ref_t = F.cross_entropy(zt, torch.from_numpy(np.array(y)).long(), label_smoothing=eps, reduction="none")
        np.testing.assert_allclose(JL.label_smoothing_cross_entropy(z, y, smoothing=eps, reduction="none"), ref_t.numpy(), **CE_TOL)


def test_jax_hyperparameters_can_be_traced_by_vmap_and_jit():
    """A vmap over ε as optax.smooth_labels allows; temperature and alpha likewise; one jit
    compilation serves every value passed as an array."""
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.normal(size=(5, 4)) * 3, jnp.float32)
    teacher = jnp.asarray(rng.normal(size=(5, 4)) * 3, jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, 5))
    eps = jnp.array([0.0, 0.1, 0.2])
    swept = jax.vmap(lambda e: JL.label_smoothing_cross_entropy(z, y, smoothing=e))(eps)
    ref = jax.vmap(lambda e: jnp.mean(optax.softmax_cross_entropy(z, optax.smooth_labels(jax.nn.one_hot(y, 4), e))))(eps)
    np.testing.assert_allclose(swept, ref, **CE_TOL)
    np.testing.assert_allclose(swept, [JL.label_smoothing_cross_entropy(z, y, smoothing=float(e)) for e in eps], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda e: JL.smooth_labels(y, 4, e))(eps), [JL.smooth_labels(y, 4, float(e)) for e in eps], rtol=0, atol=2.5e-7)
    temps = jnp.array([0.5, 1.0, 4.0])
    np.testing.assert_allclose(
        jax.vmap(lambda T: JL.distillation_loss(z, teacher, temperature=T))(temps),
        [JL.distillation_loss(z, teacher, temperature=float(T)) for T in temps], rtol=1e-5, atol=1e-5)
    alphas = jnp.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(
        jax.vmap(lambda a: JL.kd_loss(z, teacher, y, temperature=2.0, alpha=a))(alphas),
        [JL.kd_loss(z, teacher, y, temperature=2.0, alpha=float(a)) for a in alphas], rtol=1e-5, atol=1e-5)
    traces = []

    @jax.jit
    def loss(e, T, a):
        traces.append(1)
        return JL.label_smoothing_cross_entropy(z, y, smoothing=e) + JL.kd_loss(z, teacher, y, temperature=T, alpha=a)

    for e, T, a in ((0.1, 1.0, 0.5), (0.2, 4.0, 0.9), (0.0, 2.0, 0.0)):
        np.testing.assert_allclose(
            loss(jnp.float32(e), jnp.float32(T), jnp.float32(a)),
            JL.label_smoothing_cross_entropy(z, y, smoothing=e) + JL.kd_loss(z, teacher, y, temperature=T, alpha=a),
            rtol=1e-5, atol=1e-5)
    assert len(traces) == 1


def test_jax_hyperparameter_checks_eager_and_traced():
    """Concrete values (Python or arrays) are range-checked; traced ones are not (documented)."""
    z, y = jnp.zeros((2, 3)), jnp.array([0, 2])
    for bad in (jnp.float32(1.5), np.float32(-0.1), 1.5, jnp.float32(jnp.nan)):
        with pytest.raises(ValueError, match="smoothing"):
            JL.label_smoothing_cross_entropy(z, y, smoothing=bad)
    with pytest.raises(ValueError, match="temperature"):
        JL.distillation_loss(z, z, temperature=jnp.float32(jnp.inf))
    with pytest.raises(ValueError, match="alpha"):
        JL.kd_loss(z, z, y, alpha=jnp.float32(2.0))
    with pytest.raises(ValueError, match="smoothing.*scalar"):
        JL.label_smoothing_cross_entropy(z, y, smoothing=jnp.array([0.1, 0.2]))
    with pytest.raises(TypeError, match="smoothing"):
        JL.label_smoothing_cross_entropy(z, y, smoothing="0.1")
    out = jax.jit(lambda e: JL.label_smoothing_cross_entropy(z, y, smoothing=e))(jnp.float32(1.5))  # not checked
    assert out.shape == ()


# ------------------------------------------------------------------------------------------
# Distillation
# ------------------------------------------------------------------------------------------


@st.composite
def few_shape_distillation_cases(draw):
    """Distillation cases on 4 shapes (eager jax compiles each op once per shape)."""
    n, k = draw(st.sampled_from([1, 3])), draw(st.sampled_from([2, 10]))
    student = draw(S.logits(n, k))
    teacher = student.copy() if draw(st.booleans()) and draw(st.booleans()) else draw(S.logits(n, k))
    return dict(
        student_logits=student,
        teacher_logits=teacher,
        labels=draw(S.int_labels(n, k)),
        temperature=draw(S.temperatures(any_float=True)),
        alpha=draw(S.kd_alphas(any_float=True)),
    )


@given(few_shape_distillation_cases())
def test_distillation_matches_kl_div(case):
    T = case["temperature"]
    s = torch.from_numpy(case["student_logits"])
    t = torch.from_numpy(case["teacher_logits"])
    ref_t = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True) * T**2
    ours_t = TL.distillation_loss(s, t, temperature=T)
    # T² <= 100 times a difference of float32 log-softmaxes (ulps of |log p| <= 60)
    torch.testing.assert_close(ours_t, ref_t, rtol=1e-5, atol=1e-4)
    ref_j = jnp.mean(optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(s.numpy() / T), jax.nn.log_softmax(t.numpy() / T))) * T**2
    ours_j = JL.distillation_loss(jnp.asarray(s.numpy()), jnp.asarray(t.numpy()), temperature=T)
    np.testing.assert_allclose(ours_j, ref_j, rtol=1e-5, atol=1e-4)
    assert float(ours_t) >= -1e-5 and float(ours_j) >= -1e-5  # KL >= 0 up to rounding

    # kd_loss is the alpha-weighted sum with the plain cross-entropy.
    a = case["alpha"]
    y = torch.from_numpy(case["labels"])
    kd = TL.kd_loss(s, t, y, temperature=T, alpha=a)
    torch.testing.assert_close(kd, a * ours_t + (1 - a) * F.cross_entropy(s, y), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(TL.DistillationLoss(T, a)(s, t, y), kd)
    kd_j = JL.kd_loss(jnp.asarray(s.numpy()), jnp.asarray(t.numpy()), jnp.asarray(case["labels"]), temperature=T, alpha=a)
    np.testing.assert_allclose(kd_j, float(kd), rtol=1e-5, atol=1e-4)  # parity of the two, as above


def test_distillation_is_zero_iff_tempered_distributions_equal():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 5, generator=g) * 5
    for T in (0.5, 1.0, 4.0):
        # equal up to a per-row shift: the same softmax, so exactly the same distribution
        shifted = s + torch.arange(6.0)[:, None]
        assert abs(float(TL.distillation_loss(s, shifted, temperature=T))) < 1e-5
        assert abs(float(JL.distillation_loss(jnp.asarray(s.numpy()), jnp.asarray(shifted.numpy()), temperature=T))) < 1e-5
        other = s.flip(1)
        assert float(TL.distillation_loss(s, other, temperature=T)) > 1e-3
        per_sample = TL.distillation_loss(s, other, temperature=T, reduction="none")
        assert per_sample.shape == (6,) and (per_sample >= 0).all()
        torch.testing.assert_close(per_sample.sum(), TL.distillation_loss(s, other, temperature=T, reduction="sum"))


def test_teacher_carries_no_gradient():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    TL.kd_loss(s, t, torch.tensor([0, 1, 2, 0])).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0
    gs, gt = jax.grad(lambda s, t: JL.kd_loss(s, t, jnp.array([0, 1, 2, 0])), argnums=(0, 1))(
        jnp.asarray(s.detach().numpy()), jnp.asarray(t.detach().numpy())
    )
    assert float(jnp.abs(gt).sum()) == 0.0 and float(jnp.abs(gs).sum()) > 0


def test_temperature_squared_keeps_gradient_magnitudes_comparable():
    """Hinton et al. §2.1: for T large the gradient of KL·T² tends to (z_s - z_t)/(N·K) for
    zero-mean logits; without the T² factor it would shrink like 1/T²."""
    rng = np.random.default_rng(0)
    n, k = 4, 6
    s = rng.normal(size=(n, k)).astype(np.float64)
    t = rng.normal(size=(n, k)).astype(np.float64)
    s -= s.mean(1, keepdims=True)
    t -= t.mean(1, keepdims=True)
    norms = []
    for T in (2.0, 8.0, 32.0, 200.0):
        z = torch.from_numpy(s).requires_grad_()
        TL.distillation_loss(z, torch.from_numpy(t), temperature=T).backward()
        norms.append(float(z.grad.norm()))
        gj = jax.grad(lambda z: JL.distillation_loss(z, jnp.asarray(t, jnp.float32), temperature=T))(jnp.asarray(s, jnp.float32))
        np.testing.assert_allclose(np.asarray(gj), z.grad.numpy(), rtol=1e-3, atol=1e-6)  # float32 vs float64
    assert max(norms) / min(norms) < 1.5, norms  # comparable across T (unscaled: a factor 10^4)
    np.testing.assert_allclose(z.grad.numpy(), (s - t) / (n * k), rtol=0.02, atol=1e-6)  # the high-T limit


# ------------------------------------------------------------------------------------------
# jax: jit and vmap agree with eager
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_jax_jit_and_vmap_match_eager(reduction):
    rng = np.random.default_rng(2)
    z = jnp.asarray(rng.normal(size=(3, 4, 5)) * 5, jnp.float32)  # 3 problems of [4, 5]
    y = jnp.asarray(rng.integers(0, 5, (3, 4)))
    teacher = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)
    fns = [
        lambda z, y, t: JL.label_smoothing_cross_entropy(z, y, smoothing=0.2, reduction=reduction),
        lambda z, y, t: JL.soft_target_cross_entropy(z, JL.smooth_labels(y, 5, 0.1), reduction=reduction),
        lambda z, y, t: JL.kd_loss(z, t, y, temperature=3.0, alpha=0.7),
        lambda z, y, t: JL.distillation_loss(z, t, temperature=2.0),
    ]
    for fn in fns:
        eager = np.stack([np.asarray(fn(z[i], y[i], teacher[i])) for i in range(3)])
        # XLA may fuse and reorder float32 ops under jit: a few ulps of values <= ~50.
        np.testing.assert_allclose(jax.vmap(fn)(z, y, teacher), eager, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(np.asarray(jax.jit(fn)(z[0], y[0], teacher[0])), eager[0], rtol=1e-6, atol=1e-5)


# ------------------------------------------------------------------------------------------
# torch: inputs are not modified
# ------------------------------------------------------------------------------------------


def test_torch_losses_leave_inputs_unmodified():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 3, 1, 2, 3])
    soft = torch.softmax(torch.randn(5, 4, generator=g), 1)
    copies = [x.clone() for x in (s, t, y, soft)]
    TL.label_smoothing_cross_entropy(s, y, smoothing=0.3)
    TL.label_smoothing_cross_entropy(s, soft, smoothing=0.3)
    TL.smooth_labels(soft, 4, 0.5)
    TL.soft_target_cross_entropy(s, soft)
    TL.kd_loss(s, t, y)
    TL.kd_loss(s, t, soft)
    for before, after in zip(copies, (s, t, y, soft)):
        assert torch.equal(before, after)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------

_Z = np.zeros((2, 3), np.float32)
_Y = np.array([0, 2])


def _bad_calls(L, arr):
    z, y = arr(_Z), arr(_Y)
    return [
        (ValueError, "logits", lambda: L.label_smoothing_cross_entropy(arr(np.zeros((), np.float32)), y)),
        (TypeError, "labels", lambda: L.label_smoothing_cross_entropy(arr(np.zeros(3, np.float32)), y)),
        (ValueError, "labels", lambda: L.label_smoothing_cross_entropy(arr(np.zeros((2, 3, 4), np.float32)), y)),
        (TypeError, "logits", lambda: L.label_smoothing_cross_entropy(arr(np.zeros((2, 3), np.int32)), y)),
        (ValueError, "labels", lambda: L.label_smoothing_cross_entropy(z, arr(np.array([0, 3])))),
        (ValueError, "labels", lambda: L.label_smoothing_cross_entropy(z, arr(np.array([-1, 0])))),
        (ValueError, "labels", lambda: L.label_smoothing_cross_entropy(z, arr(np.zeros((2, 3, 1), np.float32)))),
        (TypeError, "labels", lambda: L.label_smoothing_cross_entropy(z, arr(np.zeros((2, 3), np.int64)))),
        (ValueError, "labels", lambda: L.label_smoothing_cross_entropy(z, arr(np.zeros((2, 4), np.float32)))),
        (ValueError, "batch sizes", lambda: L.label_smoothing_cross_entropy(z, arr(np.array([0, 1, 2])))),
        (ValueError, "smoothing", lambda: L.label_smoothing_cross_entropy(z, y, smoothing=-0.1)),
        (ValueError, "smoothing", lambda: L.label_smoothing_cross_entropy(z, y, smoothing=1.5)),
        (ValueError, "smoothing", lambda: L.smooth_labels(y, 3, 1.01)),
        (ValueError, "reduction", lambda: L.label_smoothing_cross_entropy(z, y, reduction="avg")),
        (ValueError, "labels", lambda: L.smooth_labels(arr(np.array([5])), 3, 0.1)),
        (ValueError, "num_classes", lambda: L.smooth_labels(y, 0, 0.1)),
        (TypeError, "targets", lambda: L.soft_target_cross_entropy(z, y)),
        (ValueError, "targets", lambda: L.soft_target_cross_entropy(z, arr(np.zeros((2, 4), np.float32)))),
        (ValueError, "temperature", lambda: L.distillation_loss(z, z, temperature=0.0)),
        (ValueError, "temperature", lambda: L.distillation_loss(z, z, temperature=-1.0)),
        (ValueError, "temperature", lambda: L.distillation_loss(z, z, temperature=float("inf"))),
        (ValueError, "temperature", lambda: L.distillation_loss(z, z, temperature=float("nan"))),
        (ValueError, "temperature", lambda: L.kd_loss(z, z, y, temperature=float("inf"))),
        (ValueError, "alpha", lambda: L.kd_loss(z, z, y, alpha=float("inf"))),
        (ValueError, "alpha", lambda: L.kd_loss(z, z, y, alpha=float("nan"))),
        (ValueError, "smoothing", lambda: L.label_smoothing_cross_entropy(z, y, smoothing=float("nan"))),
        (ValueError, "same shape", lambda: L.distillation_loss(z, arr(np.zeros((2, 4), np.float32)), temperature=1.0)),
        (ValueError, "alpha", lambda: L.kd_loss(z, z, y, alpha=1.5)),
        (ValueError, "alpha", lambda: L.kd_loss(z, z, y, alpha=-0.5)),
        (ValueError, "temperature", lambda: L.kd_loss(z, z, y, temperature=0)),
        (ValueError, "labels", lambda: L.kd_loss(z, z, arr(np.array([0, 7])))),
    ]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_bad_input_raises_clear_errors(backend):
    L, arr = (TL, torch.as_tensor) if backend == "torch" else (JL, jnp.asarray)
    for exc, word, call in _bad_calls(L, arr):
        with pytest.raises(exc, match=word):
            call()


def test_torch_modules_validate_at_construction():
    with pytest.raises(ValueError, match="smoothing"):
        TL.LabelSmoothingCrossEntropy(smoothing=-0.1)
    with pytest.raises(ValueError, match="reduction"):
        TL.SoftTargetCrossEntropy(reduction="batchmean")
    with pytest.raises(ValueError, match="temperature"):
        TL.DistillationLoss(temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        TL.DistillationLoss(alpha=2)
    with pytest.raises(ValueError, match="temperature"):
        TL.DistillationLoss(temperature=float("inf"))
    with pytest.raises(TypeError, match="ignore_index"):
        TL.LabelSmoothingCrossEntropy(ignore_index=1.5)
