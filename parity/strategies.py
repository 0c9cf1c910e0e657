"""Named hypothesis strategies for images, labels, logits and every trick's parameter record.

Everything is drawn as NumPy (images NHWC) so one draw feeds both frameworks through
:mod:`parity.convert`. Randomness never escapes hypothesis: seeds are drawn here and turned into
a ``torch.Generator`` or a ``jax.random`` key by :func:`torch_generators` / :func:`jax_keys`, so a
failing example replays exactly.

Parameter records are drawn as dicts whose keys are the field names of the tricks' NamedTuples
(identical in both packages), each value a NumPy array; ``parity.tricks`` turns a dict into the
framework's record.

Public API (``from parity import strategies as S``): everything in ``__all__`` — the basics
(``seeds``, ``torch_generators``, ``jax_keys``, ``batch_sizes``, ``num_classes``,
``image_shapes``, ``image_batches`` (uint8/float, NHWC or NCHW), ``int_labels``, ``soft_targets``,
``logits``, ``permutations``), arrays for the frameworks (``scaled_normals``: values at several
magnitudes, what a calibrated check wants; ``jax_arrays`` with dtype, shape and sharding;
``torch_tensors`` with dtype, shape and device), and every trick's ``*_params`` / ``*_cases``
record strategies below. Hypothesis ships strategies for NumPy arrays only; these are the ones
for JAX arrays and torch tensors.

Sections: basics (seeds, batches, images, labels, logits, framework arrays), then one section per
family of tricks.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from twintricks.checks import check_choice, check_int, check_real
from twintricks.policies import (
    AUGMIX_NUM_BINS,
    AUGMIX_OPS,
    AUGMIX_PARTIAL_OPS,
    OP_FUNCTIONS,
    OP_KINDS,
    OPS,
    POLICIES,
    POLICY_NAMES,
    RANDAUGMENT_OPS,
    TRIVIALAUGMENT_WIDE_OPS,
    magnitude_bins,
)

__all__ = [
    "seeds",
    "torch_generators",
    "jax_keys",
    "batch_sizes",
    "num_classes",
    "image_shapes",
    "image_batches",
    "int_labels",
    "soft_targets",
    "logits",
    "permutations",
    "scaled_normals",
    "jax_arrays",
    "torch_tensors",
]

MAX_BATCH = 16

# --------------------------------------------------------------------------------------------
# Basics
# --------------------------------------------------------------------------------------------


def seeds() -> st.SearchStrategy[int]:
    """A 32-bit seed, the only source of randomness the samplers get in tests."""
    return st.integers(0, 2**32 - 1)


@st.composite
def torch_generators(draw):
    """A ``torch.Generator`` seeded from a drawn seed (CPU)."""
    import torch

    return torch.Generator().manual_seed(draw(seeds()))


@st.composite
def jax_keys(draw):
    """A ``jax.random.key`` made from a drawn seed."""
    import jax

    return jax.random.key(draw(seeds()))


def _sizes(**lows):
    """The strategy's integer arguments checked (each ``>= low``) when it is built, not when
    hypothesis first draws from it: a ``TypeError``/``ValueError`` naming the argument instead of
    an error from inside hypothesis or NumPy (or an empty or negative size drawn from silently)."""
    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            for name, low in lows.items():
                if name in bound.arguments:
                    if callable(low):  # a check of its own
                        low(name, bound.arguments[name])
                    else:
                        check_int(name, bound.arguments[name], low=low)
            return fn(*args, **kwargs)

        return checked

    return wrap


@_sizes(max_size=1)
def batch_sizes(max_size: int = MAX_BATCH) -> st.SearchStrategy[int]:
    """Batch sizes 1..max_size; 1 is always a candidate (hypothesis shrinks towards it)."""
    return st.integers(1, max_size)


@_sizes(max_classes=2)
def num_classes(max_classes: int = 12) -> st.SearchStrategy[int]:
    """Number of classes K, 2..max_classes."""
    return st.integers(2, max_classes)


@_sizes(min_side=1, max_side=1, max_batch=1)
@st.composite
def image_shapes(draw, *, min_side: int = 1, max_side: int = 12, channels=(1, 3), max_batch: int = MAX_BATCH):
    """An NHWC shape ``(N, H, W, C)``: odd and even sides, N from 1, C from ``channels``."""
    n = draw(batch_sizes(max_batch))
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    c = draw(st.sampled_from(channels))
    return (n, h, w, c)


@st.composite
def image_batches(draw, *, dtype=None, shape=None, layout: str = "NHWC", **shape_kwargs):
    """An image batch as NumPy: uint8 in [0, 255] or float32 in [0, 1], NHWC (jax_impl's layout,
    the default) or ``layout="NCHW"`` (torch_impl's; ``shape`` is then given NCHW too).

    ``dtype`` None draws either. ``shape`` fixes the shape, otherwise :func:`image_shapes`
    draws one (``shape_kwargs`` go to it).
    """
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    if layout == "NCHW":
        nhwc = None if shape is None else (shape[0], shape[2], shape[3], shape[1])
        return np.ascontiguousarray(np.moveaxis(draw(image_batches(dtype=dtype, shape=nhwc, **shape_kwargs)), -1, 1))
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.float32]))) if dtype is None else np.dtype(dtype)
    shape = draw(image_shapes(**shape_kwargs)) if shape is None else tuple(shape)
    if dtype == np.uint8:
        elements = st.integers(0, 255)
    else:
        # No subnormals: XLA's CPU backend flushes them to zero and torch does not, so e.g. an
        # AutoContrast of a channel whose range is 1e-45 differs (tests/test_ops.py pins that fact).
        elements = st.floats(0.0, 1.0, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    # Mostly random pixels; fill= gives hypothesis cheap constant regions too.
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=elements))


@_sizes(n=0, k=1)
def int_labels(n: int, k: int) -> st.SearchStrategy[np.ndarray]:
    """``[n]`` int64 class indices in ``[0, k)``."""
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1))


@_sizes(n=0, k=1)
@st.composite
def soft_targets(draw, n: int, k: int):
    """``[n, k]`` float32 rows that are valid distributions (non-negative, summing to 1).

    Includes one-hot-like rows (exact zeros) as well as spread ones.
    """
    raw = draw(
        hnp.arrays(np.float64, (n, k), elements=st.one_of(st.just(0.0), st.floats(1e-3, 1.0)))
    )
    raw[np.arange(n), draw(int_labels(n, k))] += 1e-3  # no all-zero row
    return (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32)


def scaled_normals(shape, *, scales=(1e-2, 1.0, 10.0), dtype=np.float32):
    """``shape`` arrays of standard normal values (from a drawn seed) times a drawn scale from
    ``scales``: spread values at several magnitudes (small ones make an ``eps`` matter, large
    ones a tanh-vs-exact GELU). Shrinks towards seed 0 and the first scale. The same strategy as
    :func:`parity.modules.input_batches`."""
    if isinstance(shape, str) or not hasattr(shape, "__iter__"):
        raise TypeError(f"`shape` must be a tuple of sizes, got {type(shape).__name__} {shape!r}")
    shape = tuple(check_int(f"shape[{i}]", d, low=0) for i, d in enumerate(shape))

    def make(seed, scale):
        return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)

    return st.builds(make, seeds(), st.sampled_from(tuple(scales)))


@st.composite
def jax_arrays(draw, dtype=np.float32, shape=None, *, elements=None, sharding=None):
    """A ``jax.Array`` of ``dtype`` and ``shape`` (a tuple, or drawn by
    ``hypothesis.extra.numpy.array_shapes`` when None), values from ``elements`` (default: finite
    floats in [-1e3, 1e3] / the dtype's integers), placed with ``sharding`` (a
    ``jax.sharding.Sharding``; default: jax's default device)."""
    import jax

    shape = draw(hnp.array_shapes(max_dims=4, max_side=6)) if shape is None else tuple(shape)
    arr = draw(hnp.arrays(np.dtype(dtype), shape, elements=elements if elements is not None else _default_elements(dtype)))
    return jax.device_put(arr, sharding) if sharding is not None else jax.numpy.asarray(arr)


@st.composite
def torch_tensors(draw, dtype=np.float32, shape=None, *, elements=None, device="cpu"):
    """A ``torch.Tensor`` of NumPy ``dtype`` and ``shape`` (drawn when None), values from
    ``elements`` (default as :func:`jax_arrays`), on ``device``; its own memory (never a view)."""
    import torch

    shape = draw(hnp.array_shapes(max_dims=4, max_side=6)) if shape is None else tuple(shape)
    arr = draw(hnp.arrays(np.dtype(dtype), shape, elements=elements if elements is not None else _default_elements(dtype)))
    return torch.from_numpy(np.array(arr, copy=True)).to(device)


def _default_elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return st.floats(-1e3, 1e3, width=dtype.itemsize * 8, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if dtype.kind == "b":
        return st.booleans()
    return None


@_sizes(n=0, k=1, max_magnitude=lambda name, v: check_real(name, v, low=0.0, low_inclusive=False))
@st.composite
def logits(draw, n: int, k: int, *, max_magnitude: float = 30.0):
    """``[n, k]`` float32 logits, including large magnitudes (up to ±``max_magnitude``)."""
    scale = draw(st.sampled_from([1.0, 5.0, max_magnitude]))
    values = hnp.arrays(
        np.float32,
        (n, k),
        elements=st.floats(-1.0, 1.0, width=32, allow_nan=False, allow_infinity=False),
    )
    return (draw(values) * np.float32(scale)).astype(np.float32)


@_sizes(n=0)
@st.composite
def permutations(draw, n: int):
    """A permutation of ``range(n)`` as int64, drawn by hypothesis (shrinks to the identity)."""
    return np.asarray(draw(st.permutations(list(range(n)))), dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Spatial: Cutout, random resized crop, horizontal flip
# --------------------------------------------------------------------------------------------

__all__ += [
    "fills",
    "cutout_cases",
    "crop_boxes",
    "output_sizes",
    "resized_crop_cases",
    "flip_cases",
    "random_erasing_params",
    "random_erasing_cases",
]

SPATIAL_MAX_SIDE = 10
SPATIAL_MAX_BATCH = 6


@st.composite
def fills(draw, dtype):
    """A Cutout fill value valid for ``dtype``: an int in [0, 255] for uint8, a float otherwise."""
    if np.dtype(dtype) == np.uint8:
        return draw(st.one_of(st.just(0), st.integers(0, 255)))
    return draw(st.one_of(st.just(0.0), st.floats(-1.0, 2.0, width=32, allow_nan=False)))


@st.composite
def cutout_cases(draw, *, max_side: int = SPATIAL_MAX_SIDE, max_holes: int = 3):
    """A Cutout case: ``images`` NHWC, ``params`` {cy, cx} ``[N, n_holes]`` (0 holes included),
    ``length`` from 0 to beyond the image (odd and even), ``fill`` valid for the dtype."""
    images = draw(image_batches(max_side=max_side, max_batch=SPATIAL_MAX_BATCH))
    n, h, w, _ = images.shape
    k = draw(st.integers(0, max_holes))
    cy = draw(hnp.arrays(np.int64, (n, k), elements=st.integers(0, h - 1)))
    cx = draw(hnp.arrays(np.int64, (n, k), elements=st.integers(0, w - 1)))
    length = draw(st.integers(0, max(h, w) + 4))
    return dict(images=images, params=dict(cy=cy, cx=cx), length=length, fill=draw(fills(images.dtype)))


@_sizes(n=0, height=1, width=1)
@st.composite
def crop_boxes(draw, n: int, height: int, width: int):
    """Per-image boxes inside an ``height × width`` image: {top, left, height, width}, ``[N]`` int64."""
    hs = draw(hnp.arrays(np.int64, (n,), elements=st.integers(1, height)))
    ws = draw(hnp.arrays(np.int64, (n,), elements=st.integers(1, width)))
    tops = np.array([draw(st.integers(0, height - int(b))) for b in hs], dtype=np.int64)
    lefts = np.array([draw(st.integers(0, width - int(b))) for b in ws], dtype=np.int64)
    return dict(top=tops, left=lefts, height=hs, width=ws)


def output_sizes(max_side: int = 2 * SPATIAL_MAX_SIDE):
    """A resize target: an int or an ``(h, w)`` pair, each in 1..max_side (up- and down-scaling)."""
    side = st.integers(1, max_side)
    return st.one_of(side, st.tuples(side, side))


@st.composite
def resized_crop_cases(draw, *, max_side: int = SPATIAL_MAX_SIDE):
    """A resized-crop case: ``images`` NHWC, ``params`` {top, left, height, width}, ``size``, and
    ``flip``: None or the ``[N]`` bool mask of the kernel's ``flip`` argument."""
    images = draw(image_batches(max_side=max_side, max_batch=SPATIAL_MAX_BATCH))
    n, h, w, _ = images.shape
    flip = draw(st.none() | hnp.arrays(np.bool_, (n,)))
    return dict(images=images, params=draw(crop_boxes(n, h, w)), size=draw(output_sizes()), flip=flip)


@st.composite
def flip_cases(draw, *, max_side: int = SPATIAL_MAX_SIDE):
    """A horizontal-flip case: ``images`` NHWC and ``params`` {flip} ``[N]`` bool."""
    images = draw(image_batches(max_side=max_side, max_batch=SPATIAL_MAX_BATCH))
    return dict(images=images, params=dict(flip=draw(hnp.arrays(np.bool_, (images.shape[0],)))))


@st.composite
def random_erasing_params(draw, n: int, height: int, width: int, channels: int, *, uint8: bool, max_boxes: int = 3):
    """A ``RandomErasingParams`` record as a dict: boxes {top, left, height, width} ``[n, K]``
    int64 (K from 0 to ``max_boxes``; empty boxes, whole-image boxes and overlaps included) and
    ``fill`` ``[n, H, W, C]`` float32 (NHWC, like the images): integers in [0, 255] for uint8
    images, otherwise any finite values (a constant, per-box colours or noise look alike here)."""
    k = draw(st.integers(0, max_boxes))
    hs = draw(hnp.arrays(np.int64, (n, k), elements=st.one_of(st.sampled_from([0, height]), st.integers(0, height))))
    ws = draw(hnp.arrays(np.int64, (n, k), elements=st.one_of(st.sampled_from([0, width]), st.integers(0, width))))
    tops = np.array([[draw(st.integers(0, height - int(h))) for h in row] for row in hs], np.int64).reshape(n, k)
    lefts = np.array([[draw(st.integers(0, width - int(w))) for w in row] for row in ws], np.int64).reshape(n, k)
    if uint8:
        el = st.integers(0, 255).map(float)
    else:
        el = st.floats(-3.0, 3.0, width=32, allow_nan=False, allow_subnormal=False)
    fill = draw(hnp.arrays(np.float32, (n, height, width, channels), elements=el, fill=el))
    return dict(top=tops, left=lefts, height=hs, width=ws, fill=fill)


@st.composite
def random_erasing_cases(draw, *, max_side: int = SPATIAL_MAX_SIDE):
    """A random-erasing case: ``images`` NHWC and ``params`` (see :func:`random_erasing_params`)."""
    images = draw(image_batches(max_side=max_side, max_batch=SPATIAL_MAX_BATCH))
    n, h, w, c = images.shape
    return dict(images=images, params=draw(random_erasing_params(n, h, w, c, uint8=images.dtype == np.uint8)))


# --------------------------------------------------------------------------------------------
# Losses and mixing: label smoothing, soft targets, distillation, mixup, RICAP
# --------------------------------------------------------------------------------------------

__all__ += [
    "smoothing_values",
    "temperatures",
    "kd_alphas",
    "loss_labels",
    "label_smoothing_cases",
    "soft_target_cases",
    "distillation_cases",
    "mixup_params",
    "mixup_cases",
    "ricap_params",
    "ricap_cases",
]

# A few fixed sizes (1 and odd ones included) rather than every size: each new shape costs a
# compilation in jax, and a handful of shapes exercises the same code paths.
LOSS_BATCH_SIZES = (1, 3, 8)
LOSS_NUM_CLASSES = (2, 10)
MIXING_IMAGE_SHAPES = ((1, 1, 1, 1), (2, 3, 4, 1), (3, 5, 4, 3), (4, 2, 7, 1), (6, 8, 6, 3))


@st.composite
def _loss_sizes(draw):
    return draw(st.sampled_from(LOSS_BATCH_SIZES)), draw(st.sampled_from(LOSS_NUM_CLASSES))


# Hyperparameters are Python floats, static under jax.jit: every new value is a new
# compilation, so the case strategies draw them from a few values (the ends included); the
# arbitrary-float strategies are for tests that run eagerly.


def smoothing_values(*, any_float: bool = False) -> st.SearchStrategy[float]:
    """A label-smoothing ``ε`` in [0, 1], the ends (0: one-hot, 1: uniform) included."""
    few = st.sampled_from([0.0, 0.1, 0.25, 1.0])
    return st.one_of(few, st.floats(0.0, 1.0)) if any_float else few


def temperatures(*, any_float: bool = False) -> st.SearchStrategy[float]:
    """A distillation temperature ``T > 0``: the usual values and a range around them."""
    few = st.sampled_from([0.5, 1.0, 4.0, 10.0])
    return st.one_of(few, st.floats(0.5, 10.0)) if any_float else few


def kd_alphas(*, any_float: bool = False) -> st.SearchStrategy[float]:
    """The weight ``α`` of the distillation term in [0, 1], the ends included."""
    few = st.sampled_from([0.0, 0.5, 0.9, 1.0])
    return st.one_of(few, st.floats(0.0, 1.0)) if any_float else few


@st.composite
def loss_labels(draw, n: int, k: int):
    """Labels a loss accepts: ``[n]`` int64 indices or ``[n, k]`` float32 soft targets."""
    return draw(st.one_of(int_labels(n, k), soft_targets(n, k)))


@st.composite
def label_smoothing_cases(draw):
    """``logits`` [N, K], ``labels`` (int or soft), ``num_classes``, ``smoothing``, ``reduction``."""
    n, k = draw(_loss_sizes())
    return dict(
        logits=draw(logits(n, k)),
        labels=draw(loss_labels(n, k)),
        num_classes=k,
        smoothing=draw(smoothing_values()),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
    )


@st.composite
def soft_target_cases(draw):
    """``logits`` [N, K], ``targets`` [N, K] distributions, ``reduction``."""
    n, k = draw(_loss_sizes())
    return dict(
        logits=draw(logits(n, k)),
        targets=draw(soft_targets(n, k)),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
    )


@st.composite
def distillation_cases(draw):
    """Student and teacher ``[N, K]`` logits (sometimes equal), labels, ``temperature``, ``alpha``."""
    n, k = draw(_loss_sizes())
    student = draw(logits(n, k))
    teacher = student.copy() if draw(st.booleans()) and draw(st.booleans()) else draw(logits(n, k))
    return dict(
        student_logits=student,
        teacher_logits=teacher,
        labels=draw(loss_labels(n, k)),
        temperature=draw(temperatures()),
        alpha=draw(kd_alphas()),
    )


@_sizes(n=0)
@st.composite
def mixup_params(draw, n: int, *, per_sample: bool | None = None):
    """A ``MixupParams`` record as a dict: ``lam`` float32 (``[]`` per batch, ``[n]`` per
    sample; 0 and 1 included) and ``perm`` an int64 permutation ``[n]``."""
    per_sample = draw(st.booleans()) if per_sample is None else per_sample
    lam_el = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0, width=32))
    lam = draw(hnp.arrays(np.float32, (n,) if per_sample else (), elements=lam_el))
    return dict(lam=np.asarray(lam, np.float32), perm=draw(permutations(n)))


@st.composite
def mixup_cases(draw, *, dtype=None, shapes=MIXING_IMAGE_SHAPES):
    """A mixup case: ``images`` NHWC, ``targets`` (int with ``num_classes``, or soft), ``params``."""
    images = draw(image_batches(dtype=dtype, shape=draw(st.sampled_from(shapes))))
    n, k = images.shape[0], draw(st.sampled_from(LOSS_NUM_CLASSES))
    return dict(images=images, targets=draw(loss_labels(n, k)), num_classes=k, params=draw(mixup_params(n)))


@st.composite
def ricap_params(draw, n: int, height: int, width: int, *, per_image_offsets: bool | None = None):
    """A ``RicapParams`` record as a dict (int64): boundary ``split_row`` in [0, H] (rows of the
    top patches) and ``split_col`` in [0, W] (columns of the left patches), degenerate ends favoured;
    ``perms`` [4, n]; crop offsets ``top``/``left`` [4, n] inside the source image (one per patch,
    repeated over the batch, unless ``per_image_offsets``)."""
    per_image = draw(st.booleans()) if per_image_offsets is None else per_image_offsets
    split_row = draw(st.one_of(st.sampled_from([0, height]), st.integers(0, height)))
    split_col = draw(st.one_of(st.sampled_from([0, width]), st.integers(0, width)))
    rows = [split_row, height - split_row, split_row, height - split_row]
    cols = [split_col, split_col, width - split_col, width - split_col]
    m = n if per_image else 1
    top = np.stack([draw(hnp.arrays(np.int64, (m,), elements=st.integers(0, height - r))) for r in rows])
    left = np.stack([draw(hnp.arrays(np.int64, (m,), elements=st.integers(0, width - c))) for c in cols])
    perms = np.stack([draw(permutations(n)) for _ in range(4)])
    return dict(
        split_row=np.asarray(split_row, np.int64),
        split_col=np.asarray(split_col, np.int64),
        perms=perms,
        top=np.broadcast_to(top, (4, n)).copy(),
        left=np.broadcast_to(left, (4, n)).copy(),
    )


@st.composite
def ricap_cases(draw, *, dtype=None, shapes=MIXING_IMAGE_SHAPES):
    """A RICAP case: ``images`` NHWC, ``targets`` (int with ``num_classes``, or soft), ``params``."""
    images = draw(image_batches(dtype=dtype, shape=draw(st.sampled_from(shapes))))
    n, height, width, _ = images.shape
    k = draw(st.sampled_from(LOSS_NUM_CLASSES))
    return dict(
        images=images,
        targets=draw(loss_labels(n, k)),
        num_classes=k,
        params=draw(ricap_params(n, height, width)),
    )


__all__ += ["mix_boxes", "cutmix_params", "cutmix_cases", "mixup_cutmix_params", "mixup_cutmix_cases"]


@st.composite
def mix_boxes(draw, n: int, height: int, width: int, *, per_sample: bool | None = None):
    """``[n]`` int64 boxes {top, left, height, width} inside the image, empty ones (a side 0) and
    the whole image included; one box repeated over the batch unless ``per_sample``."""
    per_sample = draw(st.booleans()) if per_sample is None else per_sample
    boxes = []
    for _ in range(n if per_sample else 1):
        h = draw(st.one_of(st.sampled_from([0, height]), st.integers(0, height)))
        w = draw(st.one_of(st.sampled_from([0, width]), st.integers(0, width)))
        boxes.append((draw(st.integers(0, height - h)), draw(st.integers(0, width - w)), h, w))
    arr = np.broadcast_to(np.asarray(boxes, np.int64), (n, 4))
    return dict(top=arr[:, 0].copy(), left=arr[:, 1].copy(), height=arr[:, 2].copy(), width=arr[:, 3].copy())


@_sizes(n=0, height=1, width=1)
@st.composite
def cutmix_params(draw, n: int, height: int, width: int):
    """A ``CutMixParams`` record as a dict (int64): boxes (see :func:`mix_boxes`) and ``perm``
    ``[n]``: torchvision's ``roll(1)`` pairing or any permutation."""
    perm = draw(st.one_of(st.just((np.arange(n) - 1) % n), permutations(n)))
    return dict(**draw(mix_boxes(n, height, width)), perm=np.asarray(perm, np.int64))


@st.composite
def cutmix_cases(draw, *, dtype=None, shapes=MIXING_IMAGE_SHAPES):
    """A CutMix case: ``images`` NHWC, ``targets`` (int with ``num_classes``, or soft), ``params``."""
    images = draw(image_batches(dtype=dtype, shape=draw(st.sampled_from(shapes))))
    n, height, width, _ = images.shape
    k = draw(st.sampled_from(LOSS_NUM_CLASSES))
    return dict(images=images, targets=draw(loss_labels(n, k)), num_classes=k, params=draw(cutmix_params(n, height, width)))


@st.composite
def mixup_cutmix_params(draw, n: int, height: int, width: int):
    """A ``MixupCutmixParams`` record as a dict: per image ``lam`` float32 in [0, 1] (0, ½, 1
    favoured), ``use_cutmix`` bool, boxes int64 (see :func:`mix_boxes`), and ``perm``: timm's
    ``N-1-i`` pairing or any permutation."""
    lam_el = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0, width=32))
    perm = draw(st.one_of(st.just(np.arange(n)[::-1].copy()), permutations(n)))
    return dict(
        lam=draw(hnp.arrays(np.float32, (n,), elements=lam_el)),
        use_cutmix=draw(hnp.arrays(np.bool_, (n,))),
        **draw(mix_boxes(n, height, width, per_sample=True)),
        perm=np.asarray(perm, np.int64),
    )


