"""The unchecked batched kernels behind :mod:`torch_impl.ops` and :mod:`torch_impl.policies`.

Every kernel takes an ``[N, C, H, W]`` batch (uint8, or floating point in ``[0, 1]``) and per-image
arguments already converted to ``[N]`` tensors (float64 magnitudes, the Python floats torchvision
computes with), and returns a new batch of the same shape and dtype. Nothing is checked here: the
public ops check their arguments and call these; the AutoAugment-family policies call them
directly on arguments they built themselves. The pixel-wise kernels also accept the 256 uint8
values laid out as images (with the statistics of the real images passed in), which is how the
policies build per-image lookup tables (LUTs) with the same arithmetic as on the pixels.

Each kernel reproduces the :mod:`torchvision.transforms.v2.functional` kernel's arithmetic step for
step (the same float32 operations, in the same order, with the same fused multiply-adds). Under
``torch.compile`` the uint8 paths emulate eager ATen's roundings with :mod:`torch_impl.exact`.

The twin of :mod:`jax_impl.kernels`: the same kernel names. Only here: ``inverse_affine``,
``ratio_alpha``, ``to_uint8``/``from_uint8`` (torch computes matrices and factors in float64
tensors). Only in jax_impl: ``is_float``, ``inverse_affine_host``, ``grid_terms``/``warp_nearest``
(the grid split out of the per-pixel code), ``materialize_lut``, ``lookup``, ``apply_lut``.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.functional`` (``_color.py``, ``_geometry.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from torch_impl import exact
from torch_impl._checks import compiling

_DEG_TO_RAD = math.pi / 180.0  # the constant CPython's math.radians multiplies by
_RAD_TO_DEG = 180.0 / math.pi  # ... and math.degrees

def max_value(dtype: torch.dtype) -> float:
    """The largest pixel value of ``dtype``: 255 for uint8, 1 for floats."""
    return 1.0 if dtype.is_floating_point else 255.0


def compute_dtype(images: torch.Tensor) -> torch.dtype:
    """The dtype the kernels compute in: the images' own for floats, float32 for uint8."""
    return images.dtype if images.is_floating_point() else torch.float32


def grid_dtype(images: torch.Tensor) -> torch.dtype:
    """The dtype of the geometric ops' sampling grid: float32, or float64 for float64 images.

    float16/bfloat16 grids cannot place a sample within a pixel (11 or 8 significant bits for
    coordinates up to the image size), so half-precision images are warped on a float32 grid;
    nearest sampling copies pixels, so the result is the float32 result in the image's dtype.
    """
    return torch.float64 if images.dtype == torch.float64 else torch.float32


def finish(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Clamp to the dtype's range and cast back (truncation for uint8, as torchvision's ``.to``).
    ``out``: a fresh result of the caller's (for uint8 images, eagerly, clamped in place)."""
    if dtype.is_floating_point or compiling():
        out = out.clamp(0, max_value(dtype))
        return out if dtype.is_floating_point else out.to(dtype)
    return cast_uint8(out.clamp_(0, 255.0))


def cast_uint8(values: torch.Tensor) -> torch.Tensor:
    """``values.to(torch.uint8)`` for float values in ``[0, 256)``: eagerly through int16, the same
    bytes (both truncate toward zero), because ATen's direct float → uint8 cast is about 3× slower
    on CPU than float → int16 → uint8."""
    return values.to(torch.uint8) if compiling() else values.to(torch.int16).to(torch.uint8)


def round_uint8(values: torch.Tensor) -> torch.Tensor:
    """``values.round_().to(torch.uint8)`` (half to even; written over ``values``, a fresh float
    result of the caller's) for float32 values in ``(-2^22, 2^22)``. Eagerly: adding ``1.5·2^23``
    rounds to a whole number in float32 (the spacing there is 1, the rounding IEEE's default, half
    to even), whose int32 bits end in its byte, and int32 → uint8 wraps as the int16 path does: the
    same bytes in two passes instead of three (the cast from float the slowest)."""
    if compiling() or values.dtype != torch.float32:
        return values.round_().to(torch.uint8)
    return values.add_(12582912.0).view(torch.int32).to(torch.uint8)


