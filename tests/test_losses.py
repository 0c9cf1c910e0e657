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
