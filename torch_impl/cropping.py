"""Random resized crop + horizontal flip for ``[N, C, H, W]`` batches, one box and one coin per image.

Sampling is separate from the kernels: :func:`sample_resized_crop_params` runs torchvision's
``RandomResizedCrop.get_params`` algorithm for every image at once (10 attempts drawn up front,
the first that fits is kept, else the centre-crop fallback), :func:`resized_crop` resizes every
image's box to one static size by bilinear interpolation with gathers (no loop over the batch),
and :func:`sample_flip_params` / :func:`hflip` flip a Bernoulli(p) subset. The kernels run under
``torch.compile(fullgraph=True)`` and compile once per shape. The mirror in
:mod:`jax_impl.cropping` has the same names and records.

NaN and inf: float images are not checked for them (a check would read every pixel of every
batch); the kernels propagate them as torchvision's ``resized_crop`` and ``hflip`` do: a flip moves
a non-finite pixel, a resize blends it into the output pixels that sample it. The same in both backends.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from torch_impl._checks import check_images, compiling, generator_device
from torch_impl.transform import RandomTransform
from twintricks.checks import check_int, check_ndim, check_real, check_size
from twintricks.geometry import check_scale_ratio, fallback_crop_box
from twintricks.tricks import TrickImpl

__all__ = [
    "ResizedCropParams",
    "sample_resized_crop_params",
    "resized_crop",
    "FlipParams",
    "sample_flip_params",
    "hflip",
    "RandomResizedCropFlip",
]

N_ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params
MAX_UINT8_OUTPUT_AREA = 2**21  # exact integer bilinear arithmetic fits int32 below this
# torch.gather takes int32 indices from torch 2.8: compiled kernels index ~1.3x faster with them,
# while eager gather converts them to int64, a full-size copy (so eager keeps int64)
_INT32_GATHER = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 8)


class ResizedCropParams(NamedTuple):
    """One box per image: ``top``, ``left``, ``height``, ``width``, each ``[N]`` integers."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor


class FlipParams(NamedTuple):
    """``flip``: ``[N]`` bool, True where the image is mirrored left-right."""

    flip: torch.Tensor


def sample_resized_crop_params(
    batch_size: int,
    image_size,
    *,
    scale=(0.08, 1.0),
    ratio=(3.0 / 4.0, 4.0 / 3.0),
    generator: torch.Generator | None = None,
    device=None,
) -> ResizedCropParams:
    """Draw one crop box per image with torchvision's ``RandomResizedCrop.get_params`` algorithm.

    For each image, 10 attempts: area ``a = H·W·U(scale)``, aspect ratio
    ``r = exp(U(log ratio[0], log ratio[1]))``, ``w = round(sqrt(a·r))``, ``h = round(sqrt(a/r))``
    (round half to even, as Python's ``round``). The first attempt with ``0 < w <= W`` and
    ``0 < h <= H`` is kept, with ``top ~ U{0, …, H-h}`` and ``left ~ U{0, …, W-w}``. If none fits,
    the centre crop: the whole image, narrowed to the nearest allowed aspect ratio.

    All 10 attempts are drawn up front for every image (static shapes), so the random stream
    differs from torchvision's, which stops drawing at the first success; the distribution of
    the boxes is the same (tested against torchvision with fixed seeds). Computed in float32.

    .. warning::
        In the fallback, torchvision can return a zero-sized box for extreme aspect ratios
        (e.g. ``W = 1`` with ``ratio[0] > 2``); here the box side is clamped to at least 1.

    Args:
        batch_size: N >= 0.
        image_size: ``H`` (square) or ``(H, W)``, both >= 1.
        scale: ``(min, max)`` fraction of the image area, ``0 < min <= max``.
        ratio: ``(min, max)`` aspect ratio ``w / h``, ``0 < min <= max``.
        generator: a ``torch.Generator`` (None: torch's default generator).
        device: where the record goes (sampled where ``generator`` lives, then moved).

    Returns:
        :class:`ResizedCropParams` of int64 tensors ``[N]``.

    References:
        Christian Szegedy et al., "Going Deeper with Convolutions", 2015 (the crop augmentation);
        torchvision ``transforms.RandomResizedCrop.get_params``.
    """
    n = check_int("batch_size", batch_size, low=0)
    height, width = check_size("image_size", image_size)
    scale, ratio = check_scale_ratio(scale, ratio)
    gen_device = generator_device(generator)
    f32 = torch.float32

    def uniform(shape):
        return torch.rand(shape, generator=generator, device=gen_device, dtype=f32)

    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target_area = area * (scale[0] + (scale[1] - scale[0]) * uniform((n, N_ATTEMPTS)))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * uniform((n, N_ATTEMPTS)))
    w = torch.round(torch.sqrt(target_area * aspect)).to(torch.int64)
    h = torch.round(torch.sqrt(target_area / aspect)).to(torch.int64)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # [N, 10]
    first = torch.argmax(fits.to(torch.int8), dim=1, keepdim=True)  # first True (0 when none)
    found = fits.any(dim=1)
    h = torch.gather(h, 1, first)[:, 0]
    w = torch.gather(w, 1, first)[:, 0]
    f_top, f_left, f_h, f_w = fallback_crop_box(height, width, ratio)
    h = torch.where(found, h, f_h)
    w = torch.where(found, w, f_w)
    u_top, u_left = uniform((n,)), uniform((n,))
    top = torch.minimum(torch.floor(u_top * (height - h + 1).to(f32)).to(torch.int64), height - h)
    left = torch.minimum(torch.floor(u_left * (width - w + 1).to(f32)).to(torch.int64), width - w)
    top = torch.where(found, top, f_top)
    left = torch.where(found, left, f_left)
    params = ResizedCropParams(top, left, h, w)
    if device is not None:
        params = ResizedCropParams(*(t.to(device) for t in params))
    return params


