"""Image classifiers for 32×32 inputs, ``[N, C, H, W]`` float in, ``[N, num_classes]`` logits out.

The same architectures, layer for layer and name for name, are in :mod:`jax_impl.models`
(flax linen), so :mod:`parity.convert` can move weights between them by name
(``"layer1.0.conv1.weight"`` ↔ ``params["layer1_0"]["conv1"]["kernel"]``).

* ``fastnet`` (the default): three conv-BN-ReLU stages of width ``w, 2w, 4w`` (``w = 32``),
  each followed by a 2×2 max-pool, global average pooling and a linear head. About 10 M
  multiply-adds per 32×32 image: fast enough to train to > 97% on the digits data on a CPU in
  well under a minute, ~80% on CIFAR-10 after some epochs.
* ``resnet18``: the CIFAR ResNet-18 (He et al. 2016, as commonly adapted to 32×32 inputs: a
  3×3 stride-1 stem, no max-pool, four stages of two BasicBlocks of widths ``w, 2w, 4w, 8w``
  with ``w = 64``, 1×1 projection shortcuts with BN where the shape changes). A teacher for
  distillation.

Initialisation is PyTorch's default (uniform ``±1/sqrt(fan_in)`` for conv and linear weights
and linear biases; BN weight 1, bias 0); jax_impl draws from the same distributions.

References:
    He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

import torch
from torch import nn

from twintricks.checks import check_choice, check_int
from twintricks.models import DEFAULT_WIDTHS, MODELS

__all__ = ["MODELS", "DEFAULT_WIDTHS", "ConvBN", "FastNet", "BasicBlock", "ResNet18", "create_model"]

BN_MOMENTUM = 0.1  # torch convention: running = (1 - m)·running + m·batch (flax's is 1 - m)
BN_EPS = 1e-5


class ConvBN(nn.Module):
    """3×3 convolution (no bias, padding 1) → BatchNorm → ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class FastNet(nn.Module):
    """The default small CIFAR net (see the module docstring)."""

    def __init__(self, num_classes: int = 10, *, width: int = 32, in_channels: int = 3):
        super().__init__()
        self.conv1 = ConvBN(in_channels, width)
        self.conv2 = ConvBN(width, 2 * width)
        self.conv3 = ConvBN(2 * width, 4 * width)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.conv1(x), 2)
        x = nn.functional.max_pool2d(self.conv2(x), 2)
        x = nn.functional.max_pool2d(self.conv3(x), 2)
        return self.fc(x.mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.has_shortcut = stride != 1 or cin != cout
        if self.has_shortcut:
            self.shortcut_conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = self.shortcut_bn(self.shortcut_conv(x)) if self.has_shortcut else x
        return torch.relu(out + short)


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (see the module docstring)."""

    def __init__(self, num_classes: int = 10, *, width: int = 64, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM)
        cin = width
        for i, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), start=1):
            cout = width * mult
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def create_model(name: str = "fastnet", num_classes: int = 10, *, width: int | None = None, in_channels: int = 3):
    """A fresh model by name (``"fastnet"`` or ``"resnet18"``); ``width`` defaults per model."""
    check_choice("model", name, MODELS)
    check_int("num_classes", num_classes, low=2)
    width = DEFAULT_WIDTHS[name] if width is None else check_int("width", width, low=1)
    cls = FastNet if name == "fastnet" else ResNet18
    return cls(num_classes, width=width, in_channels=in_channels)
