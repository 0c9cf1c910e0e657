"""Calibrated default tolerances (issue 21): with no ``atol``/``rtol``, ``check`` and
``check_module`` compare the port with the torch side run in float64, within 8× torch's own
float32 error plus 4 ulps. Correct ports pass (flax's default fast variance included); each
classic porting bug is caught on every one of 10 hypothesis seeds.

Cost: a catch stops at the first failing example (no shrinking here: ``_caught_every_time``
runs the generate phase only), so each bug costs ~10 cheap calls; the models are 4-6 features.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from hypothesis import Phase, settings
from hypothesis import seed as hseed

from parity import check, check_module, function_check, module_check
from parity.modules import input_batches
from parity.registry import CaseRecorder, ParityError, given_cases

SEEDS = range(10)
X = input_batches((4, 6))  # standard normal × a drawn scale in (1e-2, 1, 10)
IMG = input_batches((2, 5, 5, 3))
W = np.random.default_rng(3).standard_normal((5, 6)).astype(np.float32) / np.sqrt(6)
B = (np.random.default_rng(4).uniform(-1, 1, 5) / np.sqrt(6)).astype(np.float32)  # torch Linear's init range


def _layer_norm_jax(x, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


# name -> (torch side, port, extra function_check arguments)
FUNCTION_BUGS = {
    "gelu tanh vs exact": (lambda x: F.gelu(x), lambda x: jax.nn.gelu(x, approximate=True), {}),
    "count_include_pad": (
        lambda x: F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False),
        lambda x: nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=True),
        dict(images="x", image_outputs=True),
    ),
    "layernorm eps 1e-3 vs 1e-5": (
        lambda x: F.layer_norm(x, (6,), eps=1e-5), lambda x: _layer_norm_jax(x, 1e-3), {}),
    "missing bias": (
        # the weights follow x's dtype: the float64 oracle runs this same function on float64 x
        lambda x: F.linear(x, torch.from_numpy(W).to(x.dtype), torch.from_numpy(B).to(x.dtype)),
        lambda x: x @ jnp.asarray(W).T, {}),
}
FUNCTION_FIXES = {
    "gelu tanh vs exact": lambda x: jax.nn.gelu(x, approximate=False),
    "count_include_pad": lambda x: nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False),
    "layernorm eps 1e-3 vs 1e-5": lambda x: _layer_norm_jax(x, 1e-5),
    "missing bias": lambda x: x @ jnp.asarray(W).T + jnp.asarray(B),
}


def _inputs(name):
    return {"x": IMG if "pad" in name else X}


def caught(trick, seed: int, examples: int = 10) -> bool:
    """Does one hypothesis run (seed ``seed``, up to ``examples`` drawn cases, no shrinking) fail?"""
    run = CaseRecorder(trick)
    test = settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                    phases=[Phase.generate], print_blob=False)(given_cases(trick, run.body))
    try:
        hseed(seed)(test)()
        run.finish()
    except ParityError:
        return True
    return False


@pytest.mark.parametrize("bug", list(FUNCTION_BUGS))
def test_each_function_bug_is_caught_on_every_seed(bug):
    torch_fn, port, extra = FUNCTION_BUGS[bug]
    trick = function_check(bug, torch_fn, port, inputs=_inputs(bug), **extra)
    assert [s for s in SEEDS if not caught(trick, s)] == []


@pytest.mark.parametrize("bug", list(FUNCTION_FIXES))
def test_each_fixed_port_passes_on_every_seed(bug):
    torch_fn, _, extra = FUNCTION_BUGS[bug]
    trick = function_check(bug, torch_fn, FUNCTION_FIXES[bug], inputs=_inputs(bug), **extra)
    assert [s for s in range(3) if caught(trick, s, examples=6)] == []


def test_the_failure_names_the_calibrated_tolerance():
    torch_fn, port, _ = FUNCTION_BUGS["gelu tanh vs exact"]
    with pytest.raises(ParityError, match=r"beyond the calibrated tolerance .* \(8× torch's own float32 error"):
        check(torch_fn, port, inputs={"x": X}, examples=5)


def test_an_explicit_tolerance_still_works_and_needs_its_reason():
    torch_fn, port, _ = FUNCTION_BUGS["gelu tanh vs exact"]
    report = check(torch_fn, port, inputs={"x": X}, atol=2e-3, reason="tanh-GELU accepted: within 2e-3 of exact", examples=3)
    assert report.ok and report.tolerance == "atol=0.002"
    with pytest.raises(ValueError, match="reason"):
        check(torch_fn, port, inputs={"x": X}, atol=2e-3)


# --------------------------------------------------------------------------------- modules


class TorchNorms(tnn.Module):
    """Linear → BatchNorm1d → GELU → LayerNorm: the settings ports get wrong."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = tnn.Linear(6, 4)
        self.bn = tnn.BatchNorm1d(4)  # eps 1e-5, momentum 0.1
        self.ln = tnn.LayerNorm(4)

    def forward(self, x):
        return self.ln(F.gelu(self.bn(self.fc(x))))


class LinenNorms(nn.Module):
    momentum: float = 0.9  # torch's 0.1 in flax's convention
    bn_eps: float = 1e-5
    fast_variance: bool = True  # flax's default

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(4, name="fc")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=self.bn_eps,
                         use_fast_variance=self.fast_variance, name="bn")(x)
        return nn.LayerNorm(epsilon=1e-5, use_fast_variance=self.fast_variance, name="ln")(jax.nn.gelu(x, approximate=False))


def _module_trick(flax_model, **kwargs):
    v = flax_model.init(jax.random.key(0), jnp.zeros((4, 6)))
    return module_check("norms", TorchNorms(), flax_model, variables=v, inputs=X, images=False,
                        accept=["biased_running_var"], **kwargs)


@pytest.mark.parametrize("fast_variance", [True, False])
def test_a_correct_port_passes_at_every_scale(fast_variance):
    # scales 1e-2, 1 and 10 (the first: the fast one-pass variance where a channel's mean dwarfs
    # its spread), outputs, input and parameter gradients, running statistics
    trick = _module_trick(LinenNorms(fast_variance=fast_variance))
    assert [s for s in range(2) if caught(trick, s, examples=4)] == []


@pytest.mark.parametrize("bug", ["momentum", "bn eps"])
def test_each_module_bug_is_caught_on_every_seed(bug):
    model = LinenNorms(momentum=0.1) if bug == "momentum" else LinenNorms(bn_eps=1e-3)
    trick = _module_trick(model, grads=False)  # outputs and statistics suffice; half the cost
    assert [s for s in SEEDS if not caught(trick, s)] == []


def test_check_module_needs_no_tolerance_and_names_the_momentum():
    model = LinenNorms(momentum=0.1)
    v = model.init(jax.random.key(0), jnp.zeros((4, 6)))
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)  # one input: nothing to shrink
    with pytest.raises(ParityError) as info:
        check_module(TorchNorms(), model, variables=v, inputs=x, images=False, accept=["biased_running_var"])
    msg = str(info.value)
    assert "running_mean" in msg and "calibrated tolerance" in msg
    assert "flax's momentum should be 1 - 0.1 = 0.9" in msg