def _check_int_vector(name: str, t, n: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor [N], got {type(t).__name__}")
    check_ndim(name, t, 1, "[N]")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"`{name}` must have an integer dtype, got {t.dtype}")
    if t.shape[0] != n:
        raise ValueError(f"`{name}` must have N = {n} entries (the batch of `images`), got {t.shape[0]}")


def _check_boxes(params, h: int, w: int, n: int) -> None:
    if not isinstance(params, ResizedCropParams):
        raise TypeError(f"`params` must be a ResizedCropParams, got {type(params).__name__}")
    for field in ResizedCropParams._fields:
        _check_int_vector(f"params.{field}", getattr(params, field), n)
    if not compiling() and n:
        top, left, bh, bw = params
        bad = (bh < 1) | (bw < 1) | (top < 0) | (left < 0) | (top + bh > h) | (left + bw > w)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"`params` box {i} (top={int(top[i])}, left={int(left[i])}, height={int(bh[i])}, "
                f"width={int(bw[i])}) must have height, width >= 1 and lie inside the {h}x{w} image"
            )


def _source_taps(start, extent, in_size: int, out_size: int, mirror=None):
    """Bilinear taps along one axis, exactly, for every image's box.

    Output index ``o`` samples box coordinate ``s = (o + 1/2)·extent/out - 1/2`` (half-pixel
    centres), clamped at 0 as PyTorch's ``align_corners=False``. With ``D = 2·out``:
    ``s = (extent·(2o+1) - out) / D``, so ``i0 = floor(s)``, and the weights are the integers
    ``D - r`` and ``r`` over ``D`` where ``r = D·s - D·i0``. Returns absolute indices
    ``[N, out]`` (``i0``, ``i1 = min(i0 + 1, extent - 1)``) and integer weights ``[N, out]``.
    ``mirror`` (``[N]`` bool, optional) reverses the output axis of the images it selects.
    All four are of the gather index dtype.
    """
    d = 2 * out_size
    i32 = torch.int32  # int32 arithmetic: torch.compile then also indexes with 32-bit integers
    o = torch.arange(out_size, device=extent.device, dtype=i32)
    if mirror is not None:
        o = torch.where(mirror[:, None], out_size - 1 - o, o)
    extent = extent[:, None].to(i32)
    num = torch.clamp(extent * (2 * o + 1) - out_size, min=0)  # D·s >= 0
    # i0 = floor(num / D) without integer division, which torch.compile would otherwise recompute
    # per output pixel in slow scalar code: (num + 1/2)/D is at least 1/(2D) from an integer, and
    # the float64 product is within 2**-52·num/D of it, far closer.
    i0 = ((num.to(torch.float64) + 0.5) * (1.0 / d)).to(i32)
    r = num - i0 * d
    i1 = torch.minimum(i0 + 1, extent - 1)
    base = start[:, None].to(i32)
    # clamp keeps every gather in bounds even for invalid boxes under torch.compile (no checks there)
    i0 = torch.clamp(base + i0, 0, in_size - 1)
    i1 = torch.clamp(base + i1, 0, in_size - 1)
    # One [4, N, out] tensor: torch.compile materialises it, instead of recomputing the taps for
    # every output pixel inside the fused gather (that made the compiled kernel ~2.5x slower).
    index = torch.int32 if _INT32_GATHER and compiling() else torch.int64
    return torch.stack([i0, i1, d - r, r]).to(index).unbind(0)


