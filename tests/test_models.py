"""The models in both frameworks and the weight conversion between them (parity.convert)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jax_impl import models as jm
from parity.convert import flax_to_torch_state_dict, images_to_torch, torch_state_dict_to_flax
from torch_impl import models as tm

SMALL = [("fastnet", 4), ("resnet18", 2)]  # the 32×32 models (resnet50's forward: the 224 px test below)
ALL = [*SMALL, ("resnet50", 2)]


def _randomised_torch(name, width, seed=0):
    """A torch model with random BatchNorm affine parameters and running statistics."""
    torch.manual_seed(seed)
    model = tm.create_model(name, 10, width=width)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.3), m.bias.normal_(0.0, 0.3)
                m.running_mean.normal_(0.0, 0.3), m.running_var.uniform_(0.5, 2.0)
    return model


def _images(n=3, seed=0, size=32):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("name, width", SMALL)
def test_converted_model_agrees_in_eval_mode(name, width):
    """torch → flax: same logits in eval mode (running statistics used)."""
    t = _randomised_torch(name, width).eval()
    variables = torch_state_dict_to_flax(t.state_dict())
    x = _images()
    expected = t(images_to_torch(x)).detach().numpy()
    got = np.asarray(jm.create_model(name, 10, width=width).apply(variables, jnp.asarray(x), train=False))
    # float32: XLA and oneDNN sum the convolutions in different orders (~1e-7 relative per layer)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, width", SMALL)
def test_train_mode_forward_and_running_stats_agree(name, width):
    """Train mode: batch statistics normalise, and the running stats update with torch's momentum
    convention (m = 0.1, unbiased variance) in both frameworks."""
    t = _randomised_torch(name, width).train()
    variables = torch_state_dict_to_flax(t.state_dict())
    x = _images(4, seed=1)
    expected = t(images_to_torch(x)).detach().numpy()
    got, upd = jm.create_model(name, 10, width=width).apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)  # batch-stat normalisation, float32
    after = torch_state_dict_to_flax(t.state_dict())["batch_stats"]
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(after), jax.tree_util.tree_leaves(upd["batch_stats"])):
        np.testing.assert_allclose(np.asarray(b), a, rtol=1e-4, atol=1e-5, err_msg=str(path))


@pytest.mark.parametrize("name, width", ALL)
def test_conversion_round_trip_is_exact(name, width):
    t = _randomised_torch(name, width)
    back = flax_to_torch_state_dict(torch_state_dict_to_flax(t.state_dict()))
    ref = t.state_dict()
    assert back.keys() == ref.keys()
    for k in ref:
        np.testing.assert_array_equal(back[k], ref[k].numpy(), err_msg=k)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)


@pytest.mark.parametrize("name, width", ALL)
def test_same_structure_and_parameter_count(name, width):
    """The fresh flax variables have exactly the tree the conversion produces (same layers, shapes)."""
    t = tm.create_model(name, 10, width=width)
    model = jm.create_model(name, 10, width=width)
    fresh = jax.eval_shape(lambda k: jm.init_model(model, k), jax.random.key(0))  # shapes only, no compile
    conv = torch_state_dict_to_flax(t.state_dict())
    assert jax.tree_util.tree_structure(fresh) == jax.tree_util.tree_structure(conv)
    shapes = lambda tree: [np.shape(a) for a in jax.tree_util.tree_leaves(tree)]  # noqa: E731
    assert shapes(fresh) == shapes(conv)
    assert sum(np.size(a) for a in jax.tree_util.tree_leaves(fresh["params"])) == sum(p.numel() for p in t.parameters())


def test_resnet50_is_torchvisions_architecture():
    """At its default width, torch_impl's resnet50 has torchvision's ``resnet50`` state_dict (names,
    order, shapes) and, with torchvision's weights loaded strictly, computes the same logits
    bit for bit (a stride on the first 1×1 instead of the 3×3, v1 instead of v1.5, would not)."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ref = torchvision.models.resnet50(num_classes=10)
    with torch.no_grad():
        for m in ref.modules():  # BN away from the identity, so that every layer shows
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2), m.running_var.uniform_(0.5, 2.0)
    ours = tm.create_model("resnet50", 10)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.from_numpy(_images(1, seed=4, size=32).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), ref.eval()(x), rtol=0, atol=0)


