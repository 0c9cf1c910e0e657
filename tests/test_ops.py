"""The 14 AutoAugment ops: torch_impl vs torchvision v2 (every magnitude bin and sign), jax jit/vmap,
invariants, bad input. (torch_impl vs jax_impl on drawn cases: the ``aa_*`` registry entries,
run by tests/test_parity.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import jax_impl.exact as JX
import jax_impl.kernels as JK
import jax_impl.ops as J
import torch_impl.ops as T
from parity import strategies as S
from parity.convert import images_from_jax, images_from_torch, images_to_jax, images_to_torch
from twintricks.policies import magnitude_bins

import torchvision.transforms.v2 as tv  # noqa: E402 (a dev dependency: never skipped)
TVAA = tv.AutoAugment()

SIGNED = {"geometric", "enhance"}
# The ops whose torchvision kernel rejects other channel counts.
RGB_OR_GRAY = {"brightness", "color", "contrast", "sharpness", "autocontrast"}


def tv_apply(image: torch.Tensor, tv_name: str, magnitude: float, fill=None) -> torch.Tensor:
    """torchvision's AutoAugment applying one op to one image (its own dispatch and arguments)."""
    return TVAA._apply_image_or_video_transform(
        image, tv_name, magnitude, interpolation=TVAA.interpolation, fill={"others": fill}
    )


def all_bins(op: str, h: int, w: int) -> list[float]:
    """Every magnitude torchvision's AutoAugment can use for ``op`` at this size, signs included."""
    tv_name, kind = S.AUTOAUGMENT_OPS[op]
    if kind is None:
        return [0.0]
    bins = [float(v) for v in magnitude_bins(tv_name, h, w)]
    return bins + [-b for b in bins if b] if kind in SIGNED else sorted(set(bins))


def call_torch(op: str, images, values):
    kind = S.AUTOAUGMENT_OPS[op][1]
    fn = getattr(T, op)
    if kind is None:
        return fn(images)
    dtype = torch.int64 if kind == "bits" else torch.float64
    return fn(images, torch.tensor(values, dtype=dtype))


def reference(op: str, images: torch.Tensor, values) -> torch.Tensor:
    tv_name = S.AUTOAUGMENT_OPS[op][0]
    return torch.cat([tv_apply(images[i : i + 1], tv_name, float(values[i])) for i in range(images.shape[0])])


@st.composite
def op_bin_cases(draw, op: str):
    """uint8 images (odd/even sides, 1 and 3 channels), one image per magnitude bin and sign."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    values = all_bins(op, h, w)
    c = draw(st.sampled_from([1, 3] if op in RGB_OR_GRAY else [1, 2, 3]))
    images = draw(S.image_batches(dtype=np.uint8, shape=(len(values), h, w, c)))
    return images, values


# --------------------------------------------------------------------------------------------
# torch_impl == torchvision, per op, every bin and sign
# --------------------------------------------------------------------------------------------

EXACT_OPS = [op for op in S.AUTOAUGMENT_OPS if op != "contrast"]


@pytest.mark.parametrize("op", EXACT_OPS)
@given(data=st.data())
def test_op_equals_torchvision_every_bin(op, data):
    images_nhwc, values = data.draw(op_bin_cases(op))
    images = images_to_torch(images_nhwc)
    if S.AUTOAUGMENT_OPS[op][1] == "bits":
        values = [int(v) for v in values]
    ours = call_torch(op, images, values)
    assert ours.dtype == torch.uint8 and ours.shape == images.shape
    assert torch.equal(ours, reference(op, images, values))


def _vector_chunk() -> int:
    """Elements per iteration of ATen's vectorised CPU loop (2 float vectors)."""
    return 2 * (16 if torch.backends.cpu.get_cpu_capability() == "AVX512" else 8)


