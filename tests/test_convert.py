"""parity.convert: arrays between NumPy, torch and jax, and the NCHW/NHWC layout."""

import jax
import jax.numpy as jnp
import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from parity import convert
from parity.strategies import image_batches

DTYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float32, np.float64]


@given(
    hnp.arrays(
        st.sampled_from(DTYPES),
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        elements=st.integers(0, 1),  # representable in every dtype above
    )
)
def test_round_trips_are_lossless(x):
    t = convert.to_torch(x)
    j = convert.to_jax(x)
    assert isinstance(t, torch.Tensor) and isinstance(j, jax.Array)
    np.testing.assert_array_equal(convert.to_numpy(t), x)
    # jax without x64 stores 64-bit values as 32-bit: the values, not the width, must survive.
    np.testing.assert_array_equal(convert.to_numpy(j), x.astype(np.asarray(j).dtype))
    np.testing.assert_array_equal(convert.to_numpy(convert.to_jax(t)), convert.to_numpy(j))
    np.testing.assert_array_equal(convert.to_numpy(convert.to_torch(j)), convert.to_numpy(j))


def test_torch_to_jax_handles_grad_and_non_contiguous():
    t = torch.arange(12.0, requires_grad=True).reshape(3, 4)
    np.testing.assert_array_equal(np.asarray(convert.to_jax(t)), t.detach().numpy())
    nc = torch.arange(12.0).reshape(3, 4).t()
    assert not nc.is_contiguous()
    np.testing.assert_array_equal(np.asarray(convert.to_jax(nc)), nc.numpy())
    flipped = torch.arange(6).flip(0)
    np.testing.assert_array_equal(np.asarray(convert.to_jax(flipped)), [5, 4, 3, 2, 1, 0])


def test_bool_goes_through_numpy():
    t = torch.tensor([True, False, True])
    assert convert.to_jax(t).dtype == jnp.bool_
    assert convert.to_torch(jnp.array([True, False])).dtype == torch.bool


@given(image_batches())
def test_layout_round_trip(images):
    n, h, w, c = images.shape
    t = convert.images_to_torch(images)
    assert tuple(t.shape) == (n, c, h, w) and t.is_contiguous()
    # pixel (n, y, x, ch) of NHWC is pixel (n, ch, y, x) of NCHW
    np.testing.assert_array_equal(t.numpy(), np.transpose(images, (0, 3, 1, 2)))
    np.testing.assert_array_equal(convert.images_from_torch(t), images)
    np.testing.assert_array_equal(convert.images_from_jax(convert.images_to_jax(images)), images)
    for x in (images, torch.from_numpy(images.copy()), jnp.asarray(images)):
        back = convert.nchw_to_nhwc(convert.nhwc_to_nchw(x))
        np.testing.assert_array_equal(convert.to_numpy(back), images)


def test_layout_of_a_single_image():
    hwc = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # H=2, W=3, C=4
    chw = convert.nhwc_to_nchw(hwc)
    assert chw.shape == (4, 2, 3)
    assert chw[1, 0, 2] == hwc[0, 2, 1]
