"""Image classifiers, ``[N, H, W, C]`` float in, ``[N, num_classes]`` logits out.

The same architectures as :mod:`torch_impl.models`, written with **flax linen**. Linen keeps
the weights in plain pytrees (``{"params": ..., "batch_stats": ...}``) outside the module, so a
training state is a pytree that ``jax.jit`` donates and checkpoints save as NumPy, and weight
conversion to and from a torch ``state_dict`` is a rename plus a transpose
(:mod:`parity.convert`). Submodule names mirror torch's attribute names: torch
``layer1.0.conv1.weight`` is linen ``params["layer1_0"]["conv1"]["kernel"]``.

* ``fastnet`` (default): conv-BN-ReLU (``w``) → max-pool → conv-BN-ReLU (``2w``) → max-pool →
  conv-BN-ReLU (``4w``) → max-pool → global average → linear; ``w = 32``.
* ``resnet18``: CIFAR ResNet-18 (3×3 stem, no max-pool, BasicBlocks ``w, 2w, 4w, 8w``,
  ``w = 64``, 1×1 projection shortcuts with BN).
* ``resnet50``: torchvision's ImageNet ResNet-50, v1.5 (7×7/2 stem, 3×3/2 max-pool, 3, 4, 6, 3
  Bottlenecks of widths ``w, 2w, 4w, 8w`` with the stride on the 3×3, ``w = 64``; the projection
  is ``downsample_0`` (conv) + ``downsample_1`` (BN), torch's ``downsample.0``/``.1``). Max-pool
  padding is ``-inf``, as torch's.

BatchNorm here is :class:`BatchNorm`, written to follow PyTorch's convention exactly: the
running mean/var update ``running = (1 - m)·running + m·batch`` with ``m = 0.1`` and the
**unbiased** batch variance for the running var (flax's own ``nn.BatchNorm`` uses ``m`` the
other way round and the biased variance), normalisation with the biased batch variance and
``eps = 1e-5``. Convolution padding is explicit (1 pixel each side), as torch's.

Initialisation draws from PyTorch's default distributions (``U(±1/sqrt(fan_in))`` for conv and
linear weights and linear biases), and for resnet50 from torchvision's (convolutions normal with
std ``sqrt(2/fan_out)``, untruncated, as ``kaiming_normal_(mode="fan_out")``), so both backends
start from equally good (not equal) weights.

``dtype`` (e.g. ``jnp.bfloat16``) sets the compute dtype of convolutions and the linear layer;
parameters stay float32 and BatchNorm statistics are computed in float32.

References:
    He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from twintricks.checks import check_choice, check_int
from twintricks.models import DEFAULT_WIDTHS, MODELS, RESNET50_STAGES

__all__ = [
    "MODELS",
    "DEFAULT_WIDTHS",
    "BatchNorm",
    "ConvBN",
    "FastNet",
    "BasicBlock",
    "ResNet18",
    "Bottleneck",
    "ResNet50",
    "create_model",
    "init_model",
]

BN_MOMENTUM = 0.1
BN_EPS = 1e-5

# torch's default: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in)) = variance_scaling(1/3, fan_in, uniform)
_torch_default_kernel = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_default_bias(fan_in: int):
    bound = 1.0 / fan_in**0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# torchvision's ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu") = N(0, 2/fan_out), not truncated
_kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(features, kernel, stride, pad, dtype, name, init=_torch_default_kernel):
    return nn.Conv(
        features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
        use_bias=False, dtype=dtype, kernel_init=init, name=name,
    )


class BatchNorm(nn.Module):
    """BatchNorm over ``[N, H, W, C]`` with PyTorch's conventions (see the module docstring)."""

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPS

    @nn.compact
    def __call__(self, x, train: bool):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        xf = x.astype(jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = xf.mean(axes)
            var = jnp.square(xf - mean).mean(axes)
            n = x.size // c
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = (1 - m) * ra_mean.value + m * mean
                ra_var.value = (1 - m) * ra_var.value + m * var * (n / max(n - 1, 1))
        else:
            mean, var = ra_mean.value, ra_var.value
        y = (xf - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias
        return y.astype(x.dtype)


class ConvBN(nn.Module):
    """3×3 convolution (no bias, padding 1) → BatchNorm → ReLU."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        x = _conv(self.features, 3, 1, 1, self.dtype, "conv")(x)
        return nn.relu(BatchNorm(name="bn")(x, train))


def _linear(num_classes, fan_in, dtype):
    return nn.Dense(
        num_classes, dtype=dtype, kernel_init=_torch_default_kernel,
        bias_init=_torch_default_bias(fan_in), name="fc",
    )


@jax.custom_vjp
def _even_max_pool(x):
    return nn.max_pool(x, (2, 2), strides=(2, 2))


def _quarters(x):
    """The four pixels of each 2×2 window of ``[N, H, W, C]`` (even H, W), in the window's
    row-major order."""
    return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


def _even_max_pool_fwd(x):
    # The pixel the gradient goes to: XLA's (and so jax's) max-pool gradient is a
    # select-and-scatter with ``>=``: scanning the window in row-major order, a pixel replaces
    # the one kept unless the kept one is ``>=`` it; so a tie keeps the first, as torch's does,
    # and a NaN follows the same comparisons here.
    q = _quarters(x)
    kept, pick = q[0], jnp.zeros(q[0].shape, jnp.int8)
    for k in (1, 2, 3):
        take = ~(kept >= q[k])
        kept, pick = jnp.where(take, q[k], kept), jnp.where(take, jnp.int8(k), pick)
    return _even_max_pool(x), pick


def _even_max_pool_bwd(pick, g):
    zero = jnp.zeros((), g.dtype)
    ga, gb, gc, gd = (jnp.where(pick == k, g, zero) for k in range(4))
    n, h, w, c = g.shape
    top = jnp.stack([ga, gb], axis=3).reshape(n, h, 2 * w, c)
    bottom = jnp.stack([gc, gd], axis=3).reshape(n, h, 2 * w, c)
    return (jnp.stack([top, bottom], axis=2).reshape(n, 2 * h, 2 * w, c),)


_even_max_pool.defvjp(_even_max_pool_fwd, _even_max_pool_bwd)


def _max_pool_2x2(x):
    """``nn.max_pool(x, (2, 2), strides=(2, 2))`` on ``[N, H, W, C]``, the same values and, for
    even H and W, the same gradient computed elementwise.

    Why: XLA:CPU runs the max-pool gradient (a select-and-scatter) as a scalar loop. For a
    ``[64, 32, 32, 32]`` float32 input it took 34–42 ms, against 0.5 ms for the forward pass and
    1.4 ms for this gradient; FastNet's training step took a quarter to a third less time with it
    (on a CPU, batch 64). This gradient sends each output's gradient to the pixel the
    select-and-scatter picks: ties and NaNs are handled the same, so the bytes are the same
    (``tests/test_models.py``). Odd sizes keep ``nn.max_pool``, whose window drops the last row or
    column. Reverse mode only, like any ``jax.custom_vjp``."""
    if x.shape[1] % 2 or x.shape[2] % 2:
        return nn.max_pool(x, (2, 2), strides=(2, 2))
    return _even_max_pool(x)


class FastNet(nn.Module):
    """The default small CIFAR net (see the module docstring)."""

    num_classes: int = 10
    width: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        w = self.width
        x = _max_pool_2x2(ConvBN(w, self.dtype, name="conv1")(x, train))
        x = _max_pool_2x2(ConvBN(2 * w, self.dtype, name="conv2")(x, train))
        x = _max_pool_2x2(ConvBN(4 * w, self.dtype, name="conv3")(x, train))
        x = x.mean(axis=(1, 2))
        return _linear(self.num_classes, 4 * w, self.dtype)(x).astype(jnp.float32)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU."""

    features: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        out = nn.relu(BatchNorm(name="bn1")(_conv(self.features, 3, self.stride, 1, self.dtype, "conv1")(x), train))
        out = BatchNorm(name="bn2")(_conv(self.features, 3, 1, 1, self.dtype, "conv2")(out), train)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = BatchNorm(name="shortcut_bn")(
                _conv(self.features, 1, self.stride, 0, self.dtype, "shortcut_conv")(x), train
            )
        return nn.relu(out + x)


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (see the module docstring)."""

    num_classes: int = 10
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        w = self.width
        x = nn.relu(BatchNorm(name="bn1")(_conv(w, 3, 1, 1, self.dtype, "conv1")(x), train))
        for i, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), start=1):
            x = BasicBlock(w * mult, stride, self.dtype, name=f"layer{i}_0")(x, train)
            x = BasicBlock(w * mult, 1, self.dtype, name=f"layer{i}_1")(x, train)
        x = x.mean(axis=(1, 2))
        return _linear(self.num_classes, 8 * w, self.dtype)(x).astype(jnp.float32)


class Bottleneck(nn.Module):
    """torchvision's ResNet Bottleneck (v1.5): 1×1 → 3×3 (carrying the stride) → 1×1 (×4
    channels), each with BN, ReLU after the first two and after the sum with the (projected) input."""

    planes: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        cout, init = self.planes * 4, _kaiming_fan_out
        out = nn.relu(BatchNorm(name="bn1")(_conv(self.planes, 1, 1, 0, self.dtype, "conv1", init)(x), train))
        out = nn.relu(BatchNorm(name="bn2")(_conv(self.planes, 3, self.stride, 1, self.dtype, "conv2", init)(out), train))
        out = BatchNorm(name="bn3")(_conv(cout, 1, 1, 0, self.dtype, "conv3", init)(out), train)
        if self.stride != 1 or x.shape[-1] != cout:
            x = BatchNorm(name="downsample_1")(_conv(cout, 1, self.stride, 0, self.dtype, "downsample_0", init)(x), train)
        return nn.relu(out + x)


class ResNet50(nn.Module):
    """torchvision's ImageNet ResNet-50 (see the module docstring)."""

    num_classes: int = 1000
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        w = self.width
        x = nn.relu(BatchNorm(name="bn1")(_conv(w, 7, 2, 3, self.dtype, "conv1", _kaiming_fan_out)(x), train))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for i, (blocks, mult, stride) in enumerate(RESNET50_STAGES, start=1):
            for b in range(blocks):
                x = Bottleneck(w * mult, stride if b == 0 else 1, self.dtype, name=f"layer{i}_{b}")(x, train)
        x = x.mean(axis=(1, 2))
        return _linear(self.num_classes, 32 * w, self.dtype)(x).astype(jnp.float32)


_CLASSES = {"fastnet": FastNet, "resnet18": ResNet18, "resnet50": ResNet50}


def create_model(name: str = "fastnet", num_classes: int = 10, *, width: int | None = None, dtype: Any = jnp.float32):
    """A linen module by name (:data:`MODELS`: ``"fastnet"``, ``"resnet18"``, ``"resnet50"``);
    ``width`` defaults per model."""
    check_choice("model", name, MODELS)
    check_int("num_classes", num_classes, low=2)
    width = DEFAULT_WIDTHS[name] if width is None else check_int("width", width, low=1)
    return _CLASSES[name](num_classes=num_classes, width=width, dtype=dtype)


def init_model(model: nn.Module, key, image_shape=(32, 32, 3)) -> dict:
    """Fresh variables ``{"params": ..., "batch_stats": ...}`` for ``[N, *image_shape]`` inputs."""
    variables = model.init(key, jnp.zeros((1, *tuple(image_shape)), jnp.float32), train=False)
    return dict(variables)