@given(data=st.data())
@example(data=None)  # replaced below by the deterministic edge case (odd remainder)
def test_contrast_equals_torchvision_up_to_loop_remainder(data):
    """Contrast: exact except in the scalar remainder of torchvision's CPU loop (see the op's warning).

    torchvision's ``add_(mean, alpha=)`` fuses the multiply-add on the vectorised body only; the
    last ``C·H·W mod 32`` elements (AVX-512; 16 with AVX2) use a hoisted, separately rounded
    product. Bound asserted: differences only there, and at most 1.
    """
    if data is None:
        rng = np.random.default_rng(0)
        images_nhwc = rng.integers(0, 256, (19, 7, 9, 1), dtype=np.uint8)
        values = all_bins("contrast", 7, 9)
    else:
        images_nhwc, values = data.draw(op_bin_cases("contrast"))
    images = images_to_torch(images_nhwc)
    ours = call_torch("contrast", images, values)
    ref = reference("contrast", images, values)
    n, c, h, w = images.shape
    size = c * h * w
    diff = (ours.int() - ref.int()).abs().reshape(n, size)
    assert int(diff.max()) <= 1
    tail = size % _vector_chunk()
    assert not diff[:, : size - tail].any(), "differences outside the loop remainder"


def test_contrast_exact_when_size_is_a_multiple_of_the_vector_chunk():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, (19, 3, 32, 32), dtype=np.uint8))
    values = all_bins("contrast", 32, 32)
    assert torch.equal(call_torch("contrast", images, values), reference("contrast", images, values))


@pytest.mark.parametrize("op", list(S.AUTOAUGMENT_OPS))
def test_float_images_match_torchvision(op):
    """Float images in [0, 1] go through the same arithmetic as torchvision's float kernels.

    Contrast (float): the same loop-remainder effect as for uint8: at most one float32 rounding step
    on values <= 1, i.e. 2^-23 (measured 6e-8).
    """
    g = torch.Generator().manual_seed(3)
    h, w = 9, 7
    values = all_bins(op, h, w)
    if S.AUTOAUGMENT_OPS[op][1] == "bits":
        values = [int(v) for v in values]
    images = torch.rand(len(values), 3, h, w, generator=g)
    ours = call_torch(op, images, values)
    ref = reference(op, images, values)
    assert ours.dtype == torch.float32
    if op == "contrast":
        assert float((ours - ref).abs().max()) <= 2.0**-23
    else:
        assert torch.equal(ours, ref)


def test_batched_bmm_grid_equals_single_image_grid():
    """The per-image grids computed in one batched bmm equal torchvision's one-image grids (ties!)."""
    h, w = 15, 16
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 256, (19, 3, h, w), dtype=np.uint8))
    for op in ("shear_x", "shear_y", "rotate", "translate_x", "translate_y"):
        values = all_bins(op, h, w)
        assert torch.equal(call_torch(op, images[: len(values)], values), reference(op, images[: len(values)], values))


@pytest.mark.parametrize("fill", [0, 7, 127.5, (10, 20, 30)])
def test_geometric_fill_matches_torchvision(fill):
    """``fill`` as torchvision applies it (uint8: the float fill rounded half to even)."""
    rng = np.random.default_rng(4)
    images = torch.from_numpy(rng.integers(0, 256, (1, 3, 11, 8), dtype=np.uint8))
    for op, m in (("rotate", 20.0), ("shear_y", -0.3), ("translate_x", 3.9)):
        tv_name = S.AUTOAUGMENT_OPS[op][0]
        tv_fill = list(fill) if isinstance(fill, tuple) else fill
        ref = tv_apply(images, tv_name, m, fill=tv_fill)
        assert torch.equal(getattr(T, op)(images, m, fill=fill), ref)


