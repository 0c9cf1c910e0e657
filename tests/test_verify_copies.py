"""Conversions copy: weights and optimizer state converted in either direction never share memory
with their source — each test converts, then changes the source in place, and the converted value
must not move (issue 21: a 1-D optax leaf aliased torch's ``exp_avg`` and drifted by 1.9e-2)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn as tnn
from flax import nnx

from parity import flax_to_torch, optax_to_torch_state, torch_to_flax, torch_to_optax_state
from parity.optim_state import NamedParams


class TorchNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc = tnn.Linear(3, 4)
        self.bn = tnn.BatchNorm1d(4)


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(nn.Dense(4, name="fc")(x))


class NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, momentum=0.9, rngs=rngs)


def _snapshot(tree):
    return jax.tree_util.tree_map(lambda a: np.array(a, copy=True), tree)


def _assert_same(tree, snap):
    for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(snap)):
        np.testing.assert_array_equal(np.asarray(a), b)


def _mutate_torch(module):
    with torch.no_grad():
        for v in module.state_dict().values():
            v.add_(1)  # state_dict() values share the module's memory


def test_torch_to_linen_and_back_never_alias():
    t = TorchNet()
    template = LinenNet().init(jax.random.key(0), jnp.zeros((2, 3)))
    converted = torch_to_flax(t, template)
    snap = _snapshot(converted)
    _mutate_torch(t)
    _assert_same(converted, snap)

    out = flax_to_torch(converted, t, load=False)
    with torch.no_grad():
        for v in out.values():
            v.add_(1)  # the torch copies, not the jax buffers
    _assert_same(converted, snap)


def test_torch_to_nnx_and_back_never_alias():
    t = TorchNet()
    model = torch_to_flax(t, NnxNet(nnx.Rngs(0)))
    snap = _snapshot(nnx.state(model))
    _mutate_torch(t)
    _assert_same(nnx.state(model), snap)
    out = flax_to_torch(model, t, load=False)
    with torch.no_grad():
        for v in out.values():
            v.add_(1)
    _assert_same(nnx.state(model), snap)


def test_optimizer_state_never_aliases_in_either_direction():
    # 1-D leaves (the case that aliased): a bias-like parameter, Adam's exp_avg / exp_avg_sq
    p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    opt = torch.optim.Adam([p], lr=1e-2)
    for g in ([0.1, 0.2, -0.3], [0.3, -0.1, 0.2]):
        p.grad = torch.tensor(g)
        opt.step()
    tx = optax.adam(1e-2)
    state = torch_to_optax_state(opt.state_dict(), tx.init({"p": jnp.zeros(3)}), NamedParams(["p"]))
    snap = _snapshot(state)
    p.grad = torch.tensor([1.0, 1.0, 1.0])
    opt.step()  # changes torch's exp_avg / exp_avg_sq in place
    _assert_same(state, snap)

    back = optax_to_torch_state(state, opt, NamedParams(["p"]))
    opt.load_state_dict(back)
    p.grad = torch.tensor([-2.0, 0.5, 0.5])
    opt.step()
    _assert_same(state, snap)
    for entry in back["state"].values():  # the dict handed back is not touched by torch's steps either
        for k, v in entry.items():
            if isinstance(v, torch.Tensor) and k != "step":
                assert not np.shares_memory(v.numpy(), np.asarray(state[0].mu["p"]))
