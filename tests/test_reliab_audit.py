"""What the re-run of the bad-input audit (``benchmarks/audit.py``, issue 22's acceptance) found,
each fixed: a clear ``TypeError``/``ValueError`` naming the argument in both backends, the recipe's
cross checks in :class:`~twintricks.recipe.TrainConfig`, and the command line's one-line errors
before any data loads. Each test failed on the main the audit ran against (``benchmarks/AUDIT.md``)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch

import torch_impl as T

# ----------------------------------------------------------------------------- torch samplers


SAMPLERS = {
    "mixup": lambda g: T.sample_mixup_params(4, generator=g),
    "ricap": lambda g: T.sample_ricap_params(4, (8, 8), generator=g),
    "cutmix": lambda g: T.sample_cutmix_params(4, (8, 8), generator=g),
    "mixup_cutmix": lambda g: T.sample_mixup_cutmix_params(4, (8, 8), generator=g),
    "cutout": lambda g: T.sample_cutout_params(4, (8, 8), generator=g),
    "random_erasing": lambda g: T.sample_random_erasing_params(4, (8, 8), 3, generator=g),
    "resized_crop": lambda g: T.sample_resized_crop_params(4, (8, 8), generator=g),
    "flip": lambda g: T.sample_flip_params(4, generator=g),
    "autoaugment": lambda g: T.sample_autoaugment_params(4, policy="imagenet", generator=g),
    "randaugment": lambda g: T.sample_randaugment_params(4, generator=g),
    "trivialaugment": lambda g: T.sample_trivialaugment_wide_params(4, generator=g),
    "augmix": lambda g: T.sample_augmix_params(4, generator=g),
    "epoch_permutation": lambda g: T.data.epoch_permutation(4, generator=g),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_sampler_given_something_else_than_a_generator_names_generator(name):
    """It was an AttributeError: 'str' object has no attribute 'device'."""
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        SAMPLERS[name]("seed")
    SAMPLERS[name](torch.Generator().manual_seed(0))  # a generator still works


@pytest.mark.parametrize("make", [
    lambda v: T.sample_mixup_params(4, per_sample=v),
    lambda v: T.sample_cutmix_params(4, (8, 8), per_sample=v),
    lambda v: T.sample_ricap_params(4, (8, 8), per_image_offsets=v),
    lambda v: T.Mixup(per_sample=v),
    lambda v: T.CutMix(per_sample=v),
    lambda v: T.RICAP(per_image_offsets=v),
])
def test_a_switch_given_a_string_or_a_number_is_refused(make):
    """``per_sample="no"`` was truthy: silently on."""
    for bad in ("no", 2):
        with pytest.raises(TypeError, match="must be a bool"):
            make(bad)
    make(np.bool_(True))  # NumPy's bool is a bool


def test_switches_set_after_construction_are_checked_at_call_time():
    images, labels = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
    for module in (T.Mixup(num_classes=2), T.CutMix(num_classes=2)):
        module.per_sample = "yes"
        with pytest.raises(TypeError, match="`per_sample` must be a bool"):
            module(images, labels)


def test_mixup_cutmix_prob_set_after_construction_is_checked():
    """``m.prob`` (the constructor's name) set an unused attribute: NaN was silently ignored."""
    m = T.MixupCutmix(num_classes=2, label_smoothing=0.0)
    m.prob = float("nan")
    assert m.mix_prob != m.mix_prob  # the same setting under timm's name
    with pytest.raises(ValueError, match="`prob`"):
        m(torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))
    m.prob = 0.0
    assert m.mix_prob == 0.0