@pytest.mark.parametrize("h,w", [(32, 32), (224, 224), (37, 50)])
def test_geometric_every_bin_at_training_sizes_matches_torchvision(h, w):
    """Every geometric bin and sign at CIFAR/ImageNet sizes on images whose 3 channels encode the
    pixel position, so any moved nearest-pixel tie shows: torch_impl's eager grid (elementwise,
    no bmm) and jax_impl's warp pick exactly torchvision's source pixels."""
    import jax.numpy as jnp

    pos = np.arange(h * w).reshape(h, w)
    coded = np.stack([pos % 256, (pos // 256) % 256, pos // 65536], axis=-1).astype(np.uint8)
    for op in ("shear_x", "shear_y", "translate_x", "translate_y", "rotate"):
        values = all_bins(op, h, w)
        images = np.broadcast_to(coded, (len(values), h, w, 3)).copy()
        ref = images_from_torch(reference(op, images_to_torch(images), values))
        assert np.array_equal(images_from_torch(call_torch(op, images_to_torch(images), values)), ref), op
        assert np.array_equal(np.asarray(getattr(J, op)(jnp.asarray(images), np.asarray(values))), ref), op


def test_rotate_multiples_of_90_match_torchvision_shortcuts():
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 3, 6, 6)
    for angle in (0.0, 90.0, 180.0, 270.0, -90.0, 360.0):
        ref = torch.cat([tv.functional.rotate(images[i : i + 1], angle) for i in range(2)])
        assert torch.equal(T.rotate(images, angle), ref)


# --------------------------------------------------------------------------------------------
# jax: jit and vmap agree with eager; rotate's traced path is bounded
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["shear_x", "translate_y", "brightness", "color", "contrast", "sharpness",
                                "posterize", "solarize", "autocontrast", "equalize", "invert"])
def test_jax_jit_and_vmap_agree_with_eager(op):
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(6)
    h, w = 7, 10
    values = (all_bins(op, h, w) * 8)[:8]
    kind = S.AUTOAUGMENT_OPS[op][1]
    images = jnp.asarray(rng.integers(0, 256, (8, h, w, 3), dtype=np.uint8))
    mags = jnp.asarray(np.asarray(values, np.int32 if kind == "bits" else np.float32))
    fn = getattr(J, op)
    call = (lambda x, m: fn(x)) if kind is None else fn
    eager = np.asarray(call(images, mags))
    assert np.array_equal(np.asarray(jax.jit(call)(images, mags)), eager)
    grouped = jax.vmap(call)(images.reshape(2, 4, h, w, 3), mags.reshape(2, 4))
    assert np.array_equal(np.asarray(grouped).reshape(eager.shape), eager)


def test_jax_rotate_traced_angles():
    """Under jit the rotation matrix comes from float32-only double-float trigonometry (no float64):
    exact on every AutoAugment angle; on random angles the float32 matrix differs from the host's
    float64 one only within ~2^-40 of a rounding midpoint (measured 7 in 220,000; asserted < 1e-4)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(7)
    for h, w in ((7, 9), (16, 16), (31, 17)):
        values = all_bins("rotate", h, w)
        images = rng.integers(0, 256, (len(values), h, w, 3), dtype=np.uint8)
        angles = np.asarray(values, np.float32)
        ours_t = images_from_torch(T.rotate(images_to_torch(images), torch.from_numpy(angles)))
        assert np.array_equal(np.asarray(J.rotate(jnp.asarray(images), angles)), ours_t)  # host matrix
        assert np.array_equal(np.asarray(jax.jit(J.rotate)(jnp.asarray(images), jnp.asarray(angles))), ours_t)
    angles = np.concatenate([rng.uniform(-720, 720, 20000), [0, 90, 180, 270, -90, 360, 0.5, -359.5]]).astype(np.float32)
    host = JK.rotate_matrix(angles.astype(np.float64))
    traced = np.asarray(jax.jit(JK.rotate_matrix)(jnp.asarray(angles)))
    assert np.any(host != traced, axis=1).mean() < 1e-4


def test_jax_shear_traced_matrix_exact_on_every_bin():
    """Traced shear factors give the host (float64, torchvision) matrix on every bin and size."""
    import jax
    import jax.numpy as jnp

    bins = list(magnitude_bins("ShearX", 1, 1))
    values = np.asarray(bins + [-b for b in bins], np.float32)
    traced = jax.jit(JK.shear_matrix, static_argnums=(1, 2, 3))
    assert np.array_equal(np.asarray(traced(jnp.asarray(values), 15, 16, 0)), JK.shear_matrix(values.astype(np.float64), 15, 16, 0))
    for h in range(1, 98):  # a jax array (not NumPy) takes the float32 path; no compile per size
        for axis in (0, 1):
            host = JK.shear_matrix(values.astype(np.float64), h, h + 7, axis)
            assert np.array_equal(np.asarray(JK.shear_matrix(jnp.asarray(values), h, h + 7, axis)), host), (h, axis)


def _f32_fma(a, b, c):
    """True fused multiply-add in NumPy: the float64 ``a·b + c`` is exact for the operands below
    (an 8-bit integer times a float32 has at most 32 significant bits, and the sum spans < 53),
    so rounding it once to float32 is what an FMA instruction (torch on AVX2) computes."""
    return (np.float64(np.float32(b)) * np.asarray(a, np.float64) + np.asarray(c, np.float32).astype(np.float64)).astype(np.float32)


def test_torch_uint8_grayscale_is_torchvisions_on_every_rgb_triple():
    """torch_impl widens uint8 channels to float32 before the luma's multiply-adds (ATen's mixed
    uint8/float loops are ~30x slower); torchvision computes on the uint8 channels. The floored
    luma is the same on all 2^24 (r, g, b) triples, and so is Color's blend on them."""
    from torchvision.transforms.v2.functional import _color as tv_color

    import torch_impl.kernels as TK

    v = torch.arange(256, dtype=torch.uint8)
    rgb = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).view(1, 3, 4096, 4096)
    expected = tv_color._rgb_to_grayscale_image(rgb, num_output_channels=1, preserve_dtype=False).floor_()
    assert torch.equal(TK.grayscale(rgb), expected)
    for m in (-0.9, -0.3, 0.45, 0.9):
        got = TK.color(rgb, torch.tensor([m], dtype=torch.float64))
        assert torch.equal(got, tv.functional.adjust_saturation(rgb, 1.0 + m)), m


