"""Reliability checks of the random modules: what a non-tensor, an attribute changed after
construction or an empty batch gets (issue 22, items 5 and 9)."""

from __future__ import annotations

import pytest
import torch

import torch_impl as T
from torch_impl.transform import RandomTransform

IMAGE_MODULES = {
    "Cutout": lambda: T.Cutout(length=2),
    "RandomErasing": lambda: T.RandomErasing(),
    "RandomResizedCropFlip": lambda: T.RandomResizedCropFlip(4),
    "AutoAugment": lambda: T.AutoAugment(),
    "RandAugment": lambda: T.RandAugment(),
    "TrivialAugmentWide": lambda: T.TrivialAugmentWide(),
    "AugMix": lambda: T.AugMix(),
}
MIXING_MODULES = {
    "Mixup": lambda: T.Mixup(num_classes=3),
    "RICAP": lambda: T.RICAP(num_classes=3),
    "CutMix": lambda: T.CutMix(num_classes=3),
    "MixupCutmix": lambda: T.MixupCutmix(num_classes=3),
}


def test_every_random_module_is_listed():
    exported = {n for n in T.__all__ if isinstance(getattr(T, n), type) and issubclass(getattr(T, n), RandomTransform)}
    assert exported == set(IMAGE_MODULES) | set(MIXING_MODULES)


NOT_TENSORS = [[[1] * 50] * 50, "images", None, 3.0]


@pytest.mark.parametrize("name", sorted(IMAGE_MODULES))
def test_image_module_given_a_non_tensor_names_images_in_a_short_message(name):
    module = IMAGE_MODULES[name]()
    for x in NOT_TENSORS:
        with pytest.raises(TypeError, match="`images` must be a torch.Tensor") as err:
            module(x)
        assert len(str(err.value)) < 300, str(err.value)


@pytest.mark.parametrize("name", sorted(MIXING_MODULES))
def test_mixing_module_given_a_non_tensor_names_images_in_a_short_message(name):
    module = MIXING_MODULES[name]()
    labels = torch.tensor([0, 1])
    for x in NOT_TENSORS:
        with pytest.raises(TypeError, match="`images` must be a torch.Tensor") as err:
            module(x, labels)
        assert len(str(err.value)) < 300, str(err.value)
