"""AdaBound / AMSBound / AdaBoundW: torch_impl.optim and jax_impl.optim against each other and
against an independent NumPy transcription of the issue's algorithm.

float64 jax runs use ``jax.enable_x64(True)`` as a context manager (inside the adapters in
``parity.tricks.optim`` or in the test body), so the flag never leaks into other test modules.
"""

from __future__ import annotations

import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import jax_impl.optim as JO
import torch_impl.optim as TO
from conftest import slow_scale
from parity import strategies as S
from parity.tricks.optim import MEMBERS, jax_trajectory, torch_trajectory

FLAGS = {  # member -> (amsbound, decoupled weight decay)
    "adabound": (False, False),
    "amsbound": (True, False),
    "adaboundw": (False, True),
}
EPS32 = 2.0**-24  # float32 unit roundoff
STEPS = 200


def fewer_examples(divisor: int = 3) -> settings:
    """The loaded profile with ``max_examples`` divided: each example is a 200-step trajectory
    in both frameworks (~0.5 s), so these bodies run a third as often as the profile's default."""
    base = settings.default
    return settings(base, max_examples=max(3, base.max_examples // divisor))


# ----------------------------------------------------------------------------------------------
# The independent NumPy transcription (from the formulas, float64, literal)
# ----------------------------------------------------------------------------------------------


def numpy_adabound(p0, grads, lrs, *, base_lr, final_lr, b1, b2, gamma, eps, weight_decay, amsbound, decoupled):
    """The issue's algorithm written out literally in float64; returns the params after each step.

    The decoupled decay ``p -= weight_decay·p`` uses the parameter before this step's update
    (as the paper's reference AdaBoundW does).
    """
    p = np.array(p0, dtype=np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    v_hat = np.zeros_like(p)
    out = []
    for t, (g, lr) in enumerate(zip(np.asarray(grads, np.float64), lrs), start=1):
        if not decoupled:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        if amsbound:
            v_hat = np.maximum(v_hat, v)
            v_used = v_hat
        else:
            v_used = v
        step_size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        final = final_lr * lr / base_lr
        lower = final * (1 - 1 / (gamma * t + 1))
        upper = final * (1 + 1 / (gamma * t)) if gamma * t > 0 else math.inf
        new = p - np.clip(step_size / (np.sqrt(v_used) + eps), lower, upper) * m
        if decoupled:
            new = new - weight_decay * p
        p = new
        out.append(p)
    return np.stack(out)


def numpy_case(member: str, case: dict) -> np.ndarray:
    amsbound, decoupled = FLAGS[member]
    return numpy_adabound(
        case["params"], case["grads"], case["lr"] * np.asarray(case["lr_scale"], np.float64),
        base_lr=case["lr"], final_lr=case["final_lr"], b1=case["b1"], b2=case["b2"],
        gamma=case["gamma"], eps=case["eps"], weight_decay=case["weight_decay"],
        amsbound=amsbound, decoupled=decoupled,
    )


def float32_tolerance(p0, reference: np.ndarray) -> np.ndarray:
    """Per-element tolerance for a float32 trajectory of T steps against float64 / the other framework.

    Both sides round the same operations in float32 but not always identically (fused
    multiply-adds, float64 vs float32 schedule scalars in torch vs jax): per step, ``p - update``
    may round to a different neighbour (<= 1 ulp of |p|) and the update itself differs by a few
    ulps of |update|. The gradients never depend on p except through weight decay (a
    contraction), so the differences add up: ``ε32·(T·max|p| + 16·Σ|Δp|)``.
    """
    full = np.concatenate([np.asarray(p0, np.float64)[None], reference])
    steps = reference.shape[0]
    return EPS32 * (steps * np.abs(full).max(0) + 16 * np.abs(np.diff(full, axis=0)).sum(0))


def assert_within(actual, expected, tol, what):
    err = np.abs(np.asarray(actual, np.float64) - expected)
    bad = err > tol
    assert not bad.any(), f"{what}: max error {err.max():.3g}, tolerance there {tol[bad].min():.3g}"


# ----------------------------------------------------------------------------------------------
# Trajectory parity: 200 steps, hypothesis-drawn shapes, gradients and hyperparameters
# ----------------------------------------------------------------------------------------------

_HUGE_GAMMA_CASE = dict(  # found by hypothesis: 1/(γt) overflows float32 (torch refused the clamp)
    params=np.float32(0.0), grads=np.ones((STEPS,), np.float32), scheduled=False,
    lr_scale=np.ones(STEPS), lr=1e-3, final_lr=0.1, b1=0.9, b2=0.999,
    gamma=1.401298464324817e-45, eps=1e-8, weight_decay=0.0,
)


@fewer_examples()
@given(case=S.optimizer_cases(steps=STEPS), member=st.sampled_from(list(MEMBERS)))
def test_trajectory_parity_float64(case, member):
    ref = numpy_case(member, case)
    t = torch_trajectory(member, case, dtype="float64")
    j = jax_trajectory(member, case, dtype="float64", jit=True)
    assert t.dtype == j.dtype == np.float64
    # float64: the three evaluate the same formulas; rounding differences of ~1e-16 relative
    # per step, over 200 steps of at most ~1e3 each, stay far below 1e-10.
    np.testing.assert_allclose(t, j, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(t, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(j, ref, rtol=1e-10, atol=1e-10)


@fewer_examples()
@given(case=S.optimizer_cases(steps=STEPS, dtype=np.float32), member=st.sampled_from(list(MEMBERS)))
@example(case=_HUGE_GAMMA_CASE, member="adabound")
def test_trajectory_parity_float32(case, member):
    ref = numpy_case(member, case)  # float64 truth from the float32 inputs
    t = torch_trajectory(member, case, dtype="float32")
    j = jax_trajectory(member, case, dtype="float32", jit=True)  # jax's default: x64 off
    assert t.dtype == j.dtype == np.float32
    tol = float32_tolerance(case["params"], ref)
    assert_within(t, j, tol, "torch vs jax")
    assert_within(t, ref, tol, "torch vs float64 NumPy")
    assert_within(j, ref, tol, "jax vs float64 NumPy")


# ----------------------------------------------------------------------------------------------
# Schedules: torch lr_scheduler vs the equivalent optax schedule
# ----------------------------------------------------------------------------------------------

LR = 1e-2


def _warmup_factor(epoch):
    return min(1.0, (epoch + 1) / 10) * 0.99 ** max(0, epoch - 9)


def _torch_sched(kind, opt):
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS, eta_min=0.01 * LR)
    if kind == "warmup":
        return torch.optim.lr_scheduler.LambdaLR(opt, _warmup_factor)
    return None


def _jax_lr(kind):
    """(learning_rate, extra kwargs) equal to ``_torch_sched(kind)``."""
    if kind == "cosine":
        return optax.cosine_decay_schedule(LR, decay_steps=STEPS, alpha=0.01), {}
    if kind == "warmup":
        # LambdaLR starts at 0.1·lr while torch_impl's base lr is the constructor's lr: say so.
        def sched(count):
            e = count.astype(jnp.result_type(float))  # int32 / 10 would be float32 even with x64
            return LR * jnp.minimum(1.0, (e + 1) / 10) * 0.99 ** jnp.maximum(0.0, e - 9)

        return sched, {"base_lr": LR}
    return LR, {}


def _fixed_grads(shape, steps, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, *shape)) * np.logspace(-3, 1, steps)[:, None, None]


def _run_torch_sched(member, kind, wd, p0, grads, dtype):
    tdt = getattr(torch, dtype)
    p = torch.nn.Parameter(torch.tensor(p0, dtype=tdt))
    opt = getattr(TO, MEMBERS[member][0])([p], lr=LR, weight_decay=wd)
    sched = _torch_sched(kind, opt)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=tdt)
        opt.step()
        if sched is not None:
            sched.step()
        out.append(p.detach().clone().numpy())
    return np.stack(out)


def _run_jax_sched(member, kind, wd, p0, grads, dtype):
    lr, kw = _jax_lr(kind)
    tx = getattr(JO, MEMBERS[member][1])(lr, weight_decay=wd, **kw)
    params = jnp.asarray(p0, dtype)
    state = tx.init(params)

    def body(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    _, traj = jax.jit(lambda c, gs: jax.lax.scan(body, c, gs))((params, state), jnp.asarray(grads, dtype))
    return np.asarray(traj)


@pytest.mark.parametrize("kind", ["constant", "cosine", "warmup"])
@pytest.mark.parametrize("wd", [0.0, 1e-2])
@pytest.mark.parametrize("member", list(MEMBERS))
def test_schedule_parity(member, wd, kind):
    p0 = np.random.default_rng(1).normal(size=(3, 4))
    grads = _fixed_grads((3, 4), STEPS, seed=2)
    lrs = {
        "constant": np.full(STEPS, LR),
        "cosine": 0.01 * LR + 0.99 * LR * (1 + np.cos(np.pi * np.arange(STEPS) / STEPS)) / 2,
        "warmup": LR * np.array([_warmup_factor(e) for e in range(STEPS)]),
    }[kind]
    amsbound, decoupled = FLAGS[member]
    ref = numpy_adabound(
        p0, grads, lrs, base_lr=LR, final_lr=0.1, b1=0.9, b2=0.999, gamma=1e-3, eps=1e-8,
        weight_decay=wd, amsbound=amsbound, decoupled=decoupled,
    )
    t64 = _run_torch_sched(member, kind, wd, p0, grads, "float64")
    with jax.enable_x64(True):
        j64 = _run_jax_sched(member, kind, wd, p0, grads, "float64")
    # float64: rounding only (torch's cosine schedule is recursive, ~1e-16 relative per step)
    np.testing.assert_allclose(t64, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(j64, ref, rtol=1e-10, atol=1e-10)

    p0_32 = p0.astype(np.float32)
    grads32 = grads.astype(np.float32)
    ref32 = numpy_adabound(
        p0_32, grads32, lrs, base_lr=LR, final_lr=0.1, b1=0.9, b2=0.999, gamma=1e-3, eps=1e-8,
        weight_decay=wd, amsbound=amsbound, decoupled=decoupled,
    )
    t32 = _run_torch_sched(member, kind, wd, p0_32, grads32, "float32")
    j32 = _run_jax_sched(member, kind, wd, p0_32, grads32, "float32")
    tol = float32_tolerance(p0_32, ref32)  # the schedule adds ~1 ulp to each update in jax (float32 cos)
    assert_within(t32, j32, tol, "torch vs jax float32")
    assert_within(j32, ref32, tol, "jax float32 vs NumPy")
    assert_within(t32, ref32, tol, "torch float32 vs NumPy")