def test_jax_uint8_grayscale_exact_on_every_rgb_triple():
    """jax_impl's cheap uint8 luma (``_fma8``) equals the fused-multiply-add luma on all 2^24 triples."""
    import jax
    import jax.numpy as jnp

    v = np.arange(256, dtype=np.float32)
    gray = jax.jit(lambda x: JK.grayscale(x, False))
    acc1 = (v * np.float32(0.2989)).astype(np.float32)  # exact product rounded once
    acc2 = _f32_fma(v[None, :], 0.587, acc1[:, None])  # [r, g]
    for r0 in range(0, 256, 64):
        rgb = np.stack(np.broadcast_arrays(v[r0 : r0 + 64, None, None], v[None, :, None], v[None, None, :]), -1)
        expected = np.floor(_f32_fma(v[None, None, :], 0.114, acc2[r0 : r0 + 64, :, None]))
        got = np.asarray(gray(jnp.asarray(rgb.reshape(64, 256, 256, 3))))[..., 0]
        assert np.array_equal(got, expected), r0


def test_jax_fma8_exact_on_every_autoaugment_blend():
    """``_fma8`` (used by jax_impl's AutoAugment Color and Sharpness on uint8) is a correctly rounded
    FMA for every magnitude bin and every operand the blends can see: Color ``gray·alpha + round(x·ratio)``
    (gray, x in 0..255), Sharpness ``(blur - x)·alpha + x`` (difference in -255..255)."""
    import jax
    import jax.numpy as jnp

    m = np.asarray(all_bins("color", 8, 8), np.float64)
    ratio, alpha = (1.0 + m).astype(np.float32)[:, None, None], (-m).astype(np.float32)[:, None, None]
    v = np.arange(256, dtype=np.float32)
    d = np.arange(-255, 256, dtype=np.float32)
    fma8 = jax.jit(lambda a, b, c: JX.fma8(*jnp.broadcast_arrays(a, b, c)))
    product = (v[None, :, None] * ratio).astype(np.float32)  # x·ratio rounded once (exact in float32 math)
    assert np.array_equal(np.asarray(jax.jit(JX.product)(v[None, :, None], ratio)), np.broadcast_to(product, (len(m), 256, 1)))
    assert np.array_equal(np.asarray(fma8(v[None, None, :], alpha, product)), _f32_fma(v[None, None, :], alpha, product))
    assert np.array_equal(np.asarray(fma8(d[None, :, None], alpha, v[None, None, :])), _f32_fma(d[None, :, None], alpha, v[None, None, :]))


def test_jax_uint8_sharpness_blur_rounds_like_the_exact_quotient():
    """round(S·fl(1/13)) == round(S/13) for every 3×3 sum S = 8 neighbours + 5·centre (0..3315)."""
    import jax
    import jax.numpy as jnp

    images = np.zeros((3316, 3, 3, 1), np.uint8)
    s = np.arange(3316)
    centre = np.minimum(s // 5, 255)
    images[:, 1, 1, 0] = centre
    rest = s - 5 * centre  # spread over the 8 neighbours, at most 255 each
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]):
        images[:, i, j, 0] = np.clip(rest - 255 * k, 0, 255)
    assert np.array_equal(images.astype(int).sum(axis=(1, 2, 3)) + 4 * centre, s)
    alpha = jnp.full((3316, 1, 1, 1), -1.0, jnp.float32)  # factor 2: out = clamp(2·x - blur)
    out = np.asarray(jax.jit(JK.sharpness)(jnp.asarray(images), alpha))[:, 1, 1, 0]
    blur = (2 * s + 13) // 26  # round half away; S/13 is never a tie (13 is odd)
    assert np.array_equal(out, np.clip(2 * centre - blur, 0, 255))


