"""AdaBound / AMSBound / AdaBoundW: torch_impl.optim and jax_impl.optim against each other and
against an independent NumPy transcription of the issue's algorithm.

float64 jax runs use ``jax.enable_x64(True)`` as a context manager (inside the adapters in
``parity.tricks.optim`` or in the test body), so the flag never leaks into other test modules.
"""

from __future__ import annotations

import functools
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


def numpy_adabound(p0, grads, lrs, *, base_lr, final_lr, b1, b2, gamma, eps, weight_decay, amsbound, decoupled,
                   lr_scaled_decay=False):
    """The issue's algorithm written out literally in float64; returns the params after each step.

    The decoupled decay ``p -= weight_decay·p`` uses the parameter before this step's update
    (as the paper's reference AdaBoundW does); ``lr_scaled_decay`` makes it AdamW's
    ``p -= lr·weight_decay·p`` (Loshchilov & Hutter as torch.optim.AdamW implements it).
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
        if final == 0:
            upper = 0.0  # the limit; 0·(1 + 1/(γt)) is NaN when 1/(γt) overflows
        else:
            upper = final * (1 + 1 / (gamma * t)) if gamma * t > 0 else math.inf
        new = p - np.clip(step_size / (np.sqrt(v_used) + eps), lower, upper) * m
        if decoupled:
            new = new - (lr * weight_decay if lr_scaled_decay else weight_decay) * p
        p = new
        out.append(p)
    return np.stack(out)


def numpy_case(member: str, case: dict, *, lr_scaled_decay: bool = False) -> np.ndarray:
    amsbound, decoupled = FLAGS[member]
    return numpy_adabound(
        case["params"], case["grads"], case["lr"] * np.asarray(case["lr_scale"], np.float64),
        base_lr=case["lr"], final_lr=case["final_lr"], b1=case["b1"], b2=case["b2"],
        gamma=case["gamma"], eps=case["eps"], weight_decay=case["weight_decay"],
        amsbound=amsbound, decoupled=decoupled, lr_scaled_decay=lr_scaled_decay,
    )


def float32_tolerance(p0, reference: np.ndarray) -> np.ndarray:
    """Per-element tolerance for a float32 trajectory of T steps against float64 / the other framework.

    Both sides round the same operations in float32 but not always identically (fused
    multiply-adds, float64 vs float32 schedule scalars in torch vs jax): per step, ``p - update``
    may round to a different neighbour (<= 1 ulp of |p|) and the update itself differs by a few
    ulps of |update|. The gradients never depend on p except through weight decay (a
    contraction), so the differences add up: ``ε32·(T·max|p| + 16·Σ|Δp|)``. XLA on CPU flushes
    float32 subnormals to zero and torch does not, which moves p by less than the smallest
    normal (``tiny``) per step: ``+ T·tiny``.
    """
    full = np.concatenate([np.asarray(p0, np.float64)[None], reference])
    steps = reference.shape[0]
    tiny = float(np.finfo(np.float32).tiny)
    return EPS32 * (steps * np.abs(full).max(0) + 16 * np.abs(np.diff(full, axis=0)).sum(0)) + steps * tiny


def assert_within(actual, expected, tol, what):
    err = np.atleast_1d(np.abs(np.asarray(actual, np.float64) - expected))
    tol = np.broadcast_to(tol, err.shape[1:])[None] * np.ones_like(err)
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


HP_KEYS = ("lr", "final_lr", "b1", "b2", "gamma", "eps", "weight_decay")


def scan_trajectory(tx, params, grads):
    """Apply ``tx`` over ``grads`` (leading axis = steps) with ``lax.scan``; the params after each step."""

    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), p

    return jax.lax.scan(body, (params, tx.init(params)), grads)[1]


@functools.lru_cache(maxsize=None)
def _scan_trajectory(member: str, scheduled: bool):
    """A jitted 200-step run whose hyperparameters are *traced* float64 arguments, so one
    compilation serves every drawn case of a shape (the adapters bake them in as constants and
    compile per case). Only for float64: in float32 a traced β2 = f32(0.999) would shift
    ``1 - β2^t`` by 1e-5 relative, which is not what a user passing Python floats gets."""

    def run(params, grads, hp, factors):
        lr = (lambda count: hp["lr"] * factors[count]) if scheduled else hp["lr"]
        tx = getattr(JO, MEMBERS[member][1])(
            lr, base_lr=hp["lr"], **{k: hp[k] for k in HP_KEYS if k != "lr"}
        )
        return scan_trajectory(tx, params, grads)

    return jax.jit(run)


def jax_trajectory_float64(member: str, case: dict) -> np.ndarray:
    with jax.enable_x64(True):
        hp = {k: jnp.asarray(case[k], jnp.float64) for k in HP_KEYS}
        out = _scan_trajectory(member, bool(case["scheduled"]))(
            jnp.asarray(case["params"], jnp.float64), jnp.asarray(case["grads"], jnp.float64),
            hp, jnp.asarray(case["lr_scale"], jnp.float64),
        )
        return np.asarray(out)


@fewer_examples()
@given(case=S.optimizer_cases(steps=STEPS, min_b2=0.9), member=st.sampled_from(list(MEMBERS)))
def test_trajectory_parity_float64(case, member):
    ref = numpy_case(member, case)
    t = torch_trajectory(member, case, dtype="float64")
    j = jax_trajectory_float64(member, case)
    assert t.dtype == j.dtype == np.float64
    # float64: the three evaluate the same formulas; rounding differences of ~1e-16 relative
    # per step, over 200 steps of at most ~1e3 each, stay far below 1e-10.
    np.testing.assert_allclose(t, j, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(t, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(j, ref, rtol=1e-10, atol=1e-10)


@fewer_examples()
@given(case=S.optimizer_cases(steps=STEPS, dtype=np.float32, min_b2=0.9), member=st.sampled_from(list(MEMBERS)))
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


@functools.lru_cache(maxsize=None)
def _jax_sched_runner(member, kind, dtype):
    """A jitted 200-step scan; ``weight_decay`` is a traced argument, so both decays share one
    compilation (``g + 0·p`` is exactly ``g`` for finite p)."""
    lr, kw = _jax_lr(kind)

    def run(params, grads, wd):
        tx = getattr(JO, MEMBERS[member][1])(lr, weight_decay=wd, **kw)
        return scan_trajectory(tx, params, grads)

    return jax.jit(run)


def _run_jax_sched(member, kind, wd, p0, grads, dtype):
    run = _jax_sched_runner(member, kind, dtype)
    return np.asarray(run(jnp.asarray(p0, dtype), jnp.asarray(grads, dtype), jnp.asarray(wd, dtype)))


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


# ----------------------------------------------------------------------------------------------
# Gradients of a real loss (the trajectory feeds back into the gradients): a tiny tanh regression
# ----------------------------------------------------------------------------------------------


def _regression_data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 3))
    y = np.tanh(x @ rng.normal(size=(3, 2)) + 0.3) + 0.1 * rng.normal(size=(16, 2))
    params = {"w": rng.normal(size=(3, 2)) * 0.1, "b": np.zeros(2)}
    return x, y, params


@pytest.mark.parametrize("wd", [0.0, 1e-2])
@pytest.mark.parametrize("member", list(MEMBERS))
def test_real_loss_parity_float64(member, wd):
    x, y, p0 = _regression_data()
    lr, steps = 3e-2, STEPS

    tw = torch.nn.Parameter(torch.tensor(p0["w"]))
    tb = torch.nn.Parameter(torch.tensor(p0["b"]))
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = getattr(TO, MEMBERS[member][0])([tw, tb], lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    torch_w, torch_loss = [], []

    def closure():
        opt.zero_grad()
        loss = ((torch.tanh(xt @ tw + tb) - yt) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        torch_loss.append(float(opt.step(closure).detach()))
        sched.step()
        torch_w.append(tw.detach().numpy().copy())

    with jax.enable_x64(True):
        tx = getattr(JO, MEMBERS[member][1])(optax.cosine_decay_schedule(lr, steps), weight_decay=wd)
        xj, yj = jnp.asarray(x), jnp.asarray(y)

        def loss_fn(p):
            return jnp.mean((jnp.tanh(xj @ p["w"] + p["b"]) - yj) ** 2)

        def body(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            p = optax.apply_updates(p, u)
            return (p, s), (p["w"], loss)

        params = jax.tree.map(jnp.asarray, p0)
        _, (jax_w, jax_loss) = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))(
            (params, tx.init(params))
        )
        jax_w, jax_loss = np.asarray(jax_w), np.asarray(jax_loss)
    # float64 with feedback through the gradients; the loss is smooth and the steps small, so
    # rounding differences (~1e-16) are not amplified beyond ~1e-12 over 200 steps.
    np.testing.assert_allclose(np.stack(torch_w), jax_w, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(torch_loss, jax_loss, rtol=1e-10, atol=1e-12)
    assert torch_loss[-1] < 0.5 * torch_loss[0]  # and it actually trains


# ----------------------------------------------------------------------------------------------
# Properties: the effective step lies in [lower, upper]; the bounds at t = 1 and t -> inf
# ----------------------------------------------------------------------------------------------


def _bounds(t, final, gamma):
    """The issue's bounds, literally (a zero ``final`` gives [0, 0], the limit, not 0·inf)."""
    lower = final * (1 - 1 / (gamma * t + 1))
    upper = final * (1 + 1 / (gamma * t)) if gamma > 0 and final > 0 else (math.inf if final > 0 else 0.0)
    return lower, upper