def test_crop_flip_module_names_flip_p_when_set_after_construction():
    """The error named ``p``, the sampler's argument, not the module's ``flip_p``."""
    m = T.RandomResizedCropFlip(4)
    m.flip_p = 1.5
    with pytest.raises(ValueError, match="`flip_p`"):
        m(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


# ----------------------------------------------------------------------------- jax


def test_jax_checks_name_the_argument():
    import jax
    import jax.numpy as jnp

    import jax_impl as J

    key = jax.random.key(0)
    images = jnp.zeros((2, 8, 8, 3), jnp.uint8)
    with pytest.raises(ValueError, match="`flip_p`"):
        J.random_resized_crop_flip(key, images, size=(4, 4), flip_p=1.5)
    with pytest.raises(TypeError, match="`per_sample` must be a bool"):
        J.sample_cutmix_params(key, 2, (8, 8), per_sample=2)
    with pytest.raises(TypeError, match="`per_image_offsets` must be a bool"):
        J.sample_ricap_params(key, 2, (8, 8), per_image_offsets="no")
    params = J.RandAugmentParams(op=jnp.zeros((2, 2), jnp.int32), negate=jnp.zeros((2, 2), bool))
    for bad in ("2", None):  # a JAX TypeError about dtype <U1, and "None is not a valid value for jnp.array"
        with pytest.raises(TypeError, match="`magnitude` must be an int or an integer array"):
            J.randaugment(images, params, magnitude=bad)


def test_jax_mixing_wrappers_keep_an_empty_batch_empty_as_torch_does():
    """torch's modules return an empty batch; jax's wrappers raised about ``batch_size``, no
    argument of theirs."""
    import jax
    import jax.numpy as jnp

    import jax_impl as J

    key, images, labels = jax.random.key(0), jnp.zeros((0, 4, 4, 3)), jnp.zeros((0,), jnp.int32)
    for fn in (J.random_mixup, J.random_cutmix, J.random_ricap):
        out, soft = fn(key, images, labels, num_classes=3)
        assert out.shape == (0, 4, 4, 3) and soft.shape == (0, 3)
    out, soft = J.random_mixup_cutmix(key, images, labels, num_classes=3)
    assert soft.shape == (0, 3)
    t_out, t_soft = T.Mixup(num_classes=3)(torch.zeros(0, 3, 4, 4), torch.zeros(0, dtype=torch.long))
    assert tuple(t_soft.shape) == soft.shape


def test_jax_distributed_job_is_checked_before_jax_reads_it():
    """jax's own error named none of them (and in a process that had used jax, it said only that
    initialize() came too late)."""
    from jax_impl.distributed import _check_job

    with pytest.raises(ValueError, match="`num_processes`"):
        _check_job(None, 0, None, False)
    with pytest.raises(ValueError, match="`process_id`"):
        _check_job("host:1234", 2, 2, False)
    with pytest.raises(ValueError, match="`process_id` 1 without"):
        _check_job(None, None, 1, False)
    with pytest.raises(ValueError, match="`coordinator_address` must be 'HOST:PORT'"):
        _check_job("localhost", 2, 0, False)
    _check_job("localhost:1234", 2, 1, False)


# ----------------------------------------------------------------------------- data helpers


def test_torch_and_jax_batch_helpers_check_their_arguments():
    import jax.numpy as jnp

    import jax_impl as J

    for data, perm in ((T.data, torch.arange(8)), (J.data, jnp.arange(8))):
        with pytest.raises(ValueError, match="`step` 2"):  # returned fewer than batch_size indices
            data.batch_indices(perm, 2, 4)
        with pytest.raises(ValueError, match="`batch_size`"):
            data.batch_indices(perm, 0, 0)
        with pytest.raises(TypeError, match="`perm`"):
            data.batch_indices(perm.astype(jnp.float32) if data is J.data else perm.float(), 0, 4)
    with pytest.raises(ValueError, match="`batch_size`"):  # range() arg 3 must not be zero
        next(T.data.eval_batches(torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long), 0))
    with pytest.raises(ValueError, match="`images`, `labels`|images.*labels"):  # an IndexError
        next(J.data.eval_batches(jnp.zeros((4, 2, 2, 3)), jnp.zeros((3,), jnp.int32), 2))


def test_the_loader_transforms_check_their_arguments():
    from PIL import Image

    from twintricks.data import transforms as tf

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="`height`"):  # ZeroDivisionError
        tf.sample_crop(rng, 0, 10, (0.08, 1.0), (0.75, 4 / 3))
    with pytest.raises(ValueError, match="ratio"):  # "high - low < 0"
        tf.sample_crop(rng, 10, 10, (0.08, 1.0), (2.0, 0.5))
    with pytest.raises(TypeError, match="`image` must be a decoded PIL image"):
        tf.eval_crop(np.zeros((8, 8, 3), np.uint8), 8)
    with pytest.raises(ValueError, match="`box`"):
        tf.resized_crop(Image.new("RGB", (10, 12)), (0, 0, 60, 6), (4, 4))