@st.composite
def mixup_cutmix_cases(draw, *, dtype=None, shapes=MIXING_IMAGE_SHAPES):
    """A switching case: ``images`` NHWC, ``targets``, ``num_classes``, ``params`` and
    ``label_smoothing`` (a few values: it is static under ``jax.jit``)."""
    images = draw(image_batches(dtype=dtype, shape=draw(st.sampled_from(shapes))))
    n, height, width, _ = images.shape
    k = draw(st.sampled_from(LOSS_NUM_CLASSES))
    return dict(
        images=images,
        targets=draw(loss_labels(n, k)),
        num_classes=k,
        params=draw(mixup_cutmix_params(n, height, width)),
        label_smoothing=draw(st.sampled_from([0.0, 0.1])),
    )


# --------------------------------------------------------------------------------------------
# Optimizers: AdaBound, AMSBound, AdaBoundW
# --------------------------------------------------------------------------------------------

__all__ += ["optimizer_hparams", "param_shapes", "gradient_sequences", "lr_multipliers", "optimizer_cases"]

OPTIM_MAX_STEPS = 12
# Gradient magnitudes per step: tiny ones push the effective step onto the upper bound, large
# ones onto the lower bound, so both sides of the clip are exercised.
GRAD_SCALES = (1e-6, 1e-2, 1.0, 1e2)


