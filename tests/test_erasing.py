"""Cutout: the reference algorithm, invariants, sampler distribution, jit/vmap, modules, bad input.

Cross-framework kernel parity is in tests/test_parity.py (registry entry ``cutout``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import example, given
from scipy import stats

import jax_impl.erasing as JE
import torch_impl.erasing as TE
from parity import convert
from parity.strategies import cutout_cases


def reference_cutout_mask(h, w, cy, cx, length):
    """The reference code (DeVries & Taylor), one image: 1 outside the holes, 0 inside."""
    mask = np.ones((h, w), np.float32)
    for y, x in zip(cy, cx):
        y1, y2 = np.clip(y - length // 2, 0, h), np.clip(y + length // 2, 0, h)
        x1, x2 = np.clip(x - length // 2, 0, w), np.clip(x + length // 2, 0, w)
        mask[y1:y2, x1:x2] = 0.0
    return mask


def run_torch(case):
    p = case["params"]
    params = TE.CutoutParams(torch.from_numpy(p["cy"]), torch.from_numpy(p["cx"]))
    x = convert.images_to_torch(case["images"])
    before = x.clone()
    out = TE.cutout(x, params, length=case["length"], fill=case["fill"])
    assert torch.equal(x, before), "cutout modified its input"
    assert out.dtype == x.dtype and out.shape == x.shape
    return convert.images_from_torch(out)


def run_jax(case):
    p = case["params"]
    params = JE.CutoutParams(jnp.asarray(p["cy"]), jnp.asarray(p["cx"]))
    out = JE.cutout(jnp.asarray(case["images"]), params, length=case["length"], fill=case["fill"])
    assert out.dtype == case["images"].dtype and out.shape == case["images"].shape
    return np.asarray(out)


@pytest.mark.parametrize("run", [run_torch, run_jax], ids=["torch", "jax"])
@given(case=cutout_cases())
@example(
    case=dict(
        images=np.full((1, 3, 3, 1), 9, np.uint8),
        params=dict(cy=np.array([[1]]), cx=np.array([[1]])),
        length=3,  # odd: box of side 2, rows/cols [0, 2)
        fill=0,
    )
)
def test_cutout_matches_reference_and_invariants(run, case):
    images, length, fill = case["images"], case["length"], case["fill"]
    n, h, w, c = images.shape
    out = run(case)
    for i in range(n):
        ref = reference_cutout_mask(h, w, case["params"]["cy"][i], case["params"]["cx"][i], length)
        inside = ref == 0
        # outside every hole: unchanged; inside: the fill value in every channel
        np.testing.assert_array_equal(out[i][~inside], images[i][~inside])
        np.testing.assert_array_equal(out[i][inside], np.full((inside.sum(), c), fill, images.dtype))
        if fill == 0:  # the reference applies the mask by multiplication
            np.testing.assert_array_equal(out[i], (images[i] * ref[..., None]).astype(images.dtype))


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 8, 9, 30])
def test_single_hole_area_matches_clipped_geometry(length):
    h, w = 7, 6
    cy, cx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    cy, cx = cy.reshape(-1, 1), cx.reshape(-1, 1)
    n = cy.shape[0]
    half = length // 2
    rows = np.clip(cy[:, 0] + half, 0, h) - np.clip(cy[:, 0] - half, 0, h)
    cols = np.clip(cx[:, 0] + half, 0, w) - np.clip(cx[:, 0] - half, 0, w)
    want = rows * cols
    images = np.ones((n, h, w, 2), np.float32)
    tmask = TE.cutout_mask(TE.CutoutParams(torch.from_numpy(cy), torch.from_numpy(cx)), h, w, length=length)
    jmask = JE.cutout_mask(JE.CutoutParams(jnp.asarray(cy), jnp.asarray(cx)), h, w, length=length)
    np.testing.assert_array_equal(tmask.sum(dim=(1, 2)).numpy(), want)
    np.testing.assert_array_equal(np.asarray(jmask).sum(axis=(1, 2)), want)
    # an odd length gives the box of length - 1 when it is not clipped
    if 2 * half < min(h, w):
        centre = (h // 2) * w + w // 2
        assert want[centre] == (2 * half) ** 2
    out = JE.cutout(jnp.asarray(images), JE.CutoutParams(jnp.asarray(cy), jnp.asarray(cx)), length=length)
    np.testing.assert_array_equal(np.asarray(out)[..., 0].sum(axis=(1, 2)), h * w - want)


def test_no_holes_is_identity_and_large_length_fills_everything():
    x = torch.randint(0, 256, (3, 2, 5, 4), dtype=torch.uint8)
    empty = TE.sample_cutout_params(3, (5, 4), n_holes=0)
    assert empty.cy.shape == (3, 0)
    assert torch.equal(TE.cutout(x, empty, length=4, fill=9), x)
    full = TE.CutoutParams(torch.tensor([[0], [4], [2]]), torch.tensor([[0], [3], [1]]))
    assert torch.equal(TE.cutout(x, full, length=20, fill=7), torch.full_like(x, 7))
    xj = jnp.asarray(convert.images_from_torch(x))
    ej = JE.sample_cutout_params(jax.random.key(0), 3, (5, 4), n_holes=0)
    assert ej.cy.shape == (3, 0)
    np.testing.assert_array_equal(np.asarray(JE.cutout(xj, ej, length=4, fill=9)), np.asarray(xj))


def test_sampler_centres_are_uniform_over_the_grid():
    n, k, h, w = 4000, 3, 5, 7
    for name, cy, cx in [
        ("torch", *TE.sample_cutout_params(n, (h, w), n_holes=k, generator=torch.Generator().manual_seed(0))),
        ("jax", *JE.sample_cutout_params(jax.random.key(0), n, (h, w), n_holes=k)),
    ]:
        cy, cx = np.asarray(cy).ravel(), np.asarray(cx).ravel()
        assert cy.min() >= 0 and cy.max() == h - 1 and cx.min() >= 0 and cx.max() == w - 1, name
        # joint cell counts against the uniform distribution on the H x W grid (fixed seed)
        counts = np.bincount(cy * w + cx, minlength=h * w)
        assert stats.chisquare(counts).pvalue > 1e-3, name
        # the holes of one image are independent of each other
        first, second = np.asarray(cy).reshape(n, k)[:, :2].T
        assert abs(stats.pearsonr(first, second).statistic) < 0.06, name


def test_torch_sampler_uses_the_generator_and_device():
    a = TE.sample_cutout_params(5, 9, n_holes=2, generator=torch.Generator().manual_seed(3))
    b = TE.sample_cutout_params(5, 9, n_holes=2, generator=torch.Generator().manual_seed(3), device="cpu")
    assert torch.equal(a.cy, b.cy) and torch.equal(a.cx, b.cx)
    assert a.cy.dtype == torch.int64 and a.cy.shape == (5, 2)


def test_jax_jit_and_vmap_match_eager():
    key = jax.random.key(1)
    images = jax.random.randint(key, (2, 3, 6, 5, 3), 0, 256).astype(jnp.uint8)  # 2 batches
    params = JE.sample_cutout_params(jax.random.key(2), 6, (6, 5), n_holes=2)
    params = JE.CutoutParams(params.cy.reshape(2, 3, 2), params.cx.reshape(2, 3, 2))
    eager = np.stack([np.asarray(JE.cutout(images[b], JE.CutoutParams(params.cy[b], params.cx[b]), length=3, fill=1)) for b in range(2)])
    kernel = lambda x, p: JE.cutout(x, p, length=3, fill=1)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(jax.vmap(kernel)(images, params)), eager)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(kernel)(images[0], JE.CutoutParams(params.cy[0], params.cx[0]))), eager[0]
    )
    wrapped = jax.jit(JE.random_cutout, static_argnames=("n_holes", "length", "fill"))
    np.testing.assert_array_equal(
        np.asarray(wrapped(key, images[0], n_holes=2, length=4)),
        np.asarray(JE.random_cutout(key, images[0], n_holes=2, length=4)),
    )


def test_wrappers_draw_then_apply():
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, 8, 8)
    out = TE.Cutout(n_holes=2, length=4, fill=0.5, generator=gen_a)(x)
    params = TE.sample_cutout_params(4, (8, 8), n_holes=2, generator=gen_b)
    assert torch.equal(out, TE.cutout(x, params, length=4, fill=0.5))
    assert "length=4" in repr(TE.Cutout(length=4))
    key = jax.random.key(7)
    xj = jnp.asarray(convert.images_from_torch(x))
    pj = JE.sample_cutout_params(key, 4, (8, 8), n_holes=2)
    np.testing.assert_array_equal(
        np.asarray(JE.random_cutout(key, xj, n_holes=2, length=4, fill=0.5)),
        np.asarray(JE.cutout(xj, pj, length=4, fill=0.5)),
    )


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_bad_input_raises_clear_errors(backend):
    E = TE if backend == "torch" else JE
    if backend == "torch":
        good = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
        params = TE.CutoutParams(torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 1, dtype=torch.int64))
        bad_rank, bad_dtype = torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(2, 3, 4, 4, dtype=torch.int32)
        float_params = TE.CutoutParams(params.cy.float(), params.cx.float())
        other_batch = TE.CutoutParams(torch.zeros(3, 1, dtype=torch.int64), torch.zeros(3, 1, dtype=torch.int64))
    else:
        good = jnp.zeros((2, 4, 4, 3), jnp.uint8)
        params = JE.CutoutParams(jnp.zeros((2, 1), jnp.int32), jnp.zeros((2, 1), jnp.int32))
        bad_rank, bad_dtype = jnp.zeros((4, 4, 3), jnp.uint8), jnp.zeros((2, 4, 4, 3), jnp.int32)
        float_params = JE.CutoutParams(params.cy.astype(jnp.float32), params.cx.astype(jnp.float32))
        other_batch = JE.CutoutParams(jnp.zeros((3, 1), jnp.int32), jnp.zeros((3, 1), jnp.int32))
    with pytest.raises(ValueError, match="length"):
        E.cutout(good, params, length=-1)
    with pytest.raises(ValueError, match=r"images.*4-D"):
        E.cutout(bad_rank, params, length=2)
    with pytest.raises(TypeError, match="images.*dtype"):
        E.cutout(bad_dtype, params, length=2)
    with pytest.raises(ValueError, match="fill"):
        E.cutout(good, params, length=2, fill=256)
    with pytest.raises(ValueError, match="fill"):
        E.cutout(good, params, length=2, fill=0.5)
    with pytest.raises(TypeError, match="params.cy"):
        E.cutout(good, float_params, length=2)
    with pytest.raises(ValueError, match="batch"):
        E.cutout(good, other_batch, length=2)
    with pytest.raises(TypeError, match="params"):
        E.cutout(good, (params.cy, params.cx), length=2)
    with pytest.raises(TypeError, match="length"):
        E.cutout(good, params, length=2.5)
    if backend == "torch":
        with pytest.raises(ValueError, match="n_holes"):
            TE.sample_cutout_params(2, 4, n_holes=-1)
        with pytest.raises(ValueError, match="length"):
            TE.Cutout(length=-3)
        with pytest.raises(ValueError, match="image_size"):
            TE.sample_cutout_params(2, (0, 4))
    else:
        with pytest.raises(ValueError, match="n_holes"):
            JE.sample_cutout_params(jax.random.key(0), 2, 4, n_holes=-1)
        with pytest.raises(ValueError, match="length"):
            JE.random_cutout(jax.random.key(0), good, length=-3)


def test_gradient_is_the_keep_mask_in_both_frameworks():
    """d/dx sum(w · cutout(x)) = w outside the holes and 0 inside (the fill is a constant)."""
    rng = np.random.default_rng(0)
    images = rng.random((3, 6, 5, 2), dtype=np.float32)
    weights = rng.standard_normal((3, 6, 5, 2)).astype(np.float32)
    cy, cx = np.array([[0, 5], [2, 2], [4, 1]]), np.array([[0, 4], [3, 3], [1, 0]])
    keep = np.stack([reference_cutout_mask(6, 5, cy[i], cx[i], 4) for i in range(3)])[..., None]
    x = convert.images_to_torch(images).requires_grad_(True)
    out = TE.cutout(x, TE.CutoutParams(torch.from_numpy(cy), torch.from_numpy(cx)), length=4, fill=0.3)
    (out * convert.images_to_torch(weights)).sum().backward()
    np.testing.assert_array_equal(convert.images_from_torch(x.grad), weights * keep)
    params = JE.CutoutParams(jnp.asarray(cy), jnp.asarray(cx))
    grad = jax.grad(lambda im: jnp.sum(JE.cutout(im, params, length=4, fill=0.3) * weights))(jnp.asarray(images))
    np.testing.assert_array_equal(np.asarray(grad), weights * keep)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_centres_outside_the_image_and_foreign_records_are_rejected(backend):
    """A record drawn for another image size or batch, or none at all, is an error (eagerly)."""
    if backend == "torch":
        E, arr, good = TE, torch.as_tensor, torch.zeros(2, 3, 4, 5, dtype=torch.uint8)
        big = TE.sample_cutout_params(2, (40, 50), n_holes=3, generator=torch.Generator().manual_seed(0))
    else:
        E, arr, good = JE, jnp.asarray, jnp.zeros((2, 4, 5, 3), jnp.uint8)
        big = JE.sample_cutout_params(jax.random.key(0), 2, (40, 50), n_holes=3)
    for cy, cx, word in (([[4], [0]], [[0], [0]], "params.cy"), ([[0], [0]], [[0], [5]], "params.cx"),
                         ([[-1], [0]], [[0], [0]], "params.cy"), ([[0], [0]], [[0], [-3]], "params.cx")):
        with pytest.raises(ValueError, match=word):
            E.cutout(good, E.CutoutParams(arr(np.array(cy)), arr(np.array(cx))), length=2)
    with pytest.raises(ValueError, match="params.c"):  # drawn for 40x50 images
        E.cutout(good, big, length=2)
    with pytest.raises(ValueError, match="batch"):  # drawn for a batch of 3
        E.cutout(good, E.CutoutParams(arr(np.zeros((3, 1), np.int64)), arr(np.zeros((3, 1), np.int64))), length=2)
    with pytest.raises(TypeError, match="`params` must be a CutoutParams"):
        E.cutout(good, None, length=2)
    with pytest.raises(ValueError, match="fill"):
        E.cutout(good.astype(jnp.float32) if backend == "jax" else good.float(), E.CutoutParams(arr(np.zeros((2, 1), np.int64)), arr(np.zeros((2, 1), np.int64))), length=2, fill=float("nan"))