@given(case=S.optimizer_cases(), amsbound=st.booleans())
def test_effective_step_within_bounds(case, amsbound):
    """Every element, every step: ``update / m`` lies in [lower_t, upper_t] (both frameworks)."""
    hp = dict(final_lr=case["final_lr"], gamma=case["gamma"], eps=case["eps"])
    lrs = case["lr"] * np.asarray(case["lr_scale"])
    grads = np.asarray(case["grads"])

    # jax: scale_by_adabound outputs clip(...)·m directly, so eff = out/m to 1 rounding.
    with jax.enable_x64(True):
        factors = jnp.asarray(case["lr_scale"])
        tx = JO.scale_by_adabound(
            lambda c: case["lr"] * factors[c], b1=case["b1"], b2=case["b2"], amsbound=amsbound,
            base_lr=case["lr"], **hp,
        )
        state = tx.init(jnp.asarray(case["params"]))
        jax_eff = []
        for g in grads:
            out, state = tx.update(jnp.asarray(g), state)
            jax_eff.append((np.asarray(out), np.asarray(state.mu)))

    # torch: eff = (p_old - p_new)/m from a start at 0 without weight decay (p_new - p_old is
    # then exact up to one rounding of |p| per step).
    p = torch.nn.Parameter(torch.zeros(np.shape(case["params"]), dtype=torch.float64))
    opt = TO.AdaBound([p], lr=case["lr"], betas=(case["b1"], case["b2"]), amsbound=amsbound, **hp)
    last = len(lrs) - 1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: float(case["lr_scale"][min(e, last)]))
    for t, g in enumerate(grads, start=1):
        lower, upper = _bounds(t, case["final_lr"] * lrs[t - 1] / case["lr"], case["gamma"])
        before = p.detach().clone().numpy()
        p.grad = torch.tensor(g)
        opt.step()
        sched.step()
        after = p.detach().numpy()
        m = opt.state[p]["exp_avg"].numpy()
        out, mu = jax_eff[t - 1]
        for delta, m_, slack in (
            (before - after, m, 4 * np.spacing(np.maximum(np.abs(before), np.abs(after)))),
            (out, mu, 4 * np.spacing(np.abs(out))),
        ):
            ok = np.abs(m_) > 0
            eff = delta[ok] / m_[ok]
            tol = slack[ok] / np.abs(m_[ok]) + 1e-12 * lower
            assert np.all(eff >= lower * (1 - 1e-12) - tol), (t, eff.min(), lower)
            assert np.all(eff <= upper * (1 + 1e-12) + tol), (t, eff.max(), upper)
            assert np.all(delta[~ok] == 0)  # m = 0: no move


def _single_step_eff(framework, g, *, t, lr=1e-3, final_lr=0.1, gamma=1e-3, base_lr=None):
    """Effective step ``Δp/m`` at step ``t`` for a scalar parameter at 0 with gradient ``g``,
    starting from zero moments at count ``t - 1`` (so ``m = (1-β1)·g``)."""
    b1 = 0.9
    m = (1 - b1) * g
    if framework == "torch":
        p = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
        opt = TO.AdaBound([p], lr=lr, final_lr=final_lr, gamma=gamma)
        if base_lr is not None:
            opt.param_groups[0]["base_lr"] = base_lr
        opt.state[p] = {"step": t - 1, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        return -float(p.detach()) / m
    with jax.enable_x64(True):
        tx = JO.adabound(lr, final_lr=final_lr, gamma=gamma, base_lr=base_lr)
        params = jnp.zeros((), jnp.float64)
        state = tx.init(params)
        state = (state[0], state[1]._replace(count=jnp.asarray(t - 1, jnp.int32)), state[2])
        updates, _ = tx.update(jnp.asarray(g, jnp.float64), state, params)
        return float(updates) / -m


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("gamma", [1e-3, 0.1])
def test_bounds_at_first_step(framework, gamma):
    final = 0.1
    # huge gradient: step_size/(sqrt(v)+eps) ~ 3e-10, far below the lower bound
    lo = _single_step_eff(framework, 1e6, t=1, final_lr=final, gamma=gamma)
    assert lo == pytest.approx(final * gamma / (gamma + 1), rel=1e-12)
    # tiny gradient: step_size/eps ~ 3e4, far above the upper bound
    hi = _single_step_eff(framework, 1e-12, t=1, final_lr=final, gamma=gamma)
    assert hi == pytest.approx(final * (1 + 1 / gamma), rel=1e-9)
    # an lr schedule at half the base lr halves both bounds
    lo_half = _single_step_eff(framework, 1e6, t=1, lr=5e-4, base_lr=1e-3, final_lr=final, gamma=gamma)
    assert lo_half == pytest.approx(final / 2 * gamma / (gamma + 1), rel=1e-12)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_bounds_converge_to_final_lr(framework):
    final, gamma = 0.1, 1e-3
    ts = [1, 10, 100, 1_000, 100_000, 10_000_000]
    lows = [_single_step_eff(framework, 1e6, t=t, final_lr=final, gamma=gamma) for t in ts]
    highs = [_single_step_eff(framework, 1e-12, t=t, final_lr=final, gamma=gamma) for t in ts]
    assert all(a < b for a, b in zip(lows, lows[1:])), lows  # lower bound rises...
    assert all(a > b for a, b in zip(highs, highs[1:])), highs  # ...upper bound falls...
    assert all(lo < final < hi for lo, hi in zip(lows, highs))
    # ...both to final_lr: SGD with lr final_lr (within 1/(γt) = 1e-4 at t = 1e7)
    assert lows[-1] == pytest.approx(final, rel=2e-4)
    assert highs[-1] == pytest.approx(final, rel=2e-4)


# ----------------------------------------------------------------------------------------------
# Convergence from a fixed start
# ----------------------------------------------------------------------------------------------


def _rosenbrock_grad(p):
    """Gradient of (1-x)² + 100(y-x²)² (NumPy or jax arrays)."""
    x, y = p[0], p[1]
    return [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]


def _converge(framework, member, grad_fn, x0, steps, **hp):
    """Run ``steps`` steps of the optimizer on ``grad_fn`` from ``x0`` (float64); the final point."""
    if framework == "torch":
        p = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
        opt = getattr(TO, MEMBERS[member][0])([p], **hp)
        for _ in range(steps):
            p.grad = torch.tensor(np.asarray(grad_fn(p.detach().numpy()), np.float64))
            opt.step()
        return p.detach().numpy()
    lr = hp.pop("lr")
    with jax.enable_x64(True):
        tx = getattr(JO, MEMBERS[member][1])(lr, **hp)

        def body(carry, _):
            p, s = carry
            u, s = tx.update(jnp.stack(grad_fn(p)), s, p)
            return (optax.apply_updates(p, u), s), None

        p = jnp.asarray(x0, jnp.float64)
        (p, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))((p, tx.init(p)))
        return np.asarray(p)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("member", list(MEMBERS))