@st.composite
def optimizer_hparams(draw, *, min_b2: float = 0.0):
    """AdaBound hyperparameters as a dict of Python floats (keys as torch_impl's group keys,
    ``b1``/``b2`` for the betas): the defaults, usual values, and the ends of the valid ranges
    (β = 0, γ = 0 meaning bounds [0, inf)). ``eps`` stays > 0 (with γ = 0 and a zero gradient,
    eps = 0 makes 0·inf = NaN in any implementation).

    ``min_b2`` > 0 keeps β2 away from 0 for long trajectories: with β2 ≈ 0 and coupled weight
    decay the step is ``lr·m/|wd·p|``, which amplifies any rounding difference near ``p = 0``
    (chaotic), so long runs would measure that amplification instead of the implementations."""

    def pick(common, low, high):
        return draw(st.one_of(st.sampled_from(common), st.floats(low, high)))

    return dict(
        lr=pick([1e-3, 1e-2, 0.1], 1e-4, 0.5),
        final_lr=pick([0.1, 1e-2], 1e-3, 0.5),
        b1=pick([0.9, 0.0, 0.5], 0.0, 0.99),
        b2=pick([b for b in (0.999, 0.0, 0.9) if b >= min_b2], min_b2, 0.9999),
        gamma=pick([1e-3, 0.0, 0.1, 0.5], 0.0, 0.9),
        eps=pick([1e-8, 1e-3], 1e-10, 1e-2),
        weight_decay=draw(st.sampled_from([0.0, 5e-4, 0.1])),
    )


