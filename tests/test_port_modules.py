"""Check your own port, modules: weight conversion (linen and NNX) that never fails silently, and
module checks that pass correct ports and name the layer of each classic porting bug.

The models are tiny (a 2-conv CNN on 8×8 images, a 4-layer MLP) so the file stays fast on 2 cores.
A bug-catching test feeds one fixed input (nothing for hypothesis to shrink); the passing tests
draw inputs under the suite's hypothesis profile.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as tnn
from flax import nnx

from parity import ConversionError, ParityError, check_module, flax_to_torch, map_weights, torch_to_flax
from parity.convert import images_to_torch
from parity.modules import input_batches

# float32 convolutions and matmuls summed in different orders (oneDNN vs XLA); the gradients go
# through two training-mode BatchNorms, which divide by the batch std (~1) and so keep the
# relative size of those differences, a few 1e-6 of values up to ~10.
CNN_TOL = dict(atol=1e-4, rtol=1e-3, reason="float32 conv/matmul sums in different orders, through two BatchNorms")
MLP_TOL = dict(atol=1e-5, rtol=1e-4, reason="float32 matmuls of 6 terms in different orders")

X_IMG = np.random.default_rng(7).standard_normal((2, 8, 8, 3)).astype(np.float32)
X_VEC = (np.random.default_rng(8).standard_normal((3, 6)) * 1e-2).astype(np.float32)  # small: LN eps matters


# ------------------------------------------------------------------------------- models


class TorchCNN(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = tnn.BatchNorm2d(4)  # torch: eps 1e-5, momentum 0.1
        self.conv2 = tnn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(4)
        self.fc = tnn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.flatten(1))  # NCHW flatten: features in (C, H, W) order


class LinenCNN(nn.Module):
    padding2: object = ((1, 1), (1, 1))  # the bug: "SAME" (pads (0, 1) at stride 2 on even sizes)
    eps: float = 1e-5
    momentum: float = 0.9  # torch's 0.1 in flax's convention
    nchw_flatten: bool = True  # the bug: False flattens NHWC

    @nn.compact
    def __call__(self, x, train: bool = False):
        def bn(name):
            return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=self.eps, name=name)

        x = nn.relu(bn("bn1")(nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), name="conv1")(x)))
        x = nn.relu(bn("bn2")(nn.Conv(4, (3, 3), strides=2, padding=self.padding2, use_bias=False, name="conv2")(x)))
        if self.nchw_flatten:
            x = jnp.transpose(x, (0, 3, 1, 2))
        return nn.Dense(5, name="fc")(x.reshape(x.shape[0], -1))


class NnxCNN(nnx.Module):
    def __init__(self, rngs, *, nchw_flatten=True):
        self.conv1 = nnx.Conv(3, 4, (3, 3), padding=((1, 1), (1, 1)), rngs=rngs)
        self.bn1 = nnx.BatchNorm(4, epsilon=1e-5, momentum=0.9, rngs=rngs)
        self.conv2 = nnx.Conv(4, 4, (3, 3), strides=2, padding=((1, 1), (1, 1)), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(4, epsilon=1e-5, momentum=0.9, rngs=rngs)
        self.fc = nnx.Linear(64, 5, rngs=rngs)
        self.nchw_flatten = nchw_flatten

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x)))
        x = nnx.relu(self.bn2(self.conv2(x)))
        if self.nchw_flatten:
            x = jnp.transpose(x, (0, 3, 1, 2))
        return self.fc(x.reshape(x.shape[0], -1))


class TorchMLP(tnn.Module):
    def __init__(self):
        super().__init__()
        self.ln = tnn.LayerNorm(6)  # eps 1e-5 (flax's LayerNorm default is 1e-6)
        self.q = tnn.Linear(6, 6)
        self.mix = tnn.Linear(6, 6)
        self.out = tnn.Linear(6, 3)

    def forward(self, x):
        x = torch.softmax(self.q(self.ln(x)), dim=-1)
        return self.out(self.mix(x))


class TransposedDense(nn.Module):
    """A hand-written Dense that reads its ``[in, out]`` kernel the torch way round (the bug)."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ kernel.T + bias


class LinenMLP(nn.Module):
    ln_eps: float = 1e-5
    softmax_axis: int = -1
    transposed_mix: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(6, name="q")(nn.LayerNorm(epsilon=self.ln_eps, name="ln")(x))
        x = jax.nn.softmax(x, axis=self.softmax_axis)
        mix = TransposedDense(6, name="mix") if self.transposed_mix else nn.Dense(6, name="mix")
        return nn.Dense(3, name="out")(mix(x))


