"""The spatial kernels compile once: torch.compile(fullgraph=True) and jax.jit trace each kernel a
single time, and a second batch of the same shape (new values, new per-image parameters) runs the
compiled code without recompiling, with the eager result.

torch: dynamo's frame count (torch._dynamo.testing.CompileCounterWithBackend) with the
``aot_eager`` backend (dynamo + AOT autograd tracing, no C++ build); one test builds the three
kernels with inductor (marked slow: a C++ compile). jax: a Python trace counter and ``_cache_size()``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounterWithBackend

import jax_impl.cropping as JC
import jax_impl.erasing as JE
import torch_impl.cropping as TC
import torch_impl.erasing as TE


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def torch_batches(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, (4, 3, 9, 8), dtype=torch.uint8, generator=g)
    else:
        x = torch.rand(4, 3, 9, 8, generator=g)
    return (
        x,
        TE.sample_cutout_params(4, (9, 8), n_holes=2, generator=g),
        TC.sample_resized_crop_params(4, (9, 8), generator=g),
        TC.sample_flip_params(4, generator=g),
    )


def all_kernels(x, holes, box, flip):
    return (
        TE.cutout(x, holes, length=5, fill=1),
        TC.resized_crop(x, box, size=(6, 7)),
        TC.hflip(x, flip),
        TC.hflip(TC.resized_crop(TE.cutout(x, holes, length=4), box, size=5), flip),
        TC.resized_crop(x, box, size=(6, 7), flip=flip),
    )


KERNELS = ["cutout", "resized_crop", "hflip", "chain", "resized_crop_flip"]


def assert_same(got, want, dtype):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if dtype == torch.uint8:
            assert torch.equal(g, w)  # integer arithmetic: bit-identical however it is compiled
        else:
            # float32 blend of 4 values in [0, 1]; a compiler may fuse multiply-adds (few ulps)
            torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_torch_kernels_compile_fullgraph_once(kernel, dtype):
    index = KERNELS.index(kernel)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(lambda *a: all_kernels(*a)[index], backend=counter, fullgraph=True)
    for seed in (0, 1):
        batch = torch_batches(dtype, seed)
        before = batch[0].clone()
        out = compiled(*batch)
        assert torch.equal(batch[0], before)
        assert_same([out], [all_kernels(*batch)[index]], dtype)
    assert counter.frame_count == 1


@pytest.mark.parametrize(
    "module",
    [lambda: TE.Cutout(n_holes=2, length=4), lambda: TC.RandomResizedCropFlip((5, 6), scale=(0.2, 1.0))],
    ids=["Cutout", "RandomResizedCropFlip"],
)
def test_torch_modules_compile_fullgraph_once(module):
    """With ``generator=None`` (torch's default generator) the whole module, sampling included,
    is one graph; a ``torch.Generator`` argument is not traceable by dynamo in fullgraph mode."""
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(module(), backend=counter, fullgraph=True)
    for seed in (0, 1):
        x = torch_batches(torch.uint8, seed)[0]
        out = compiled(x)
        assert out.dtype == torch.uint8 and out.shape[:2] == x.shape[:2]
    assert counter.frame_count == 1


@pytest.mark.slow
def test_torch_kernels_with_inductor():
    """The real backend (C++ codegen): one graph for all kernels, compiled once, eager results."""
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(all_kernels, backend=counter, fullgraph=True)
    for seed in (0, 1):
        batch = torch_batches(torch.uint8, seed)
        assert_same(compiled(*batch), all_kernels(*batch), torch.uint8)
    assert counter.frame_count == 1


def jax_batches(dtype, seed):
    k_img, k_holes, k_box, k_flip = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.uniform(k_img, (4, 9, 8, 3))
    x = (x * 255).astype(jnp.uint8) if dtype == jnp.uint8 else x
    return (
        x,
        JE.sample_cutout_params(k_holes, 4, (9, 8), n_holes=2),
        JC.sample_resized_crop_params(k_box, 4, (9, 8)),
        JC.sample_flip_params(k_flip, 4),
    )


def jax_kernels(x, holes, box, flip):
    return (
        JE.cutout(x, holes, length=5, fill=1),
        JC.resized_crop(x, box, size=(6, 7)),
        JC.hflip(x, flip),
        JC.hflip(JC.resized_crop(JE.cutout(x, holes, length=4), box, size=5), flip),
        JC.resized_crop(x, box, size=(6, 7), flip=flip),
    )


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32], ids=["uint8", "float32"])
def test_jax_kernels_jit_once(dtype):
    traces = []

    def traced(*batch):
        traces.append(1)
        return jax_kernels(*batch)

    compiled = jax.jit(traced)
    for seed in (0, 1):
        batch = jax_batches(dtype, seed)
        for got, want in zip(compiled(*batch), jax_kernels(*batch)):
            np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), atol=1e-6, rtol=0)
            if dtype == jnp.uint8:
                np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert len(traces) == 1
    assert compiled._cache_size() == 1


def test_jax_samplers_and_wrappers_jit_once():
    # jax shares a function's jit cache between wrappers with the same options (other tests jit
    # these functions too), so compare cache sizes after the first and the second batch
    cutout = jax.jit(JE.random_cutout, static_argnames=("n_holes", "length", "fill"))
    crop_flip = jax.jit(JC.random_resized_crop_flip, static_argnames=("size", "scale", "ratio", "flip_p"))
    sampler = jax.jit(JC.sample_resized_crop_params, static_argnums=(1, 2))
    sizes = []
    for seed in (0, 1):
        key = jax.random.key(seed)
        x = jax_batches(jnp.uint8, seed)[0]
        cutout(key, x, n_holes=2, length=4)
        crop_flip(key, x, size=(5, 5))
        sampler(key, 4, (9, 8))
        sizes.append([f._cache_size() for f in (cutout, crop_flip, sampler)])
    assert sizes[0] == sizes[1]


def test_jax_eager_calls_reuse_the_internal_compiled_kernels():
    """Eager calls of the kernels run one jitted computation each, cached by shape: calls with
    new values of the same shapes add no compilation (caches are global, so compare sizes)."""
    kernels = [JE._cutout_kernel, JC._resized_crop_kernel, JC._hflip_kernel, JC._sample_boxes]

    def run(seed):
        jax_kernels(*jax_batches(jnp.float32, seed))
        JC.sample_resized_crop_params(jax.random.key(seed), 4, (9, 8))
        return [k._cache_size() for k in kernels]

    first = run(0)
    assert run(1) == first and run(2) == first