# --------------------------------------------------------------------------------------------
# Invariants (both packages)
# --------------------------------------------------------------------------------------------

BACKENDS = {
    "torch": (T, images_to_torch, images_from_torch, lambda a: torch.as_tensor(a)),
    "jax": (J, images_to_jax, images_from_jax, lambda a: np.asarray(a)),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@given(images=S.image_batches(dtype=np.uint8, shape=(3, 6, 5, 3)))
def test_invariants(backend, images):
    mod, to, back, arr = BACKENDS[backend]
    x = to(images)
    n = images.shape[0]
    zeros = arr(np.zeros(n, np.float32))
    assert np.array_equal(back(mod.invert(mod.invert(x))), images)
    for op in ("brightness", "color", "contrast", "sharpness"):  # magnitude 0: factor 1
        assert np.array_equal(back(getattr(mod, op)(x, zeros)), images), op
    for op in ("shear_x", "shear_y", "translate_x", "translate_y", "rotate"):
        assert np.array_equal(back(getattr(mod, op)(x, zeros)), images), op
    assert np.array_equal(back(mod.posterize(x, arr(np.full(n, 8, np.int64)))), images)
    once = mod.equalize(x)
    assert np.array_equal(back(mod.equalize(once)), back(once))
    # solarize at threshold 0 inverts everything
    assert np.array_equal(back(mod.solarize(x, zeros)), 255 - images)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_translate_there_and_back_keeps_the_overlap(backend):
    mod, to, back, arr = BACKENDS[backend]
    images = np.random.default_rng(8).integers(1, 256, (2, 5, 9, 3), dtype=np.uint8)
    shift = arr(np.array([3.0, -2.7], np.float32))  # -2.7 truncates to -2
    back_and_forth = back(mod.translate_x(mod.translate_x(to(images), shift), -shift))
    # right by 3 and back: the 3 columns pushed out come back as fill (0); left by 2 and back likewise
    assert np.array_equal(back_and_forth[0, :, :-3], images[0, :, :-3])
    assert (back_and_forth[0, :, -3:] == 0).all()
    assert np.array_equal(back_and_forth[1, :, 2:], images[1, :, 2:])
    assert (back_and_forth[1, :, :2] == 0).all()


def test_torch_inputs_not_modified():
    rng = np.random.default_rng(9)
    images = torch.from_numpy(rng.integers(0, 256, (2, 3, 6, 7), dtype=np.uint8))
    floats = images.float() / 255
    for op, (_, kind) in S.AUTOAUGMENT_OPS.items():
        for x in (images, floats):
            before = x.clone()
            args = {"bits": torch.tensor([8, 4]), "threshold": torch.tensor([0.5, 0.3])}
            arg = None if kind is None else args.get(kind, torch.tensor([0.5, -0.3]))
            getattr(T, op)(x) if arg is None else getattr(T, op)(x, arg)
            assert torch.equal(x, before), op


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bad_input(backend):
    mod, to, _, arr = BACKENDS[backend]
    x = to(np.zeros((2, 4, 4, 3), np.uint8))
    m = arr(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="images"):
        mod.invert(x[0])  # wrong rank
    with pytest.raises(TypeError, match="images"):
        mod.invert(to(np.zeros((2, 4, 4, 3), np.int32)))
    with pytest.raises(ValueError, match="float images must lie in"):
        mod.equalize(to(np.full((2, 4, 4, 3), 2.0, np.float32)))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        mod.brightness(to(np.zeros((2, 4, 4, 2), np.uint8)), m)
    with pytest.raises(ValueError, match="magnitude"):
        mod.color(x, arr(np.zeros(3, np.float32)))  # one per image
    with pytest.raises(ValueError, match="magnitude"):
        mod.contrast(x, arr(np.full(2, -1.5, np.float32)))  # factor < 0
    with pytest.raises(ValueError, match="bits"):
        mod.posterize(x, arr(np.array([9, 1])))
    with pytest.raises(ValueError, match="threshold"):
        mod.solarize(x, arr(np.array([1.5, 0.0], np.float32)))
    with pytest.raises(ValueError, match="fill"):
        mod.rotate(x, m, fill=300)
    with pytest.raises(ValueError, match="fill"):
        mod.rotate(x, m, fill=(1, 2))
    with pytest.raises(TypeError, match="angle"):
        mod.rotate(x, "ten")


def test_subnormal_autocontrast_is_a_known_framework_difference():
    """XLA (CPU) flushes subnormals to zero, torch does not: a channel whose range is 1e-45 is
    stretched to 1 by torch and left flat by jax. The parity strategies therefore draw no
    subnormal pixels; this pins both facts so a change in either framework is noticed."""
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0] = 1e-45
    t = images_from_torch(T.autocontrast(images_to_torch(x)))
    j = np.asarray(J.autocontrast(images_to_jax(x)))
    assert t[0, 0, 0, 0] == 1.0  # torch: (x - 0) / 1e-45, clamped to 1
    assert j[0, 0, 0, 0] <= np.float32(1e-45)  # jax: range flushed to 0, channel left flat (the pixel may flush too)


