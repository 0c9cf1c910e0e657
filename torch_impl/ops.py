"""The 14 AutoAugment image operations as batched PyTorch kernels with per-image magnitudes.

Every op takes an ``[N, C, H, W]`` batch (uint8, or floating point in ``[0, 1]``) and one magnitude
per image (a tensor ``[N]``, or a Python number broadcast to the batch), and returns a new batch of
the same shape and dtype. The magnitudes are the ones :class:`torchvision.transforms.v2.AutoAugment`
feeds its kernels, with the sign folded in:

==================  =====================================================================
op                  per-image argument (what torchvision's AutoAugment calls)
==================  =====================================================================
``shear_x``         ``magnitude``: shear factor ``s`` → ``affine(shear=[deg(atan s), 0], center=[0, 0])``
``shear_y``         ``magnitude``: shear factor ``s`` → ``affine(shear=[0, deg(atan s)], center=[0, 0])``
``translate_x``     ``pixels`` (truncated towards 0 like ``int()``) → ``affine(translate=[int(t), 0])``
``translate_y``     ``pixels`` → ``affine(translate=[0, int(t)])``
``rotate``          ``angle`` in degrees, counter-clockwise → ``rotate(angle)``
``brightness``      ``magnitude`` → ``adjust_brightness(1 + magnitude)``
``color``           ``magnitude`` → ``adjust_saturation(1 + magnitude)``
``contrast``        ``magnitude`` → ``adjust_contrast(1 + magnitude)``
``sharpness``       ``magnitude`` → ``adjust_sharpness(1 + magnitude)``
``posterize``       ``bits`` (integers in [0, 8]) → ``posterize(bits)``
``solarize``        ``threshold`` in [0, 1] (fraction of the dtype's max) → ``solarize(max · threshold)``
``autocontrast``    (none)
``equalize``        (none)
``invert``          (none)
==================  =====================================================================

Each op reproduces the :mod:`torchvision.transforms.v2.functional` kernel's arithmetic step for
step (the same float32 operations, in the same order, with the same fused multiply-adds), so on
uint8 images the result equals torchvision's kernel applied to each image alone with that image's
magnitude, bit for bit (``tests/test_ops.py`` checks every AutoAugment magnitude bin and sign).
Geometric ops use nearest interpolation about the image centre (torchvision's convention), build
the inverse affine matrix in float64 and round it to float32 like torchvision, compute the
sampling grid with the same batched matmul and sample with ``grid_sample``; pixels that come from
outside get ``fill``.

Under ``torch.compile`` (inductor fuses multiply-adds its own way and decomposes ``grid_sample``
with another rounding) uint8 images take an explicit path: error-free emulation of exactly the
roundings eager ATen performs, and ATen's nearest-pixel rule applied by hand, so compiled and
eager results are the same bytes (float images: within float32 rounding).

Float images: all ops accept floating images with values in ``[0, 1]`` (checked in eager mode,
skipped under ``torch.compile``) and compute in the image's dtype, like torchvision's tensor
kernels; ``equalize`` quantises floats to uint8 and back, as torchvision does.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.functional`` (``_color.py``, ``_geometry.py``).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
import torch.nn.functional as F

from torch_impl._checks import check_images, compiling
from twintricks.checks import check_ndim

__all__ = [
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
    "invert",
]

_DEG_TO_RAD = math.pi / 180.0  # the constant CPython's math.radians multiplies by
_RAD_TO_DEG = 180.0 / math.pi  # ... and math.degrees


# --------------------------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------------------------


def _bound(dtype: torch.dtype) -> float:
    return 1.0 if dtype.is_floating_point else 255.0


def _compute_dtype(images: torch.Tensor) -> torch.dtype:
    return images.dtype if images.is_floating_point() else torch.float32


def _check(name: str, images, *, rgb_or_gray: bool = False) -> tuple[int, int, int, int]:
    shape = check_images(name, images)
    if rgb_or_gray and shape[1] not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels [N, C, H, W], got C={shape[1]}")
    if images.is_floating_point() and not compiling() and images.numel():
        lo, hi = float(images.min()), float(images.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"`{name}`: float images must lie in [0, 1] (uint8 semantics scaled), got values in [{lo}, {hi}]"
            )
    return shape


def _per_image(name: str, value, n: int, device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``value`` (a number or an ``[N]`` / scalar tensor) as an ``[N]`` tensor of ``dtype``."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            value = value.expand(n)
        check_ndim(name, value, 1, "[N] (one value per image)")
        if value.shape[0] != n:
            raise ValueError(f"`{name}` must have one value per image ({n}), got shape {tuple(value.shape)}")
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"`{name}` must be real numbers, got dtype {value.dtype}")
        return value.to(device=device, dtype=dtype)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
            raise TypeError(f"`{name}` must be numbers, got {value!r}")
        return _per_image(name, torch.tensor([float(v) for v in value], dtype=torch.float64), n, device, dtype)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number or a tensor [N], got {type(value).__name__}")
    return torch.full((n,), float(value), dtype=dtype, device=device)


def _check_values(name: str, value: torch.Tensor, low: float, high: float) -> None:
    if compiling() or value.numel() == 0:
        return
    lo, hi = float(value.min()), float(value.max())
    if not (low <= lo and hi <= high):
        raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}], got values in [{lo:g}, {hi:g}]")


def _fill_values(fill, channels: int, dtype: torch.dtype) -> list[float] | None:
    """``fill`` as a per-channel list (None when it is all zeros: same result, cheaper path)."""
    if isinstance(fill, Sequence) and not isinstance(fill, str):
        values = list(fill)
        if len(values) not in (1, channels):
            raise ValueError(f"`fill` must be a number or one value per channel ({channels}), got {fill!r}")
    else:
        values = [fill]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise TypeError(f"`fill` must be a finite number or a sequence of them, got {fill!r}")
        if not dtype.is_floating_point and not 0 <= v <= 255:
            raise ValueError(f"`fill` must lie in [0, 255] for uint8 images, got {fill!r}")
        out.append(float(v))
    return None if all(v == 0 for v in out) else out


# --------------------------------------------------------------------------------------------
# Exact float32 arithmetic for compiled code
#
# Eager ATen fuses ``a + alpha·b`` (add_ with alpha, addcmul) into one FMA on x86-64 AVX2/AVX-512
# and rounds ``bmm``'s products separately; inductor's generated code may fuse differently. Under
# torch.compile the kernels below therefore compute those roundings explicitly (the same helpers
# as jax_impl.ops), so that compiled and eager results are the same bytes.
# --------------------------------------------------------------------------------------------


def _split(c: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``c = hi + lo`` exactly, ``hi`` keeping the top ``bits`` significant bits of float32 ``c``."""
    c = c.to(torch.float32)
    mask = -(1 << (24 - bits))  # int32 with the low (24 - bits) mantissa bits cleared
    hi = (c.view(torch.int32) & mask).view(torch.float32)
    return hi, c - hi


