"""The unchecked batched kernels behind :mod:`jax_impl.ops` and :mod:`jax_impl.policies`.

Every kernel takes an ``[N, H, W, C]`` batch (uint8, or floating point in ``[0, 1]``) and per-image
arguments already converted (``[N, 1, 1, 1]`` float32 factors, ``[N, 6]`` float32 inverse affine
matrices, hashable ``fill`` tuples), and returns a new batch of the same shape and dtype. Nothing is
checked here: the public ops check their arguments and call these; the AutoAugment-family
policies call them directly. The pixel-wise kernels also accept the 256 uint8 values laid out as
images (with the statistics of the real images passed in), which is how the policies build
per-image lookup tables (LUTs) with the same arithmetic as on the pixels.

The per-pixel kernels are ``jax.jit``-compiled, so eager calls and calls inside a user's ``jit``
compile the same fused code; :mod:`jax_impl.exact` pins the roundings torch performs.

The twin of :mod:`torch_impl.kernels`: the same kernel names. Only here: ``is_float``,
``inverse_affine_host`` (torchvision's float64 matrix on the host), ``grid_terms``/``warp_nearest``/``warp_bilinear``/``warp``
(the grid's split products computed once, outside the per-pixel code), ``materialize_lut``,
``lookup`` and ``apply_lut``. Only in torch_impl: ``inverse_affine``, ``ratio_alpha`` and
``to_uint8``/``from_uint8`` (torch computes matrices and factors in float64 tensors).

.. warning:: Contrast's mean is an exact integer sum for uint8 images up to H·W·255 < 2^24
   (256×256); beyond that float32 summation order matters.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.functional`` (``_color.py``, ``_geometry.py``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl import exact

_DEG_TO_RAD = math.pi / 180.0
_RAD_TO_DEG = 180.0 / math.pi


def max_value(dtype) -> float:
    """The largest pixel value of ``dtype``: 255 for uint8, 1 for floats."""
    return 1.0 if jnp.issubdtype(dtype, jnp.floating) else 255.0


def is_float(images) -> bool:
    """Whether the images are floating point (a Python bool: decided at trace time)."""
    return bool(jnp.issubdtype(images.dtype, jnp.floating))


def compute_dtype(images):
    """The dtype the kernels compute in: the images' own for floats, float32 for uint8."""
    return images.dtype if is_float(images) else jnp.float32


def grid_dtype(images):
    """The dtype of the geometric ops' sampling grid: float32, or float64 for float64 images
    (see :func:`torch_impl.kernels.grid_dtype`: half-precision images use a float32 grid)."""
    return jnp.float64 if images.dtype == jnp.float64 else jnp.float32


def finish(out, dtype):
    """Clamp to the dtype's range and cast back (truncation for uint8)."""
    return jnp.clip(out, 0, max_value(dtype)).astype(dtype)


