"""Check your own port, optimizers: torch optimizers against optax transformations, optimizer
state conversion both ways (Adam-style and AdaBound-style), and a training run moved between
the torch and the jax trainer continuing its loss instead of restarting its optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jax_impl.optim as JO
import torch_impl.optim as TO
from jax_impl import train as jtrain
from parity import ParityError, check_optimizer, map_weights, optax_to_torch_state, torch_to_optax_state
from parity.optim_state import NamedParams
from parity.runs import jax_run_to_torch, torch_run_to_jax
from torch_impl import train as ttrain
from twintricks.datasets import load_digits
from twintricks.recipe import TrainConfig

# float64: the same formulas in the same order; torch's fused multiply-adds and XLA's fusion
# round differently, a few ulps per step of steps up to ~1e2 over <= 8 steps.
F64 = dict(atol=1e-10, rtol=1e-10, reason="float64 trajectories, a few ulps per step over <= 8 steps")

PAIRS = {
    "adam": (lambda ps: torch.optim.Adam(ps, lr=1e-2), lambda: optax.adam(1e-2)),
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1), lambda: optax.adamw(1e-2, weight_decay=0.1)),
    "sgd-momentum": (lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9), lambda: optax.sgd(1e-2, momentum=0.9)),
    "adabound": (lambda ps: TO.AdaBound(ps, lr=1e-2, weight_decay=5e-4), lambda: JO.adabound(1e-2, weight_decay=5e-4)),
    "amsbound": (lambda ps: TO.AMSBound(ps, lr=1e-2), lambda: JO.amsbound(1e-2)),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_optimizer_pairs_agree_and_their_states_convert(name):
    make_torch, make_optax = PAIRS[name]
    report = check_optimizer(make_torch, make_optax, name=name, **F64)
    assert report.ok and report.checks > report.examples  # trajectory and the converted state


def test_a_mismatched_hyperparameter_is_caught_with_a_minimal_trajectory():
    with pytest.raises(ParityError) as info:
        check_optimizer(lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-3), optax.adam(1e-2), **F64)
    msg = str(info.value)
    assert "trajectory" in msg and "minimal counterexample" in msg and "grads = " in msg


def _run_torch(make_torch, params, grads):
    p = torch.nn.Parameter(torch.tensor(params))
    opt = make_torch([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p, opt


def _run_optax(tx, params, state, grads):
    with jax.enable_x64(True):
        params = {"p": jnp.asarray(params)}
        for g in grads:
            updates, state = tx.update({"p": jnp.asarray(g)}, state, params)
            params = optax.apply_updates(params, updates)
        return np.asarray(params["p"]), state


@pytest.mark.parametrize("name", ["adam", "adabound", "amsbound"])
def test_a_run_moves_to_optax_and_back_without_restarting_its_moments(name):
    make_torch, make_optax = PAIRS[name]
    rng = np.random.default_rng(0)
    params, grads = rng.standard_normal((2, 3)), rng.standard_normal((10, 2, 3))
    # torch for 5 steps, then optax from the converted state for 5 more ...
    p, opt = _run_torch(make_torch, params, grads[:5])
    with jax.enable_x64(True):
        tx = make_optax()
        template = tx.init({"p": jnp.asarray(p.detach().numpy())})
        state = torch_to_optax_state(opt.state_dict(), template, NamedParams(["p"]))
    moved, state = _run_optax(tx, p.detach().numpy(), state, grads[5:])
    # ... equals torch for all 10 steps; a restarted optimizer does not
    whole, _ = _run_torch(make_torch, params, grads)
    np.testing.assert_allclose(moved, whole.detach().numpy(), rtol=1e-10, atol=1e-12)  # float64, ulps per step
    with jax.enable_x64(True):
        restarted, _ = _run_optax(tx, p.detach().numpy(), tx.init({"p": jnp.asarray(p.detach().numpy())}), grads[5:])
    assert np.abs(restarted - whole.detach().numpy()).max() > 1e-4
    # and back: optax's state into a fresh torch optimizer, 3 more steps each
    q = torch.nn.Parameter(torch.tensor(moved))
    opt2 = make_torch([q])
    opt2.load_state_dict(optax_to_torch_state(state, opt2, NamedParams(["p"])))
    extra = rng.standard_normal((3, 2, 3))
    for g in extra:
        q.grad = torch.tensor(g)
        opt2.step()
    ref, _ = _run_optax(tx, moved, state, extra)
    np.testing.assert_allclose(q.detach().numpy(), ref, rtol=1e-10, atol=1e-12)


def test_conversion_refuses_what_it_cannot_map():
    p, opt = _run_torch(PAIRS["adam"][0], np.ones(3), np.ones((2, 3)))
    with jax.enable_x64(True):
        template = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2).init({"p": jnp.ones(3)})
        with pytest.raises(ValueError, match="inject_hyperparams"):
            torch_to_optax_state(opt.state_dict(), template, NamedParams(["p"]))
        with pytest.raises(ValueError, match="holds 1 parameters, the weight map 2"):
            torch_to_optax_state(opt.state_dict(), optax.adam(1e-2).init({"p": jnp.ones(3)}), NamedParams(["p", "q"]))


# ------------------------------------------------------------------------- trainers


@pytest.fixture(scope="module")
def tiny():
    return load_digits().subset(train=32, test=16)


def _config(optimizer):
    # 4 epochs of 4 steps: every step below stays inside the lr schedule both trainers share
    return TrainConfig(model="fastnet", width=4, batch_size=8, eval_batch_size=16, epochs=4, progress=False,
                       seed=3, optimizer=optimizer, lr=0.01)


@pytest.mark.parametrize("optimizer", ["adabound", "adamw"])
def test_a_torch_training_run_continues_in_the_jax_trainer(optimizer, tiny):
    """4 torch steps, then the run moves (model, BatchNorm statistics, optimizer state, step):
    the next 4 jax losses are the torch run's continuing losses, not those of a restart."""
    config = _config(optimizer)
    t = ttrain.Trainer(config, tiny, device="cpu")
    batches = [(8 * i, 8 * i + 8) for i in range(4)]
    for a, b in batches:
        t.train_step(t.data.train_images[a:b], t.data.train_labels[a:b], {})
    j = jtrain.Trainer(config, tiny)
    torch_run_to_jax(t, j)
    assert j.step == t.step == 4
    restarted = jtrain.Trainer(config, tiny)
    torch_run_to_jax(t, restarted)
    restarted.state = {**restarted.state, "opt_state": restarted.tx.init(restarted.state["params"])}
    lt, lj, lr = [], [], []
    for a, b in batches:
        x, y = jnp.asarray(tiny.train_images[a:b]), jnp.asarray(tiny.train_labels[a:b])
        lt.append(float(t.train_step(t.data.train_images[a:b], t.data.train_labels[a:b], {})[0]))
        lj.append(float(j.train_step(x, y, {})[0]))
        lr.append(float(restarted.train_step(x, y, {})[0]))
    # float32 forward/backward in two frameworks, amplified by Adam-type steps over 4 steps
    np.testing.assert_allclose(lj, lt, rtol=1e-5)
    assert max(abs(a - b) for a, b in zip(lr[1:], lt[1:])) > 1e-2  # a restart is visibly different