def inverse_affine(angle, shear_x_deg, shear_y_deg, tx, ty, cx: float, cy: float) -> torch.Tensor:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) for ``[N]`` float64 tensors → ``[N, 6]``.

    ``cx, cy`` is the centre relative to the image centre. Same operations in the same order as the
    reference, in float64, so rounding the result to float32 gives torchvision's ``theta``.
    """
    rot = angle * _DEG_TO_RAD
    sx = shear_x_deg * _DEG_TO_RAD
    sy = shear_y_deg * _DEG_TO_RAD
    cos_sy = torch.cos(sy)
    tan_sx = torch.tan(sx)
    rot_minus_sy = rot - sy
    cx_plus_tx = cx + tx
    cy_plus_ty = cy + ty
    a = torch.cos(rot_minus_sy) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot_minus_sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = 0.0 + ((cx - m0 * cx_plus_tx) - m1 * cy_plus_ty)
    m5 = 0.0 + ((cy - m3 * cx_plus_tx) - m4 * cy_plus_ty)
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1)


def affine_grid(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_affine_grid`` ``[N, H, W, 2]`` for inverse matrices ``[N, 6]`` (float64).

    Base grid ``[x, y, 1]`` of pixel centres relative to the image centre, times
    ``theta^T / [w/2, h/2]`` with ``bmm``, for all images at once; eagerly with elementwise ops
    that round like ATen's ``bmm`` (each product, then each sum: the same bytes, faster than the
    batched ``bmm``). dtype: :func:`grid_dtype`.
    """
    n, c, h, w = images.shape
    dtype = grid_dtype(images)
    device = images.device
    theta = matrix.to(dtype).view(n, 2, 3)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=device, dtype=dtype)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=device, dtype=dtype)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=dtype, device=device)
    if not compiling():
        # bmm's arithmetic without bmm (which is slow for [N, H·W, 3] @ [N, 3, 2] on CPU): eager
        # kernels round each product and sum, (x·a + y·b) + c, exactly as ATen's bmm does here
        # (same bytes, float32 and float64, checked on AutoAugment's bins and random matrices).
        grid = torch.empty(n, h, w, 2, dtype=dtype, device=device)
        for j in range(2):
            r = rescaled[:, :, j].reshape(n, 3, 1, 1)
            torch.add(xs.view(1, 1, w) * r[:, 0] + ys.view(1, h, 1) * r[:, 1], r[:, 2], out=grid[..., j])
        return grid
    if dtype == torch.float32:
        # bmm's arithmetic, (x·a + y·b) + c with both products rounded, made FMA-proof: 2x and
        # 2y are integers below 2^11 (sides up to 2048), so the split partial products are exact.
        x2 = 2 * xs.view(1, 1, w, 1).expand(1, h, w, 1)  # [1, H, W, 1]
        y2 = 2 * ys.view(1, h, 1, 1).expand(1, h, w, 1)
        r = rescaled.view(n, 1, 1, 3, 2)
        return (exact.product(x2, r[..., 0, :], 11) * 0.5 + exact.product(y2, r[..., 1, :], 11) * 0.5) + r[..., 2, :]
    base = torch.stack(torch.broadcast_tensors(xs.view(1, w), ys.view(h, 1), torch.ones(1, 1, dtype=dtype, device=device)), -1)
    return base.view(1, h * w, 3).expand(n, h * w, 3).bmm(rescaled).view(n, h, w, 2)


