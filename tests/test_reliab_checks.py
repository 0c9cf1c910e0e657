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


BAD_ATTRIBUTES = [
    ("Mixup", "alpha", float("nan")),
    ("Mixup", "alpha", -1.0),
    ("CutMix", "alpha", float("nan")),
    ("CutMix", "alpha", 0.0),
    ("CutMix", "num_classes", 0),
    ("RICAP", "beta", float("nan")),
    ("MixupCutmix", "mixup_alpha", float("inf")),
    ("MixupCutmix", "switch_prob", 2.0),
    ("Cutout", "length", -3),
    ("RandomErasing", "p", 2.0),
    ("RandomErasing", "scale", (0.5, 0.1)),
]


@pytest.mark.parametrize("name,attr,value", BAD_ATTRIBUTES)
def test_attributes_set_after_construction_are_checked_at_call_time(name, attr, value):
    """``m.alpha = nan`` after ``__init__`` gave CutMix targets of ±8.9e35; every module re-checks."""
    module = {**IMAGE_MODULES, **MIXING_MODULES}[name]()
    setattr(module, attr, value)
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=f"`{attr}`"):
        module(images, torch.tensor([0, 1, 2, 0])) if name in MIXING_MODULES else module(images)


@pytest.mark.parametrize("name", sorted(MIXING_MODULES))
def test_mixing_module_keeps_an_empty_batch_empty(name):
    """CutMix raised IndexError, RICAP a ValueError about `batch_size`; Mixup and MixupCutmix
    returned the empty batch: all four do now."""
    images, labels = torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.int64)
    out, targets = MIXING_MODULES[name]()(images, labels)
    assert out.shape == (0, 3, 8, 8) and targets.shape == (0, 3)


# ----------------------------------------------------------------------------- soft targets (item 10)

BAD_TARGETS = {
    "nan": ([[float("nan"), 1.0, 0.0]], "must be finite"),
    "inf": ([[float("inf"), 0.0, 0.0]], "must be finite"),
    "negative": ([[1.5, -0.5, 0.0]], "must be >= 0"),
    "sum 2": ([[1.0, 1.0, 0.0]], "must sum to 1"),
    "sum 0.9": ([[0.5, 0.4, 0.0]], "must sum to 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_losses_refuse_soft_targets_that_are_not_distributions_in_both_backends(case):
    """They passed silently (a NaN loss, or a loss that is not a cross-entropy)."""
    import jax.numpy as jnp

    import jax_impl as J

    values, message = BAD_TARGETS[case]
    t = torch.tensor(values)
    logits = torch.zeros(1, 3)
    with pytest.raises(ValueError, match=f"`targets` {message}"):
        T.soft_target_cross_entropy(logits, t)
    with pytest.raises(ValueError, match=f"`labels` {message}"):
        T.label_smoothing_cross_entropy(logits, t, smoothing=0.1)
    with pytest.raises(ValueError, match=f"`targets` {message}"):
        J.soft_target_cross_entropy(jnp.zeros((1, 3)), jnp.asarray(values, jnp.float32))
    with pytest.raises(ValueError, match=f"`labels` {message}"):
        J.label_smoothing_cross_entropy(jnp.zeros((1, 3)), jnp.asarray(values, jnp.float32), smoothing=0.1)


def test_soft_targets_within_rounding_pass():
    """Distributions rounded to float32 or bfloat16 (mixed and smoothed targets are) pass."""
    g = torch.Generator().manual_seed(0)
    for k in (2, 10, 1000):
        for dtype in (torch.float32, torch.bfloat16):
            t = torch.rand(64, k, generator=g, dtype=torch.float64)
            t = (t / t.sum(1, keepdim=True)).to(dtype)
            T.soft_target_cross_entropy(torch.zeros(64, k, dtype=dtype), t)


def test_xla_thread_flags_are_all_flags_so_later_flags_still_apply():
    """XLA stops reading ``XLA_FLAGS`` at the first word that is not a ``--flag`` (checked by hand:
    a ``--xla_dump_to`` after ``intra_op_parallelism_threads=1`` dumped nothing), so every entry
    set_threads writes is a ``--flag``, and the thread count read back is what XLA can honour."""
    from twintricks.threads import xla_thread_flag, xla_threads_requested

    for threads in (1, 2, 8):
        words = xla_thread_flag(threads).split()
        assert words and all(w.startswith("--") for w in words), words
    assert xla_threads_requested(xla_thread_flag(1)) == 1
    assert xla_threads_requested(xla_thread_flag(4)) is None  # XLA's pool: one thread per core
    assert xla_threads_requested("") is None
    assert xla_threads_requested("--xla_cpu_multi_thread_eigen=false --xla_cpu_multi_thread_eigen=true") is None
    with pytest.raises(ValueError, match="`threads`"):
        xla_thread_flag(0)
    with pytest.raises(TypeError, match="`threads`"):
        xla_thread_flag(1.5)
    with pytest.raises(TypeError, match="`flags`"):
        xla_threads_requested(None)
