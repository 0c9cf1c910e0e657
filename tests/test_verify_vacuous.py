"""No vacuous pass (issue 21): agreement on NaN or infinite outputs, on empty outputs, on outputs
that do not depend on the input, or of a function with itself proves nothing and fails, with the
reason, unless the check opts in with a reason of its own. Reports count what was compared."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn as tnn
import flax.linen as nn

from parity import ParityError, check, check_module, check_optimizer
from parity.modules import input_batches
from hypothesis import strategies as st

X = input_batches((3, 4))


def test_nan_on_both_sides_fails_unless_allowed():
    with pytest.raises(ParityError, match="NaN on both sides — that agreement proves nothing"):
        check(lambda x: x * math.nan, lambda x: x * math.nan, inputs={"x": X}, examples=3)
    report = check(lambda x: torch.where(x > 0, x * math.nan, x), lambda x: jnp.where(x > 0, jnp.nan, x),
                   inputs={"x": X}, examples=3, allow_nan="NaN for positive inputs is the function's contract")
    assert report.ok


def test_infinities_on_both_sides_fail_too():
    with pytest.raises(ParityError, match="infinite on both sides"):
        check(lambda x: x / 0.0, lambda x: x / 0.0 + 0, inputs={"x": X}, examples=3)


def test_empty_outputs_fail_unless_allowed():
    with pytest.raises(ParityError, match="compared no element"):
        check(lambda x: x[:0], lambda x: x[:0] + 0, inputs={"x": X}, examples=3)
    assert check(lambda x: x[:0], lambda x: x[:0] + 0, inputs={"x": X}, examples=3, allow_empty="a shape test").ok


def test_outputs_that_ignore_the_input_fail_unless_allowed():
    with pytest.raises(ParityError, match="do not depend on the input"):
        check(lambda x: x.sum() * 0, lambda x: x.sum() * 0 + 1 - 1, inputs={"x": X}, examples=5)
    assert check(lambda x: x.sum() * 0, lambda x: jnp.zeros(()), inputs={"x": X}, examples=5, allow_constant="a zero").ok


def test_a_function_compared_with_itself_is_refused():
    def f(x):
        return x

    with pytest.raises(ValueError, match="very same object"):
        check(f, f, inputs={"x": X})


def test_the_report_counts_elements_and_examples():
    report = check(lambda x: torch.tanh(x), lambda x: jnp.tanh(x), inputs={"x": X}, examples=4)
    assert report.examples == 4 and report.elements == 4 * 12 and report.checks == 4


def test_a_nan_batchnorm_running_var_fails():
    t = tnn.BatchNorm1d(4)
    with torch.no_grad():
        t.running_var.fill_(math.nan)

    class Bn(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return nn.BatchNorm(use_running_average=not train, momentum=0.9, name="t")(x)

    v = Bn().init(jax.random.key(0), jnp.zeros((3, 4)))
    wrapped = tnn.Sequential()
    wrapped.add_module("t", t)
    with pytest.raises(ParityError, match="NaN on both sides"):
        check_module(wrapped, Bn(), variables=v, inputs=np.ones((3, 4), np.float32) + np.arange(4, dtype=np.float32),
                     images=False, train=False)


def test_nan_optimizer_gradients_fail():
    cases = st.just({"params": np.array([1.0, -2.0]), "grads": np.full((2, 2), np.nan)})  # nothing to shrink
    with pytest.raises(ParityError, match="NaN on both sides"):
        check_optimizer(lambda ps: torch.optim.Adam(ps, lr=1e-2), optax.adam(1e-2), cases=cases, examples=2,
                        atol=1e-10, rtol=1e-10, reason="float64 trajectories")


def test_a_drawn_strategy_is_fine_as_inputs():
    assert check(lambda x: x * 2, lambda x: x * 2, inputs={"x": st.just(np.arange(3.0, dtype=np.float32))},
                 examples=1).ok  # one example: the constant rule needs 3 different inputs


def test_importing_parity_without_its_extra_names_the_extra():
    import subprocess
    import sys

    code = "import sys; sys.modules['hypothesis'] = None; import parity"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert 'parity needs hypothesis (not installed): pip install "twintricks[parity]"' in proc.stderr


def test_the_public_strategies_draw_framework_arrays_and_layouts():
    from hypothesis import given, settings

    from parity import strategies as S

    @settings(max_examples=5)
    @given(S.jax_arrays(np.float32, (2, 3)), S.torch_tensors(np.int32, (4,)),
           S.image_batches(dtype=np.uint8, shape=(1, 3, 4, 5), layout="NCHW"), S.scaled_normals((2, 2)))
    def body(j, t, img, x):
        assert isinstance(j, jax.Array) and j.shape == (2, 3) and j.dtype == jnp.float32
        assert isinstance(t, torch.Tensor) and t.dtype == torch.int32 and t.shape == (4,)
        assert img.shape == (1, 3, 4, 5) and img.dtype == np.uint8
        assert x.shape == (2, 2) and np.isfinite(x).all()

    body()
