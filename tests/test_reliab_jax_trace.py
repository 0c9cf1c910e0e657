"""jax augmentations under ``jit``/``vmap``: traced hyper-parameters (mixup/CutMix alpha, the
switch's probabilities, erasing ``p``) and concrete labels closed over inside ``jit`` (issue 22,
item 8). Each traced run is compared with the eager run on the concrete value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_impl import erasing as E
from jax_impl import mixing as M

KEY = jax.random.PRNGKey(7)
IMAGES = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 3))
LABELS = jnp.array([0, 1, 2, 0])


def _same(a, b):
    """Integer fields exactly; float fields within 1e-6 (values in [0, 1]: a few float32 ulps, as
    XLA fuses the blend and the label smoothing under jit, and eager runs them op by op)."""
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(x, y)


RANDOM = {
    "random_mixup": lambda k, x, y: M.random_mixup(k, x, y, alpha=0.7, num_classes=3),
    "random_cutmix": lambda k, x, y: M.random_cutmix(k, x, y, alpha=0.7, num_classes=3),
    "random_ricap": lambda k, x, y: M.random_ricap(k, x, y, num_classes=3),
    "random_mixup_cutmix": lambda k, x, y: M.random_mixup_cutmix(k, x, y, cutmix_alpha=1.0, num_classes=3),
}


def test_labels_closed_over_inside_jit():
    """These raised ConcretizationTypeError while tracing: the label range check read a closed-over
    (concrete) array with a jnp reduction, which jit traces. Tracing is what failed, so the test
    traces (``make_jaxpr``, no compile: the kernels' jit-vs-eager values are tests/test_mixing.py's)."""
    for name, f in RANDOM.items():
        jax.make_jaxpr(lambda k, x: f(k, x, LABELS))(KEY, IMAGES)
    # the checks still run on the concrete labels while tracing
    bad = LABELS + 5
    with pytest.raises(ValueError, match="`targets` must lie in \\[0, 3\\)"):
        jax.make_jaxpr(lambda k, x: M.random_mixup(k, x, bad, num_classes=3))(KEY, IMAGES)


# name: (sampler of one traceable hyper-parameter, two values to try)
SAMPLERS = {
    "mixup alpha": (lambda a: M.sample_mixup_params(KEY, 4, alpha=a, per_sample=True), (0.0, 2.0)),
    "cutmix alpha": (lambda a: M.sample_cutmix_params(KEY, 4, (8, 8), alpha=a, per_sample=True), (0.4, 2.0)),
    "mixup_alpha": (lambda a: M.sample_mixup_cutmix_params(KEY, 4, (8, 8), mixup_alpha=a, cutmix_alpha=1.0, mode="elem"), (0.0, 0.5)),
    "cutmix_alpha": (lambda a: M.sample_mixup_cutmix_params(KEY, 4, (8, 8), cutmix_alpha=a, mode="elem"), (0.0, 0.5)),
    "prob": (lambda a: M.sample_mixup_cutmix_params(KEY, 4, (8, 8), prob=a, cutmix_alpha=1.0, mode="elem"), (0.3, 1.0)),
    "switch_prob": (lambda a: M.sample_mixup_cutmix_params(KEY, 4, (8, 8), switch_prob=a, cutmix_alpha=1.0, mode="elem"), (0.0, 0.7)),
    "erasing p": (lambda a: E.sample_random_erasing_params(KEY, 4, (8, 8), 3, p=a), (0.0, 0.6)),
}


def _all(values):
    return {name: sample(values[i]) for i, (name, (sample, _)) in enumerate(SAMPLERS.items())}


def test_hyperparameters_trace_under_jit_and_vmap():
    """These raised "must be a real number, got Tracer" while tracing; now every sampler traces
    with its hyper-parameter as an input (``make_jaxpr``: tracing only, no compile)."""
    rows = jnp.asarray([[v[j] for _, v in SAMPLERS.values()] for j in range(2)], jnp.float32)
    jax.make_jaxpr(_all)(rows[0])
    jax.make_jaxpr(jax.vmap(_all))(rows)


def test_traced_mixup_alpha_zero_means_no_mixing():
    """The one sampler with a path of its own for a traced hyper-parameter: α = 0 (no mixing) is
    decided on the device. One compile (jax.random.beta's is the cost): α = 0 gives λ = 1, α = 2
    gives draws inside (0, 1). The others always take their numbers as arrays, so their eager
    tests run the traced code."""
    lam = jax.jit(jax.vmap(lambda a: M.sample_mixup_params(KEY, 8, alpha=a, per_sample=True).lam))(
        jnp.asarray([0.0, 2.0], jnp.float32)
    )
    lam = np.asarray(lam)
    assert np.all(lam[0] == 1), lam
    assert np.all((lam[1] > 0) & (lam[1] < 1)) and len(set(lam[1].tolist())) > 1, lam


def test_traced_hyperparameter_must_be_a_real_scalar():
    with pytest.raises(TypeError, match="`alpha` must be a real scalar"):
        jax.jit(lambda a: M.sample_mixup_params(KEY, 4, alpha=a))(jnp.ones(2))
    with pytest.raises(TypeError, match="`p` must be a real number"):
        E.sample_random_erasing_params(KEY, 4, (8, 8), 3, p=np.ones(2))
    with pytest.raises(ValueError, match="`alpha`"):  # a concrete 0-d array is checked as a number
        M.sample_cutmix_params(KEY, 4, (8, 8), alpha=jnp.float32(-1.0))
