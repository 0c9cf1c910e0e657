"""Registry entries: erasing (Cutout, random erasing).

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

GROUP = "erasing"


# ---- Cutout ---------------------------------------------------------------------------------


def _cutout_cases():
    from parity.strategies import cutout_cases

    return cutout_cases()


def _cutout_torch(case):
    import torch_impl.erasing as E

    out = E.cutout(
        convert.images_to_torch(case["images"]),
        torch_params(E.CutoutParams, case["params"]),
        length=case["length"],
        fill=case["fill"],
    )
    return {"images": convert.images_from_torch(out)}


def _cutout_jax(case):
    import jax_impl.erasing as E

    out = E.cutout(
        convert.images_to_jax(case["images"]),
        jax_params(E.CutoutParams, case["params"]),
        length=case["length"],
        fill=case["fill"],
    )
    return {"images": convert.images_from_jax(out)}


def _cutout_example(shape, dtype, cy, cx, length, fill=0):
    rng = np.random.default_rng(sum(shape) + length)
    if np.dtype(dtype) == np.uint8:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        images = rng.random(shape, dtype=np.float32)
    return dict(
        images=images,
        params=dict(cy=np.asarray(cy, np.int64), cx=np.asarray(cx, np.int64)),
        length=length,
        fill=fill,
    )


_CUTOUT_EXAMPLES = (
    # one pixel image, hole centred on it (even length) and an odd length 1 (empty box)
    _cutout_example((1, 1, 1, 1), np.uint8, [[0]], [[0]], 2, 7),
    _cutout_example((1, 1, 1, 3), np.float32, [[0]], [[0]], 1, 0.5),
    # n_holes = 0: a no-op
    _cutout_example((2, 5, 4, 3), np.uint8, np.zeros((2, 0)), np.zeros((2, 0)), 3),
    # length far larger than the image: everything filled
    _cutout_example((2, 5, 7, 1), np.float32, [[2], [4]], [[3], [6]], 40, 1.0),
    # odd length, centres on the border, overlapping holes
    _cutout_example((3, 6, 5, 3), np.uint8, [[0, 1], [5, 5], [2, 3]], [[4, 4], [0, 1], [2, 2]], 5, 255),
)


# ---- Random erasing ---------------------------------------------------------------------------


def _random_erasing_cases():
    from parity.strategies import random_erasing_cases

    return random_erasing_cases()


def _random_erasing_torch(case):
    import torch_impl.erasing as E

    boxes = {k: convert.to_torch(np.asarray(v)) for k, v in case["params"].items() if k != "fill"}
    params = E.RandomErasingParams(**boxes, fill=convert.images_to_torch(case["params"]["fill"]))  # images' layout
    return {"images": convert.images_from_torch(E.erase(convert.images_to_torch(case["images"]), params))}


def _random_erasing_jax(case):
    import jax_impl.erasing as E

    out = E.erase(convert.images_to_jax(case["images"]), jax_params(E.RandomErasingParams, case["params"]))
    return {"images": convert.images_from_jax(out)}


def _erasing_example(shape, dtype, boxes, fill):
    n, h, w, c = shape
    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, shape, dtype=np.uint8) if np.dtype(dtype) == np.uint8 else rng.random(shape, dtype=np.float32)
    b = np.asarray(boxes, np.int64).reshape(n, -1, 4)
    return dict(
        images=images,
        params=dict(top=b[..., 0], left=b[..., 1], height=b[..., 2], width=b[..., 3], fill=np.broadcast_to(np.float32(fill), shape).copy()),
    )


_ERASING_EXAMPLES = (
    # whole image, empty box, overlapping boxes, a 1-pixel image
    _erasing_example((2, 5, 4, 3), np.uint8, [[[0, 0, 5, 4], [0, 0, 0, 0]], [[1, 1, 3, 2], [2, 0, 2, 4]]], 255),
    _erasing_example((1, 1, 1, 1), np.float32, [[[0, 0, 1, 1]]], -1.5),
    _erasing_example((2, 3, 3, 1), np.float32, np.zeros((2, 0, 4)), 0.0),
)



CHECKS = [
    Check(
        name="cutout",
        trick="cutout",
        group=GROUP,
        cases=_cutout_cases,
        run_torch=_cutout_torch,
        run_jax=_cutout_jax,
        atol=0.0,
        rtol=0.0,
        reason="exact: integer box geometry and a select between the input and the fill value",
        examples=_CUTOUT_EXAMPLES,
    ),
    Check(
        name="random_erasing",
        trick="random_erasing",
        group=GROUP,
        cases=_random_erasing_cases,
        run_torch=_random_erasing_torch,
        run_jax=_random_erasing_jax,
        atol=0.0,
        rtol=0.0,
        reason="exact: integer box geometry and a select between the input and the record's fill",
        examples=_ERASING_EXAMPLES,
    ),
]