def resized_crop(
    images: torch.Tensor, params: ResizedCropParams, *, size, flip: FlipParams | None = None
) -> torch.Tensor:
    """Crop each image's box and resize it to ``size`` by bilinear interpolation.

    Output pixel ``(y, x)`` of image ``n`` samples the box at
    ``sy = (y + 1/2)·height/out_h - 1/2`` (clamped at 0) and likewise ``sx``: half-pixel centres,
    PyTorch's ``align_corners=False``, then the usual 2×2 bilinear blend of the neighbours
    ``floor(s)`` and ``min(floor(s) + 1, extent - 1)``. The box is cropped exactly, so no pixel
    outside it contributes. With ``flip``, the images it selects come out mirrored left-right:
    exactly ``hflip(resized_crop(images, params, size=size), flip)``, without the extra pass
    (the column taps are reversed instead of the output).

    Arithmetic, identical in both frameworks, separable (rows, then columns):

    * the taps are computed exactly in integers: the weights are ``(D - r)/D`` and ``r/D`` with
      ``D = 2·out`` (see the formula above);
    * uint8: exact integer arithmetic, ``t = wy0·p0 + wy1·p1`` along the rows then
      ``wx0·t0 + wx1·t1`` along the columns (the exact ``Σ wy·wx·p``), over ``4·out_h·out_w``,
      rounded half up; the result is bit-identical to :mod:`jax_impl.cropping` and is the
      exactly rounded bilinear value (torchvision's uint8 path is fixed point: within 1 of it).
      The output area ``out_h·out_w`` must be at most ``2**21`` for uint8 (int32 arithmetic);
    * floating: weights ``w/D`` in float32 (float64 for float64 images), blended as
      ``t = wy0·p0 + wy1·p1``, then ``wx0·t0 + wx1·t1``; other float dtypes are computed in
      float32.

    .. warning::
        No antialiasing when downscaling (torchvision's ``antialias=False``): a strong
        downscale aliases. Boxes must lie inside the image (torchvision's ``crop`` would pad);
        that is checked in eager mode, and under ``torch.compile`` out-of-range taps are clamped.

    Args:
        images: ``[N, C, H, W]`` uint8 or floating; not modified.
        params: :class:`ResizedCropParams` (integer ``[N]`` each; boxes inside the image).
        size: output ``(out_h, out_w)``, or an int for a square; sides >= 1.
        flip: optional :class:`FlipParams`: mirror the selected outputs (see :func:`hflip`).

    Returns:
        ``[N, C, out_h, out_w]``, the dtype of ``images``.

    References:
        torchvision ``transforms.v2.functional.resized_crop`` (``interpolation=BILINEAR``,
        ``antialias=False``).
    """
    n, c, h, w = check_images("images", images)
    out_h, out_w = check_size("size", size)
    _check_boxes(params, h, w, n)
    params = ResizedCropParams(*(t.to(images.device) for t in params))
    uint8 = images.dtype == torch.uint8
    if uint8 and out_h * out_w > MAX_UINT8_OUTPUT_AREA:
        raise ValueError(f"`size` {out_h}x{out_w} is too large for uint8 images (at most {MAX_UINT8_OUTPUT_AREA} pixels)")
    y0, y1, wy0, wy1 = _source_taps(params.top, params.height, h, out_h)
    mirror = None if flip is None else _check_flip("flip", flip, n).to(images.device)
    x0, x1, wx0, wx1 = _source_taps(params.left, params.width, w, out_w, mirror)
    if uint8:
        work = torch.int32
        wy0, wy1, wx0, wx1 = (t.to(work) for t in (wy0, wy1, wx0, wx1))
    else:
        work = torch.float64 if images.dtype == torch.float64 else torch.float32
        wy0, wy1 = (t.to(work) / (2 * out_h) for t in (wy0, wy1))
        wx0, wx1 = (t.to(work) / (2 * out_w) for t in (wx0, wx1))

    def rows(idx, weight):  # weight · the rows idx of every image: [N, C, out_h, W]
        got = torch.gather(images, 2, idx[:, None, :, None].expand(n, c, out_h, w)).to(work)
        return got.mul_(weight[:, None, :, None])

    def cols(t, idx, weight):  # weight · the columns idx of t: [N, C, out_h, out_w]
        got = torch.gather(t, 3, idx[:, None, None, :].expand(n, c, out_h, out_w))
        return got.mul_(weight[:, None, None, :])

    t = rows(y0, wy0).add_(rows(y1, wy1))  # in-place: each full-size temporary is allocated once
    out = cols(t, x0, wx0).add_(cols(t, x1, wx1))
    if not uint8:
        return out.to(images.dtype)
    # Exact rounding half up, q = floor((num + den/2) / den), without integer division (slow on
    # CPUs): (num + den/2 + 1/4)/den lies at least 1/(4·den) >= 2**-25 from an integer, and its
    # float64 product with 1/den is within 2**-44 of it (num < 2**31), so truncation gives q.
    den = 4 * out_h * out_w
    q = out.to(torch.float64).add_(den // 2 + 0.25).mul_(1.0 / den)
    return q.to(torch.int32).to(torch.uint8)


def _check_flip(name: str, params, n: int) -> torch.Tensor:
    """Check a :class:`FlipParams` argument called ``name``; return its ``[N]`` bool mask."""
    if not isinstance(params, FlipParams):
        raise TypeError(f"`{name}` must be a FlipParams, got {type(params).__name__}")
    flip = params.flip
    if not isinstance(flip, torch.Tensor):
        raise TypeError(f"`{name}.flip` must be a torch.Tensor [N], got {type(flip).__name__}")
    check_ndim(f"{name}.flip", flip, 1, "[N]")
    if flip.dtype != torch.bool:
        raise TypeError(f"`{name}.flip` must have dtype bool, got {flip.dtype}")
    if flip.shape[0] != n:
        raise ValueError(f"`{name}.flip` must have N = {n} entries (the batch of `images`), got {flip.shape[0]}")
    return flip


def sample_flip_params(
    batch_size: int, *, p: float = 0.5, generator: torch.Generator | None = None, device=None
) -> FlipParams:
    """One coin per image: ``flip[n] ~ Bernoulli(p)`` (``U[0, 1) < p``), as a ``[N]`` bool tensor."""
    n = check_int("batch_size", batch_size, low=0)
    p = check_real("p", p, low=0.0, high=1.0)
    gen_device = generator_device(generator)
    flip = torch.rand((n,), generator=generator, device=gen_device, dtype=torch.float32) < p
    return FlipParams(flip if device is None else flip.to(device))


def hflip(images: torch.Tensor, params: FlipParams) -> torch.Tensor:
    """Mirror left-right (reverse the W axis) the images whose ``params.flip`` is True.

    Args:
        images: ``[N, C, H, W]`` uint8 or floating; not modified.
        params: :class:`FlipParams` with ``flip`` a ``[N]`` bool tensor.

    Returns:
        A new tensor, same shape and dtype.
    """
    n, _, _, _ = check_images("images", images)
    flip = _check_flip("params", params, n)
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


class RandomResizedCropFlip(RandomTransform, nn.Module):
    """Random resized crop to ``size`` then a random horizontal flip, per image, batched.

    ``forward(images)`` draws :func:`sample_resized_crop_params` and :func:`sample_flip_params`
    (with ``generator`` if given, crop first), then applies both with :func:`resized_crop` (its
    ``flip`` argument). Images ``[N, C, H, W]`` uint8 or floating; output ``[N, C, *size]``.
    Bilinear without antialiasing (see :func:`resized_crop`). Under
    ``torch.compile(fullgraph=True)`` leave ``generator=None`` (dynamo cannot trace a
    ``torch.Generator`` argument); with a generator, compile the kernels alone.

    References:
        Christian Szegedy et al., "Going Deeper with Convolutions", 2015; torchvision
        ``RandomResizedCrop`` and ``RandomHorizontalFlip``.
    """

    def __init__(
        self,
        size,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        flip_p: float = 0.5,
        *,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.size = check_size("size", size)
        self.scale, self.ratio = check_scale_ratio(scale, ratio)
        self.flip_p = check_real("flip_p", flip_p, low=0.0, high=1.0)
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = check_images("images", images)
        box = sample_resized_crop_params(
            n, (h, w), scale=self.scale, ratio=self.ratio, generator=self.generator, device=images.device
        )
        p = check_real("flip_p", self.flip_p, low=0.0, high=1.0)  # re-checked: attributes may be set after __init__
        flip = sample_flip_params(n, p=p, generator=self.generator, device=images.device)
        return resized_crop(images, box, size=self.size, flip=flip)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}, flip_p={self.flip_p}"


# ------------------------------------------------------------------------------------------
# The trainer's entries (crop_flip): collected by torch_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------


def _trainer_sample_crop_flip(n, trainer, g):
    c, dev = trainer.config, trainer.device
    crop = sample_resized_crop_params(n, trainer.image_size, scale=c.crop_scale, generator=g, device=dev)
    return crop, sample_flip_params(n, generator=g, device=dev)


TRICK_IMPLS = {
    "crop_flip": TrickImpl(
        _trainer_sample_crop_flip,
        lambda x, y, p, tr: (resized_crop(x, p[0], size=tr.image_size, flip=p[1]), y),
    ),
}