def _product(x: torch.Tensor, c: torch.Tensor, x_bits: int = 8) -> torch.Tensor:
    """``x·c`` rounded once, for integer-valued ``x`` of at most ``x_bits`` bits (exact partial products)."""
    hi, lo = _split(c, 24 - x_bits)
    return x * hi + x * lo


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a·b + c`` rounded once (see :func:`jax_impl.ops._fma`): exact 12-bit partial products summed
    with error-free transformations."""
    ah, al = _split(a, 12)
    bh, bl = _split(b, 12)
    s, err = c, None
    for part in (ah * bh, ah * bl, al * bh, al * bl):
        s, e = _two_sum(s, part)
        err = e if err is None else err + e
    return s + err


def _finish(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Clamp to the dtype's range and cast back (truncation for uint8, as torchvision's ``.to``)."""
    out = out.clamp(0, _bound(dtype))
    return out if dtype.is_floating_point else out.to(dtype)


# --------------------------------------------------------------------------------------------
# Geometry: inverse affine matrices (float64, torchvision's formula) and nearest sampling
# --------------------------------------------------------------------------------------------


def _inverse_affine(angle, shear_x_deg, shear_y_deg, tx, ty, cx: float, cy: float) -> torch.Tensor:
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


def _affine_nearest(images: torch.Tensor, matrix: torch.Tensor, fill) -> torch.Tensor:
    """Warp each image by its inverse affine ``matrix`` ``[N, 6]`` (float64), nearest, ``fill`` outside.

    The grid is torchvision's ``_affine_grid`` (base grid ``[x, y, 1]`` of pixel centres relative to
    the image centre, times ``theta^T / [w/2, h/2]`` with ``bmm``) for all images at once; eagerly
    with elementwise ops that round like ATen's ``bmm`` (each product, then each sum: the same
    bytes, ~2x faster than the batched ``bmm``); sampling is
    ``grid_sample(nearest, zeros, align_corners=False)`` and ``fill`` uses torchvision's mask channel.
    """
    n, c, h, w = images.shape
    dtype = _compute_dtype(images)
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
    elif dtype == torch.float32:
        # bmm's arithmetic, (x·a + y·b) + c with both products rounded, made FMA-proof: 2x and
        # 2y are integers below 2^11 (sides up to 2048), so the split partial products are exact.
        x2 = 2 * xs.view(1, 1, w, 1).expand(1, h, w, 1)  # [1, H, W, 1]
        y2 = 2 * ys.view(1, h, 1, 1).expand(1, h, w, 1)
        r = rescaled.view(n, 1, 1, 3, 2)
        grid = (_product(x2, r[..., 0, :], 11) * 0.5 + _product(y2, r[..., 1, :], 11) * 0.5) + r[..., 2, :]
    else:
        base = torch.stack(torch.broadcast_tensors(xs.view(1, w), ys.view(h, 1), torch.ones(1, 1, dtype=dtype, device=device)), -1)
        grid = base.view(1, h * w, 3).expand(n, h * w, 3).bmm(rescaled).view(n, h, w, 2)
    x = images.to(dtype)
    fill_values = _fill_values(fill, c, images.dtype)
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
        fill_img = torch.tensor(fill_values or [0.0], dtype=dtype, device=device).view(1, -1, 1)
        if not images.is_floating_point():
            fill_img = fill_img.round().to(images.dtype)
        return torch.where(valid, out, fill_img.expand(n, c, 1)).view(n, c, h, w)
    if fill_values is None:
        out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    else:
        x = torch.cat([x, torch.ones(n, 1, h, w, dtype=dtype, device=device)], dim=1)
        sampled = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out, mask = sampled[:, :c], sampled[:, c:]
        fill_img = torch.tensor(fill_values, dtype=dtype, device=device).view(1, -1, 1, 1)
        out = torch.where(mask < 0.5, fill_img.expand_as(out), out)
    return out if images.is_floating_point() else out.round().to(images.dtype)