def test_a_jax_training_run_continues_in_the_torch_trainer(tiny):
    config = _config("adabound")
    j = jtrain.Trainer(config, tiny)
    x, y = jnp.asarray(tiny.train_images[:8]), jnp.asarray(tiny.train_labels[:8])
    for _ in range(3):
        j.train_step(x, y, {})
    t = ttrain.Trainer(config, tiny, device="cpu")
    jax_run_to_torch(j, t)
    assert t.step == 3
    lt = [float(t.train_step(t.data.train_images[:8], t.data.train_labels[:8], {})[0]) for _ in range(3)]
    lj = [float(j.train_step(x, y, {})[0]) for _ in range(3)]
    np.testing.assert_allclose(lt, lj, rtol=1e-5)  # float32 in two frameworks over 3 steps


def test_moving_between_different_models_is_refused(tiny):
    t = ttrain.Trainer(_config("adabound"), tiny, device="cpu")
    j = jtrain.Trainer(_config("adamw"), tiny)
    with pytest.raises(ValueError, match="differ in optimizer"):
        torch_run_to_jax(t, j)


def test_weight_map_of_the_trainers_models_pairs_by_name(tiny):
    t = ttrain.Trainer(_config("adabound"), tiny, device="cpu")
    j = jtrain.Trainer(_config("adabound"), tiny)
    wm = map_weights(t.model, j.variables)
    assert {e.torch_name for e in wm.entries} == {"conv1.conv", "conv1.bn", "conv2.conv", "conv2.bn", "conv3.conv", "conv3.bn", "fc"}
    assert wm.warnings == []