def test_converges_on_rosenbrock(framework, member):
    # final_lr below 2/λmax ≈ 2e-3 of the Hessian at the minimum, so the SGD phase is stable.
    x = _converge(framework, member, _rosenbrock_grad, [-1.5, 2.0], 5000, lr=0.1, final_lr=2e-3)
    assert np.abs(x - 1.0).max() < 5e-3, x
    assert (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2 < 1e-5


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("member", list(MEMBERS))
def test_converges_on_quadratic(framework, member):
    a, c = [1.0, 10.0, 100.0], [1.0, -2.0, 3.0]

    def grad(p):  # of Σ a_i (x_i - c_i)² / 2
        return [a[i] * (p[i] - c[i]) for i in range(3)]

    x = _converge(framework, member, grad, [0.0, 0.0, 0.0], 2000, lr=0.1, final_lr=0.01)
    np.testing.assert_allclose(x, c, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# torch: param groups, schedulers, state_dict resume, closure, no in-place changes to inputs
# ----------------------------------------------------------------------------------------------


def _grad_stream(seed, shapes, steps):
    rng = np.random.default_rng(seed)
    return [[torch.tensor(rng.normal(size=s)) for s in shapes] for _ in range(steps)]


@pytest.mark.parametrize("member", list(MEMBERS))
def test_torch_state_dict_resume_is_exact(member):
    """Save after 10 of 20 steps, rebuild with a *different* lr, load: the last 10 steps are
    bit-identical to an uninterrupted run (the base lr of the bounds comes back from the state)."""
    shapes = [(3, 4), (4,)]
    grads = _grad_stream(0, shapes, 20)
    init = [torch.randn(s, generator=torch.Generator().manual_seed(i), dtype=torch.float64) for i, s in enumerate(shapes)]
    cls = getattr(TO, MEMBERS[member][0])

    def build(lr):
        params = [torch.nn.Parameter(x.clone()) for x in init]
        opt = cls([{"params": params[:1]}, {"params": params[1:], "lr": 3e-2}], lr=lr, weight_decay=1e-2)
        return params, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)

    def run(params, opt, sched, gs):
        for g in gs:
            for p, gi in zip(params, g):
                p.grad = gi.clone()
            opt.step()
            sched.step()

    params, opt, sched = build(1e-2)
    run(params, opt, sched, grads)
    expected = [p.detach().clone() for p in params]

    params, opt, sched = build(1e-2)
    run(params, opt, sched, grads[:10])
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(), "params": [p.detach() for p in params]}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    assert [g["base_lr"] for g in saved["opt"]["param_groups"]] == [1e-2, 3e-2]

    params2, opt2, sched2 = build(0.5)  # the reference would now take 0.5 as the base lr
    with torch.no_grad():
        for p, x in zip(params2, saved["params"]):
            p.copy_(x)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert [g["base_lr"] for g in opt2.param_groups] == [1e-2, 3e-2]
    run(params2, opt2, sched2, grads[10:])
    for p, e in zip(params2, expected):
        assert torch.equal(p.detach(), e)


def test_torch_add_param_group_gets_its_own_base_lr():
    """A group added after some steps is optimized (the reference silently skips it) exactly as
    if it had its own optimizer with that lr."""
    gs = _grad_stream(1, [(3,), (2, 2)], 8)
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.full((2, 2), 2.0, dtype=torch.float64))
    opt = TO.AdaBound([a], lr=1e-2)
    for g in gs[:3]:
        a.grad = g[0]
        opt.step()
    opt.add_param_group({"params": [b], "lr": 0.1, "final_lr": 0.05})
    assert opt.param_groups[1]["base_lr"] == 0.1 and opt.param_groups[1]["gamma"] == 1e-3
    b_alone = torch.nn.Parameter(b.detach().clone())
    alone = TO.AdaBound([b_alone], lr=0.1, final_lr=0.05)
    for g in gs[3:]:
        a.grad, b.grad, b_alone.grad = g[0], g[1], g[1].clone()
        opt.step()
        alone.step()
    assert not torch.equal(b.detach(), torch.full((2, 2), 2.0, dtype=torch.float64))
    assert torch.equal(b.detach(), b_alone.detach())
    with pytest.raises(ValueError, match="final_lr"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "final_lr": -1.0})
    assert len(opt.param_groups) == 2  # the bad group was not kept