def _zeros(n, device):
    return torch.zeros(n, dtype=torch.float64, device=device)


def _shear_matrix(magnitude64: torch.Tensor, h: int, w: int, axis: int) -> torch.Tensor:
    deg = torch.atan(magnitude64) * _RAD_TO_DEG
    z = _zeros(magnitude64.shape[0], magnitude64.device)
    sx, sy = (deg, z) if axis == 0 else (z, deg)
    return _inverse_affine(z, sx, sy, z, z, -w * 0.5, -h * 0.5)


def _translate_matrix(pixels64: torch.Tensor, axis: int) -> torch.Tensor:
    t = torch.trunc(pixels64)
    z = _zeros(pixels64.shape[0], pixels64.device)
    tx, ty = (t, z) if axis == 0 else (z, t)
    return _inverse_affine(z, z, z, tx, ty, 0.0, 0.0)


def _rotate_matrix(angle64: torch.Tensor) -> torch.Tensor:
    z = _zeros(angle64.shape[0], angle64.device)
    return _inverse_affine(-torch.remainder(angle64, 360.0), z, z, z, z, 0.0, 0.0)


def shear_x(images: torch.Tensor, magnitude, *, fill=0) -> torch.Tensor:
    """Shear along x by factor ``magnitude`` per image (AutoAugment's ShearX), nearest, about the top-left corner.

    Output pixel ``(x, y)`` takes input pixel ``round(x + s·(y + 0.5))`` (torchvision: ``affine`` with
    ``shear=[degrees(atan(s)), 0]`` and ``center=[0, 0]``).

    Args:
        images: ``[N, C, H, W]`` uint8 or float in [0, 1].
        magnitude: ``[N]`` shear factors (``tan`` of the shear angle), or a number.
        fill: value (or one per channel) for pixels that come from outside.
    """
    n, _, h, w = _check("images", images)
    m = _per_image("magnitude", magnitude, n, images.device)
    return _affine_nearest(images, _shear_matrix(m, h, w, 0), fill)