# --------------------------------------------------------------------------------------------
# Non-finite and fractional arguments are rejected where they are given
# --------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
BAD_ARGUMENTS = [
    ("shear_x", "magnitude", NAN), ("shear_y", "magnitude", INF), ("shear_x", "magnitude", -INF),
    ("translate_x", "pixels", INF), ("translate_y", "pixels", NAN),
    ("rotate", "angle", INF), ("rotate", "angle", NAN),
    ("brightness", "magnitude", INF), ("color", "magnitude", INF), ("contrast", "magnitude", INF),
    ("sharpness", "magnitude", INF), ("brightness", "magnitude", NAN), ("contrast", "magnitude", NAN),
    ("solarize", "threshold", NAN),
    ("posterize", "bits", 2.5), ("posterize", "bits", NAN), ("posterize", "bits", INF),
]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("op,arg,bad", BAD_ARGUMENTS, ids=[f"{o}={b}" for o, _, b in BAD_ARGUMENTS])
def test_non_finite_and_fractional_arguments_are_rejected(backend, op, arg, bad):
    """A NaN/inf magnitude (an all-fill batch, a saturated blend) or ``bits=2.5`` (silently 2) is
    a ValueError naming the argument, given as a number or inside a per-image array."""
    mod, to, _, arr = BACKENDS[backend]
    x = to(np.full((2, 5, 6, 3), 100, np.uint8))
    good = 3.0 if arg == "bits" else 0.25
    for value in (bad, arr(np.array([good, bad], np.float64))):
        with pytest.raises(ValueError, match=f"`{arg}`"):
            getattr(mod, op)(x, value)


def test_jax_traced_arguments_are_not_checked():
    """Documented: under ``jit`` the values are traced, so the value checks cannot run (no error)."""
    import jax
    import jax.numpy as jnp

    x = jnp.full((2, 5, 6, 3), 100, jnp.uint8)
    jax.jit(J.shear_x)(x, jnp.array([0.1, np.nan], jnp.float32))
    jax.jit(J.posterize)(x, jnp.array([3, 9], jnp.int32))


# --------------------------------------------------------------------------------------------
# Half-precision images
# --------------------------------------------------------------------------------------------


def _half_images(dtype, seed=0, shape=(3, 3, 9, 11)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g).to(dtype)
    x[:, :, 0, :3] = 1.0  # white
    x[:, :, 1, :2] = 0.0
    return x


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_equalize_keeps_white_unlike_torchvision(dtype):
    """Equalize quantises with ``x·255.999``: in float16/bfloat16 that constant rounds to 256, so
    torchvision (which multiplies in the image's dtype) sends white to 256 → 0, black. Ours
    quantises in float32: the same levels as the float32 image, scaled back in the image's dtype."""
    x = _half_images(dtype)
    white = x == 1.0
    ours = T.equalize(x)
    assert ours.dtype == dtype
    assert torch.equal(ours, T.equalize(x.float()).to(dtype))
    assert bool((ours[white] == 1.0).all())  # every channel has white as its top level here
    theirs = tv.functional.equalize(x)
    assert bool((theirs[white] == 0.0).all())  # torchvision's behaviour, as observed (torch 2.x)