def test_resnet50_224px_forward_agrees_across_frameworks():
    """A 224×224 eval-mode forward of a tiny-width resnet50 (the stem's 7×7/2 conv and the
    -inf-padded 3×3/2 max-pool at full size), torch → converted flax; logits ``[N, K]``. (Train
    mode's batch statistics are test_train_mode_forward_and_running_stats_agree's, on the same
    BatchNorm.)"""
    t = _randomised_torch("resnet50", 2).eval()
    variables = torch_state_dict_to_flax(t.state_dict())
    x = _images(1, seed=2, size=224)
    expected = t(images_to_torch(x)).detach().numpy()
    model = jm.create_model("resnet50", 10, width=2)
    got = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.asarray(x)))  # one compile
    assert got.shape == (1, 10)
    # float32, 53 convolutions summed in different orders by oneDNN and XLA
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_resnet50_init_is_torchvisions():
    """Convolutions N(0, 2/fan_out) (kaiming_normal_, fan_out), not truncated, in both backends;
    BN (1, 0). Measured on a 3×3 kernel with fan-out 288 (jax: one Bottleneck of the same
    modules, initialised alone: the whole net's eager init costs seconds)."""
    t = tm.create_model("resnet50", 10, width=8)
    block = jm.Bottleneck(32, stride=2)
    v = jax.jit(lambda k: block.init(k, jnp.zeros((1, 8, 8, 64)), train=False))(jax.random.key(0))
    k_t = t.layer3[0].conv2.weight.detach().numpy()  # [32, 32, 3, 3]
    k_j = np.asarray(v["params"]["conv2"]["kernel"])  # [3, 3, 32, 32]
    std = np.sqrt(2 / (32 * 9))
    for k in (k_t, k_j):
        assert k.size == 9216 and abs(np.std(k) - std) < 0.05 * std and abs(np.mean(k)) < 0.1 * std
        assert np.abs(k).max() > 3 * std  # not truncated at 2 std
    assert set(v["params"]) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample_0", "downsample_1"}
    assert np.all(np.asarray(v["params"]["bn3"]["scale"]) == 1.0) and np.all(t.bn1.weight.detach().numpy() == 1.0)


def test_init_distributions_match_torch_default():
    """flax kernels are drawn from torch's default U(±1/sqrt(fan_in)) (checked on the widest layer)."""
    fresh = jm.init_model(jm.create_model("fastnet", 10, width=16), jax.random.key(0))
    k = np.asarray(fresh["params"]["conv3"]["conv"]["kernel"])  # fan-in 3x3x32, 18432 weights
    bound = 1 / np.sqrt(3 * 3 * 32)
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.98 * bound
    t = tm.create_model("fastnet", 10, width=16).conv3.conv.weight.detach().numpy()
    assert abs(np.std(k) - np.std(t)) < 0.05 * np.std(t)  # both ≈ bound/sqrt(3)


def test_bfloat16_compute_close_to_float32():
    model = jm.create_model("fastnet", 10, width=4)
    v = torch_state_dict_to_flax(tm.create_model("fastnet", 10, width=4).state_dict())
    x = jnp.asarray(_images())
    a = model.apply(v, x)
    b = jm.create_model("fastnet", 10, width=4, dtype=jnp.bfloat16).apply(v, x)
    assert b.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=0.05)  # bf16 has 8 bits of mantissa


def test_bad_arguments():
    for create in (tm.create_model, jm.create_model):
        with pytest.raises(ValueError, match="`model`"):
            create("vgg", 10)
        with pytest.raises(ValueError, match="`num_classes`"):
            create("fastnet", 1)
        with pytest.raises(TypeError, match="`width`"):
            create("fastnet", 10, width=2.5)
    with pytest.raises(ValueError, match="cannot convert"):
        torch_state_dict_to_flax({"x.weight": np.zeros((2, 2, 2))})


def test_model_names_and_widths_come_from_one_table():
    """Both backends and the command line read the model names and default widths from twintricks.models."""
    import argparse

    from twintricks.models import DEFAULT_WIDTHS, MODELS
    from twintricks_cli.train import add_parser

    assert tm.MODELS == jm.MODELS == MODELS and tm.DEFAULT_WIDTHS == jm.DEFAULT_WIDTHS == DEFAULT_WIDTHS
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    for name in MODELS:
        assert parser.parse_args(["train", "--model", name]).model == name
        assert tm.create_model(name, 10).fc.in_features % DEFAULT_WIDTHS[name] == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--model", "vgg"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jax_max_pool_gradient_is_the_select_and_scatter_one(seed):
    """FastNet's 2×2 max-pool (``jax_impl.models._max_pool_2x2``) gives ``nn.max_pool``'s values
    and, with its elementwise gradient, the bytes of ``nn.max_pool``'s select-and-scatter gradient:
    inputs full of ties (small integers, ReLU zeros, a constant block), NaNs, float32 and
    bfloat16. Odd sizes fall back to ``nn.max_pool`` itself: there the values are checked against
    NumPy's maximum over the windows that fit (the last row or column dropped)."""
    import flax.linen as nn

    rng = np.random.default_rng(seed)
    reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
    for shape in [(4, 8, 6, 5), (2, 32, 32, 16)]:
        values = rng.integers(-3, 4, shape).astype(np.float32)
        cases = [values, np.maximum(values, 0), np.where(values > 2, np.nan, values), rng.standard_normal(shape)]
        cases[0][:, :4, :4] = 1.0  # whole windows of one value
        for case in cases:
            for dtype in (jnp.float32, jnp.bfloat16):
                x = jnp.asarray(case, dtype)
                out, vjp = jax.vjp(jm._max_pool_2x2, x)
                want, want_vjp = jax.vjp(reference, x)
                g = jnp.asarray(rng.standard_normal(out.shape), dtype)
                np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(want, np.float32))
                np.testing.assert_array_equal(np.asarray(vjp(g)[0], np.float32), np.asarray(want_vjp(g)[0], np.float32))
    for n, h, w, c in [(3, 7, 6, 2), (2, 6, 9, 3)]:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        windows = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
        np.testing.assert_array_equal(np.asarray(jm._max_pool_2x2(jnp.asarray(x))), windows.max(axis=(2, 4)))
