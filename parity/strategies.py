"""Named hypothesis strategies for images, labels, logits and every trick's parameter record.

Everything is drawn as NumPy (images NHWC) so one draw feeds both frameworks through
:mod:`parity.convert`. Randomness never escapes hypothesis: seeds are drawn here and turned into
a ``torch.Generator`` or a ``jax.random`` key by :func:`torch_generators` / :func:`jax_keys`, so a
failing example replays exactly.

Parameter records are drawn as dicts whose keys are the field names of the tricks' NamedTuples
(identical in both packages), each value a NumPy array; ``parity.tricks`` turns a dict into the
framework's record.

Sections: basics (seeds, batches, images, labels, logits), then one section per family of tricks.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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


def batch_sizes(max_size: int = MAX_BATCH) -> st.SearchStrategy[int]:
    """Batch sizes 1..max_size; 1 is always a candidate (hypothesis shrinks towards it)."""
    return st.integers(1, max_size)


def num_classes(max_classes: int = 12) -> st.SearchStrategy[int]:
    """Number of classes K, 2..max_classes."""
    return st.integers(2, max_classes)


@st.composite
def image_shapes(draw, *, min_side: int = 1, max_side: int = 12, channels=(1, 3), max_batch: int = MAX_BATCH):
    """An NHWC shape ``(N, H, W, C)``: odd and even sides, N from 1, C from ``channels``."""
    n = draw(batch_sizes(max_batch))
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    c = draw(st.sampled_from(channels))
    return (n, h, w, c)


@st.composite
def image_batches(draw, *, dtype=None, shape=None, **shape_kwargs):
    """An NHWC image batch as NumPy: uint8 in [0, 255] or float32 in [0, 1].

    ``dtype`` None draws either. ``shape`` fixes the shape, otherwise :func:`image_shapes`
    draws one (``shape_kwargs`` go to it).
    """
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.float32]))) if dtype is None else np.dtype(dtype)
    shape = draw(image_shapes(**shape_kwargs)) if shape is None else tuple(shape)
    if dtype == np.uint8:
        elements = st.integers(0, 255)
    else:
        elements = st.floats(0.0, 1.0, width=32, allow_nan=False, allow_infinity=False)
    # Mostly random pixels; fill= gives hypothesis cheap constant regions too.
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=elements))


def int_labels(n: int, k: int) -> st.SearchStrategy[np.ndarray]:
    """``[n]`` int64 class indices in ``[0, k)``."""
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1))


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


@st.composite
def permutations(draw, n: int):
    """A permutation of ``range(n)`` as int64, drawn by hypothesis (shrinks to the identity)."""
    return np.asarray(draw(st.permutations(list(range(n)))), dtype=np.int64)