def test_torch_closure_grad_untouched_and_skips_params_without_grad():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    frozen = torch.nn.Parameter(torch.tensor([5.0]))
    opt = TO.AdaBound([p, frozen], lr=1e-2, weight_decay=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == 5.0
    assert torch.equal(p.grad, torch.tensor([2.0, -4.0]))  # the coupled decay did not write into .grad
    assert torch.equal(frozen.detach(), torch.tensor([5.0])) and len(opt.state[frozen]) == 0
    assert opt.state[p]["step"] == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_dtype_preserved(dtype):
    p = torch.nn.Parameter(torch.linspace(-1, 1, 6, dtype=dtype))
    opt = TO.AMSBound([p], lr=1e-2, weight_decay=1e-3)
    for _ in range(3):
        p.grad = torch.ones_like(p)
        opt.step()
    assert p.dtype == dtype
    assert all(opt.state[p][k].dtype == dtype for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
    assert torch.all(p.detach() < torch.linspace(-1, 1, 6, dtype=dtype))  # moved against the gradient


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_adaboundw_decay_is_not_scaled_by_lr(framework):
    """With zero gradients the update is pure decoupled decay: p ← (1 - wd)·p whatever the lr."""
    wd, p0 = 0.1, np.array([1.0, -3.0])
    for lr in (1e-3, 0.5):
        if framework == "torch":
            p = torch.nn.Parameter(torch.tensor(p0))
            opt = TO.AdaBoundW([p], lr=lr, weight_decay=wd)
            for _ in range(3):
                p.grad = torch.zeros(2, dtype=torch.float64)
                opt.step()
            out = p.detach().numpy()
        else:
            with jax.enable_x64(True):
                tx = JO.adaboundw(lr, weight_decay=wd)
                params = jnp.asarray(p0)
                state = tx.init(params)
                for _ in range(3):
                    u, state = tx.update(jnp.zeros(2), state, params)
                    params = optax.apply_updates(params, u)
                out = np.asarray(params)
        np.testing.assert_allclose(out, p0 * (1 - wd) ** 3, rtol=1e-15)


# ----------------------------------------------------------------------------------------------
# jax: optax composition, jit compiles once, dtypes, state round trip
# ----------------------------------------------------------------------------------------------


def _jax_run(tx, params, grads, *, jit=True):
    state = tx.init(params)

    def step(params, state, g):
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state

    step = jax.jit(step) if jit else step
    out = []
    for g in grads:
        params, state = step(params, state, g)
        out.append(params)
    return out, state


def _tree_grads(seed, steps):
    rng = np.random.default_rng(seed)
    return [
        {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.asarray(rng.normal(size=(2,)), jnp.float32)}
        for _ in range(steps)
    ]


def _tree_params():
    return {"w": jnp.linspace(-1, 1, 6, dtype=jnp.float32).reshape(3, 2), "b": jnp.zeros(2, jnp.float32)}


def _assert_trees_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def test_jax_composes_with_chain_and_inject_hyperparams():
    grads = _tree_grads(0, 10)
    sched = optax.cosine_decay_schedule(1e-2, 10)
    plain, _ = _jax_run(JO.adabound(sched, weight_decay=1e-2), _tree_params(), grads)
    # an inactive clip in front changes nothing
    chained, _ = _jax_run(optax.chain(optax.clip_by_global_norm(1e9), JO.adabound(sched, weight_decay=1e-2)), _tree_params(), grads)
    _assert_trees_close(chained[-1], plain[-1], rtol=0, atol=0)
    # injected schedule: the factory is rebuilt each step with the current lr, so base_lr is passed
    injected_tx = optax.inject_hyperparams(JO.adabound)(learning_rate=sched, weight_decay=1e-2, base_lr=1e-2)
    injected, state = _jax_run(injected_tx, _tree_params(), grads)
    # float32: the injected hyperparameters are float32 arrays (β2 = f32(0.999), so 1-β2^t moves
    # by ~1e-5 relative); over 10 steps of ~1e-2 that is < 1e-6
    _assert_trees_close(injected[-1], plain[-1], rtol=0, atol=1e-6)
    # the lr of the last step; float32 cancellation in 1 + cos(πt/T) near the end of the decay
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(float(sched(9)), rel=1e-4)
    # without base_lr the bounds would not follow the injected schedule: a different trajectory
    unfollowed, _ = _jax_run(optax.inject_hyperparams(JO.adabound)(learning_rate=sched, weight_decay=1e-2), _tree_params(), grads)
    assert not np.allclose(np.asarray(unfollowed[-1]["w"]), np.asarray(plain[-1]["w"]), rtol=0, atol=1e-6)


def test_jax_jit_compiles_once_and_matches_eager():
    traces = []
    tx = JO.amsbound(optax.exponential_decay(1e-2, 5, 0.5), weight_decay=1e-2)

    @jax.jit
    def step(params, state, g):
        traces.append(None)  # runs once per trace (= per compilation)
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state

    params, grads = _tree_params(), _tree_grads(1, 8)
    state = tx.init(params)
    for g in grads:
        params, state = step(params, state, g)
    assert len(traces) == 1
    assert step._cache_size() == 1
    eager, _ = _jax_run(tx, _tree_params(), grads, jit=False)
    # float32: XLA may fuse the jitted step's multiply-adds; a few ulps over 8 steps
    _assert_trees_close(params, eager[-1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("factory", ["adabound", "amsbound", "adaboundw"])
def test_jax_dtype_preserved(factory, dtype):
    tx = getattr(JO, factory)(1e-2, weight_decay=1e-3)
    params = jax.tree.map(lambda x: x.astype(dtype), _tree_params())
    grads = [jax.tree.map(lambda x: x.astype(dtype), g) for g in _tree_grads(2, 3)]
    state = tx.init(params)
    step = jax.jit(tx.update)
    for g in grads:
        updates, state = step(g, state, params)
        assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
        params = optax.apply_updates(params, updates)
    assert all(p.dtype == dtype for p in jax.tree.leaves(params))
    core = state[0] if factory == "adaboundw" else state[1]
    assert isinstance(core, JO.ScaleByAdaBoundState)
    moments = [core.mu, core.nu] + ([core.nu_max] if factory == "amsbound" else [])
    assert all(x.dtype == dtype for m in moments for x in jax.tree.leaves(m))
    assert (core.nu_max is None) == (factory != "amsbound")
    assert int(core.count) == 3


def test_jax_state_round_trip_through_numpy_resumes_exactly():
    tx = JO.adaboundw(optax.cosine_decay_schedule(1e-2, 20), weight_decay=1e-2)
    grads = _tree_grads(3, 20)
    full, _ = _jax_run(tx, _tree_params(), grads)
    first, state = _jax_run(tx, _tree_params(), grads[:10])
    state = jax.tree.map(lambda x: jnp.asarray(np.array(x)), state)  # e.g. via a checkpoint file
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    params = first[-1]
    for g in grads[10:]:
        params, state = step(params, state, g)
    _assert_trees_close(params, full[-1], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------

_BAD = [
    (dict(lr=-1e-3), ValueError, "lr"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr="fast"), TypeError, "lr"),
    (dict(final_lr=0.0), ValueError, "final_lr"),
    (dict(gamma=1.0), ValueError, "gamma"),
    (dict(gamma=-0.1), ValueError, "gamma"),
    (dict(eps=-1e-8), ValueError, "eps"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(amsbound="yes"), TypeError, "amsbound"),
    (dict(b1=1.0), ValueError, r"betas\[0\]|b1"),
    (dict(b2=-0.5), ValueError, r"betas\[1\]|b2"),
    (dict(lr=math.inf), ValueError, "lr"),
    (dict(lr=math.nan), ValueError, "lr"),
    (dict(final_lr=math.inf), ValueError, "final_lr"),
    (dict(eps=math.inf), ValueError, "eps"),
    (dict(weight_decay=math.inf), ValueError, "weight_decay"),
]


def _torch_kwargs(kw):
    kw = dict(kw)
    if "b1" in kw or "b2" in kw:
        kw["betas"] = (kw.pop("b1", 0.9), kw.pop("b2", 0.999))
    return kw


@pytest.mark.parametrize("kwargs,exc,match", _BAD)
def test_torch_rejects_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TO.AdaBound([torch.nn.Parameter(torch.zeros(2))], **_torch_kwargs(kwargs))


@pytest.mark.parametrize("kwargs,exc,match", _BAD)
def test_jax_rejects_bad_hyperparameters(kwargs, exc, match):
    kwargs = dict(kwargs)
    lr = kwargs.pop("lr", 1e-3)
    with pytest.raises(exc, match=match.replace("lr", "learning_rate") if match == "lr" else match):
        JO.adabound(lr, **kwargs)


def test_other_bad_input():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(TypeError, match="betas"):
        TO.AdaBound(p, betas=0.9)
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        JO.adabound(1e-3, decoupled_weight_decay=None)
    with pytest.raises(ValueError, match=r"learning_rate\(0\)"):  # a warm-up from 0 needs base_lr
        JO.adabound(optax.linear_schedule(0.0, 1e-3, 10))
    JO.adabound(optax.linear_schedule(0.0, 1e-3, 10), base_lr=1e-3)  # fine with it
    with pytest.raises(ValueError, match="base_lr"):
        JO.adabound(1e-3, base_lr=0.0)
    with pytest.raises(ValueError, match="scalar"):
        JO.adabound(jnp.ones(2))
    tx = JO.adabound(1e-3, weight_decay=0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_jax_rejects_non_finite_jax_scalars():
    """Concrete jax scalars are checked as Python numbers are (e.g. from inject_hyperparams)."""
    with pytest.raises(ValueError, match="learning_rate"):
        JO.adabound(jnp.float32(jnp.inf))
    with pytest.raises(ValueError, match="weight_decay"):
        JO.adaboundw(1e-3, weight_decay=jnp.float32(jnp.inf))
    with pytest.raises(ValueError, match="eps"):
        JO.amsbound(1e-3, eps=jnp.float32(jnp.nan))


# ----------------------------------------------------------------------------------------------
# AdaBoundW: the reference's decay and AdamW's (scale_decay_by_lr)
# ----------------------------------------------------------------------------------------------


def _torch_run_w(p0, grads, lrs, **kw):
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = TO.AdaBoundW([p], lr=lrs[0] if lrs[0] > 0 else 1e-3, **kw)
    out = []
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = lr
        p.grad = torch.tensor(g)
        opt.step()
        out.append(p.detach().clone().numpy())
    return np.stack(out)


def _jax_run_w(p0, grads, lrs, *, base_lr=1e-3, **kw):
    with jax.enable_x64(True):
        lr_table = jnp.asarray(lrs, jnp.float64)
        tx = JO.adaboundw(lambda count: lr_table[count], base_lr=base_lr, **kw)
        params = jnp.asarray(p0)
        state = tx.init(params)
        out = []
        for g in grads:
            u, state = tx.update(jnp.asarray(g), state, params)
            params = optax.apply_updates(params, u)
            out.append(np.asarray(params))
    return np.stack(out)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("amsbound", [False, True])
def test_adaboundw_lr_scaled_decay_leaves_weights_alone_at_lr_zero(framework, amsbound):
    """AdamW's decay (scale_decay_by_lr): an lr = 0 step changes nothing, whatever the gradient
    and weight decay (e.g. torch.distributed.checkpoint's initialising step); the reference's
    decay shrinks the weights by (1 - wd) even then."""
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(4,))
    grads = rng.normal(size=(3, 4)) * 10
    run = _torch_run_w if framework == "torch" else _jax_run_w
    lrs = [0.0, 0.0, 0.0]
    scaled = run(p0, grads, lrs, weight_decay=0.5, amsbound=amsbound, scale_decay_by_lr=True)
    np.testing.assert_array_equal(scaled, np.broadcast_to(p0, scaled.shape))  # exactly unchanged
    reference = run(p0, grads, lrs, weight_decay=0.5, amsbound=amsbound)
    np.testing.assert_allclose(reference[-1], p0 * 0.5**3, rtol=1e-15)  # the reference's decay
    # a later nonzero lr still trains and decays, scaled
    moved = run(p0, grads, [0.0, 1e-2, 1e-2], weight_decay=0.5, amsbound=amsbound, scale_decay_by_lr=True)
    np.testing.assert_array_equal(moved[0], p0)
    assert not np.array_equal(moved[-1], p0)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_adaboundw_lr_scaled_decay_is_adamw_decay(framework):
    """With zero gradients the update is pure decay: p ← (1 - lr·wd)·p each step, following the
    lr schedule (torch.optim.AdamW's decay, compared with it directly in torch)."""
    wd, p0 = 0.1, np.array([1.0, -3.0])
    lrs = [0.5, 0.25, 0.1]
    run = _torch_run_w if framework == "torch" else functools.partial(_jax_run_w, base_lr=0.5)
    out = run(p0, np.zeros((3, 2)), lrs, weight_decay=wd, scale_decay_by_lr=True)
    np.testing.assert_allclose(out[-1], p0 * np.prod([1 - lr * wd for lr in lrs]), rtol=1e-15)
    if framework == "torch":
        p = torch.nn.Parameter(torch.tensor(p0))
        adamw = torch.optim.AdamW([p], lr=lrs[0], weight_decay=wd)
        for lr in lrs:
            adamw.param_groups[0]["lr"] = lr
            p.grad = torch.zeros(2, dtype=torch.float64)
            adamw.step()
        np.testing.assert_allclose(out[-1], p.detach().numpy(), rtol=1e-15)  # p(1 - lr·wd) vs p - lr·wd·p


@fewer_examples()
@given(case=S.optimizer_cases(steps=STEPS, min_b2=0.9), amsbound=st.booleans())
def test_lr_scaled_decay_trajectory_parity_float64(case, amsbound):
    """The parity registry's adaboundw_lr_decay entry, and both sides against the NumPy
    transcription with p -= lr·wd·p."""
    ref = numpy_adabound(
        case["params"], case["grads"], case["lr"] * np.asarray(case["lr_scale"], np.float64),
        base_lr=case["lr"], final_lr=case["final_lr"], b1=case["b1"], b2=case["b2"], gamma=case["gamma"],
        eps=case["eps"], weight_decay=case["weight_decay"], amsbound=amsbound, decoupled=True, lr_scaled_decay=True,
    )
    opts = dict(scale_decay_by_lr=True, amsbound=amsbound)
    t = torch_trajectory("adaboundw", case, options=opts)
    j = jax_trajectory("adaboundw", case, options=opts, jit=True)
    # as test_trajectory_parity_float64: float64 rounding, far below 1e-10 over 200 steps
    np.testing.assert_allclose(t, j, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(t, ref, rtol=1e-10, atol=1e-10)
    if case["weight_decay"] > 0 and not np.allclose(case["params"], 0):
        plain = torch_trajectory("adaboundw", case, options=dict(amsbound=amsbound))
        assert not np.array_equal(plain, t)  # the option does change the run


def test_scale_decay_by_lr_needs_decoupled_decay():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="scale_decay_by_lr"):
        TO.AdaBound(p, weight_decay=0.1, scale_decay_by_lr=True)
    with pytest.raises(TypeError, match="scale_decay_by_lr"):
        TO.AdaBoundW(p, scale_decay_by_lr=1)
    with pytest.raises(ValueError, match="scale_decay_by_lr"):
        JO.adabound(1e-3, weight_decay=0.1, scale_decay_by_lr=True)
    with pytest.raises(TypeError, match="scale_decay_by_lr"):
        JO.adaboundw(1e-3, scale_decay_by_lr="yes")
    assert TO.AdaBoundW(p).param_groups[0]["scale_decay_by_lr"] is False  # the reference's by default


# ----------------------------------------------------------------------------------------------
# torch: compiled steps, tensor lr, maximize, capturable, complex params, re-checks at step time
# ----------------------------------------------------------------------------------------------

_LR_FACTORS = [1.0, 0.5, 0.25, 0.8, 0.1, 0.3, 0.7, 0.9, 0.05, 0.6]


def _schedule_run(opt_factory, *, compile_backend=None, steps=10, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(4, 3, generator=gen, dtype=dtype)),
              torch.nn.Parameter(torch.randn(3, generator=gen, dtype=dtype))]
    grads = [[torch.randn(p.shape, generator=gen, dtype=dtype) for p in params] for _ in range(steps)]
    opt = opt_factory(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: _LR_FACTORS[e % len(_LR_FACTORS)])
    step = torch.compile(opt.step, backend=compile_backend) if compile_backend else opt.step
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = gi
        step()
        sched.step()
    return [p.detach().clone() for p in params], opt


@pytest.mark.parametrize("cls,kw,tensor_lr", [
    ("AdaBound", {}, True),
    ("AdaBoundW", dict(amsbound=True, scale_decay_by_lr=True), True),
    ("AdaBound", {}, False),  # a float lr: a graph input while torch does not specialise floats
])
def test_torch_compiled_step_compiles_once_for_an_lr_schedule(cls, kw, tensor_lr):
    """torch.compile(optimizer.step) over 10 different lrs: with a tensor lr (torch's own fix)
    at most two compilations (the first step creates the state, which changes the guards, as
    for torch.optim.Adam), counted by torch._dynamo; the result matches the eager run. The
    aot_eager backend is the compiler's front end without code generation (the previous
    implementation recompiled there at every lr until the recompile limit)."""
    from torch._dynamo.utils import counters

    lr = torch.tensor(1e-2, dtype=torch.float64) if tensor_lr else 1e-2
    factory = lambda ps: getattr(TO, cls)(ps, lr=lr, weight_decay=1e-2, **kw)  # noqa: E731
    torch._dynamo.reset()
    counters.clear()
    compiled, opt = _schedule_run(factory, compile_backend="aot_eager")
    graphs = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    assert 1 <= graphs <= 2, graphs
    assert int(opt.state[opt.param_groups[0]["params"][0]]["step"]) == 10
    eager, _ = _schedule_run(factory)
    for c, e in zip(compiled, eager):
        # float64 params; the compiled schedule is float64 tensor math, the eager one Python
        # float64 math: the same formulas, a few ulps per step over 10 steps
        torch.testing.assert_close(c, e, rtol=1e-12, atol=1e-14)


def test_torch_tensor_lr_eager_matches_float_lr_and_resumes():
    """Eagerly a tensor lr is read as a float: bit-identical to the float lr, scheduler included;
    the tensor survives a state_dict round trip."""
    for kw in ({}, dict(decoupled_weight_decay=True, scale_decay_by_lr=True), dict(foreach=True, amsbound=True)):
        a, _ = _schedule_run(lambda ps: TO.AdaBound(ps, lr=1e-2, weight_decay=1e-2, **kw))  # noqa: B023
        b, opt = _schedule_run(lambda ps: TO.AdaBound(ps, lr=torch.tensor(1e-2, dtype=torch.float64), weight_decay=1e-2, **kw))  # noqa: B023
        assert all(torch.equal(x, y) for x, y in zip(a, b)), kw
        assert isinstance(opt.param_groups[0]["lr"], torch.Tensor) and opt.param_groups[0]["base_lr"] == 1e-2
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    fresh = TO.AdaBound(opt.param_groups[0]["params"], lr=torch.tensor(0.5, dtype=torch.float64), foreach=True, amsbound=True)
    fresh.load_state_dict(sd)
    assert float(fresh.param_groups[0]["lr"]) == float(opt.param_groups[0]["lr"])
    assert fresh.param_groups[0]["base_lr"] == 1e-2
    step = fresh.state[fresh.param_groups[0]["params"][0]]["step"]
    assert torch.is_tensor(step) and step.dtype == torch.float32 and int(step) == 10


@pytest.mark.parametrize("foreach", [False, True])
def test_torch_maximize_ascends(foreach):
    """maximize=True with gradient g is minimizing with -g, bit for bit (as torch.optim.Adam)."""
    gen = torch.Generator().manual_seed(1)
    p0, grads = torch.randn(5, generator=gen), [torch.randn(5, generator=gen) for _ in range(6)]
    runs = []
    for maximize, sign in ((True, 1.0), (False, -1.0)):
        p = torch.nn.Parameter(p0.clone())
        opt = TO.AdaBoundW([p], lr=1e-2, weight_decay=1e-2, maximize=maximize, foreach=foreach)
        for g in grads:
            p.grad = sign * g
            opt.step()
        runs.append(p.detach())
    assert torch.equal(runs[0], runs[1])
    p = torch.nn.Parameter(torch.zeros(1))
    opt = TO.AdaBound([p], lr=0.1, maximize=True)
    p.grad = torch.ones(1)
    opt.step()
    assert float(p.detach()) > 0  # moved along the gradient


def test_torch_capturable_matches_eager_and_keeps_step_on_device():
    """capturable=True: the step stays a tensor on the parameter's device and the schedule is
    computed with tensor ops (no host reads); same numbers as the float path up to rounding."""
    for kw in ({}, dict(amsbound=True, decoupled_weight_decay=True, scale_decay_by_lr=True)):
        a, _ = _schedule_run(lambda ps: TO.AdaBound(ps, lr=1e-2, weight_decay=1e-2, **kw))  # noqa: B023
        b, opt = _schedule_run(lambda ps: TO.AdaBound(ps, lr=torch.tensor(1e-2, dtype=torch.float64), weight_decay=1e-2, capturable=True, **kw))  # noqa: B023
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)  # float64 scalars: tensor vs Python math
        p = opt.param_groups[0]["params"][0]
        assert opt.state[p]["step"].device == p.device and int(opt.state[p]["step"]) == 10


def test_torch_rejects_complex_params():
    with pytest.raises(TypeError, match=r"complex.*view_as_real"):
        TO.AdaBound([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))])
    opt = TO.AdaBound([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(TypeError, match="complex"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1, dtype=torch.complex128))]})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("key,bad,match", [
    ("lr", -1e-3, "lr"),
    ("lr", math.nan, "lr"),
    ("lr", math.inf, "lr"),
    ("lr", torch.tensor(-1e-3), "lr"),
    ("lr", torch.tensor(math.nan), "lr"),
    ("lr", "fast", "lr"),
    ("final_lr", 0.0, "final_lr"),
    ("weight_decay", math.inf, "weight_decay"),
    ("eps", -1.0, "eps"),
    ("betas", (0.9, 1.0), r"betas\[1\]"),
    ("maximize", "yes", "maximize"),
])
def test_torch_hyperparameters_rechecked_at_step(key, bad, match):
    """A value set on a param group after construction is checked before the step uses it;
    the parameters are not touched. lr = 0 (a schedule's value) is fine."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = TO.AdaBound([p], lr=1e-2)
    p.grad = torch.ones(3)
    opt.param_groups[0]["lr"] = 0.0
    opt.step()
    opt.param_groups[0]["lr"] = torch.tensor(0.0)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))  # lr 0: the bounds are [0, 0]
    opt.param_groups[0][key] = bad
    with pytest.raises((ValueError, TypeError), match=match):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3))


def test_torch_bad_tensor_lr_at_construction():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="lr"):
        TO.AdaBound(p, lr=torch.tensor(0.0))
    with pytest.raises(ValueError, match="lr.*one element"):
        TO.AdaBound(p, lr=torch.tensor([1e-3, 1e-3]))
    with pytest.raises(TypeError, match="lr.*floating"):
        TO.AdaBound(p, lr=torch.tensor(1))
    with pytest.raises(ValueError, match="lr"):
        TO.AdaBound(p, lr=torch.tensor(math.inf))


# ----------------------------------------------------------------------------------------------
# jax: mu_dtype
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["adabound", "amsbound", "adaboundw"])
def test_jax_mu_dtype_stores_the_first_moment_in_it(factory):
    params = {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
    grads = _tree_grads(4, 3)
    tx = getattr(JO, factory)(1e-2, weight_decay=1e-3, mu_dtype=jnp.bfloat16)
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(updates))
    core = state[0] if factory == "adaboundw" else state[1]
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(core.mu))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(core.nu))
    # None (the default) is the params' dtype, bit-identical to not passing it
    a, _ = _jax_run(getattr(JO, factory)(1e-2, weight_decay=1e-3), _tree_params(), grads)
    b, _ = _jax_run(getattr(JO, factory)(1e-2, weight_decay=1e-3, mu_dtype=None), _tree_params(), grads)
    _assert_trees_close(a[-1], b[-1], rtol=0, atol=0)
    with pytest.raises(TypeError, match="mu_dtype"):
        JO.adabound(1e-3, mu_dtype=jnp.int32)
    with pytest.raises(TypeError, match="mu_dtype"):
        JO.adabound(1e-3, mu_dtype="not a dtype")


def test_jax_mu_dtype_rounds_the_stored_moment_only():
    """mu_dtype=bfloat16 is AdaBound whose stored first moment is rounded to bfloat16 after each
    step (optax.adam's meaning of mu_dtype) while the step uses it unrounded: against the float64
    NumPy transcription with that one rounding added, and unlike the float32-moment run."""
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=(16,)).astype(np.float32)
    grads = rng.normal(size=(20, 16)).astype(np.float32)
    lr, b1, b2, final_lr, gamma, eps = 1e-2, 0.9, 0.999, 0.1, 1e-3, 1e-8
    p, m, v, ref = p0.astype(np.float64), np.zeros(16), np.zeros(16), []
    for t, g in enumerate(grads.astype(np.float64), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        final = final_lr
        eff = np.clip(lr * math.sqrt(1 - b2**t) / (1 - b1**t) / (np.sqrt(v) + eps),
                      final * (1 - 1 / (gamma * t + 1)), final * (1 + 1 / (gamma * t)))
        p = p - eff * m
        m = m.astype(jnp.bfloat16).astype(np.float64)  # stored in bfloat16
        ref.append(p)
    ref = np.stack(ref)
    ours = np.asarray(scan_trajectory(JO.adabound(lr, mu_dtype=jnp.bfloat16), jnp.asarray(p0), jnp.asarray(grads)))
    full = np.asarray(scan_trajectory(JO.adabound(lr), jnp.asarray(p0), jnp.asarray(grads)))
    tol = float32_tolerance(p0, ref)
    assert_within(ours, ref, tol, "mu_dtype=bfloat16 vs NumPy with a bfloat16 moment")
    assert (np.abs(full - ref) > tol).any()  # the rounding is visible: the test can tell


# ----------------------------------------------------------------------------------------------
# torch: the multi-tensor (foreach) path against the per-tensor loop
# ----------------------------------------------------------------------------------------------

# Shapes and dtypes of one model's parameters: two dtypes so a group splits into several
# (device, dtype, step) buckets; a channels_last 4-D tensor; a scalar.
_FE_SPECS = [((4, 3), torch.float32), ((5,), torch.float64), ((2, 3, 2, 2), torch.float32), ((), torch.float32)]
_FE_STEPS = 20


def _fe_build(member, hp, foreach, dtype_override=None):
    """A model whose parameters start together except ``late`` (first gradient at step 6, so its
    lazily created state lags in ``step``) and ``frozen`` (never a gradient); a second group is
    added at step 4 with its own lr."""
    gen = torch.Generator().manual_seed(7)
    params = []
    for shape, dtype in _FE_SPECS:
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype_override or dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        params.append(torch.nn.Parameter(x))
    late = torch.nn.Parameter(torch.randn(3, generator=gen).to(dtype_override or torch.float32))
    frozen = torch.nn.Parameter(torch.ones(2))
    extra = torch.nn.Parameter(torch.randn(2, 2, generator=gen).to(dtype_override or torch.float32))
    kw = dict(lr=hp["lr"], betas=(hp["b1"], hp["b2"]), final_lr=hp["final_lr"], gamma=hp["gamma"],
              eps=hp["eps"], weight_decay=hp["weight_decay"])
    amsbound, decoupled = FLAGS[member]
    opt = TO.AdaBound(params + [late, frozen], amsbound=amsbound, decoupled_weight_decay=decoupled,
                      foreach=foreach, **kw)
    return params + [late, frozen, extra], opt


def _fe_run(model, steps, lr_factors, grads, start=0):
    params, opt = model
    *dense, late, frozen, extra = params
    for i in range(start, start + steps):
        if i == 4:
            opt.add_param_group({"params": [extra], "lr": 0.5 * opt.defaults["lr"]})
        for p, g in zip(dense, grads[i]):
            p.grad = g.to(p.dtype)
        late.grad = grads[i][0].flatten()[:3].to(late.dtype) if i >= 6 else None
        extra.grad = grads[i][0].flatten()[3:7].reshape(2, 2).to(extra.dtype)
        for group in opt.param_groups:  # an lr schedule: the bounds follow lr/base_lr
            group["lr"] = group["base_lr"] * lr_factors[i]
        opt.step()


def _fe_grads(seed, scale):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=torch.float64) * scale for s, _ in _FE_SPECS]
            for _ in range(_FE_STEPS)]


_SAME_WIDTH_INT = {torch.float64: torch.int64, torch.float32: torch.int32, torch.bfloat16: torch.int16,
                   torch.float16: torch.int16}


def _bits(x):
    """The bit patterns of a float tensor (so NaN equals the same NaN and -0.0 differs from 0.0)."""
    return x.detach().contiguous().view(_SAME_WIDTH_INT[x.dtype])


def _assert_same_optimizer(a, b):
    """Parameters and state bit for bit, the same step counts, the same groups but ``foreach``."""
    (pa, oa), (pb, ob) = a, b
    for x, y in zip(pa, pb):
        assert torch.equal(_bits(x), _bits(y))
    sa, sb = oa.state_dict(), ob.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for k, st_a in sa["state"].items():
        st_b = sb["state"][k]
        assert st_a.keys() == st_b.keys() and st_a["step"] == st_b["step"]
        for name in st_a.keys() - {"step"}:
            assert torch.equal(_bits(st_a[name]), _bits(st_b[name])), (k, name)
    strip = [{k: v for k, v in g.items() if k != "foreach"} for g in sa["param_groups"]]
    assert strip == [{k: v for k, v in g.items() if k != "foreach"} for g in sb["param_groups"]]


@given(
    member=st.sampled_from(list(MEMBERS)),
    hp=S.optimizer_hparams(),
    scale=st.sampled_from([1.0, 1e-4, 1e3]),
    dtype=st.sampled_from([None, torch.bfloat16, torch.float16, torch.float64]),
    lr_factors=st.lists(st.floats(0.0, 2.0), min_size=_FE_STEPS, max_size=_FE_STEPS),
)
@example(member="amsbound", hp=dict(lr=1e-3, final_lr=0.1, b1=0.9, b2=0.999, gamma=1e-3, eps=1e-8,
                                     weight_decay=0.1), scale=1.0, dtype=None, lr_factors=[1.0] * _FE_STEPS)
@example(member="adaboundw", hp=dict(lr=0.1, final_lr=0.01, b1=0.0, b2=0.0, gamma=0.0, eps=1e-8,
                                      weight_decay=5e-4), scale=1e3, dtype=None, lr_factors=[0.5] * _FE_STEPS)
def test_torch_foreach_bit_identical_to_loop(member, hp, scale, dtype, lr_factors):
    """foreach=True and foreach=False on CPU: the same parameters and state after 20 steps, with
    mixed dtypes, a channels_last tensor, a parameter whose state starts later (another step
    count), one never given a gradient, a group added at step 4 and an lr changing every step.
    ``dtype`` None keeps the mixed dtypes; otherwise every parameter is cast to it."""
    grads = _fe_grads(3, scale)
    runs = []
    for foreach in (False, True):
        model = _fe_build(member, hp, foreach, dtype)
        _fe_run(model, _FE_STEPS, lr_factors, grads)
        runs.append(model)
    _assert_same_optimizer(*runs)
    params, opt = runs[1]
    steps = {int(opt.state_dict()["state"][i]["step"]) for i in opt.state_dict()["state"]}
    assert steps == {_FE_STEPS, _FE_STEPS - 6, _FE_STEPS - 4}  # buckets of several step counts
    assert len(opt.state[params[-2]]) == 0  # frozen: no state, not moved
    assert torch.equal(params[-2].detach(), torch.ones(2))


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("member", list(MEMBERS))
def test_torch_foreach_state_dict_round_trip_across_modes(member, first):
    """Save after 10 steps in one mode, load into an optimizer of the other mode, finish: the
    same as 20 steps in the second mode alone. The loaded groups carry the saved ``foreach``
    (as torch's own optimizers do), so the test sets it back after loading."""
    hp = dict(lr=1e-2, final_lr=0.1, b1=0.9, b2=0.999, gamma=1e-3, eps=1e-8, weight_decay=1e-2)
    grads, factors = _fe_grads(5, 1.0), [1.0 - i / _FE_STEPS for i in range(_FE_STEPS)]
    expected = _fe_build(member, hp, not first)
    _fe_run(expected, _FE_STEPS, factors, grads)

    params, opt = _fe_build(member, hp, first)
    _fe_run((params, opt), 10, factors, grads)
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "params": [p.detach() for p in params]}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    params2, opt2 = _fe_build(member, hp, not first)
    opt2.add_param_group({"params": [params2[-1]], "lr": 0.5 * hp["lr"]})  # the group added at step 4
    with torch.no_grad():
        for p, x in zip(params2, saved["params"]):
            p.copy_(x)
    opt2.load_state_dict(saved["opt"])
    assert [g["foreach"] for g in opt2.param_groups] == [first, first]
    for g in opt2.param_groups:
        g["foreach"] = not first
    _fe_run((params2, opt2), 10, factors, grads, start=10)
    _assert_same_optimizer((params2, opt2), expected)


def test_torch_foreach_default_and_choice(monkeypatch):
    """``foreach=None`` (the default) is stored in the group and picks the loop on CPU, like
    torch.optim.Adam; True takes the multi-tensor path on CPU; the rule is "every parameter
    with a gradient on a foreach device" (checked by declaring CPU one)."""
    p = torch.nn.Parameter(torch.ones(3))
    for cls in (TO.AdaBound, TO.AMSBound, TO.AdaBoundW):
        assert cls([p]).param_groups[0]["foreach"] is None
        assert cls([p], foreach=True).param_groups[0]["foreach"] is True
    assert TO.AdaBound([p]).defaults["foreach"] is None

    calls = []
    real_multi = TO._multi_tensor_step
    monkeypatch.setattr(TO, "_multi_tensor_step", lambda ps, *a: (calls.append(len(ps)), real_multi(ps, *a)))
    frozen_gpu_like = torch.nn.Parameter(torch.ones(2))  # no grad: does not take part in the choice
    opt = TO.AdaBound([p, frozen_gpu_like])
    p.grad = torch.ones(3)
    opt.step()
    assert calls == [] and opt.state[p]["step"] == 1  # the loop on CPU
    assert TO._default_foreach([p]) is False
    opt.param_groups[0]["foreach"] = True
    opt.step()
    assert calls == [1]
    monkeypatch.setattr(TO, "_FOREACH_DEVICE_TYPES", ("cpu",))
    assert TO._default_foreach([p]) is True
    opt.param_groups[0]["foreach"] = None
    opt.step()
    assert calls == [1, 1]
    assert TO._default_foreach([p, torch.ones(1, device="meta")]) is False


@pytest.mark.parametrize("foreach", [False, True])
def test_torch_sparse_grads_raise_in_both_modes(foreach):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = TO.AdaBound([p], foreach=foreach)
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.parametrize("bad", ["yes", 1, 0.0, np.bool_(True)])
def test_torch_rejects_bad_foreach(bad):
    p = [torch.nn.Parameter(torch.zeros(2))]
    for cls in (TO.AdaBound, TO.AMSBound, TO.AdaBoundW):
        with pytest.raises(TypeError, match="foreach"):
            cls(p, foreach=bad)
    opt = TO.AdaBound(p)
    with pytest.raises(TypeError, match="foreach"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "foreach": bad})
    assert len(opt.param_groups) == 1