def _host_map(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` (a :mod:`math` function) on each distinct value of a float64 array."""
    uniq, inv = np.unique(x, return_inverse=True)
    return np.array([fn(float(u)) for u in uniq], dtype=np.float64)[inv.reshape(-1)]


def inverse_affine_host(angle, shear_x_deg, shear_y_deg, tx, ty, cx: float, cy: float) -> np.ndarray:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) on the host, float64 → ``[N, 6]`` float32.

    Trigonometry goes through Python's :mod:`math` (what torchvision calls), once per distinct value.
    """

    f = _host_map
    rot = angle * _DEG_TO_RAD
    sx = shear_x_deg * _DEG_TO_RAD
    sy = shear_y_deg * _DEG_TO_RAD
    cos_sy = f(math.cos, sy)
    tan_sx = f(math.tan, sx)
    rot_minus_sy = rot - sy
    cx_plus_tx = cx + tx
    cy_plus_ty = cy + ty
    a = f(math.cos, rot_minus_sy) / cos_sy
    b = -(a * tan_sx + f(math.sin, rot))
    c = f(math.sin, rot_minus_sy) / cos_sy
    d = f(math.cos, rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = 0.0 + ((cx - m0 * cx_plus_tx) - m1 * cy_plus_ty)
    m5 = 0.0 + ((cy - m3 * cx_plus_tx) - m4 * cy_plus_ty)
    return np.stack([m0, m1, m2, m3, m4, m5], axis=1).astype(np.float32)


def shear_matrix(magnitude, h: int, w: int, axis: int):
    """Float32 inverse matrices ``[N, 6]`` of AutoAugment's ShearX (``axis=0``) / ShearY (``axis=1``)."""
    if isinstance(magnitude, np.ndarray):
        deg = _host_map(math.atan, magnitude) * _RAD_TO_DEG  # math.degrees(math.atan(s))
        z = np.zeros_like(deg)
        sx, sy = (deg, z) if axis == 0 else (z, deg)
        return inverse_affine_host(z, sx, sy, z, z, -w * 0.5, -h * 0.5)
    # float32: tan(atan(s)) == s after rounding; the offset is s·size/2 rounded once.
    s = magnitude.astype(jnp.float32)
    one, zero = jnp.ones_like(s), jnp.zeros_like(s)
    if axis == 0:
        return jnp.stack([one, s, s * (h * 0.5), zero, one, zero], axis=1)
    return jnp.stack([one, zero, zero, s, one, s * (w * 0.5)], axis=1)


def translate_matrix(pixels, axis: int):
    """Float32 inverse matrices ``[N, 6]`` of a translation by ``int(pixels)`` along ``axis`` (exact)."""
    xp = np if isinstance(pixels, np.ndarray) else jnp
    t = xp.trunc(pixels).astype(xp.float32)
    one, zero = xp.ones_like(t), xp.zeros_like(t)
    if axis == 0:
        return xp.stack([one, zero, -t, zero, one, zero], axis=1)
    return xp.stack([one, zero, zero, zero, one, -t], axis=1)


def rotate_matrix(angle):
    """Float32 inverse matrices ``[N, 6]`` of a counter-clockwise rotation by ``angle`` degrees about the centre."""
    if isinstance(angle, np.ndarray):
        z = np.zeros_like(angle)
        return inverse_affine_host(-np.remainder(angle, 360.0), z, z, z, z, 0.0, 0.0)
    # rot = -angle: theta = [cos(angle), -sin(angle), 0, sin(angle), cos(angle), 0]
    cos, sin = exact.cos_sin_degrees(angle)
    zero = jnp.zeros_like(cos)
    return jnp.stack([cos, -sin, zero, sin, cos, zero], axis=1)


@functools.partial(jax.jit, static_argnames=("fill",))
def affine_nearest(images, theta, *, fill):
    """Warp ``[N, H, W, C]`` images by float32 inverse matrices ``theta`` ``[N, 6]``, nearest, ``fill`` outside.

    Same float32 grid as torch_impl (torchvision's ``_affine_grid`` through ``bmm``:
    ``g = (x·a + y·b) + c`` with both products rounded), then ``grid_sample``'s nearest rule:
    source index ``round_half_even((g + 1)·size/2 - 0.5)``, outside → ``fill``. ``theta`` goes
    through :func:`jax_impl.exact.run_time`, so a matrix that is a constant (a Python-number
    magnitude inside a user's ``jit``) is computed with exactly as in eager calls.
    """
    theta = exact.run_time(theta, images)
    return warp_nearest(images, grid_terms(theta, images.shape[1], images.shape[2], grid_dtype(images)), fill=fill)


def grid_terms(theta, h: int, w: int, dtype):
    """The separable terms of :func:`affine_nearest`'s grid for each image: per output coordinate
    ``col`` (x, y), ``x·a`` ``[N, 1, W]``, ``y·b`` ``[N, H, 1]`` (each product rounded once) and ``c``
    ``[N, 1, 1]``, so that ``g = (x·a + y·b) + c``."""
    theta = theta.astype(dtype)
    n = theta.shape[0]
    xs = jnp.arange(w, dtype=dtype) - (w - 1) * 0.5
    ys = jnp.arange(h, dtype=dtype) - (h - 1) * 0.5
    scale = jnp.asarray([0.5 * w] * 3 + [0.5 * h] * 3, dtype=dtype)
    r = theta / exact.divisor(scale, theta)
    terms = []
    for col in range(2):
        # 2·xs and 2·ys are integers below 2^11 for sides up to 2048: exact split products.
        px = exact.product(2 * xs[None, None, :], r[:, 3 * col, None, None], 11) * 0.5
        py = exact.product(2 * ys[None, :, None], r[:, 3 * col + 1, None, None], 11) * 0.5
        terms += [px, py, r[:, 3 * col + 2].reshape(n, 1, 1)]
    return tuple(terms)


@functools.partial(jax.jit, static_argnames=("fill",))
def warp_nearest(images, terms, *, fill):
    """:func:`affine_nearest` from :func:`grid_terms` (which a caller can compute once, outside
    the per-pixel code: XLA would otherwise recompute the split products for every pixel). The
    source index of each pixel is computed once per pixel (:func:`_per_pixel`), not per channel."""
    n, h, w, c = images.shape
    dtype = compute_dtype(images)

    def plan():
        def coord(col: int, size: int):
            px, py, c0 = terms[3 * col : 3 * col + 3]
            g = (px + py) + c0
            i = jnp.round((g + 1) * (size * 0.5) - 0.5)
            return i, (i >= 0) & (i <= size - 1)

        ix, okx = coord(0, w)
        iy, oky = coord(1, h)
        valid = okx & oky
        return jnp.where(valid, iy * w + ix, 0).astype(jnp.int32).reshape(n, h * w), valid

    idx, valid = _per_pixel(plan, terms)
    out = jax.vmap(lambda im, i: im[i])(images.reshape(n, h * w, c), idx).reshape(n, h, w, c)
    fill_dtype = images.dtype if is_float(images) else dtype
    fill_img = jnp.asarray(fill if fill is not None else (0.0,) * c, dtype=fill_dtype)
    if not is_float(images):
        fill_img = jnp.round(fill_img)  # torchvision rounds the float32 fill (half to even) with the pixels
    return jnp.where(valid[..., None], out, fill_img.astype(images.dtype))


def _per_pixel(plan, terms):
    """``plan()`` (a warp's per-pixel arrays) computed once, in a conditional that is always taken
    (``v == v | v != v`` holds for every float, NaN included): XLA does not fuse across it, so
    the per-value code reads the results instead of recomputing them for every channel (it fuses
    cheap per-pixel producers into their per-value consumers)."""
    v = terms[2].reshape(-1)[:1]
    always = jnp.any((v == v) | (v != v)) | (v.size == 0)
    return jax.lax.cond(always, plan, lambda: jax.tree.map(jnp.zeros_like, jax.eval_shape(plan)))


def affine(images, theta, *, fill, interpolation: str = "nearest"):
    """:func:`affine_nearest` or :func:`affine_bilinear` by ``interpolation`` (a checked name)."""
    if interpolation == "bilinear":
        return affine_bilinear(images, theta, fill=fill)
    return affine_nearest(images, theta, fill=fill)


def warp(images, terms, *, fill, interpolation: str = "nearest"):
    """:func:`warp_nearest` or :func:`warp_bilinear` by ``interpolation``."""
    if interpolation == "bilinear":
        return warp_bilinear(images, terms, fill=fill)
    return warp_nearest(images, terms, fill=fill)


@functools.partial(jax.jit, static_argnames=("fill",))
def affine_bilinear(images, theta, *, fill):
    """Warp ``[N, H, W, C]`` images by float32 inverse matrices ``theta`` ``[N, 6]``, bilinear, ``fill`` outside.

    The grid of :func:`affine_nearest`, then ``grid_sample(bilinear, zeros, align_corners=False)``
    as ATen's vectorised CPU kernel computes it on x86-64 (AVX2/AVX-512, where the compiler fuses
    its multiply-adds): ``x = fma(g + 1, size/2, -0.5)``, ``x0 = floor(x)``, ``w = x - x0``,
    ``e = 1 - w`` (likewise ``n``, ``s`` for y), corner weights ``nw = s·e``, ``ne = s·w``,
    ``sw = n·e``, ``se = n·w``, and ``fma(v_se, se, fma(v_sw, sw, fma(v_ne, ne, v_nw·nw)))`` with
    corners outside the image read as 0. ``fill`` (None: torchvision's default, nothing blended)
    samples a ones channel the same way and gives ``((v - fill)·mask) + fill``; uint8 images are
    rounded half to even and cast back. Every fused multiply-add is computed error-free in float32
    (:func:`jax_impl.exact.fma`; for uint8 values a cheaper three-term Sum2 of exact partial
    products), so the result is torch's bytes unless an exact sum lies within ~2^-40 relative of
    a float32 rounding midpoint (float32 images: 8 of 513,360 values one ulp off in a probe;
    uint8: none seen); float64 images: plain float64 arithmetic, within its rounding.
    """
    theta = exact.run_time(theta, images)
    return warp_bilinear(images, grid_terms(theta, images.shape[1], images.shape[2], grid_dtype(images)), fill=fill)


@functools.partial(jax.jit, static_argnames=("fill",))
def warp_bilinear(images, terms, *, fill):
    """:func:`affine_bilinear` from :func:`grid_terms` (see :func:`warp_nearest`).

    uint8 images read their four corners with one gather per output value: each position of the
    zero-padded image holds its 2×2 neighbourhood as the four bytes of a uint32
    (:func:`make_quads`), so a corner outside the image reads the padding's 0, as ``grid_sample``'s
    zeros padding does (4× fewer gathers, which were most of the warp's time on CPU); the
    per-pixel plan (source positions, fractions, the quads) is computed once per pixel, not per
    channel. Same operations and roundings as the four-gather form, so the same bytes.
    """
    n, h, w, c = images.shape
    dtype = grid_dtype(images)
    exact32 = dtype == jnp.float32
    fma = exact.fma if exact32 else (lambda a, b, c0: a * b + c0)

    def coord(col: int, size: int):
        px, py, c0 = terms[3 * col : 3 * col + 3]
        g = (px + py) + c0
        if exact32:  # size/2 has few significant bits: exact.fma's bits, half its work
            x = exact.fma_by_constant(g + 1, size * 0.5, jnp.asarray(-0.5, dtype))
        else:
            x = fma(g + 1, jnp.asarray(size * 0.5, dtype), jnp.asarray(-0.5, dtype))
        x0 = jnp.floor(x)
        frac = x - x0
        return x0.astype(jnp.int32), frac, 1 - frac

    def corners(ix, iy, ex, wx, sy, ny):
        """The four corners' ``(dy, dx, weight)``, whether each is inside the image, and their
        weights ``[N, H, W, 1]``."""
        offsets = ((0, 0, sy * ex), (0, 1, sy * wx), (1, 0, ny * ex), (1, 1, ny * wx))
        oks = [(ix + dx >= 0) & (ix + dx < w) & (iy + dy >= 0) & (iy + dy < h) for dy, dx, _ in offsets]
        return offsets, oks, [weight[..., None] for _, _, weight in offsets]

    zero = jnp.zeros((), dtype)
    if exact32 and not is_float(images):
        # uint8 values (and the mask's 0/1) have 8 bits: with each weight split into 16 + 8
        # significant bits both partial products are exact, so the fused multiply-add is the
        # error-free sum of three terms (Sum2), half the work of the general exact.fma.
        def plan():
            ix, wx, _ = coord(0, w)
            iy, ny, _ = coord(1, h)
            ix, wx, iy, ny = (jnp.broadcast_to(t, (n, h, w)) for t in (ix, wx, iy, ny))
            inside = (iy >= -1) & (iy <= h - 1) & (ix >= -1) & (ix <= w - 1)  # a corner in the image
            idx = jnp.where(inside, (iy + 2) * (w + 1) + (ix + 1), 0).reshape(n, h * w)  # row 0: zeros
            return ix, iy, wx, ny, idx, make_quads(images)

        # Inside the policies' loop XLA otherwise rebuilt the quads for every value (2-3x slower).
        ix, iy, wx, ny, idx, quads = _per_pixel(plan, terms)
        ex, sy = 1 - wx, 1 - ny
        offsets, oks, weights = corners(ix, iy, ex, wx, sy, ny)
        parts = [exact.split(weight, 16) for weight in weights]

        def fma_at(k, v, acc):
            hi, lo = parts[k]
            if acc is None:  # 0 + v·w: Sum2's s2 + e2 is its rounded sum s2, the product rounded once
                return v * hi + v * lo
            s, e = exact.two_sum(acc, v * hi)
            s2, e2 = exact.two_sum(s, v * lo)
            return s2 + (e + e2)

        quads = quads.reshape(n, (h + 2) * (w + 1), c)
        q = jax.vmap(lambda im, i: im.at[i].get(mode="promise_in_bounds"))(quads, idx).reshape(n, h, w, c)
        values = [((q >> (8 * k)) & 255).astype(dtype) for k in range(4)]  # nw, ne, sw, se
    else:
        ix, wx, ex = coord(0, w)  # [N, 1 or H, W]
        iy, ny, sy = coord(1, h)
        ix, wx, ex = (jnp.broadcast_to(t, (n, h, w)) for t in (ix, wx, ex))
        iy, ny, sy = (jnp.broadcast_to(t, (n, h, w)) for t in (iy, ny, sy))
        offsets, oks, weights = corners(ix, iy, ex, wx, sy, ny)

        def fma_at(k, v, acc):
            return fma(v, weights[k], zero if acc is None else acc)

        flat = images.reshape(n, h * w, c)
        values = []
        for (dy, dx, _), ok in zip(offsets, oks):
            idx = jnp.where(ok, (iy + dy) * w + (ix + dx), 0).reshape(n, h * w)
            v = jax.vmap(lambda im, i: im[i])(flat, idx).reshape(n, h, w, c).astype(dtype)
            values.append(jnp.where(ok[..., None], v, 0))

    def interpolate(vals):
        acc = fma_at(0, vals[0], None)  # the product, rounded once
        for k in range(1, 4):
            acc = fma_at(k, vals[k], acc)
        return acc

    out = interpolate(values)
    if fill is not None:
        mask = interpolate([ok[..., None].astype(dtype) for ok in oks])
        fill_img = jnp.asarray(fill, images.dtype if is_float(images) else dtype).astype(dtype)
        out = fma(out - fill_img, mask, zero) + fill_img  # torchvision's sub_, mul_, add_: three roundings
    return out.astype(images.dtype) if is_float(images) else jnp.round(out).astype(images.dtype)


def make_quads(u8):
    """For uint8 images ``u8`` ``[N, H, W, C]`` (NHWC; unchecked, as the other warp internals:
    :func:`warp_bilinear` passes only uint8 batches), ``[N, H + 2, W + 1, C]`` uint32: at ``(y, x)`` the bytes of the zero-padded image at
    ``(y - 2, x - 1)``, ``(y - 2, x)``, ``(y - 1, x - 1)``, ``(y - 1, x)`` (low to high: the 2×2
    corners nw, ne, sw, se of source position ``(y - 2, x - 1)``); row 0 is all zeros (two rows
    of padding on top), the quad of a position whose four corners are all outside. Built by a
    bitcast of the four shifted views (a shift-and-or form is fused into every gather that reads
    it). Byte order: little-endian, as on every platform jax runs on."""
    p = jnp.pad(u8, ((0, 0), (2, 1), (1, 1), (0, 0)))
    stacked = jnp.stack([p[:, :-1, :-1], p[:, :-1, 1:], p[:, 1:, :-1], p[:, 1:, 1:]], axis=-1)
    return jax.lax.bitcast_convert_type(stacked, jnp.uint32)


def grayscale(x, is_float: bool):
    """torchvision's luma ``r·0.2989`` then ``+ g·0.587``, ``+ b·0.114`` fused; floored for uint8. ``[N, H, W, 1]``."""
    x = x.astype(compute_dtype(x)) if not is_float else x
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    if is_float:
        acc = exact.fma(g, jnp.asarray(0.587, x.dtype), r * jnp.asarray(0.2989, x.dtype))
        return exact.fma(b, jnp.asarray(0.114, x.dtype), acc)
    # uint8: exact.fma8 is exact for these two weights on all 2^24 RGB triples (tested exhaustively).
    acc = exact.fma8(g, jnp.float32(0.587), exact.product(r, 0.2989))
    return jnp.floor(exact.fma8(b, jnp.float32(0.114), acc))


def blend(x, other, ratio, alpha, is_float: bool, bins: bool = False):
    """``round(x·ratio)`` then ``+ other·alpha`` fused, per pixel (torchvision's ``blend``).

    ``bins``: ``other`` is uint8-valued and ``alpha`` one of AutoAugment's magnitude bins, where
    the cheaper :func:`jax_impl.exact.fma8` is exact (checked on every value and bin)."""
    fma = exact.fma8 if bins and not is_float else exact.fma
    return fma(jnp.broadcast_to(other, x.shape), alpha, x * ratio if is_float else exact.product(x, ratio))


@jax.jit
def brightness(images, ratio):
    """``x·ratio``, clamped and cast back (``ratio = 1 + m``, ``[N, 1, 1, 1]``)."""
    x = images.astype(compute_dtype(images))
    return finish(x * ratio, images.dtype)


@functools.partial(jax.jit, static_argnames=("bins",))
def color(images, ratio, alpha, *, bins: bool = False):
    """``bins``: ``alpha`` is one of AutoAugment's magnitude bins (see :func:`blend`)."""
    x = images.astype(compute_dtype(images))
    return finish(blend(x, grayscale(x, is_float(images)), ratio, alpha, is_float(images), bins), images.dtype)


def contrast_mean(images):
    """Each image's mean grayscale ``[N, 1, 1, 1]`` (the compute dtype)."""
    x = images.astype(compute_dtype(images))
    gray = grayscale(x, is_float(images)) if images.shape[-1] == 3 else x
    n, h, w = images.shape[:3]
    # The sum as a product with ones: XLA's CPU reduction of this fused input is slower. For
    # uint8 the values are integers and every partial sum is exact (below 2^24 while
    # H·W·255 < 2^24, i.e. up to 256×256), so the order does not matter and this equals torch.
    ones = jnp.ones((h * w,), x.dtype)
    total = jnp.dot(gray.reshape(n, h * w), ones, precision=jax.lax.Precision.HIGHEST).reshape(n, 1, 1, 1)
    return total / exact.divisor(jnp.asarray(h * w, x.dtype), total)


@jax.jit
def contrast(images, ratio, alpha, mean=None):
    """Blend with the mean grayscale: ``x·ratio + mean·alpha``. ``mean``: :func:`contrast_mean` of
    the images (computed here when None; given when ``images`` are the 256 values of a LUT)."""
    x = images.astype(compute_dtype(images))
    mean = contrast_mean(images) if mean is None else mean
    return finish(blend(x, mean, ratio, alpha, is_float(images)), images.dtype)


@functools.partial(jax.jit, static_argnames=("bins",))
def sharpness(images, alpha, *, bins: bool = False):
    """``bins``: ``alpha`` is one of AutoAugment's magnitude bins, where :func:`jax_impl.exact.fma8` is exact
    for uint8 (``|blurred - x| <= 255``; checked on every value and bin)."""
    n, h, w, c = images.shape
    dtype = compute_dtype(images)
    x = images.astype(dtype)
    if not is_float(images):
        # uint8: the exact integer sum S = 8 neighbours + 5·centre, computed at full size (zero
        # padding; XLA's CPU code for the interior slices is slower), and round(S/13): S/13
        # is never within 0.038 of a half-integer and S·fl(1/13) is within 3e-4 of it, so this
        # is the same integer as torch's rounded conv2d (and as the slice formula below; checked
        # on every S). The difference is 0 on the 1-pixel border, where x + 0·alpha = x exactly.
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        rows = xp[:, 0:h] + xp[:, 1 : h + 1] + xp[:, 2 : h + 2]
        window = rows[:, :, 0:w] + rows[:, :, 1 : w + 1] + rows[:, :, 2 : w + 2]
        blurred = jnp.round((window + 4 * x) * jnp.asarray(1.0 / 13.0, dtype))
        ys, xs = jnp.arange(h), jnp.arange(w)
        inside = ((ys > 0) & (ys < h - 1))[:, None] & ((xs > 0) & (xs < w - 1))[None, :]
        delta = jnp.where(inside[None, :, :, None], blurred - x, 0.0)
        return finish((exact.fma8 if bins else exact.fma)(delta, alpha, x), images.dtype)
    a, b = jnp.asarray(1.0 / 13.0, dtype), jnp.asarray(5.0 / 13.0, dtype)
    rows = x[:, 0 : h - 2] + x[:, 1 : h - 1] + x[:, 2:h]  # separable 3×3 sum
    window = rows[:, :, 0 : w - 2] + rows[:, :, 1 : w - 1] + rows[:, :, 2:w]
    inner = x[:, 1:-1, 1:-1]
    blurred = (window - inner) * a + inner * b
    # The difference is 0 on the 1-pixel border, where x + 0·alpha = x exactly.
    delta = jnp.pad(blurred - inner, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return finish(exact.fma(delta, alpha, x), images.dtype)


@jax.jit
def posterize(images, bits):
    """Keep the ``bits`` (``[N]`` int32 in [0, 8]) most significant bits."""
    n = images.shape[0]
    bits = bits.reshape(n, 1, 1, 1)
    if is_float(images):
        levels = jnp.left_shift(1, bits).astype(images.dtype)
        return jnp.minimum(jnp.maximum(jnp.floor(images * levels), 0), levels - 1) * (1.0 / levels)
    mask = (jnp.left_shift(255, 8 - bits) & 255).astype(jnp.uint8)
    return images & mask


@jax.jit
def solarize(images, threshold):
    """Invert the values at or above ``threshold`` (``[N, 1, 1, 1]``, in the compute dtype, already × max)."""
    x = images.astype(threshold.dtype)
    return jnp.where(x >= threshold, invert(images), images)


def channel_min_max(images):
    """Per-image, per-channel min and max ``[N, 1, 1, C]`` of an NHWC batch (exact in any order).

    Reduced over rows of 16 pixels' worth of channels first when ``H·W`` allows: XLA's CPU code
    vectorises that inner axis (faster than reducing the strided ``H, W`` axes directly).
    """
    n, h, w, c = images.shape
    x = images.reshape(n, h * w, c)
    if (h * w) % 16 == 0 and h * w > 16:
        x = images.reshape(n, h * w // 16, 16 * c)
        lo, hi = jnp.min(x, axis=1).reshape(n, 16, c), jnp.max(x, axis=1).reshape(n, 16, c)
    else:
        lo, hi = x, x
    return jnp.min(lo, axis=1).reshape(n, 1, 1, c), jnp.max(hi, axis=1).reshape(n, 1, 1, c)


@jax.jit
def autocontrast(images, lo_hi=None):
    """Stretch each channel to the full range. ``lo_hi``: :func:`channel_min_max` of the images
    (computed here when None; given when ``images`` are the 256 values of a LUT)."""
    bound = max_value(images.dtype)
    x = images.astype(compute_dtype(images))
    if lo_hi is None:
        lo = jnp.min(x, axis=(1, 2), keepdims=True)
        hi = jnp.max(x, axis=(1, 2), keepdims=True)
    else:
        lo, hi = (v.astype(x.dtype) for v in lo_hi)
    flat = hi == lo
    span = hi - lo
    scaled = span * jnp.asarray(1.0 / bound, x.dtype) if is_float(images) else exact.product(span, 1.0 / bound)
    inv_scale = jnp.where(flat, 1.0, scaled).astype(x.dtype)
    lo = jnp.where(flat, 0.0, lo).astype(x.dtype)
    return jnp.clip((x - lo) / exact.divisor(inv_scale, x), 0, bound).astype(images.dtype)


def equalize_lut(hist):
    """PIL's equalisation LUT ``[..., 256]`` (uint8) from ``[..., 256]`` int32 histograms, the
    identity for channels it leaves unchanged; see :func:`torch_impl.kernels.equalize_lut`."""
    cum = jax.lax.associative_scan(jnp.add, hist, axis=-1)  # exact (integers); faster than cumsum on CPU
    total = cum[..., -1:]
    top = jnp.take_along_axis(hist, jnp.argmax(cum, axis=-1)[..., None], axis=-1)
    step = (total - top) // 255
    valid = step != 0
    lut = jnp.clip((cum[..., :-1] + step // 2) // jnp.maximum(step, 1), 0, 255)
    lut = jnp.concatenate([jnp.zeros_like(lut[..., :1]), lut], axis=-1).astype(jnp.uint8)
    return jnp.where(valid, lut, jnp.arange(256, dtype=jnp.uint8))


def histograms(u8):
    """Per-image, per-channel 256-bin histograms ``[N, C, 256]`` (int32) of an NHWC uint8 batch."""
    n, h, w, c = u8.shape
    bins = (jnp.arange(n, dtype=jnp.int32)[:, None, None, None] * c + jnp.arange(c, dtype=jnp.int32)) * 256
    counts = jnp.bincount((bins + u8.astype(jnp.int32)).reshape(-1), length=n * c * 256)
    return counts.astype(jnp.int32).reshape(n, c, 256)


def materialize_lut(lut):
    """``lut`` (uint8 ``[..., 256]``) unchanged, computed once before any per-pixel lookup.

    XLA's CPU fusion would otherwise inline the LUT's arithmetic (cumulative sums, integer
    divisions) into the per-pixel gather and redo it for every pixel (``optimization_barrier`` is
    expanded away before fusion there). A product with the identity matrix is never fused into its
    consumer, and is exact: each output is one integer below 256 times 1 plus zeros.
    """
    eye = jnp.eye(lut.shape[-1], dtype=jnp.float32)
    return jnp.matmul(lut.astype(jnp.float32), eye, precision=jax.lax.Precision.HIGHEST).astype(jnp.uint8)


def lookup(u8, lut):
    """``out[n, h, w, c] = lut[n, u8[n, h, w, c], c]`` for a value-major ``lut`` ``[N, 256, C]`` (uint8)."""
    n, h, w, c = u8.shape
    flat = u8.reshape(n, h * w, c).astype(jnp.int32)
    return jnp.take_along_axis(lut, flat, axis=1).reshape(n, h, w, c)


def apply_lut(u8, lut):
    """``out[n, h, w, c] = lut[n, c, u8[n, h, w, c]]`` for ``lut`` ``[N, C, 256]``, the LUT
    materialised first (it is computed in the same fusion scope)."""
    return lookup(u8, jnp.swapaxes(materialize_lut(lut), 1, 2))


@jax.jit
def equalize(images):
    """Histogram-equalise each channel with PIL's LUT. Floats are quantised to uint8 (× 255.999,
    truncated) and scaled back (× 1/255), both computed in at least float32: float16/bfloat16 are
    widened first (in their own precision 255.999 rounds to 256) and the result rounded once."""
    if not is_float(images):
        return apply_lut(images, equalize_lut(histograms(images)))
    wide = jnp.promote_types(images.dtype, jnp.float32)
    u8 = (images.astype(wide) * jnp.asarray(255.0 + 1.0 - 1e-3, wide)).astype(jnp.uint8)
    out = apply_lut(u8, equalize_lut(histograms(u8)))
    return (out.astype(wide) * jnp.asarray(1.0 / 255.0, wide)).astype(images.dtype)


def invert(images):
    return 1.0 - images if is_float(images) else jnp.bitwise_not(images)