OPTIM_SHAPES = ((), (1,), (5,), (2, 3), (3, 1, 2))


def param_shapes() -> st.SearchStrategy[tuple]:
    """A small parameter shape from :data:`OPTIM_SHAPES`: a scalar, 1-D, 2-D and 3-D with a
    size-1 side. The optimizers are elementwise, so a few shapes cover them; a fixed set keeps
    eager jax from compiling each op anew for every drawn shape (seconds per trick otherwise)."""
    return st.sampled_from(OPTIM_SHAPES)


@st.composite
def gradient_sequences(draw, steps: int, shape: tuple, *, dtype=np.float64):
    """``[steps, *shape]`` gradients: values in [-1, 1] (zeros included) times a per-step
    magnitude from :data:`GRAD_SCALES`."""
    unit = draw(hnp.arrays(np.float64, (steps, *shape), elements=st.floats(-1.0, 1.0), fill=st.just(0.0)))
    scales = draw(hnp.arrays(np.float64, (steps,), elements=st.sampled_from(GRAD_SCALES)))
    return (unit * scales.reshape((steps,) + (1,) * len(shape))).astype(dtype)


@st.composite
def lr_multipliers(draw, steps: int):
    """``(scheduled, [steps] float64 factors)``: the lr of step ``t`` is ``lr·factor[t-1]``.

    Unscheduled cases have all ones. Scheduled ones start at 1 (the base lr) or not (as a
    warm-up ``LambdaLR`` would), and include 0 (a step with zero lr: both bounds are 0).
    """
    scheduled = draw(st.booleans())
    if not scheduled:
        return False, np.ones(steps)
    factors = draw(hnp.arrays(np.float64, (steps,), elements=st.one_of(st.just(0.0), st.floats(0.01, 1.5))))
    if draw(st.booleans()):
        factors[0] = 1.0
    return True, factors


