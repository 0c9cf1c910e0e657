"""The backends' shared input checks: wrong image layouts and the other framework's tensors.

torch_impl takes ``[N, C, H, W]``, jax_impl ``[N, H, W, C]``. A batch in the other layout has the
same rank; where its shape gives it away (the channel axis is not 1 or 3 while the other
layout's channel axis is, see ``torch_impl._checks``) every public image op raises a
``ValueError`` naming both layouts. A torch tensor given to jax_impl gets a ``TypeError`` saying
what is expected, instead of NumPy's "Cannot interpret 'torch.uint8' as a data type".
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_impl
import torch_impl
from jax_impl import _checks as jchecks
from jax_impl import ops as jops
from torch_impl import _checks as tchecks
from torch_impl import ops as tops

# (N, H, W, C) batches, NHWC, that are detectably in the wrong layout once given to the other backend
NHWC_SHAPES = [(2, 8, 10, 3), (2, 28, 28, 1), (1, 6, 5, 3)]
# shapes each backend must keep accepting, whatever their channel count (legit today)
TORCH_OK = [(1, 2, 2, 1), (2, 4, 9, 3), (2, 3, 8, 8), (2, 1, 5, 3), (2, 2, 5, 4), (3, 2, 9, 7), (2, 4, 3, 3), (2, 16, 1, 1), (2, 4, 8, 5)]
JAX_OK = [(1, 2, 1, 2), (2, 3, 9, 4), (2, 8, 8, 3), (2, 3, 5, 1), (2, 5, 4, 2), (3, 9, 7, 2), (2, 3, 3, 4), (2, 1, 1, 16), (2, 8, 5, 4)]


def test_the_rule_is_the_documented_one_and_mirrored():
    # refused: channel axis longer than 4, the other layout's channel axis in {1, 3}, the other side not
    assert tchecks.looks_channels_last((8, 32, 32, 3))
    assert tchecks.looks_channels_last((8, 28, 28, 1))
    assert jchecks.looks_channels_first((8, 3, 32, 32))
    assert jchecks.looks_channels_first((8, 1, 28, 28))
    # accepted: up to 4 channels; a width (torch) / height (jax) not in {1, 3}; both sides in {1, 3}
    for shape in TORCH_OK:
        assert not tchecks.looks_channels_last(shape), shape
    for shape in JAX_OK:
        assert not jchecks.looks_channels_first(shape), shape
    # mirrored: an NCHW shape is refused by jax exactly when its NHWC twin is refused by torch
    for n in (1, 2):
        for a in (1, 2, 3, 4, 7):
            for b in (1, 2, 3, 5):
                for c in (1, 3, 4, 8):
                    nhwc = (n, a, b, c)
                    assert tchecks.looks_channels_last(nhwc) == jchecks.looks_channels_first((n, c, b, a))


def _torch_calls(x):
    n = x.shape[0]
    lab = torch.zeros(n, dtype=torch.int64)
    return {
        "mixup": lambda: torch_impl.mixup(x, lab, None, num_classes=2),
        "ricap": lambda: torch_impl.ricap(x, lab, None, num_classes=2),
        "cutout": lambda: torch_impl.cutout(x, None, length=2),
        "resized_crop": lambda: torch_impl.resized_crop(x, None, size=4),
        "hflip": lambda: torch_impl.hflip(x, None),
        "AutoAugment": lambda: torch_impl.AutoAugment()(x),
        "brightness": lambda: tops.brightness(x, torch.zeros(n)),
        "rotate": lambda: tops.rotate(x, torch.zeros(n)),
        "equalize": lambda: tops.equalize(x),
        "Cutout": lambda: torch_impl.Cutout(length=2)(x),
        "RandomResizedCropFlip": lambda: torch_impl.RandomResizedCropFlip(4)(x),
        "Mixup": lambda: torch_impl.Mixup(num_classes=2)(x, lab),
    }


def _jax_calls(x):
    n = x.shape[0]
    lab = jnp.zeros(n, jnp.int32)
    key = jax.random.key(0)
    return {
        "mixup": lambda: jax_impl.mixup(x, lab, None, num_classes=2),
        "ricap": lambda: jax_impl.ricap(x, lab, None, num_classes=2),
        "cutout": lambda: jax_impl.cutout(x, None, length=2),
        "resized_crop": lambda: jax_impl.resized_crop(x, None, size=4),
        "hflip": lambda: jax_impl.hflip(x, None),
        "random_autoaugment": lambda: jax_impl.random_autoaugment(key, x),
        "brightness": lambda: jops.brightness(x, jnp.zeros(n)),
        "rotate": lambda: jops.rotate(x, jnp.zeros(n)),
        "equalize": lambda: jops.equalize(x),
        "random_cutout": lambda: jax_impl.random_cutout(key, x, length=2),
        "random_mixup": lambda: jax_impl.random_mixup(key, x, lab, num_classes=2),
        "jit(random_cutout)": lambda: jax.jit(lambda k, im: jax_impl.random_cutout(k, im, length=2))(key, x),
    }


@pytest.mark.parametrize("shape", NHWC_SHAPES)
@pytest.mark.parametrize("op", list(_torch_calls(torch.zeros(1, 3, 4, 4))))
def test_torch_refuses_a_channels_last_batch(op, shape):
    x = torch.zeros(shape, dtype=torch.uint8)  # NHWC by mistake
    with pytest.raises(ValueError, match=r"`images` must be \[N, C, H, W\].*looks like \[N, H, W, C\]"):
        _torch_calls(x)[op]()


@pytest.mark.parametrize("shape", NHWC_SHAPES)
@pytest.mark.parametrize("op", list(_jax_calls(jnp.zeros((1, 4, 4, 3)))))
def test_jax_refuses_a_channels_first_batch(op, shape):
    n, h, w, c = shape
    x = jnp.zeros((n, c, h, w), jnp.uint8)  # NCHW by mistake
    with pytest.raises(ValueError, match=r"`images` must be \[N, H, W, C\].*looks like \[N, C, H, W\]"):
        _jax_calls(x)[op]()


def test_other_channel_counts_keep_working():
    """Ops that take any channel count still do, in both backends (the outputs are checked)."""
    for shape in TORCH_OK:
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        assert tchecks.check_images("images", x) == shape
        out = torch_impl.Cutout(length=2, generator=torch.Generator().manual_seed(0))(x)
        assert out.shape == x.shape
        out = torch_impl.RandomResizedCropFlip((3, 4), generator=torch.Generator().manual_seed(0))(x)
        assert out.shape == (*shape[:2], 3, 4)
    for shape in JAX_OK:
        x = jnp.asarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
        assert jchecks.check_images("images", x) == shape
        assert jax_impl.random_cutout(jax.random.key(0), x, length=2).shape == shape
        assert jax_impl.random_resized_crop_flip(jax.random.key(0), x, size=(3, 4)).shape == (shape[0], 3, 4, shape[3])


def test_rgb_ops_name_the_layout_before_the_channel_count():
    with pytest.raises(ValueError, match="looks like"):
        tops.brightness(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), torch.zeros(2))
    with pytest.raises(ValueError, match="looks like"):
        jops.brightness(jnp.zeros((2, 3, 32, 32), jnp.uint8), jnp.zeros(2))
    # a genuinely wrong channel count is still reported as such
    with pytest.raises(ValueError, match="1 or 3 channels"):
        tops.brightness(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), torch.zeros(2))


# ------------------------------------------------------------------------------------------
# jax_impl given torch tensors
# ------------------------------------------------------------------------------------------


def _jax_with_torch():
    t_img = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    t_logits = torch.zeros(2, 5)
    t_labels = torch.zeros(2, dtype=torch.int64)
    j_logits = jnp.zeros((2, 5))
    j_labels = jnp.zeros(2, jnp.int32)
    j_img = jnp.zeros((2, 8, 8, 3), jnp.uint8)
    j_holes = jnp.zeros((2, 1), jnp.int32)
    key = jax.random.key(0)
    return {
        "cutout images": (lambda: jax_impl.cutout(t_img, None, length=2), "images"),
        "random_cutout images": (lambda: jax_impl.random_cutout(key, t_img, length=2), "images"),
        "mixup images": (lambda: jax_impl.mixup(t_img, j_labels, None, num_classes=5), "images"),
        "autoaugment images": (lambda: jax_impl.random_autoaugment(key, t_img), "images"),
        "brightness images": (lambda: jops.brightness(t_img, jnp.zeros(2)), "images"),
        "tv_tensors.Image": (lambda: jax_impl.random_cutout(key, _tv_image(t_img), length=2), "images"),
        "soft_target_cross_entropy logits": (lambda: jax_impl.soft_target_cross_entropy(t_logits, j_logits), "logits"),
        "label_smoothing_cross_entropy labels": (
            lambda: jax_impl.label_smoothing_cross_entropy(j_logits, t_labels), "labels"
        ),
        "cutout params record": (
            lambda: jax_impl.cutout(j_img, jax_impl.CutoutParams(torch.zeros(2, 1, dtype=torch.int64), j_holes), length=2),
            "params.cy",
        ),
        "resized_crop params record": (
            lambda: jax_impl.resized_crop(j_img, jax_impl.ResizedCropParams(*(t_labels,) * 4), size=4), "params.top"
        ),
        "hflip params record": (lambda: jax_impl.hflip(j_img, jax_impl.FlipParams(torch.zeros(2, dtype=torch.bool))), "params.flip"),
        "mixup params record": (
            lambda: jax_impl.mixup(j_img, j_labels, jax_impl.MixupParams(torch.tensor(0.5), j_labels), num_classes=5),
            "params.lam",
        ),
        "brightness magnitude": (lambda: jops.brightness(j_img, torch.zeros(2)), "magnitude"),
        "posterize bits": (lambda: jops.posterize(j_img, torch.full((2,), 4)), "bits"),
    }


def _tv_image(t):
    from torchvision import tv_tensors

    return tv_tensors.Image(t)


@pytest.mark.parametrize("case", list(_jax_with_torch()))
def test_jax_refuses_torch_tensors_saying_what_it_expects(case):
    call, name = _jax_with_torch()[case]
    with pytest.raises(TypeError, match=rf"`{name}` must be a jax or NumPy array.*got a torch"):
        call()


def test_jax_still_takes_numpy_and_torch_still_names_foreign_arrays():
    x = np.zeros((2, 8, 8, 3), np.uint8)
    assert jax_impl.random_cutout(jax.random.key(0), x, length=2).shape == x.shape
    with pytest.raises(TypeError, match=r"`images` must be a torch.Tensor \[N, C, H, W\], got numpy.ndarray"):
        torch_impl.cutout(x, None, length=2)
    with pytest.raises(TypeError, match=r"got jaxlib"):
        torch_impl.cutout(jnp.zeros((2, 3, 8, 8), jnp.uint8), None, length=2)
