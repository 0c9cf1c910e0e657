"""Registry entries: cropping (random resized crop, horizontal flip).

Each adapter turns a drawn case (NHWC NumPy images, a params dict keyed by the NamedTuple's
field names) into the framework's types, calls the kernel looked up at call time through its
module, and returns NHWC NumPy outputs.
"""

from __future__ import annotations

import numpy as np

from parity import convert
from parity.compare import Check
from parity.tricks.common import jax_params, torch_params

__all__ = ["CHECKS"]

GROUP = "cropping"


# ---- Random resized crop and horizontal flip -------------------------------------------------


def _resized_crop_cases():
    from parity.strategies import resized_crop_cases

    return resized_crop_cases()


def _resized_crop_torch(case):
    import torch_impl.cropping as C

    flip = case.get("flip")
    out = C.resized_crop(
        convert.images_to_torch(case["images"]),
        torch_params(C.ResizedCropParams, case["params"]),
        size=case["size"],
        flip=None if flip is None else torch_params(C.FlipParams, {"flip": flip}),
    )
    return {"images": convert.images_from_torch(out)}


def _resized_crop_jax(case):
    import jax_impl.cropping as C

    flip = case.get("flip")
    out = C.resized_crop(
        convert.images_to_jax(case["images"]),
        jax_params(C.ResizedCropParams, case["params"]),
        size=case["size"],
        flip=None if flip is None else jax_params(C.FlipParams, {"flip": flip}),
    )
    return {"images": convert.images_from_jax(out)}


def _flip_cases():
    from parity.strategies import flip_cases

    return flip_cases()


def _flip_torch(case):
    import torch_impl.cropping as C

    out = C.hflip(convert.images_to_torch(case["images"]), torch_params(C.FlipParams, case["params"]))
    return {"images": convert.images_from_torch(out)}


def _flip_jax(case):
    import jax_impl.cropping as C

    out = C.hflip(convert.images_to_jax(case["images"]), jax_params(C.FlipParams, case["params"]))
    return {"images": convert.images_from_jax(out)}


def _image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.random(shape, dtype=np.float32)


def _box_example(shape, dtype, top, left, height, width, size):
    box = dict(top=top, left=left, height=height, width=width)
    return dict(
        images=_image(shape, dtype, sum(shape)),
        params={k: np.asarray(v, np.int64) for k, v in box.items()},
        size=size,
    )


_RESIZED_CROP_EXAMPLES = (
    # 1x1 image to 1x1 and blown up; batch of 1
    _box_example((1, 1, 1, 3), np.uint8, [0], [0], [1], [1], 1),
    _box_example((1, 1, 1, 1), np.float32, [0], [0], [1], [1], (3, 5)),
    # box of the output size: an exact copy of the box
    _box_example((2, 6, 7, 3), np.uint8, [1, 0], [2, 0], [4, 6], [4, 7], (4, 4)),
    # odd sizes, strong downscale (aliasing, no antialias) and upscale, per-image boxes
    _box_example((3, 9, 8, 1), np.uint8, [0, 3, 8], [0, 1, 7], [9, 5, 1], [8, 7, 1], (2, 17)),
    _box_example((3, 9, 8, 3), np.float32, [0, 3, 8], [0, 1, 7], [9, 5, 1], [8, 7, 1], (13, 3)),
    # the same with the flip folded into the column taps, on some images
    {**_box_example((3, 9, 8, 1), np.uint8, [0, 3, 8], [0, 1, 7], [9, 5, 1], [8, 7, 1], (2, 17)), "flip": np.array([True, False, True])},
    # uint8 half-way rounding: 0 and 255 neighbours blended with weight 1/2
    dict(
        images=np.array([[[[0], [255]]]], np.uint8),
        params=dict(top=np.array([0]), left=np.array([0]), height=np.array([1]), width=np.array([2])),
        size=(1, 1),
    ),
)

_FLIP_EXAMPLES = (
    dict(images=_image((1, 1, 1, 1), np.uint8), params=dict(flip=np.array([True]))),
    dict(images=_image((3, 4, 5, 3), np.float32, 1), params=dict(flip=np.array([True, False, True]))),
)



CHECKS = [
    Check(
        name="resized_crop",
        trick="crop_flip",
        group=GROUP,
        cases=_resized_crop_cases,
        run_torch=_resized_crop_torch,
        run_jax=_resized_crop_jax,
        atol=1e-6,
        rtol=0.0,
        reason=(
            "uint8 is exact (integer taps and an exact integer blend, rounded half up, in both); "
            "float32 pixels in [0, 1] are a convex 4-term blend with float32 weights w/(2*out): "
            "torch's division by a scalar may multiply by the reciprocal and XLA may fuse "
            "multiply-adds into FMAs, a few float32 ulps of 1 (~1e-7); 1e-6 bounds that"
        ),
        examples=_RESIZED_CROP_EXAMPLES,
    ),
    Check(
        name="hflip",
        trick="crop_flip",
        group=GROUP,
        cases=_flip_cases,
        run_torch=_flip_torch,
        run_jax=_flip_jax,
        atol=0.0,
        rtol=0.0,
        reason="exact: a per-image select between the image and its mirror (pure data movement)",
        examples=_FLIP_EXAMPLES,
    ),
]