def _torch_cnn(seed=0):
    torch.manual_seed(seed)
    m = TorchCNN()
    m.train()
    with torch.no_grad():  # non-trivial running statistics
        for s in range(3):
            m(images_to_torch(np.random.default_rng(s).standard_normal((4, 8, 8, 3)).astype(np.float32)))
    return m.eval()


def _linen_vars(model, shape):
    return model.init(jax.random.key(0), jnp.zeros(shape, jnp.float32))


def _torch_mlp():
    torch.manual_seed(1)
    return TorchMLP()


def _caught(torch_model, flax_model, x, **kwargs) -> str:
    with pytest.raises(ParityError) as info:
        check_module(torch_model, flax_model, inputs=x, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------ correct ports pass


def test_correct_linen_port_passes():
    lin = LinenCNN()
    report = check_module(
        _torch_cnn(), lin, variables=_linen_vars(lin, (1, 8, 8, 3)), inputs=input_batches((2, 8, 8, 3), scales=(1.0,)),
        accept=["biased_running_var"], **CNN_TOL,
    )
    assert report.ok and report.examples >= 1
    # outputs, input grad, 7 parameter grads, 4 running statistics, in two modes
    assert report.checks >= report.examples * 14


def test_correct_nnx_port_passes():
    report = check_module(
        _torch_cnn(), NnxCNN(nnx.Rngs(0)), train_arg=None, inputs=input_batches((2, 8, 8, 3), scales=(1.0,)),
        accept=["biased_running_var"], **CNN_TOL,
    )
    assert report.ok


def test_correct_mlp_port_passes():
    lin = LinenMLP()
    report = check_module(
        _torch_mlp(), lin, variables=_linen_vars(lin, (3, 6)), images=False,
        inputs=input_batches((3, 6), scales=(1e-2, 1.0)), **MLP_TOL,
    )
    assert report.ok


def test_flatten_permutation_makes_an_nhwc_flatten_port_right():
    lin = LinenCNN(nchw_flatten=False)
    report = check_module(
        _torch_cnn(), lin, variables=_linen_vars(lin, (1, 8, 8, 3)), inputs=X_IMG, flatten={"fc": (4, 4, 4)},
        accept=["biased_running_var"], **CNN_TOL,
    )
    assert report.ok


# -------------------------------------------------------------- each classic bug, localised


def test_same_padding_on_a_strided_conv_is_caught_at_that_conv():
    lin = LinenCNN(padding2="SAME")
    msg = _caught(_torch_cnn(), lin, X_IMG, variables=_linen_vars(lin, (1, 8, 8, 3)), **CNN_TOL)
    assert "first layer that differs: 'conv2'" in msg
    assert "torch pads (1, 1)" in msg and "flax pads (0, 1)" in msg and "'SAME'" in msg


def test_nhwc_flatten_before_a_linear_is_caught_with_the_fix():
    lin = LinenCNN(nchw_flatten=False)
    msg = _caught(_torch_cnn(), lin, X_IMG, variables=_linen_vars(lin, (1, 8, 8, 3)), **CNN_TOL)
    assert "at the input of 'fc'" in msg and "after 'bn2'" in msg
    assert "flatten={'fc': (4, 4, 4)}" in msg


def test_nhwc_flatten_in_an_nnx_port_is_caught_too():
    msg = _caught(_torch_cnn(), NnxCNN(nnx.Rngs(0), nchw_flatten=False), X_IMG, train_arg=None, **CNN_TOL)
    assert "at the input of 'fc'" in msg and "flatten={'fc': (4, 4, 4)}" in msg


def test_batchnorm_eps_mismatch_is_caught_at_that_batchnorm():
    lin = LinenCNN(eps=1e-3)
    msg = _caught(_torch_cnn(), lin, X_IMG, variables=_linen_vars(lin, (1, 8, 8, 3)), **CNN_TOL)
    # both BatchNorms have the bug; the first one beyond the tolerance is named
    assert "first layer that differs: 'bn" in msg and "eps: torch 1e-05, flax epsilon=0.001" in msg


def test_batchnorm_momentum_copied_from_torch_is_caught():
    """torch momentum 0.1 is flax momentum 0.9; a port that copies 0.1 has the same outputs and
    gradients — only the running statistics after a training step show it."""
    lin = LinenCNN(momentum=0.1)
    msg = _caught(
        _torch_cnn(), lin, X_IMG, variables=_linen_vars(lin, (1, 8, 8, 3)), accept=["biased_running_var"], **CNN_TOL
    )
    assert "train/stats/bn1.running_mean" in msg
    assert "BatchNorm 'bn1'" in msg and "flax's momentum should be 1 - 0.1 = 0.9" in msg


def test_flax_biased_running_var_is_reported_as_the_convention_not_accepted_silently():
    lin = LinenCNN()
    msg = _caught(_torch_cnn(), lin, X_IMG, variables=_linen_vars(lin, (1, 8, 8, 3)), **CNN_TOL)
    assert "running_var" in msg and "biased batch variance" in msg and "accept=['biased_running_var']" in msg


def test_softmax_over_the_wrong_axis_is_caught_between_the_layers():
    lin = LinenMLP(softmax_axis=0)
    msg = _caught(_torch_mlp(), lin, X_VEC, variables=_linen_vars(lin, (3, 6)), images=False, **MLP_TOL)
    assert "at the input of 'mix'" in msg and "after 'q'" in msg and "softmax" in msg


def test_transposed_linear_weight_is_caught_at_that_layer():
    lin = LinenMLP(transposed_mix=True)
    msg = _caught(_torch_mlp(), lin, X_VEC, variables=_linen_vars(lin, (3, 6)), images=False, **MLP_TOL)
    assert "first layer that differs: 'mix'" in msg and "its input agrees" in msg


def test_layernorm_eps_is_caught_at_the_layernorm():
    lin = LinenMLP(ln_eps=1e-6)  # flax's default, torch's is 1e-5
    msg = _caught(_torch_mlp(), lin, X_VEC, variables=_linen_vars(lin, (3, 6)), images=False, **MLP_TOL)
    assert "first layer that differs: 'ln'" in msg and "eps: torch 1e-05, flax epsilon=1e-06" in msg


# --------------------------------------------------------------------------- round trips


def test_linen_round_trip_torch_flax_torch():
    src = _torch_cnn()
    lin = LinenCNN()
    variables = torch_to_flax(src, _linen_vars(lin, (1, 8, 8, 3)))
    x = X_IMG
    out_t = src(images_to_torch(x)).detach().numpy()
    out_f = np.asarray(lin.apply(variables, jnp.asarray(x), train=False))
    np.testing.assert_allclose(out_f, out_t, rtol=1e-5, atol=1e-5)  # float32 convs, different sum orders
    dst = TorchCNN().eval()  # different initial weights and statistics
    flax_to_torch(variables, dst)
    for key, value in src.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(dst.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    np.testing.assert_array_equal(dst(images_to_torch(x)).detach().numpy(), out_t)


def test_nnx_round_trip_torch_flax_torch_including_batchnorm_statistics():
    src = _torch_cnn()
    model = torch_to_flax(src, NnxCNN(nnx.Rngs(3)))
    model.eval()
    np.testing.assert_array_equal(np.asarray(model.bn1.mean.get_value()), src.bn1.running_mean.numpy())
    np.testing.assert_array_equal(np.asarray(model.bn2.var.get_value()), src.bn2.running_var.numpy())
    out_t = src(images_to_torch(X_IMG)).detach().numpy()
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(X_IMG))), out_t, rtol=1e-5, atol=1e-5)
    dst = TorchCNN().eval()
    flax_to_torch(model, dst)
    for key, value in src.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(dst.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    np.testing.assert_array_equal(dst(images_to_torch(X_IMG)).detach().numpy(), out_t)


def test_the_library_models_convert_like_the_name_convention_converter():
    """map_weights pairs torch_impl's ResNet-18 with jax_impl's by name alone, and converts the
    same arrays as parity.convert's name-convention converter."""
    import jax_impl.models as JM
    import torch_impl.models as TM
    from parity.convert import torch_state_dict_to_flax

    torch.manual_seed(0)
    t = TM.create_model("resnet18", 10, width=2)
    jm = JM.create_model("resnet18", 10, width=2)
    v = torch_to_flax(t, JM.init_model(jm, jax.random.key(0), (8, 8, 3)))
    ref = torch_state_dict_to_flax(t.state_dict())
    leaves = jax.tree_util.tree_leaves_with_path(ref)
    assert len(leaves) == len(jax.tree_util.tree_leaves(v))
    for path, value in leaves:
        node = v
        for k in path:
            node = node[k.key]
        np.testing.assert_array_equal(np.asarray(node), value)


# --------------------------------------------------------------- conversion never silent


class _Named(nn.Module):
    name_fc: str = "fc"
    conv_bias: bool = True
    kernel_out_in: bool = False

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(2, (1, 1), use_bias=self.conv_bias, name="conv")(x).reshape(x.shape[0], -1)
        if self.kernel_out_in:
            k = self.param("kernel", nn.initializers.zeros, (3, x.shape[-1]))  # [out, in]
            return x @ k.T
        return nn.Dense(3, name=self.name_fc)(x)


class _TorchNamed(tnn.Module):
    def __init__(self, conv_bias=True, fc_bias=True):
        super().__init__()
        self.conv = tnn.Conv2d(1, 2, 1, bias=conv_bias)
        self.fc = tnn.Linear(8, 3, bias=fc_bias)


def _vars(m):
    return m.init(jax.random.key(0), jnp.zeros((1, 2, 2, 1)))


def test_unpaired_modules_are_an_error_that_lists_both_sides_and_names_fixes_them():
    with pytest.raises(ConversionError) as info:
        map_weights(_TorchNamed(), _vars(_Named(name_fc="head")))
    msg = str(info.value)
    assert "torch fc (Linear" in msg and "no flax module named 'fc'" in msg and "flax head" in msg
    wm = map_weights(_TorchNamed(), _vars(_Named(name_fc="head")), names={"fc": "head"})
    assert [e.flax_path for e in wm.entries] == [("conv",), ("head",)]


def test_a_torch_parameter_the_port_does_not_use_is_an_error():
    with pytest.raises(ConversionError, match=r"torch conv.bias \(2,\): flax conv has no 'bias'"):
        map_weights(_TorchNamed(conv_bias=True), _vars(_Named(conv_bias=False)))


def test_a_flax_variable_nothing_fills_is_an_error():
    with pytest.raises(ConversionError, match=r"flax conv/bias \(2,\) \(params\) gets no torch value"):
        map_weights(_TorchNamed(conv_bias=False), _vars(_Named(conv_bias=True)))


def test_a_shape_that_fits_only_after_a_guess_is_an_error_unless_accepted():
    class TorchNoBias(_TorchNamed):
        def __init__(self):
            super().__init__(fc_bias=False)

    flax_vars = _vars(_Named(kernel_out_in=True))
    flax_vars = {"params": {"conv": flax_vars["params"]["conv"], "fc": {"kernel": flax_vars["params"]["kernel"]}}}
    with pytest.raises(ConversionError, match=r"fits only as is — pass accept=\['fc.weight'\]"):
        map_weights(TorchNoBias(), flax_vars)
    wm = map_weights(TorchNoBias(), flax_vars, accept=["fc.weight"])
    assert wm.warnings and "fc.weight" in wm.warnings[0] and "accepted guess" in wm.warnings[0]


def test_a_module_type_without_a_rule_is_an_error():
    class WithPReLU(tnn.Module):
        def __init__(self):
            super().__init__()
            self.act = tnn.PReLU()

    with pytest.raises(ConversionError, match=r"torch act \(PReLU: weight \(1,\)\): no conversion rule"):
        map_weights(WithPReLU(), {"params": {}})


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="torch_module"):
        map_weights("nope", {"params": {}})
    with pytest.raises(TypeError, match="nnx.Module or linen variables"):
        map_weights(_TorchNamed(), [1, 2])
    with pytest.raises(ValueError, match="reason"):
        check_module(_torch_mlp(), LinenMLP(), variables=_linen_vars(LinenMLP(), (3, 6)), inputs=X_VEC, images=False, atol=1e-5, reason="")


def test_a_module_check_in_a_registry_names_the_layer_in_its_table_row():
    from parity import module_check
    from parity.registry import run_trick

    lin = LinenMLP(softmax_axis=0)
    trick = module_check("my_mlp", _torch_mlp(), lin, variables=_linen_vars(lin, (3, 6)), inputs=X_VEC, images=False, **MLP_TOL)
    report = run_trick(trick, examples=1)
    assert not report.ok and "at the input of 'mix'" in report.failure


def test_checking_an_nnx_module_leaves_it_untouched():
    model = NnxCNN(nnx.Rngs(0))
    before = np.asarray(model.conv1.kernel.get_value()).copy()
    check_module(_torch_cnn(), model, train_arg=None, inputs=X_IMG, accept=["biased_running_var"], **CNN_TOL)
    np.testing.assert_array_equal(np.asarray(model.conv1.kernel.get_value()), before)