@st.composite
def optimizer_cases(
    draw, *, max_steps: int = OPTIM_MAX_STEPS, steps: int | None = None, dtype=np.float64, min_b2: float = 0.0
):
    """An optimizer trajectory case: initial ``params``, ``grads`` ``[T, *shape]``, the
    hyperparameters of :func:`optimizer_hparams` (``min_b2`` goes to it), ``scheduled`` and
    ``lr_scale`` ``[T]``."""
    shape = draw(param_shapes())
    steps = draw(st.integers(1, max_steps)) if steps is None else steps
    params = draw(hnp.arrays(np.float64, shape, elements=st.floats(-10.0, 10.0))).astype(dtype)
    scheduled, lr_scale = draw(lr_multipliers(steps))
    return dict(
        params=params,
        grads=draw(gradient_sequences(steps, shape, dtype=dtype)),
        scheduled=scheduled,
        lr_scale=lr_scale,
        **draw(optimizer_hparams(min_b2=min_b2)),
    )


# --------------------------------------------------------------------------------------------
# AutoAugment: the 14 ops with per-image magnitudes, per-image policy draws
# --------------------------------------------------------------------------------------------

__all__ += [
    "AUTOAUGMENT_OPS",
    "AUTOAUGMENT_OP_SHAPES",
    "AUTOAUGMENT_POLICY_SHAPE",
    "autoaugment_fills",
    "op_magnitudes",
    "autoaugment_op_cases",
    "autoaugment_params",
    "autoaugment_policy_cases",
]

