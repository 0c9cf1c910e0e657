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
Geometric ops use nearest (default) or bilinear interpolation (``interpolation=``, bit-exact with
torchvision's ``grid_sample`` in eager mode) about the image centre (torchvision's convention), build
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

.. warning:: float16/bfloat16 images differ from torchvision on purpose: the geometric ops sample
   on a float32 grid (torchvision's half-precision grid misplaces nearest-neighbour picks) and
   ``equalize`` quantises in float32 (torchvision's turns white into black); both give the
   float32 result in the image's dtype.

Arguments: magnitudes, pixels, angles and thresholds must be finite and ``bits`` integers; a
ValueError names the argument otherwise (checked in eager mode, skipped under ``torch.compile``).

This module checks the arguments and converts the magnitudes to ``[N]`` float64 tensors; the
arithmetic is in :mod:`torch_impl.kernels` (shared with :mod:`torch_impl.policies`), and the
roundings compiled code must reproduce in :mod:`torch_impl.exact`.

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. torchvision ``transforms.v2.functional`` (``_color.py``, ``_geometry.py``).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

from torch_impl import kernels
from torch_impl._checks import check_images, compiling
from twintricks.checks import check_ndim
from twintricks.policies import check_interpolation

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


def check_op_images(name: str, images, *, rgb_or_gray: bool = False) -> tuple[int, int, int, int]:
    """Check an op's ``[N, C, H, W]`` batch (C in {1, 3} if ``rgb_or_gray``; float values in [0, 1],
    checked in eager mode only) and return its shape."""
    shape = check_images(name, images)
    if rgb_or_gray and shape[1] not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels [N, C, H, W], got C={shape[1]}")
    if images.is_floating_point() and not compiling() and images.numel():
        lo, hi = float(images.detach().min()), float(images.detach().max())
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"`{name}`: float images must lie in [0, 1] (uint8 semantics scaled), got values in [{lo}, {hi}]"
            )
    return shape


def _per_image(name: str, value, n: int, device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``value`` (a number or an ``[N]`` / scalar tensor) as an ``[N]`` tensor of ``dtype``.

    In eager mode the values must be finite (and integers when ``dtype`` is an integer type): a
    ValueError naming ``name`` otherwise. Skipped under ``torch.compile``.
    """
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            value = value.expand(n)
        check_ndim(name, value, 1, "[N] (one value per image)")
        if value.shape[0] != n:
            raise ValueError(f"`{name}` must have one value per image ({n}), got shape {tuple(value.shape)}")
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"`{name}` must be real numbers, got dtype {value.dtype}")
        values = value.to(device=device, dtype=torch.float64)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
            raise TypeError(f"`{name}` must be numbers, got {value!r}")
        return _per_image(name, torch.tensor([float(v) for v in value], dtype=torch.float64), n, device, dtype)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number or a tensor [N], got {type(value).__name__}")
    else:
        values = torch.full((n,), float(value), dtype=torch.float64, device=device)
    if not compiling() and values.numel():
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"`{name}` must be finite, got {_show(values)}")
        if not dtype.is_floating_point and not bool((values == values.round()).all()):
            raise ValueError(f"`{name}` must be integers, got {_show(values)}")
    return values if dtype == torch.float64 else values.to(dtype)


def _show(values: torch.Tensor) -> str:
    """A few of ``values`` for an error message."""
    shown = values.tolist()
    return str(shown) if len(shown) <= 8 else f"{shown[:8]} (first 8 of {len(shown)})"


def _check_values(name: str, value: torch.Tensor, low: float, high: float) -> None:
    if compiling() or value.numel() == 0:
        return
    lo, hi = float(value.detach().min()), float(value.detach().max())
    if not (low <= lo and hi <= high):
        raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}], got values in [{lo:g}, {hi:g}]")


def fill_values(fill, channels: int, dtype: torch.dtype) -> list[float] | None:
    """Check ``fill`` and return it as a list (one value, or one per channel) for
    :func:`torch_impl.kernels.affine`; None for None (torchvision's default: zeros, and bilinear
    blends no mask; nearest gives the same pixels for None and 0)."""
    if fill is None:
        return None
    if isinstance(fill, Sequence) and not isinstance(fill, str):
        values = list(fill)
        if len(values) not in (1, channels):
            raise ValueError(f"`fill` must be a number or one value per channel ({channels}), got {fill!r}")
    else:
        values = [fill]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise TypeError(f"`fill` must be None, a finite number or a sequence of them, got {fill!r}")
        if not dtype.is_floating_point and not 0 <= v <= 255:
            raise ValueError(f"`fill` must lie in [0, 255] for uint8 images, got {fill!r}")
        out.append(float(v))
    return out


def _geometric(images: torch.Tensor, matrix: torch.Tensor, fill, interpolation) -> torch.Tensor:
    interpolation = check_interpolation(interpolation)
    return kernels.affine(images, matrix, fill_values(fill, images.shape[1], images.dtype), interpolation)


def shear_x(images: torch.Tensor, magnitude, *, fill=None, interpolation="nearest") -> torch.Tensor:
    """Shear along x by factor ``magnitude`` per image (AutoAugment's ShearX), nearest, about the top-left corner.

    Output pixel ``(x, y)`` takes input pixel ``round(x + s·(y + 0.5))`` (torchvision: ``affine`` with
    ``shear=[degrees(atan(s)), 0]`` and ``center=[0, 0]``).

    Args:
        images: ``[N, C, H, W]`` uint8 or float in [0, 1].
        magnitude: ``[N]`` shear factors (``tan`` of the shear angle), or a number.
        fill: value (or one per channel) for pixels that come from outside; None (default):
            torchvision's default (zeros; see :func:`torch_impl.kernels.affine_bilinear`).
        interpolation: ``"nearest"`` (default) or ``"bilinear"`` (or torchvision's ``InterpolationMode``).
    """
    n, _, h, w = check_op_images("images", images)
    m = _per_image("magnitude", magnitude, n, images.device)
    return _geometric(images, kernels.shear_matrix(m, h, w, 0), fill, interpolation)


def shear_y(images: torch.Tensor, magnitude, *, fill=None, interpolation="nearest") -> torch.Tensor:
    """Shear along y by factor ``magnitude`` per image (AutoAugment's ShearY); see :func:`shear_x`."""
    n, _, h, w = check_op_images("images", images)
    m = _per_image("magnitude", magnitude, n, images.device)
    return _geometric(images, kernels.shear_matrix(m, h, w, 1), fill, interpolation)


def translate_x(images: torch.Tensor, pixels, *, fill=None, interpolation="nearest") -> torch.Tensor:
    """Shift each image right by ``int(pixels)`` (truncated towards 0; negative shifts left).

    Args:
        images: ``[N, C, H, W]`` uint8 or float in [0, 1].
        pixels: ``[N]`` shifts in pixels, or a number.
        fill: value (or one per channel) for the uncovered pixels.
    """
    n = check_op_images("images", images)[0]
    return _geometric(images, kernels.translate_matrix(_per_image("pixels", pixels, n, images.device), 0), fill, interpolation)


def translate_y(images: torch.Tensor, pixels, *, fill=None, interpolation="nearest") -> torch.Tensor:
    """Shift each image down by ``int(pixels)``; see :func:`translate_x`."""
    n = check_op_images("images", images)[0]
    return _geometric(images, kernels.translate_matrix(_per_image("pixels", pixels, n, images.device), 1), fill, interpolation)


def rotate(images: torch.Tensor, angle, *, fill=None, interpolation="nearest") -> torch.Tensor:
    """Rotate each image counter-clockwise by ``angle`` degrees about its centre (same size).

    Args:
        images: ``[N, C, H, W]`` uint8 or float in [0, 1].
        angle: ``[N]`` angles in degrees, or a number.
        fill: value (or one per channel) for pixels that come from outside.

    .. warning:: torchvision short-cuts multiples of 90° with ``rot90``; the grid gives the same
       pixels there (the sampling positions are integers up to float error far below 0.5).
    """
    n = check_op_images("images", images)[0]
    return _geometric(images, kernels.rotate_matrix(_per_image("angle", angle, n, images.device)), fill, interpolation)


def _enhance_magnitude(name: str, magnitude, n: int, device) -> torch.Tensor:
    m = _per_image(name, magnitude, n, device)
    _check_values(f"1 + {name}", 1.0 + m, 0.0, math.inf)
    return m


def brightness(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Scale intensities by ``1 + magnitude`` per image, clamp, truncate to uint8 (AutoAugment's Brightness).

    ``out = trunc(clamp(x · (1 + m), 0, 255))`` (no truncation for floats, clamp to [0, 1]).
    Images: ``[N, 1 or 3, H, W]``; ``magnitude``: ``[N]`` or a number, ``1 + magnitude >= 0``.
    """
    n = check_op_images("images", images, rgb_or_gray=True)[0]
    return kernels.brightness(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def color(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Saturation: blend with the floored ITU-R 601 grayscale by factor ``1 + magnitude`` (AutoAugment's Color).

    ``out = trunc(clamp(x·(1+m) + gray·(-m), 0, 255))``, torchvision v2's ``adjust_saturation``
    (v2 floors the grayscale of uint8 images; v1 rounds it — we match v2). 1-channel images are
    returned unchanged (as torchvision and PIL do).
    """
    n = check_op_images("images", images, rgb_or_gray=True)[0]
    return kernels.color(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def contrast(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Blend with the mean grayscale value by factor ``1 + magnitude`` (AutoAugment's Contrast).

    ``out = trunc(clamp(x·(1+m) + mean(gray)·(-m), 0, 255))`` with torchvision v2's floored grayscale,
    the second product fused (one rounding) for every pixel.

    .. warning:: torchvision adds the broadcast mean with ``add_(alpha=)``, whose CPU loop fuses the
       multiply-add in its vectorised body but not in its scalar remainder (the product is hoisted
       out of the loop). When ``C·H·W`` is not a multiple of 32 a few remainder pixels can differ
       from torchvision by 1 (``tests/test_ops.py`` measures and bounds it); otherwise it is exact.
    """
    n = check_op_images("images", images, rgb_or_gray=True)[0]
    return kernels.contrast(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def sharpness(images: torch.Tensor, magnitude) -> torch.Tensor:
    """Blend with a 3×3 smoothed image by factor ``1 + magnitude`` inside a 1-pixel border (AutoAugment's Sharpness).

    ``blur = round(conv(x, [[1,1,1],[1,5,1],[1,1,1]]/13))`` (not rounded for floats);
    interior ``out = trunc(clamp(x + (blur - x)·(-m), 0, 255))``; the border and images with a side
    of at most 2 pixels are unchanged (torchvision v2's ``adjust_sharpness``).
    """
    n = check_op_images("images", images, rgb_or_gray=True)[0]
    return kernels.sharpness(images, _enhance_magnitude("magnitude", magnitude, n, images.device))


def posterize(images: torch.Tensor, bits) -> torch.Tensor:
    """Keep the ``bits`` most significant bits of every value (AutoAugment's Posterize), per image.

    uint8: ``x & (0xFF << (8 - bits))``; floats: ``clamp(floor(x·2^bits), 0, 2^bits - 1) / 2^bits``.
    ``bits``: ``[N]`` integers in [0, 8] (or a number).
    """
    n = check_op_images("images", images)[0]
    b = _per_image("bits", bits, n, images.device, torch.int64)
    _check_values("bits", b, 0, 8)
    return kernels.posterize(images, b)


def solarize(images: torch.Tensor, threshold) -> torch.Tensor:
    """Invert the values at or above ``threshold · max`` (AutoAugment's Solarize), per image.

    ``threshold``: ``[N]`` fractions in [0, 1] of the dtype's maximum (255 for uint8, 1 for floats);
    the comparison runs in float32 for uint8 images, as torchvision's ``image >= threshold`` does.
    """
    n = check_op_images("images", images)[0]
    t = _per_image("threshold", threshold, n, images.device)
    _check_values("threshold", t, 0.0, 1.0)
    return kernels.solarize(images, t)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to the full range (AutoAugment's AutoContrast).

    ``out = trunc(clamp((x - lo) / ((hi - lo)·(1/255)), 0, 255))`` with ``lo, hi`` the channel's
    min and max; constant channels are unchanged. Images: ``[N, 1 or 3, H, W]``.
    """
    check_op_images("images", images, rgb_or_gray=True)
    return kernels.autocontrast(images)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each channel of each image with PIL's LUT (AutoAugment's Equalize).

    See :func:`torch_impl.kernels.equalize_lut`. Floats are quantised to uint8 (× 255.999, truncated), equalised and
    scaled back by 1/255, as torchvision does.

    .. warning:: float16/bfloat16 images are quantised in float32. torchvision multiplies in the
       image's dtype, where 255.999 rounds to 256: its levels are ``x·256`` and white (1.0)
       becomes 256, which wraps to 0 (black). jax_impl quantises in float32 like this function.
    """
    check_op_images("images", images)
    return kernels.equalize(images)


def invert(images: torch.Tensor) -> torch.Tensor:
    """``255 - x`` for uint8, ``1 - x`` for floats (AutoAugment's Invert)."""
    check_op_images("images", images)
    return kernels.invert(images)