# ----------------------------------------------------------------------------------------------
# Long runs (slow; CI runs them at TWINTRICKS_SLOW_SCALE of the full length)
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("member", list(MEMBERS))
def test_long_trajectory_parity_slow(member):
    """5000 steps (× slow_scale) with a warm-up + cosine schedule (torch LambdaLR, a jax
    schedule function, NumPy), float64, coupled/decoupled decay on."""
    steps = max(50, int(5000 * slow_scale()))
    warm, peak = steps // 10, 1e-2
    rng = np.random.default_rng(11)
    p0 = rng.normal(size=(4, 3))
    grads = rng.normal(size=(steps, 4, 3)) * rng.choice([1e-4, 1.0, 1e2], size=(steps, 1, 1))

    def factor(e):  # linear warm-up from 0, then cosine to 0 (optax's warmup_cosine_decay_schedule)
        if e < warm:
            return e / warm
        return 0.5 * (1 + math.cos(math.pi * min(e - warm, steps - warm) / (steps - warm)))

    def schedule(count):
        # The same in float64. optax's own warmup_cosine_decay_schedule evaluates in float32 for
        # an int32 count even with x64, and its float32 values differ by an ulp between jit,
        # vmap and eager, so it cannot be replayed to 1e-9 (test_schedule_parity covers optax's
        # float64 cosine_decay_schedule).
        e = count.astype(jnp.float64)
        cos = 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip(e - warm, 0, steps - warm) / (steps - warm)))
        return peak * jnp.where(e < warm, e / warm, cos)

    lrs = peak * np.array([factor(e) for e in range(steps)])
    amsbound, decoupled = FLAGS[member]
    ref = numpy_adabound(
        p0, grads, lrs, base_lr=peak, final_lr=0.1, b1=0.9, b2=0.999, gamma=1e-3, eps=1e-8,
        weight_decay=1e-3, amsbound=amsbound, decoupled=decoupled,
    )
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = getattr(TO, MEMBERS[member][0])([p], lr=peak, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    torch_traj = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        sched.step()
        torch_traj.append(p.detach().clone().numpy())
    with jax.enable_x64(True):
        tx = getattr(JO, MEMBERS[member][1])(schedule, weight_decay=1e-3, base_lr=peak)
        run = jax.jit(lambda q, gs: scan_trajectory(tx, q, gs))
        jax_traj = np.asarray(run(jnp.asarray(p0), jnp.asarray(grads)))
    # float64: rounding only (jnp.cos vs math.cos, fused multiply-adds: ~1e-16 relative per step)
    np.testing.assert_allclose(np.stack(torch_traj), ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(jax_traj, ref, rtol=1e-9, atol=1e-9)