# ----------------------------------------------------------------------------- files


def test_a_shard_label_too_large_for_a_class_list_is_a_bad_sample(tmp_path):
    """A ``.cls`` of 99999999999 made the index build ~10^11 class names (the memory filled). The
    label here is the first one refused, 2^20: without the cap it builds 2^20 names (tens of MB),
    so this test fails without filling the memory."""
    from twintricks.data import open_source

    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (2, 2)).save(png, format="PNG")
    (tmp_path / "train").mkdir()
    with tarfile.open(tmp_path / "train" / "shard-000000.tar", "w") as tar:
        for name, data in (("a.png", png.getvalue()), ("a.cls", b"1048576"), ("b.png", png.getvalue()),
                           ("b.cls", b"1")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="a.png.*1048576"):
        open_source("shards", tmp_path, split="train")
    src = open_source("shards", tmp_path, split="train", on_bad_image="skip")
    assert len(src) == 1 and len(src.classes) == 2


def test_a_checkpoint_framework_of_another_type_names_the_field():
    from twintricks.checkpoint import CheckpointError
    from twintricks.recipe import TrainConfig
    from twintricks.schema import check_run_state

    with pytest.raises(CheckpointError, match="`framework`"):
        check_run_state({"framework": 3}, TrainConfig(), framework="torch", steps_per_epoch=1)


# ----------------------------------------------------------------------------- parity


def test_parity_conversions_name_what_is_wrong():
    from parity import convert

    for bad in ("x", {"a": 1}, np.array([object()])):  # returned arrays of str/object
        with pytest.raises(TypeError, match="`x` must be an array of numbers"):
            convert.to_numpy(bad)
    with pytest.raises(ValueError, match="`x` must have at least 3 dimensions"):
        convert.nhwc_to_nchw(np.zeros((4, 5)))  # moved axis -1 to -3 of a matrix: an AxisError
    with pytest.raises(ValueError, match="`images_nhwc`"):
        convert.images_to_jax(np.zeros(10))  # returned it as it was
    with pytest.raises(TypeError, match="`state_dict` must be a mapping"):
        convert.torch_state_dict_to_flax([1, 2])  # 'list' object has no attribute 'items'
    assert convert.images_to_torch(np.zeros((2, 3, 4), np.float32)).shape == (4, 2, 3)  # one image still converts


def test_parity_refuses_an_infinite_tolerance_and_a_name_that_is_no_list():
    import parity

    with pytest.raises(ValueError, match="atol must be a finite number"):  # it passed anything
        parity.function_check("f", lambda x: x, lambda x: x, inputs=None, atol=float("inf"), reason="r")
    with pytest.raises(TypeError, match="`names`"):  # 'int' object is not iterable
        parity.Registry().select(3)


# ----------------------------------------------------------------------------- recipe and command line


def test_the_recipe_refuses_settings_that_conflict_as_the_command_line_did():
    """These were checks of the command line only (``_check_late``): a library user got none."""
    from twintricks.recipe import TrainConfig
    from twintricks.tricks import OptionConflict

    with pytest.raises(OptionConflict, match="`kd_alpha` set\\(s\\) the distillation teacher, but there is no `teacher`"):
        TrainConfig(kd_alpha=0.5)
    with pytest.raises(OptionConflict, match="`randaugment_magnitude` must be below `randaugment_bins` \\(5\\)"):
        TrainConfig(randaugment=True, randaugment_bins=5, randaugment_magnitude=5)
    with pytest.raises(OptionConflict, match="`batch_size` must be even, got 33"):
        TrainConfig(cutmix=1.0, mix_mode="pair", batch_size=33)
    TrainConfig(teacher="t.ckpt", kd_alpha=0.5)
    TrainConfig(randaugment=True, randaugment_bins=5, randaugment_magnitude=4)


def test_the_recipe_refuses_a_seed_jax_cannot_take_and_cutout_holes_without_cutout():
    from twintricks.recipe import TrainConfig

    with pytest.raises(ValueError, match="`seed`"):  # jax.random.key: OverflowError after the data loaded
        TrainConfig(seed=2**63)
    with pytest.raises(ValueError, match="`cutout_holes` is a setting of `cutout`"):  # silently ignored
        TrainConfig(cutout_holes=3)