#: registry op name (the backends' function) -> (torchvision / policy name, kind of per-image argument)
AUTOAUGMENT_OPS = {OP_FUNCTIONS[op]: (op, OP_KINDS[op]) for op in OPS}

# A few fixed NHWC shapes (odd and even sides, 1 and 3 channels, 1-pixel and <= 2-pixel sides):
# every new shape is a new XLA compilation on the jax side.
AUTOAUGMENT_OP_SHAPES = ((3, 7, 9, 3), (2, 8, 8, 1), (4, 5, 6, 3), (1, 1, 1, 3), (2, 2, 5, 1), (2, 15, 4, 3))
AUTOAUGMENT_POLICY_SHAPE = (6, 9, 7, 3)


@st.composite
def autoaugment_fills(draw, channels: int):
    """``fill`` for the geometric ops: 0 (torchvision's default), an int, or one int per channel."""
    return draw(
        st.one_of(
            st.just(0),
            st.integers(0, 255),
            st.tuples(*[st.integers(0, 255)] * channels),
        )
    )


@st.composite
def op_magnitudes(draw, op: str, n: int, height: int, width: int):
    """``[N]`` per-image arguments of AutoAugment op ``op`` (policy name, e.g. ``"Rotate"``).

    Mostly torchvision's magnitude bins (every bin, both signs for signed ops), sometimes any value
    in the op's range: shear factor in [-0.5, 0.5], translation in pixels up to beyond the image,
    angle in [-360, 360], enhance magnitude in [-1, 1]; Posterize bits in [0, 8] (int64);
    Solarize threshold in [0, 1].
    """
    bins = magnitude_bins(op, height, width)
    signed = op not in ("Posterize", "Solarize")
    if op == "Posterize":
        return draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 8)))
    ranges = {
        "ShearX": 0.5,
        "ShearY": 0.5,
        "TranslateX": width * 1.5,
        "TranslateY": height * 1.5,
        "Rotate": 360.0,
    }
    lo, hi = (0.0, 1.0) if op == "Solarize" else (-ranges.get(op, 1.0), ranges.get(op, 1.0))
    from_bin = st.builds(
        lambda b, neg: -bins[b] if (neg and signed) else bins[b], st.integers(0, 9), st.booleans()
    )
    anything = st.floats(lo, hi, width=32, allow_nan=False)
    values = draw(st.lists(st.one_of(from_bin, from_bin, anything), min_size=n, max_size=n))
    return np.asarray(values, dtype=np.float32)