def shear_y(images: torch.Tensor, magnitude, *, fill=0) -> torch.Tensor:
    """Shear along y by factor ``magnitude`` per image (AutoAugment's ShearY); see :func:`shear_x`."""
    n, _, h, w = _check("images", images)
    m = _per_image("magnitude", magnitude, n, images.device)
    return _affine_nearest(images, _shear_matrix(m, h, w, 1), fill)


def translate_x(images: torch.Tensor, pixels, *, fill=0) -> torch.Tensor:
    """Shift each image right by ``int(pixels)`` (truncated towards 0; negative shifts left).

    Args:
        images: ``[N, C, H, W]`` uint8 or float in [0, 1].
        pixels: ``[N]`` shifts in pixels, or a number.
        fill: value (or one per channel) for the uncovered pixels.
    """
    n = _check("images", images)[0]
    return _affine_nearest(images, _translate_matrix(_per_image("pixels", pixels, n, images.device), 0), fill)


def translate_y(images: torch.Tensor, pixels, *, fill=0) -> torch.Tensor:
    """Shift each image down by ``int(pixels)``; see :func:`translate_x`."""
    n = _check("images", images)[0]
    return _affine_nearest(images, _translate_matrix(_per_image("pixels", pixels, n, images.device), 1), fill)


def rotate(images: torch.Tensor, angle, *, fill=0) -> torch.Tensor:
    """Rotate each image counter-clockwise by ``angle`` degrees about its centre (nearest, same size).

    Args:
        images: ``[N, C, H, W]`` uint8 or float in [0, 1].
        angle: ``[N]`` angles in degrees, or a number.
        fill: value (or one per channel) for pixels that come from outside.

    .. warning:: torchvision short-cuts multiples of 90° with ``rot90``; the grid gives the same
       pixels there (the sampling positions are integers up to float error far below 0.5).
    """
    n = _check("images", images)[0]
    return _affine_nearest(images, _rotate_matrix(_per_image("angle", angle, n, images.device)), fill)


# --------------------------------------------------------------------------------------------
# Colour: enhance ops (torchvision's _blend with a fused multiply-add), LUT ops
# --------------------------------------------------------------------------------------------


