"""Image classifiers, ``[N, C, H, W]`` float in, ``[N, num_classes]`` logits out.

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
* ``resnet50``: torchvision's ImageNet ResNet-50 (``torchvision.models.resnet50``, "v1.5": the
  stride of a down-sampling Bottleneck is on its 3×3 convolution, not on the first 1×1): a 7×7
  stride-2 stem with BN, ReLU and a 3×3 stride-2 max-pool, stages of 3, 4, 6, 3 Bottlenecks
  (1×1 → 3×3 → 1×1, expansion 4) of widths ``w, 2w, 4w, 8w`` (outputs ``4w`` … ``32w``) with
  ``w = 64``, a 1×1 projection (``downsample.0``) + BN (``downsample.1``) where the shape
  changes, global average pooling and a linear head. At ``w = 64`` the ``state_dict`` has
  torchvision's names and shapes, so torchvision's weights load as they are
  (``load_state_dict(strict=True)``). For 224×224 inputs (any size ≥ 32 works: the stem and the
  stages divide it by 32).

Initialisation of fastnet and resnet18 is PyTorch's default (uniform ``±1/sqrt(fan_in)`` for conv and linear weights
and linear biases; BN weight 1, bias 0); resnet50's is torchvision's (convolutions
``kaiming_normal_(mode="fan_out", nonlinearity="relu")``: normal with std ``sqrt(2/fan_out)``;
BN weight 1, bias 0; the head PyTorch's default; ``zero_init_residual=False``). jax_impl draws
from the same distributions.

References:
    He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016.
    Goyal et al. "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (the
    stride-on-3×3 variant torchvision calls ResNet v1.5).
"""

from __future__ import annotations

import torch
from torch import nn

from twintricks.checks import check_choice, check_int
from twintricks.models import DEFAULT_WIDTHS, MODELS, RESNET50_STAGES

__all__ = ["MODELS", "DEFAULT_WIDTHS", "ConvBN", "FastNet", "BasicBlock", "ResNet18", "Bottleneck", "ResNet50",
           "create_model"]

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


class Bottleneck(nn.Module):
    """torchvision's ResNet Bottleneck (v1.5): 1×1 → 3×3 (carrying the stride) → 1×1 (×4
    channels), each with BN, ReLU after the first two and after the sum with the (projected) input."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's ImageNet ResNet-50 (see the module docstring), with torchvision's initialisation."""

    def __init__(self, num_classes: int = 1000, *, width: int = 64, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM)
        cin = width
        for i, (blocks, mult, stride) in enumerate(RESNET50_STAGES, start=1):
            layers = []
            for b in range(blocks):
                layers.append(Bottleneck(cin, width * mult, stride if b == 0 else 1))
                cin = width * mult * Bottleneck.expansion
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():  # torchvision.models.resnet.ResNet.__init__'s initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


_CLASSES = {"fastnet": FastNet, "resnet18": ResNet18, "resnet50": ResNet50}


def create_model(name: str = "fastnet", num_classes: int = 10, *, width: int | None = None, in_channels: int = 3):
    """A fresh model by name (:data:`MODELS`: ``"fastnet"``, ``"resnet18"``, ``"resnet50"``);
    ``width`` defaults per model. Initialised from torch's global generator."""
    check_choice("model", name, MODELS)
    check_int("num_classes", num_classes, low=2)
    width = DEFAULT_WIDTHS[name] if width is None else check_int("width", width, low=1)
    return _CLASSES[name](num_classes, width=width, in_channels=in_channels)