@st.composite
def autoaugment_op_cases(draw, op: str, *, dtype=np.uint8, shapes=AUTOAUGMENT_OP_SHAPES):
    """A case for one op: ``images`` NHWC (shape from ``shapes``), ``magnitude`` ``[N]`` (absent
    for the ops without one) and ``fill`` (geometric ops)."""
    tv_name, kind = AUTOAUGMENT_OPS[op]
    images = draw(image_batches(dtype=dtype, shape=draw(st.sampled_from(shapes))))
    n, h, w, c = images.shape
    case = dict(images=images)
    if kind is not None:
        case["magnitude"] = draw(op_magnitudes(tv_name, n, h, w))
    if kind == "geometric":
        case["fill"] = draw(autoaugment_fills(c))
    return case


@_sizes(n=0, policy=lambda name, v: check_choice(name, v, tuple(POLICY_NAMES)))
@st.composite
def autoaugment_params(draw, n: int, policy: str):
    """An AutoAugment parameter record as a dict: ``sub_policy`` ``[N]`` int64 in [0, 25),
    ``apply`` and ``negate`` ``[N, 2]`` bool (any combination, whatever the policy's p)."""
    return dict(
        sub_policy=draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, len(POLICIES[policy]) - 1))),
        apply=draw(hnp.arrays(np.bool_, (n, 2))),
        negate=draw(hnp.arrays(np.bool_, (n, 2))),
    )