def test_float16_equalize_torch_equals_jax():
    x = _half_images(torch.float16, seed=1)
    j = np.asarray(J.equalize(images_to_jax(images_from_torch(x))))
    assert np.array_equal(j, images_from_torch(T.equalize(x)))


GEOMETRIC_BINS = [("shear_x", "ShearX"), ("shear_y", "ShearY"), ("rotate", "Rotate"), ("translate_x", "TranslateX")]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("op,tv_name", GEOMETRIC_BINS)
def test_half_precision_geometric_ops_equal_float32(op, tv_name, dtype):
    """A float16 grid cannot place samples within a pixel (coordinates up to 32 with 11 bits), which
    moved hundreds of nearest picks per batch on the rotation bins: half-precision images are
    warped on a float32 grid, so they get exactly the float32 result (nearest copies pixels)."""
    x = _half_images(dtype, shape=(2, 3, 32, 32))
    bins = magnitude_bins(tv_name, 32, 32)
    values = [v for b in bins[1:] for v in (b, -b)] + [0.123, -0.377, 17.5]
    fill = (0.25, 0.5, 1.0)
    for m in values:
        ours = getattr(T, op)(x, m, fill=fill)
        assert ours.dtype == dtype
        assert torch.equal(ours, getattr(T, op)(x.float(), m, fill=fill).to(dtype)), m


@pytest.mark.parametrize("op,tv_name", GEOMETRIC_BINS)
def test_float16_geometric_ops_torch_equals_jax(op, tv_name):
    x = _half_images(torch.float16, seed=2, shape=(2, 3, 16, 20))
    values = list(magnitude_bins(tv_name, 16, 20)[1:]) + [-0.2, 0.31]
    xj = images_to_jax(images_from_torch(x))
    for m in values:
        t = images_from_torch(T.__dict__[op](x, m, fill=0.5))
        j = np.asarray(getattr(J, op)(xj, m, fill=0.5))
        assert np.array_equal(t, j), m


# --------------------------------------------------------------------------------------------
# Gradients (torch, float images)
# --------------------------------------------------------------------------------------------


def test_torch_sharpness_backpropagates():
    """``sharpness`` (and the other blends) are differentiable in float images: float64 gradcheck
    against finite differences, away from the clamp at 0 and 1."""
    g = torch.Generator().manual_seed(0)
    x = (0.3 + 0.4 * torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    m = torch.tensor([0.5, -0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: T.sharpness(a, m), (x,))
    for op in ("brightness", "color", "contrast"):
        assert torch.autograd.gradcheck(lambda a: getattr(T, op)(a, m), (x,)), op


@pytest.mark.parametrize("op,tv_name", [("shear_x", "ShearX"), ("shear_y", "ShearY")])
def test_jax_geometric_under_jit_with_python_numbers_equals_eager_and_torch(op, tv_name):
    """Inside a user's ``jit`` a Python-number magnitude makes the matrix a compile-time constant.
    XLA then folded the grid's arithmetic with other roundings (hundreds of pixels on 32×32 at
    the bins ±0.0667 and ±0.2); the warp now reads the matrix as a run-time value, so jit, eager
    and torch agree."""
    import jax

    rng = np.random.default_rng(7)
    for h, w in [(8, 12), (32, 32)]:
        x = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        xj, xt = images_to_jax(x), images_to_torch(x)
        bins = magnitude_bins(tv_name, h, w)
        for m in [v for b in bins[1:] for v in (b, -b)]:
            eager = np.asarray(getattr(J, op)(xj, m))
            jitted = np.asarray(jax.jit(lambda a: getattr(J, op)(a, m))(xj))
            assert np.array_equal(eager, images_from_torch(getattr(T, op)(xt, m))), (h, w, m)
            assert np.array_equal(jitted, eager), (h, w, m)


def test_jax_rotate_and_translate_under_jit_with_python_numbers_equal_eager():
    import jax

    x = images_to_jax(np.random.default_rng(8).integers(0, 256, (2, 13, 17, 3), dtype=np.uint8))
    for op, values in (("rotate", (3.3333332538604736, -20.0, 26.666667938232422)), ("translate_x", (4.5, -7.25))):
        for m in values:
            eager = np.asarray(getattr(J, op)(x, m, fill=(1, 2, 3)))
            jitted = np.asarray(jax.jit(lambda a: getattr(J, op)(a, m, fill=(1, 2, 3)))(x))
            assert np.array_equal(jitted, eager), (op, m)
