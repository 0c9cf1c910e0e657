"""Every common port can be checked (issue 21): NNX modules holding ``nnx.Rngs`` and
``nnx.Dropout``, linen modules whose dropout needs ``rngs``, in training mode too. Approach:
dropout is *off* for the comparison on both sides (torch's dropout layers in eval mode, linen's
``nn.Dropout`` intercepted as the identity, NNX's ``Dropout.deterministic``) — the two
frameworks' random masks cannot agree — while the rest of training mode is compared: BatchNorm
batch statistics, running statistics, input and parameter gradients."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as tnn
from flax import nnx

from parity import ParityError, check_module, map_weights
from parity.modules import input_batches

X = input_batches((4, 6), scales=(1.0, 10.0))


class TorchDrop(tnn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = tnn.Linear(6, 5)
        self.drop = tnn.Dropout(0.5)
        self.bn = tnn.BatchNorm1d(5)
        self.fc2 = tnn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.drop(self.fc1(x)))))


class LinenDrop(nn.Module):
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dropout(0.5, deterministic=not train, name="drop")(nn.Dense(5, name="fc1")(x))
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, name="bn")(x)
        return nn.Dense(3, name="fc2")(nn.relu(x))


class NnxDrop(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, momentum: float = 0.9):
        self.fc1 = nnx.Linear(6, 5, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.bn = nnx.BatchNorm(5, momentum=momentum, rngs=rngs)
        self.fc2 = nnx.Linear(5, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.relu(self.bn(self.drop(self.fc1(x)))))


def _linen(model):
    return model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, jnp.zeros((4, 6)))


def test_an_nnx_module_with_rngs_and_dropout_maps_its_weights():
    wm = map_weights(TorchDrop(), NnxDrop(nnx.Rngs(0)))  # the rng keys are not weights
    assert {e.torch_name for e in wm.entries} == {"fc1", "bn", "fc2"}


def test_a_linen_port_with_dropout_passes_in_training_mode():
    report = check_module(TorchDrop(), LinenDrop(), variables=_linen(LinenDrop()), inputs=X, images=False,
                          accept=["biased_running_var"], examples=3)
    # eval and train outputs, the input gradient, 6 parameter gradients, 2 running statistics
    assert report.ok and report.checks == report.examples * 11


def test_an_nnx_port_with_rngs_and_dropout_passes_in_training_mode():
    report = check_module(TorchDrop(), NnxDrop(nnx.Rngs(0)), train_arg=None, inputs=X, images=False,
                          accept=["biased_running_var"], examples=3)
    assert report.ok and report.checks == report.examples * 11


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_a_bug_behind_dropout_is_still_caught_and_not_blamed_on_dropout(flavour):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    if flavour == "linen":
        kw = dict(variables=_linen(LinenDrop(momentum=0.1)))
        model = LinenDrop(momentum=0.1)
    else:
        kw = dict(train_arg=None)
        model = NnxDrop(nnx.Rngs(0), momentum=0.1)
    with pytest.raises(ParityError) as info:
        check_module(TorchDrop(), model, inputs=x, images=False, accept=["biased_running_var"], **kw)
    msg = str(info.value)
    assert "BatchNorm 'bn'" in msg and "momentum" in msg and "'drop'" not in msg


# --------------------------------------------------------------------- diagnosis and flatten=


class TorchFlat(tnn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = tnn.Conv2d(3, 2, 3, padding=1)
        self.fc = tnn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))  # (C, H, W) order


class LinenFlat(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(2, (3, 3), padding=((1, 1), (1, 1)), name="conv")(x)
        return nn.Dense(3, name="fc")(x.reshape(x.shape[0], -1))  # (H, W, C) order


def test_with_flatten_declared_a_later_bug_is_not_blamed_on_the_flatten_order():
    from parity import torch_to_flax
    from parity.modules import localise

    t, port = TorchFlat(), LinenFlat()
    template = port.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
    wm = map_weights(t, template, flatten={"fc": (2, 4, 4)})
    variables = torch_to_flax(t, template, weight_map=wm)
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    assert localise(t, port, x, variables=variables, weight_map=wm, atol=None).startswith("no layer differs")
    variables["params"]["fc"]["bias"] = variables["params"]["fc"]["bias"] + 1e-3  # a bug in fc itself
    msg = localise(t, port, x, variables=variables, weight_map=wm, atol=None)
    assert msg.startswith("first layer that differs: 'fc'") and "flatten order" not in msg


class TorchAct(tnn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = tnn.Conv2d(3, 2, 3, padding=1)
        self.conv2 = tnn.Conv2d(2, 2, 1)
        self.fc1 = tnn.Linear(2 * 2 * 2, 4)
        self.fc2 = tnn.Linear(4, 3)

    def forward(self, x):
        x = self.conv2(torch.nn.functional.avg_pool2d(self.conv1(x), 3, 2, 1, count_include_pad=False))
        return self.fc2(torch.nn.functional.gelu(self.fc1(x.flatten(1))))


class LinenAct(nn.Module):
    include_pad: bool = False
    tanh_gelu: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(2, (3, 3), padding=((1, 1), (1, 1)), name="conv1")(x)
        x = nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=self.include_pad)
        x = nn.Conv(2, (1, 1), name="conv2")(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        return nn.Dense(3, name="fc2")(jax.nn.gelu(nn.Dense(4, name="fc1")(x), approximate=self.tanh_gelu))


@pytest.mark.parametrize("bug", ["gelu", "count_include_pad"])
def test_a_functional_op_bug_names_the_setting(bug):
    from parity.modules import localise

    t = TorchAct()
    port = LinenAct(tanh_gelu=True) if bug == "gelu" else LinenAct(include_pad=True)
    from parity import torch_to_flax

    variables = torch_to_flax(t, port.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3))))
    x = (np.random.default_rng(0).standard_normal((2, 4, 4, 3)) * 10).astype(np.float32)  # GELU's two forms part at |x| ~ 1-3
    msg = localise(t, port, x, variables=variables, atol=None)
    if bug == "gelu":
        assert "first difference at the input of 'fc2'" in msg
        assert "torch uses gelu(approximate='none'), the port gelu(approximate='tanh')" in msg
        assert "with that switch torch's result agrees with the port" in msg
    else:
        assert "first difference at the input of 'conv2'" in msg
        assert "torch count_include_pad=False, ceil_mode=False; the port behaves as count_include_pad=True" in msg
    assert localise(t, LinenAct(), x, variables=variables, atol=None).startswith("no layer differs")