@st.composite
def autoaugment_policy_cases(draw, policy: str | None = None, *, dtype=np.uint8, shape=AUTOAUGMENT_POLICY_SHAPE):
    """A whole-policy case: ``images`` NHWC, ``params`` (see :func:`autoaugment_params`),
    ``policy`` (drawn when None) and ``fill`` 0 (fill is covered by the per-op cases)."""
    policy = draw(st.sampled_from(POLICY_NAMES)) if policy is None else policy
    images = draw(image_batches(dtype=dtype, shape=shape))
    return dict(images=images, params=draw(autoaugment_params(images.shape[0], policy)), policy=policy, fill=0)


# --------------------------------------------------------------------------------------------
# RandAugment, TrivialAugmentWide, AugMix: per-image op / bin / sign draws, AugMix's weights
# --------------------------------------------------------------------------------------------

__all__ += [
    "POLICY_FAMILY_SHAPES",
    "randaugment_params",
    "trivialaugment_wide_params",
    "augmix_params",
    "policy_family_cases",
]

# Fixed NHWC shapes (odd and even sides, 1 and 3 channels): every new shape (and every new
# number of slots, chains or bins) is a new XLA compilation on the jax side.
POLICY_FAMILY_SHAPES = ((6, 9, 7, 3), (4, 8, 8, 1))


@_sizes(n=0, num_ops=0)
@st.composite
def randaugment_params(draw, n: int, num_ops: int):
    """A RandAugment record as a dict: ``op`` ``[N, num_ops]`` int64 in [0, 14), ``negate`` bool."""
    return dict(
        op=draw(hnp.arrays(np.int64, (n, num_ops), elements=st.integers(0, len(RANDAUGMENT_OPS) - 1))),
        negate=draw(hnp.arrays(np.bool_, (n, num_ops))),
    )


@st.composite
def trivialaugment_wide_params(draw, n: int, num_bins: int = 31):
    """A TrivialAugmentWide record as a dict: ``op`` ``[N]`` in [0, 14), ``magnitude`` ``[N]`` in
    [0, num_bins) (int64), ``negate`` ``[N]`` bool."""
    return dict(
        op=draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, len(TRIVIALAUGMENT_WIDE_OPS) - 1))),
        magnitude=draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, num_bins - 1))),
        negate=draw(hnp.arrays(np.bool_, (n,))),
    )


@_sizes(n=0, width=1, depth=1)
@st.composite
def augmix_params(draw, n: int, width: int, depth: int, all_ops: bool = True):
    """An AugMix record as a dict: ``op``/``magnitude``/``negate`` ``[N, W, D]``, ``depth`` ``[N, W]``
    in [1, D], ``weights`` ``[N, 1 + W]`` float32 (non-negative, normalised to sum to 1 in float32,
    with exact zeros and ones among them)."""
    num_ops = len(AUGMIX_OPS if all_ops else AUGMIX_PARTIAL_OPS)
    raw = draw(hnp.arrays(np.float32, (n, width + 1), elements=st.sampled_from([0.0, 1.0]) | st.floats(0, 1, width=32)))
    raw[raw.sum(axis=1) == 0, 0] = 1.0
    return dict(
        op=draw(hnp.arrays(np.int64, (n, width, depth), elements=st.integers(0, num_ops - 1))),
        magnitude=draw(hnp.arrays(np.int64, (n, width, depth), elements=st.integers(0, AUGMIX_NUM_BINS - 1))),
        negate=draw(hnp.arrays(np.bool_, (n, width, depth))),
        depth=draw(hnp.arrays(np.int64, (n, width), elements=st.integers(1, depth))),
        weights=(raw / raw.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32),
    )


@_sizes(family=lambda name, v: check_choice(name, v, ("randaugment", "trivialaugment_wide", "augmix")))
@st.composite
def policy_family_cases(draw, family: str, *, dtype=np.uint8, shapes=POLICY_FAMILY_SHAPES):
    """A case for one family (``"randaugment"``, ``"trivialaugment_wide"``, ``"augmix"``):
    ``images`` NHWC, ``params`` (the family's record as a dict), ``fill`` 0 (fill is covered by the
    per-op cases) and the family's keyword arguments in ``kwargs``: RandAugment 2 ops with any
    bin of 31, TrivialAugmentWide 31 bins, AugMix 2 chains of up to 3 ops, either op set (fixed
    counts: one compilation per shape)."""
    images = draw(image_batches(dtype=dtype, shape=draw(st.sampled_from(shapes))))
    n = images.shape[0]
    case = dict(images=images, family=family, fill=0)
    if family == "randaugment":
        case["kwargs"] = dict(magnitude=draw(st.integers(0, 30)), num_magnitude_bins=31)
        case["params"] = draw(randaugment_params(n, 2))
    elif family == "trivialaugment_wide":
        case["kwargs"] = dict(num_magnitude_bins=31)
        case["params"] = draw(trivialaugment_wide_params(n, 31))
    else:
        all_ops = draw(st.booleans())
        case["kwargs"] = dict(all_ops=all_ops)
        case["params"] = draw(augmix_params(n, 2, 3, all_ops))
    return case