def affine(images: torch.Tensor, matrix: torch.Tensor, fill: list[float] | None, interpolation: str = "nearest",
           grid: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`affine_nearest` or :func:`affine_bilinear` by ``interpolation`` (a checked name);
    ``grid``: :func:`affine_grid` of the images and matrices when the caller has it (bilinear only)."""
    if interpolation == "bilinear":
        return affine_bilinear(images, matrix, fill, grid)
    return affine_nearest(images, matrix, fill)


def affine_nearest(images: torch.Tensor, matrix: torch.Tensor, fill: list[float] | None) -> torch.Tensor:
    """Warp each image by its inverse affine ``matrix`` ``[N, 6]`` (float64), nearest, ``fill`` outside.

    ``fill``: one value per channel (or one for all), None for zeros (from
    :func:`torch_impl.ops.fill_values`; all zeros and None give the same result here).

    The grid is :func:`affine_grid`; sampling is
    ``grid_sample(nearest, zeros, align_corners=False)`` and ``fill`` uses torchvision's mask channel.

    .. warning:: float16/bfloat16 images are warped on a float32 grid (:func:`grid_dtype`), so they
       get exactly the float32 result; torchvision computes the grid in the image's dtype, whose
       rounding moves many nearest-neighbour picks (on most rotations, on some shears).
    """
    n, c, h, w = images.shape
    if fill is not None and all(v == 0 for v in fill):
        fill = None  # the same pixels, without the mask channel
    dtype = grid_dtype(images)
    # fill: rounded to the image's dtype once (floats), or later to uint8
    fill_dtype = images.dtype if images.is_floating_point() else dtype
    device = images.device
    grid = affine_grid(images, matrix)
    x = images.to(dtype)
    if compiling() and dtype == torch.float32:
        # inductor decomposes grid_sample as g·(size/2) + (size/2 - 0.5), which rounds differently
        # from ATen's ((g + 1)·size/2) - 0.5 at the half-integer ties: pick the pixels ourselves.
        def index(coord, size):
            i = torch.round((coord + 1) * (size * 0.5) - 0.5)
            return i, (i >= 0) & (i <= size - 1)

        ix, okx = index(grid[..., 0], w)
        iy, oky = index(grid[..., 1], h)
        valid = (okx & oky).view(n, 1, h * w)
        flat = torch.where(valid, (iy * w + ix).view(n, 1, h * w), 0).to(torch.int64)
        out = images.reshape(n, c, h * w).gather(2, flat.expand(n, c, h * w))
        fill_img = torch.tensor(fill or [0.0], dtype=fill_dtype, device=device).view(1, -1, 1)
        if not images.is_floating_point():
            fill_img = fill_img.round().to(images.dtype)
        return torch.where(valid, out, fill_img.expand(n, c, 1)).view(n, c, h, w)
    if fill is None:
        out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    else:
        x = torch.cat([x, torch.ones(n, 1, h, w, dtype=dtype, device=device)], dim=1)
        sampled = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out, mask = sampled[:, :c], sampled[:, c:]
        fill_img = torch.tensor(fill, dtype=fill_dtype, device=device).to(dtype).view(1, -1, 1, 1)
        out = torch.where(mask < 0.5, fill_img.expand_as(out), out)
    if images.is_floating_point():
        return out.to(images.dtype)
    # no fill: every value is a pixel's or 0, already whole; else the fill, rounded half to even
    return cast_uint8(out) if fill is None else round_uint8(out)


def affine_bilinear(images: torch.Tensor, matrix: torch.Tensor, fill: list[float] | None,
                    grid: torch.Tensor | None = None) -> torch.Tensor:
    """Warp each image by its inverse affine ``matrix`` ``[N, 6]`` (float64), bilinear, ``fill`` outside.

    torchvision's ``_apply_grid_transform(mode="bilinear")`` for every image at once: the grid of
    :func:`affine_grid` (each image its own; ``grid`` if given),
    ``grid_sample(bilinear, zeros, align_corners=False)`` in the grid's dtype; with ``fill`` (not None; zeros count) a ones channel is sampled along and
    the result is ``(v - fill)·mask + fill`` (three roundings, as torchvision's ``sub_``, ``mul_``,
    ``add_``); uint8 images are rounded half to even and cast back. ``fill=None`` is torchvision's
    default: outside pixels contribute zeros and nothing is blended (not the same as ``fill=0``
    at the border, where torchvision then multiplies by the mask too).

    .. warning:: float16/bfloat16 images are warped in float32 (see :func:`affine_nearest`). Under
       ``torch.compile`` inductor decomposes ``grid_sample`` with other roundings: results are
       within float32 rounding of eager (uint8: a pixel whose value lands within that of a
       half-integer can differ by one level).
    """
    n, c, h, w = images.shape
    dtype = grid_dtype(images)
    device = images.device
    grid = affine_grid(images, matrix) if grid is None else grid
    x = images.to(dtype)
    if fill is not None:
        x = torch.cat([x, torch.ones(n, 1, h, w, dtype=dtype, device=device)], dim=1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if fill is not None:
        out, mask = out[:, :c], out[:, c:]
        fill_img = torch.tensor(fill, dtype=images.dtype if images.is_floating_point() else dtype, device=device)
        fill_img = fill_img.to(dtype).view(1, -1, 1, 1)
        out = out.sub(fill_img).mul_(mask).add_(fill_img)
    return out.to(images.dtype) if images.is_floating_point() else round_uint8(out)


def _zeros(n, device):
    return torch.zeros(n, dtype=torch.float64, device=device)


def shear_matrix(magnitude64: torch.Tensor, h: int, w: int, axis: int) -> torch.Tensor:
    """Inverse matrices ``[N, 6]`` (float64) of AutoAugment's ShearX (``axis=0``) / ShearY (``axis=1``):
    ``affine(shear=deg(atan(s)), center=[0, 0])``."""
    deg = torch.atan(magnitude64) * _RAD_TO_DEG
    z = _zeros(magnitude64.shape[0], magnitude64.device)
    sx, sy = (deg, z) if axis == 0 else (z, deg)
    return inverse_affine(z, sx, sy, z, z, -w * 0.5, -h * 0.5)


def translate_matrix(pixels64: torch.Tensor, axis: int) -> torch.Tensor:
    """Inverse matrices ``[N, 6]`` (float64) of a translation by ``int(pixels)`` along ``axis``."""
    t = torch.trunc(pixels64)
    z = _zeros(pixels64.shape[0], pixels64.device)
    tx, ty = (t, z) if axis == 0 else (z, t)
    return inverse_affine(z, z, z, tx, ty, 0.0, 0.0)


def rotate_matrix(angle64: torch.Tensor) -> torch.Tensor:
    """Inverse matrices ``[N, 6]`` (float64) of a counter-clockwise rotation by ``angle`` degrees about the centre."""
    z = _zeros(angle64.shape[0], angle64.device)
    return inverse_affine(-torch.remainder(angle64, 360.0), z, z, z, z, 0.0, 0.0)


def ratio_alpha(m64: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``ratio = 1 + m`` and ``1 - ratio`` from float64 ``[N]`` magnitudes (torchvision's Python floats),
    rounded to ``dtype`` and shaped ``[N, 1, 1, 1]``."""
    ratio64 = 1.0 + m64
    n = m64.shape[0]
    return ratio64.to(dtype).view(n, 1, 1, 1), (1.0 - ratio64).to(dtype).view(n, 1, 1, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[N, 1, H, W]`` as torchvision computes it (floored for uint8 images)."""
    r, g, b = images.unbind(dim=1)
    if compiling() and not images.is_floating_point():
        r, g, b = r.float(), g.float(), b.float()
        gray = exact.product(r, torch.tensor(0.2989, device=r.device))
        gray = exact.fma(b, torch.tensor(0.114, device=r.device), exact.fma(g, torch.tensor(0.587, device=r.device), gray))
        return gray.unsqueeze(1).floor()
    if not images.is_floating_point():
        # Widened first: ATen runs a mixed uint8/float32 operation in a scalar casting loop, ~30x
        # slower than the vectorised float32 one on a 224 px batch. The values and operations are
        # the same, and so are the bits on all 2^24 triples (tests/test_ops.py).
        r, g, b = r.to(torch.float32), g.to(torch.float32), b.to(torch.float32)
    gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)
    return gray if images.is_floating_point() else gray.floor_()


def _scaled(images: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """``images·ratio`` as a fresh tensor of ``ratio``'s dtype; uint8 is widened first (see
    :func:`grayscale`): one correctly rounded product either way."""
    return images.mul(ratio) if images.is_floating_point() else images.to(ratio.dtype).mul_(ratio)


def blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``images·ratio + other·alpha`` with the second product fused (torchvision's ``mul().add_(alpha=)``)."""
    if compiling() and not images.is_floating_point():
        x = images.float()
        return exact.fma(other.expand(x.shape), alpha, exact.product(x, ratio))
    return _scaled(images, ratio).addcmul_(other, alpha)  # in place on the fresh product: the same operations


def brightness(images: torch.Tensor, m64: torch.Tensor) -> torch.Tensor:
    """``x·(1 + m)``, clamped and cast back."""
    ratio, _ = ratio_alpha(m64, compute_dtype(images))
    return finish(_scaled(images, ratio), images.dtype)


def color(images: torch.Tensor, m64: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale by ``1 + m`` (1-channel images unchanged)."""
    if images.shape[1] == 1:
        return images.clone()
    ratio, alpha = ratio_alpha(m64, compute_dtype(images))
    return finish(blend(images, grayscale(images), ratio, alpha), images.dtype)


def contrast_mean(images: torch.Tensor) -> torch.Tensor:
    """Each image's mean grayscale ``[N, 1, 1, 1]`` (the compute dtype)."""
    gray = grayscale(images) if images.shape[1] == 3 else images.to(compute_dtype(images))
    return gray.mean(dim=(-3, -2, -1), keepdim=True)


def contrast(images: torch.Tensor, m64: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Blend with the mean grayscale by ``1 + m``. ``mean``: :func:`contrast_mean` of the images
    (computed here when None; given when ``images`` are the 256 values of a LUT)."""
    ratio, alpha = ratio_alpha(m64, compute_dtype(images))
    mean = contrast_mean(images) if mean is None else mean
    # A materialised (not broadcast) mean keeps every element on the fused multiply-add path.
    mean = mean.expand(images.shape).contiguous()
    return finish(blend(images, mean, ratio, alpha), images.dtype)


_SHARPNESS_KERNEL = ((1.0 / 13.0, 1.0 / 13.0, 1.0 / 13.0), (1.0 / 13.0, 5.0 / 13.0, 1.0 / 13.0), (1.0 / 13.0,) * 3)


def sharpness(images: torch.Tensor, m64: torch.Tensor) -> torch.Tensor:
    """Blend with the 3×3 smoothing inside a 1-pixel border by ``1 + m`` (differentiable in float images)."""
    n, c, h, w = images.shape
    if h <= 2 or w <= 2 or images.numel() == 0:
        return images.clone()
    dtype = compute_dtype(images)
    _, alpha = ratio_alpha(m64, dtype)
    x = images.to(dtype=dtype, copy=True)
    if images.is_floating_point():
        kernel = torch.tensor(_SHARPNESS_KERNEL, dtype=dtype, device=images.device).expand(c, 1, 3, 3)
        # (the unmodified images: ``x`` is written in place below, which autograd allows only
        # for tensors no backward formula saved)
        blurred = F.conv2d(images, kernel, groups=c)
    else:
        # uint8: the exact 3×3 integer sums S = 8 neighbours + 5·centre (separable, exact in any
        # order), then round(S·fl(1/13)). The rounded result equals torchvision's rounded conv2d:
        # S/13 is never within 0.038 of a half-integer, far more than either float32 evaluation's
        # error (< 1e-3) (tests/test_ops.py checks every S).
        # Eagerly the sums run in int16 (exact too, half the bytes of float32, twice the lanes).
        s = x if compiling() else images.to(torch.int16)
        rows = s[..., :-2, :] + s[..., 1:-1, :] + s[..., 2:, :]
        window = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
        blurred = window.add_(s[..., 1:-1, 1:-1], alpha=4).to(dtype).mul_(1.0 / 13.0).round_()
    inner = x[..., 1:-1, 1:-1]
    if compiling() and not images.is_floating_point():
        return finish(exact.fma(F.pad(blurred - inner, (1, 1, 1, 1)), alpha, x), images.dtype)
    if not images.is_floating_point():  # in place on our fresh tensors: the same operations, fewer megabytes to fault in
        inner.addcmul_(blurred.sub_(inner), alpha)
        return finish(x, images.dtype)
    x[..., 1:-1, 1:-1] = torch.addcmul(inner, blurred - inner, alpha)
    return finish(x, images.dtype)


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` (``[N]`` int64 in [0, 8]) most significant bits."""
    n = images.shape[0]
    if images.is_floating_point():
        levels = torch.bitwise_left_shift(torch.ones_like(bits), bits).to(images.dtype).view(n, 1, 1, 1)
        return images.mul(levels).floor_().clamp_(min=0).minimum(levels - 1).mul_(1.0 / levels)
    mask = (torch.bitwise_left_shift(torch.full_like(bits, 255), 8 - bits) & 255).to(torch.uint8).view(n, 1, 1, 1)
    return images & mask


def solarize(images: torch.Tensor, t64: torch.Tensor) -> torch.Tensor:
    """Invert the values at or above ``t·max`` (``t64`` ``[N]`` float64 fractions)."""
    t = (t64 * max_value(images.dtype)).to(compute_dtype(images)).view(images.shape[0], 1, 1, 1)
    return torch.where(images.to(t.dtype) >= t, invert(images), images)


def channel_min_max(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel min and max ``[N, C, 1, 1]`` (the compute dtype)."""
    x = images.to(compute_dtype(images))
    return x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)


def autocontrast(images: torch.Tensor, lo_hi: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Stretch each channel to the full range. ``lo_hi``: :func:`channel_min_max` of the images
    (computed here when None; given when ``images`` are the 256 values of a LUT)."""
    if images.numel() == 0:
        return images.clone()
    bound = max_value(images.dtype)
    x = images.to(compute_dtype(images))
    lo, hi = channel_min_max(images) if lo_hi is None else lo_hi
    flat = hi == lo
    inv_scale = torch.where(flat, torch.ones_like(hi), (hi - lo).mul(1.0 / bound))
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    out = (x - lo).div(inv_scale).clamp(0, bound)
    return out.to(images.dtype) if images.is_floating_point() else cast_uint8(out)


def invert(images: torch.Tensor) -> torch.Tensor:
    """``255 - x`` for uint8, ``1 - x`` for floats."""
    return 1.0 - images if images.is_floating_point() else images.bitwise_not()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``to_dtype(uint8, scale=True)``: floats × (255 + 1 - 1e-3), truncated.

    float16/bfloat16 are multiplied in float32: in their own precision 255.999 rounds to 256 and
    1.0 would become 256, which wraps to 0 (torchvision does that; see :func:`torch_impl.ops.equalize`).
    """
    if images.dtype == torch.uint8:
        return images
    if images.element_size() < 4:
        images = images.float()
    return images.mul(255.0 + 1.0 - 1e-3).to(torch.uint8)


def from_uint8(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 values back to ``dtype`` (× 1/255 for floats; float16/bfloat16: computed in float32 and
    rounded once, as ATen's CPU kernels compute half-precision products)."""
    return images if dtype == torch.uint8 else images.to(dtype).mul_(1.0 / 255.0)


def equalize_lut(hist: torch.Tensor) -> torch.Tensor:
    """PIL's equalisation LUT from ``[..., 256]`` int histograms → ``[..., 256]`` uint8.

    ``step = (#pixels - #pixels of the top used value) // 255``; ``lut[0] = 0``,
    ``lut[k] = min((cumhist[k-1] + step // 2) // step, 255)``; channels with ``step == 0`` are not
    equalised (their LUT is the identity).
    """
    cum = hist.cumsum(dim=-1)
    total = cum[..., -1:]
    top = hist.gather(-1, cum.argmax(dim=-1, keepdim=True))
    step = torch.div(total - top, 255, rounding_mode="floor")
    valid = step != 0
    lut = torch.div(cum[..., :-1] + step // 2, step.clamp(min=1), rounding_mode="floor").clamp(0, 255)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut], dim=-1).to(torch.uint8)
    return torch.where(valid, lut, torch.arange(256, device=hist.device).to(torch.uint8))


def histograms(values: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel 256-bin histograms ``[N, C, 256]`` (int32) of uint8 ``values``
    given as int64 ``[N, C, L]`` (``L = H·W``)."""
    n, c = values.shape[:2]
    hist = torch.zeros(n, c, 256, dtype=torch.int32, device=values.device)
    return hist.scatter_add_(-1, values, torch.ones_like(values, dtype=torch.int32))


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each channel with PIL's LUT; floats through uint8 (:func:`to_uint8`) and back."""
    n, c, h, w = images.shape
    if images.numel() == 0:
        return images.clone()
    values = to_uint8(images).reshape(n, c, h * w).long()
    out = equalize_lut(histograms(values)).gather(-1, values).view(n, c, h, w)
    return from_uint8(out, images.dtype)