def _ratio_alpha(m64: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``ratio = 1 + m`` and ``1 - ratio`` from float64 ``[N]`` magnitudes (torchvision's Python floats),
    rounded to ``dtype`` and shaped ``[N, 1, 1, 1]``."""
    ratio64 = 1.0 + m64
    n = m64.shape[0]
    return ratio64.to(dtype).view(n, 1, 1, 1), (1.0 - ratio64).to(dtype).view(n, 1, 1, 1)


def _enhance_magnitude(name: str, magnitude, n: int, device) -> torch.Tensor:
    m = _per_image(name, magnitude, n, device)
    _check_values(f"1 + {name}", 1.0 + m, 0.0, math.inf)
    return m


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[N, 1, H, W]`` as torchvision computes it (floored for uint8 images)."""
    r, g, b = images.unbind(dim=1)
    if compiling() and not images.is_floating_point():
        r, g, b = r.float(), g.float(), b.float()
        gray = _product(r, torch.tensor(0.2989, device=r.device))
        gray = _fma(b, torch.tensor(0.114, device=r.device), _fma(g, torch.tensor(0.587, device=r.device), gray))
        return gray.unsqueeze(1).floor()
    gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)
    return gray if images.is_floating_point() else gray.floor_()


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``images·ratio + other·alpha`` with the second product fused (torchvision's ``mul().add_(alpha=)``)."""
    if compiling() and not images.is_floating_point():
        x = images.float()
        return _fma(other.expand(x.shape), alpha, _product(x, ratio))
    return torch.addcmul(images.mul(ratio), other, alpha)


def _brightness(images: torch.Tensor, m64: torch.Tensor) -> torch.Tensor:
    ratio, _ = _ratio_alpha(m64, _compute_dtype(images))
    return _finish(images.mul(ratio), images.dtype)


def _color(images: torch.Tensor, m64: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images.clone()
    ratio, alpha = _ratio_alpha(m64, _compute_dtype(images))
    return _finish(_blend(images, _grayscale(images), ratio, alpha), images.dtype)


def _contrast_mean(images: torch.Tensor) -> torch.Tensor:
    """Each image's mean grayscale ``[N, 1, 1, 1]`` (the compute dtype)."""
    gray = _grayscale(images) if images.shape[1] == 3 else images.to(_compute_dtype(images))
    return gray.mean(dim=(-3, -2, -1), keepdim=True)


def _contrast(images: torch.Tensor, m64: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """``mean``: :func:`_contrast_mean` of the images (computed here when None; given when
    ``images`` are the 256 values of a lookup table)."""
    ratio, alpha = _ratio_alpha(m64, _compute_dtype(images))
    mean = _contrast_mean(images) if mean is None else mean
    # A materialised (not broadcast) mean keeps every element on the fused multiply-add path.
    mean = mean.expand(images.shape).contiguous()
    return _finish(_blend(images, mean, ratio, alpha), images.dtype)


_SHARPNESS_KERNEL = ((1.0 / 13.0, 1.0 / 13.0, 1.0 / 13.0), (1.0 / 13.0, 5.0 / 13.0, 1.0 / 13.0), (1.0 / 13.0,) * 3)


def _sharpness(images: torch.Tensor, m64: torch.Tensor) -> torch.Tensor:
    n, c, h, w = images.shape
    if h <= 2 or w <= 2 or images.numel() == 0:
        return images.clone()
    dtype = _compute_dtype(images)
    _, alpha = _ratio_alpha(m64, dtype)
    x = images.to(dtype=dtype, copy=True)
    if images.is_floating_point():
        kernel = torch.tensor(_SHARPNESS_KERNEL, dtype=dtype, device=images.device).expand(c, 1, 3, 3)
        blurred = F.conv2d(x, kernel, groups=c)
    else:
        # uint8: the exact 3×3 integer sums S = 8 neighbours + 5·centre (separable, exact in any
        # order), then round(S·fl(1/13)). The rounded result equals torchvision's rounded conv2d:
        # S/13 is never within 0.038 of a half-integer, far more than either float32 evaluation's
        # error (< 1e-3) (tests/test_ops.py checks every S).
        rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
        window = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
        centre = x[..., 1:-1, 1:-1]
        blurred = window.add_(centre, alpha=4).mul_(1.0 / 13.0).round_()
    inner = x[..., 1:-1, 1:-1]
    if compiling() and not images.is_floating_point():
        return _finish(_fma(F.pad(blurred - inner, (1, 1, 1, 1)), alpha, x), images.dtype)
    x[..., 1:-1, 1:-1] = torch.addcmul(inner, blurred - inner, alpha)
    return _finish(x, images.dtype)


def _posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    n = images.shape[0]
    if images.is_floating_point():
        levels = torch.bitwise_left_shift(torch.ones_like(bits), bits).to(images.dtype).view(n, 1, 1, 1)
        return images.mul(levels).floor_().clamp_(min=0).minimum(levels - 1).mul_(1.0 / levels)
    mask = (torch.bitwise_left_shift(torch.full_like(bits, 255), 8 - bits) & 255).to(torch.uint8).view(n, 1, 1, 1)
    return images & mask


def _solarize(images: torch.Tensor, t64: torch.Tensor) -> torch.Tensor:
    t = (t64 * _bound(images.dtype)).to(_compute_dtype(images)).view(images.shape[0], 1, 1, 1)
    return torch.where(images.to(t.dtype) >= t, _invert(images), images)


def _channel_min_max(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel min and max ``[N, C, 1, 1]`` (the compute dtype)."""
    x = images.to(_compute_dtype(images))
    return x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)


def _autocontrast(images: torch.Tensor, lo_hi: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``lo_hi``: :func:`_channel_min_max` of the images (computed here when None; given when
    ``images`` are the 256 values of a lookup table)."""
    if images.numel() == 0:
        return images.clone()
    bound = _bound(images.dtype)
    x = images.to(_compute_dtype(images))
    lo, hi = _channel_min_max(images) if lo_hi is None else lo_hi
    flat = hi == lo
    inv_scale = torch.where(flat, torch.ones_like(hi), (hi - lo).mul(1.0 / bound))
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    return (x - lo).div(inv_scale).clamp(0, bound).to(images.dtype)


def _invert(images: torch.Tensor) -> torch.Tensor:
    return 1.0 - images if images.is_floating_point() else images.bitwise_not()


def brightness(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Scale intensities by ``1 + magnitude`` per image, clamp, truncate to uint8 (AutoAugment's Brightness).

    ``out = trunc(clamp(x · (1 + m), 0, 255))`` (no truncation for floats, clamp to [0, 1]).
    Images: ``[N, 1 or 3, H, W]``; ``magnitude``: ``[N]`` or a number, ``1 + magnitude >= 0``.
    """
    n = _check("images", images, rgb_or_gray=True)[0]
    return _brightness(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def color(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Saturation: blend with the floored ITU-R 601 grayscale by factor ``1 + magnitude`` (AutoAugment's Color).

    ``out = trunc(clamp(x·(1+m) + gray·(-m), 0, 255))``, torchvision v2's ``adjust_saturation``
    (v2 floors the grayscale of uint8 images; v1 rounds it — we match v2). 1-channel images are
    returned unchanged (as torchvision and PIL do).
    """
    n = _check("images", images, rgb_or_gray=True)[0]
    return _color(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def contrast(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Blend with the mean grayscale value by factor ``1 + magnitude`` (AutoAugment's Contrast).

    ``out = trunc(clamp(x·(1+m) + mean(gray)·(-m), 0, 255))`` with torchvision v2's floored grayscale,
    the second product fused (one rounding) for every pixel.

    .. warning:: torchvision adds the broadcast mean with ``add_(alpha=)``, whose CPU loop fuses the
       multiply-add in its vectorised body but not in its scalar remainder (the product is hoisted
       out of the loop). When ``C·H·W`` is not a multiple of 32 a few remainder pixels can differ
       from torchvision by 1 (``tests/test_ops.py`` measures and bounds it); otherwise it is exact.
    """
    n = _check("images", images, rgb_or_gray=True)[0]
    return _contrast(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def sharpness(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Blend with a 3×3 smoothed image by factor ``1 + magnitude`` inside a 1-pixel border (AutoAugment's Sharpness).

    ``blur = round(conv(x, [[1,1,1],[1,5,1],[1,1,1]]/13))`` (not rounded for floats);
    interior ``out = trunc(clamp(x + (blur - x)·(-m), 0, 255))``; the border and images with a side
    of at most 2 pixels are unchanged (torchvision v2's ``adjust_sharpness``).
    """
    n = _check("images", images, rgb_or_gray=True)[0]
    return _sharpness(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def posterize(images: torch.Tensor, bits) -> torch.Tensor:
    """Keep the ``bits`` most significant bits of every value (AutoAugment's Posterize), per image.

    uint8: ``x & (0xFF << (8 - bits))``; floats: ``clamp(floor(x·2^bits), 0, 2^bits - 1) / 2^bits``.
    ``bits``: ``[N]`` integers in [0, 8] (or a number).
    """
    n = _check("images", images)[0]
    b = _per_image("bits", bits, n, images.device, torch.int64)
    _check_values("bits", b, 0, 8)
    return _posterize(images, b)


def solarize(images: torch.Tensor, threshold) -> torch.Tensor:
    """Invert the values at or above ``threshold · max`` (AutoAugment's Solarize), per image.

    ``threshold``: ``[N]`` fractions in [0, 1] of the dtype's maximum (255 for uint8, 1 for floats);
    the comparison runs in float32 for uint8 images, as torchvision's ``image >= threshold`` does.
    """
    n = _check("images", images)[0]
    t = _per_image("threshold", threshold, n, images.device)
    _check_values("threshold", t, 0.0, 1.0)
    return _solarize(images, t)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to the full range (AutoAugment's AutoContrast).

    ``out = trunc(clamp((x - lo) / ((hi - lo)·(1/255)), 0, 255))`` with ``lo, hi`` the channel's
    min and max; constant channels are unchanged. Images: ``[N, 1 or 3, H, W]``.
    """
    _check("images", images, rgb_or_gray=True)
    return _autocontrast(images)


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``to_dtype(uint8, scale=True)``: floats × (255 + 1 - 1e-3), truncated."""
    return images if images.dtype == torch.uint8 else images.mul(255.0 + 1.0 - 1e-3).to(torch.uint8)


def _from_uint8(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return images if dtype == torch.uint8 else images.to(dtype).mul_(1.0 / 255.0)


def _equalize_lut(hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL's equalisation LUT from ``[..., 256]`` int histograms → (LUT uint8, valid mask).

    ``step = (#pixels - #pixels of the top used value) // 255``; ``lut[0] = 0``,
    ``lut[k] = min((cumhist[k-1] + step // 2) // step, 255)``; channels with ``step == 0`` are not
    equalised.
    """
    cum = hist.cumsum(dim=-1)
    total = cum[..., -1:]
    top = hist.gather(-1, cum.argmax(dim=-1, keepdim=True))
    step = torch.div(total - top, 255, rounding_mode="floor")
    valid = step != 0
    lut = torch.div(cum[..., :-1] + step // 2, step.clamp(min=1), rounding_mode="floor").clamp(0, 255)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut], dim=-1).to(torch.uint8)
    return lut, valid


def _histograms(u8: torch.Tensor | None, flat: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image, per-channel 256-bin histograms ``[N, C, 256]`` (int32) of a uint8 batch, or of its
    values already as ``flat`` ``[N, C, H·W]`` int64."""
    if flat is None:
        n, c, h, w = u8.shape
        flat = u8.reshape(n, c, h * w).long()
    n, c = flat.shape[:2]
    hist = torch.zeros(n, c, 256, dtype=torch.int32, device=flat.device)
    return hist.scatter_add_(-1, flat, torch.ones_like(flat, dtype=torch.int32))


def _equalize(images: torch.Tensor) -> torch.Tensor:
    n, c, h, w = images.shape
    if images.numel() == 0:
        return images.clone()
    u8 = _to_uint8(images)
    flat = u8.reshape(n, c, h * w).long()
    lut, valid = _equalize_lut(_histograms(u8))
    out = torch.where(valid, lut.gather(-1, flat), flat.to(torch.uint8)).view(n, c, h, w)
    return _from_uint8(out, images.dtype)


def _equalize_table(u8: torch.Tensor | None, flat: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_equalize` of a uint8 batch (or of ``flat``, see :func:`_histograms`) as per-image,
    per-channel tables ``[N, C, 256]`` (uint8): the equalisation LUT, or the identity for channels
    it leaves unchanged."""
    hist = _histograms(u8, flat)
    lut, valid = _equalize_lut(hist)
    return torch.where(valid, lut, torch.arange(256, device=hist.device).to(torch.uint8))


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each channel of each image with PIL's LUT (AutoAugment's Equalize).

    See :func:`_equalize_lut`. Floats are quantised to uint8 (× 255.999, truncated), equalised and
    scaled back by 1/255, as torchvision does.
    """
    _check("images", images)
    return _equalize(images)


def invert(images: torch.Tensor) -> torch.Tensor:
    """``255 - x`` for uint8, ``1 - x`` for floats (AutoAugment's Invert)."""
    _check("images", images)
    return _invert(images)
