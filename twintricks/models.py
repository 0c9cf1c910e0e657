"""The model zoo's names and default widths, shared by both backends and the command line.

:mod:`torch_impl.models` and :mod:`jax_impl.models` build the architectures named here (the
same layers and parameter names in both); ``twintricks train --model/--width`` reads its choices
and help from this table. A model's *width* is the channel count of its first stage; the later
stages are multiples of it. ``fastnet`` and ``resnet18`` are made for 32×32 inputs (CIFAR-style
stems); ``resnet50`` is torchvision's ImageNet architecture (for 224×224 inputs, any size ≥ 32
works), identical to ``torchvision.models.resnet50`` at its default width 64.
"""

from __future__ import annotations

__all__ = ["MODELS", "DEFAULT_WIDTHS", "DEFAULT_MODEL", "MODEL_DOCS", "RESNET50_STAGES"]

#: name → (default width, one-line description), in the order the command line lists them.
_TABLE = {
    "fastnet": (32, "three conv-BN-ReLU stages of widths w, 2w, 4w, each with a 2x2 max-pool"),
    "resnet18": (64, "CIFAR ResNet-18: 3x3 stem, BasicBlock stages of widths w, 2w, 4w, 8w"),
    "resnet50": (64, "ImageNet ResNet-50 (torchvision's, v1.5): 7x7/2 stem + max-pool, Bottleneck stages "
                 "of widths w, 2w, 4w, 8w (x4 out)"),
}

MODELS: tuple[str, ...] = tuple(_TABLE)
DEFAULT_WIDTHS: dict[str, int] = {name: width for name, (width, _) in _TABLE.items()}
MODEL_DOCS: dict[str, str] = {name: doc for name, (_, doc) in _TABLE.items()}
DEFAULT_MODEL = "fastnet"

#: ResNet-50's stages (torchvision's ``[3, 4, 6, 3]``): (Bottlenecks, planes as a multiple of the
#: width, stride of the first Bottleneck).
RESNET50_STAGES: tuple[tuple[int, int, int], ...] = ((3, 1, 1), (4, 2, 2), (6, 4, 2), (3, 8, 2))
