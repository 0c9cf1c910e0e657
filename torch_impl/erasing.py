"""Erasing for ``[N, C, H, W]`` batches: Cutout (DeVries & Taylor 2017), square holes filled with a
constant, and random erasing (Zhong et al. 2020), boxes of random area and aspect filled with a
constant, a random colour or noise.

Sampling is separate from the kernel: :func:`sample_cutout_params` draws one integer centre per
image and per hole; :func:`cutout` applies them deterministically with masks (no loop over the
batch), so it runs under ``torch.compile(fullgraph=True)`` and compiles once per shape.
:func:`sample_random_erasing_params` / :func:`erase` split random erasing the same way (the
kernel has torchvision's name; in jax ``random_erasing`` is the ``random_<trick>`` wrapper).
The mirror in :mod:`jax_impl.erasing` has the same names and the same records.

NaN and inf: float images are not checked for them (a check would read every pixel of every
batch); the kernels propagate them as torchvision's ``erase`` does: a non-finite pixel outside a
hole or box stays as it is, one inside is overwritten by the fill. The same in both backends.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from torch_impl._checks import check_images, compiling, generator_device
from torch_impl.transform import RandomTransform
from twintricks.checks import check_bool, check_int, check_ndim, check_real, check_size
from twintricks.erasing import check_random_erasing_args
from twintricks.tricks import TrickImpl

__all__ = [
    "CutoutParams",
    "sample_cutout_params",
    "cutout",
    "Cutout",
    "RandomErasingParams",
    "sample_random_erasing_params",
    "erase",
    "RandomErasing",
]


class CutoutParams(NamedTuple):
    """Hole centres: ``cy`` (row) and ``cx`` (column), each ``[N, n_holes]`` integers."""

    cy: torch.Tensor
    cx: torch.Tensor


def sample_cutout_params(
    batch_size: int,
    image_size,
    *,
    n_holes: int = 1,
    generator: torch.Generator | None = None,
    device=None,
) -> CutoutParams:
    """Draw ``n_holes`` centres per image, uniform over the whole ``H × W`` grid.

    ``cy ~ U{0, …, H-1}`` and ``cx ~ U{0, …, W-1}`` independently, per image and per hole; the
    centre may lie on the border (as in the reference code), so a hole may be partly outside.

    Args:
        batch_size: N >= 0.
        image_size: ``H`` (square) or ``(H, W)``, both >= 1.
        n_holes: holes per image, >= 0 (0 gives ``[N, 0]`` arrays and a no-op kernel).
        generator: a ``torch.Generator`` (None: torch's default generator).
        device: where the record goes (sampled where ``generator`` lives, then moved).

    Returns:
        :class:`CutoutParams` of int64 tensors ``[N, n_holes]``.
    """
    n = check_int("batch_size", batch_size, low=0)
    h, w = check_size("image_size", image_size)
    k = check_int("n_holes", n_holes, low=0)
    gen_device = generator_device(generator)
    cy = torch.randint(0, h, (n, k), generator=generator, device=gen_device)
    cx = torch.randint(0, w, (n, k), generator=generator, device=gen_device)
    if device is not None:
        cy, cx = cy.to(device), cx.to(device)
    return CutoutParams(cy, cx)


def _check_fill(fill, dtype: torch.dtype) -> float:
    fill = check_real("fill", fill)
    if dtype == torch.uint8 and (fill != int(fill) or not 0 <= fill <= 255):
        raise ValueError(f"`fill` must be an integer in [0, 255] for uint8 images, got {fill!r}")
    return fill


def _check_params(images: torch.Tensor, params) -> None:
    if not isinstance(params, CutoutParams):
        raise TypeError(f"`params` must be a CutoutParams, got {type(params).__name__}")
    for name, t in (("params.cy", params.cy), ("params.cx", params.cx)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor [N, n_holes], got {type(t).__name__}")
        check_ndim(name, t, 2, "[N, n_holes]")
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"`{name}` must have an integer dtype, got {t.dtype}")
    if params.cy.shape != params.cx.shape or params.cy.shape[0] != images.shape[0]:
        raise ValueError(
            f"`params.cy` {tuple(params.cy.shape)} and `params.cx` {tuple(params.cx.shape)} must both be "
            f"[N, n_holes] with N = {images.shape[0]} (the batch of `images`)"
        )
    if not compiling() and params.cy.numel():
        for name, t, size in (("params.cy", params.cy, images.shape[2]), ("params.cx", params.cx, images.shape[3])):
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi >= size:
                raise ValueError(
                    f"`{name}` must lie in [0, {size}) (centres inside the image), got values in [{lo}, {hi}]"
                )


def cutout_mask(params: CutoutParams, height: int, width: int, *, length: int) -> torch.Tensor:
    """``[N, H, W]`` bool: True inside at least one hole (the geometry of :func:`cutout`)."""
    half = length // 2
    rows = torch.arange(height, device=params.cy.device)
    cols = torch.arange(width, device=params.cx.device)
    cy = params.cy[..., None]  # [N, K, 1]
    cx = params.cx[..., None]
    in_rows = (rows >= cy - half) & (rows < cy + half)  # [N, K, H]
    in_cols = (cols >= cx - half) & (cols < cx + half)  # [N, K, W]
    return (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)  # [N, H, W]


def cutout(images: torch.Tensor, params: CutoutParams, *, length: int, fill: float = 0) -> torch.Tensor:
    """Fill square holes of side ``length`` with ``fill`` in every channel.

    For image ``n`` and hole ``k`` with centre ``(cy, cx) = (params.cy[n, k], params.cx[n, k])``,
    the hole is rows ``[cy - length//2, cy + length//2)`` × columns
    ``[cx - length//2, cx + length//2)``, clipped to the image. Holes may overlap; pixels outside
    every hole are unchanged. ``n_holes = 0`` (params ``[N, 0]``) returns an unchanged copy;
    ``length`` larger than the image is allowed (the box is clipped).

    .. warning::
        An odd ``length`` gives a box of side ``length - 1`` (``2 · (length // 2)``), exactly as
        the reference implementation (``y1 = clip(y - length // 2)``, ``y2 = clip(y + length // 2)``).

    Args:
        images: ``[N, C, H, W]`` uint8 or floating; not modified.
        params: :class:`CutoutParams` from :func:`sample_cutout_params` (integer ``[N, n_holes]``,
            centres inside the image: checked in eager mode, not under ``torch.compile``).
        length: side of the holes, >= 0.
        fill: value written into the holes; for uint8 an integer in ``[0, 255]``.

    Returns:
        A new tensor, same shape, dtype and device as ``images``.

    References:
        Terrance DeVries and Graham W. Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout", 2017 (arXiv:1708.04552).
    """
    _, _, h, w = check_images("images", images)
    length = check_int("length", length, low=0)
    fill = _check_fill(fill, images.dtype)
    _check_params(images, params)
    params = CutoutParams(params.cy.to(images.device), params.cx.to(images.device))
    mask = cutout_mask(params, h, w, length=length)
    fill_t = torch.tensor(fill, dtype=images.dtype, device=images.device)
    return torch.where(mask[:, None], fill_t, images)


class Cutout(RandomTransform, nn.Module):
    """Cutout as a module: ``n_holes`` holes of side ``length`` per image, new centres each call.

    ``forward(images)`` draws :func:`sample_cutout_params` (with ``generator`` if given) and
    applies :func:`cutout`; images are ``[N, C, H, W]`` uint8 or floating. Applied in train and
    eval mode alike (as the reference transform); wrap it in your own condition to skip it.
    Under ``torch.compile(fullgraph=True)`` leave ``generator=None`` (dynamo cannot trace a
    ``torch.Generator`` argument); with a generator, compile :func:`cutout` alone.

    References:
        Terrance DeVries and Graham W. Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout", 2017 (arXiv:1708.04552).
    """

    def __init__(self, n_holes: int = 1, length: int = 16, fill: float = 0, *, generator: torch.Generator | None = None):
        super().__init__()
        self.n_holes = check_int("n_holes", n_holes, low=0)
        self.length = check_int("length", length, low=0)
        self.fill = check_real("fill", fill)
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = check_images("images", images)
        params = sample_cutout_params(n, (h, w), n_holes=self.n_holes, generator=self.generator, device=images.device)
        return cutout(images, params, length=self.length, fill=self.fill)

    def extra_repr(self) -> str:
        return f"n_holes={self.n_holes}, length={self.length}, fill={self.fill}"


# ------------------------------------------------------------------------------------------
# RandomErasing
# ------------------------------------------------------------------------------------------

N_ATTEMPTS = 10  # torchvision's and timm's attempts per box


class RandomErasingParams(NamedTuple):
    """One random-erasing draw for a batch, with up to K boxes per image.

    Fields:
        top, left, height, width: ``[N, K]`` integers, box k of image n (``height`` or
            ``width`` 0: no box).
        fill: ``[N, C, H, W]`` float, the value each pixel takes if a box covers it (a
            constant, a box's colour, or noise: the fill's randomness lives here). A constant fill is an
            expanded view of its ``C`` values (stride 0 over N, H and W), not a materialised batch.
    """

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    fill: torch.Tensor


def _distinct(t: torch.Tensor) -> torch.Tensor:
    """A view of ``t`` without the repeats of its expanded (stride-0) dimensions: each narrowed to
    one entry. A constant fill ``[N, C, H, W]`` is an expanded ``[C]``: checks, casts and moves
    then touch ``C`` values instead of materialising the whole batch."""
    for dim in range(t.ndim):
        if t.stride(dim) == 0 and t.shape[dim] > 1:
            t = t.narrow(dim, 0, 1)
    return t


def _erasing_box_masks(top, left, height, width, image_h: int, image_w: int) -> torch.Tensor:
    """``[N, K, H, W]`` bool: True inside box k of image n."""
    rows = torch.arange(image_h, device=top.device)
    cols = torch.arange(image_w, device=top.device)
    in_rows = (rows >= top[..., None]) & (rows < (top + height)[..., None])  # [N, K, H]
    in_cols = (cols >= left[..., None]) & (cols < (left + width)[..., None])  # [N, K, W]
    return in_rows[..., :, None] & in_cols[..., None, :]


def sample_random_erasing_params(
    batch_size: int,
    image_size,
    channels: int,
    *,
    p: float = 0.5,
    scale=(0.02, 0.33),
    ratio=(0.3, 3.3),
    value=0.0,
    mode: str | None = None,
    min_count: int = 1,
    max_count: int | None = None,
    generator: torch.Generator | None = None,
    device=None,
) -> RandomErasingParams:
    """Draw random-erasing boxes and fills per image, torchvision v2's ``RandomErasing`` with
    timm's modes and box counts.

    Each image is erased with probability ``p`` (``U < p``), with ``count ~ U{min_count, …,
    max_count}`` boxes. Each box (10 attempts, the first that fits is kept, else no box):
    area ``a = H·W·U(scale)/count``, aspect ``r = exp(U(log ratio))``, ``h = round(sqrt(a·r))``,
    ``w = round(sqrt(a/r))`` (round half to even), kept if ``h < H`` and ``w < W``, at
    ``top ~ U{0, …, H-h}``, ``left ~ U{0, …, W-w}``. Fill (``mode``): ``"const"`` the ``value``
    (one, or one per channel); ``"rand"`` one standard-normal colour per box and channel (a later
    box paints over an earlier one, as timm); ``"pixel"`` (``value="random"``) standard-normal
    noise per pixel and channel.

    .. warning::
       torchvision's ``RandomErasing`` draws one box for a whole batch; this draws one per image
       (as timm does for batches). All 10 attempts are drawn up front (static shapes), so the
       stream differs from the references', not the distribution (tested against torchvision).

    Args:
        batch_size: N >= 0.
        image_size: ``H`` (square) or ``(H, W)``, both >= 1.
        channels: C >= 1 (the fill's channels; ``value`` has 1 or C entries).
        generator: a ``torch.Generator`` (None: torch's default generator).
        device: where the record goes (sampled where ``generator`` lives, then moved).

    Returns:
        :class:`RandomErasingParams`: int64 boxes ``[N, max_count]``, float32 ``fill``
        ``[N, C, H, W]``.

    References:
        Zhong, Zheng, Kang, Li, Yang, "Random Erasing Data Augmentation", AAAI 2020;
        torchvision ``transforms.v2.RandomErasing``; timm ``timm.data.RandomErasing``.
    """
    n = check_int("batch_size", batch_size, low=0)
    height, width = check_size("image_size", image_size)
    c = check_int("channels", channels, low=1)
    args = check_random_erasing_args(p, scale, ratio, value, mode, min_count, max_count)
    if len(args.value) not in (1, c):
        raise ValueError(f"`value` must have 1 or {c} (channels) entries, got {len(args.value)}")
    k = args.max_count
    gen_device = generator_device(generator, torch.device("cpu"))
    f32 = torch.float32

    # One draw for every uniform of the batch: per image the apply coin, then per box its 10
    # attempts' area and log-aspect, and its top and left.
    u = torch.rand((n, 1 + k * _PER_BOX), generator=generator, device=gen_device, dtype=f32)
    count = None
    if args.min_count < args.max_count:
        count = torch.randint(args.min_count, args.max_count + 1, (n,), generator=generator, device=gen_device)
    boxes = _boxes_on_host if gen_device.type == "cpu" and n * k <= _HOST_BOXES else _boxes_on_device
    top, left, h, w = boxes(u, count, args, height, width)
    if args.mode == "pixel":
        fill = torch.randn((n, c, height, width), generator=generator, device=gen_device, dtype=f32)
    elif args.mode == "rand":
        colours = torch.randn((n, k, c), generator=generator, device=gen_device, dtype=f32)
        masks = _erasing_box_masks(top, left, h, w, height, width)
        fill = torch.zeros((n, c, height, width), device=gen_device, dtype=f32)
        for b in range(k):  # later boxes paint over earlier ones
            fill = torch.where(masks[:, b, None], colours[:, b, :, None, None], fill)
    else:
        fill = torch.tensor(args.value, dtype=f32, device=gen_device).reshape(-1, 1, 1).expand(n, c, height, width)
    if device is not None:
        top, left, h, w = (t.to(device) for t in (top, left, h, w))
        fill = _distinct(fill).to(device).expand(fill.shape)
    return RandomErasingParams(top, left, h, w, fill)


_PER_BOX = 2 * N_ATTEMPTS + 2  # uniforms per box: 10 areas, 10 log-aspects, top, left
#: Up to this many boxes (N·K) from a CPU generator, :func:`_boxes_on_host` computes them: above,
#: its Python loop costs more than the tensor ops' fixed cost (one thread, 224 px, p = 0.5: 64
#: images 160 vs 470 us, 128 images 550 vs 460 us, 256 images 980 vs 490 us).
_HOST_BOXES = 64


def _boxes_on_device(u: torch.Tensor, count, args, height: int, width: int) -> tuple:
    """The boxes ``(top, left, height, width)``, each ``[N, K]`` int64, from the uniforms ``u``
    ``[N, 1 + K·22]`` and the counts ``count`` ``[N]`` (None: K each), as tensor ops where ``u``
    lives (a device generator's draw: no host transfer). Box k of image n, attempt a:
    ``area = H·W·(lo + (hi - lo)·u)/count``, ``r = exp(log lo_r + (log hi_r - log lo_r)·u)``,
    ``h = round(sqrt(area·r))``, ``w = round(sqrt(area/r))``, the first attempt with ``h < H``
    and ``w < W``; ``top = min(floor(u·(H - h + 1)), H - h)``, ``left`` likewise."""
    n, k, f32 = u.shape[0], args.max_count, torch.float32
    apply = u[:, 0] < args.p
    u = u[:, 1:].view(n, k, _PER_BOX)
    active = apply[:, None]
    divisor = k
    if count is not None:
        active = active & (torch.arange(k, device=u.device) < count[:, None])
        divisor = count[:, None, None].to(f32)
    log_lo, log_hi = math.log(args.ratio[0]), math.log(args.ratio[1])
    lo, hi = args.scale
    area = (height * width) * (lo + (hi - lo) * u[..., :N_ATTEMPTS]) / divisor
    log_aspect = log_lo + (log_hi - log_lo) * u[..., N_ATTEMPTS : 2 * N_ATTEMPTS]
    signs = torch.tensor([1.0, -1.0], device=u.device)  # both sides in one [N, K, 10, 2] expression
    sides = torch.round(torch.sqrt(area[..., None] * torch.exp(log_aspect[..., None] * signs))).to(torch.int64)
    limits = torch.tensor([height, width], device=u.device)
    fits = (sides < limits).all(dim=3)  # [N, K, 10]
    first = torch.argmax(fits.to(torch.int8), dim=2)[..., None, None].expand(n, k, 1, 2)
    sides = torch.gather(sides, 2, first)[:, :, 0]  # [N, K, 2]: the first fitting attempt's
    active = active & fits.any(dim=2)
    free = limits - sides
    corner = torch.minimum(torch.floor(u[..., 2 * N_ATTEMPTS :] * (free + 1).to(f32)).to(torch.int64), free)
    boxes = torch.where(active[..., None], torch.cat([corner, sides], dim=2), 0)  # [N, K, 4]
    return boxes.movedim(2, 0).contiguous().unbind(0)


def _boxes_on_host(u: torch.Tensor, count, args, height: int, width: int) -> tuple:
    """:func:`_boxes_on_device`'s formulas on a CPU generator's uniforms, in Python floats: one
    transfer and one tensor at the end instead of about 40 tensor ops (for a few boxes, at most
    :data:`_HOST_BOXES`, the ops' fixed cost was the sampler's whole cost, about half of the
    module's at 224 px and batch 32). The same distribution; the arithmetic is float64, so a side
    within float32's error of a rounding boundary may round the other way than in the tensor
    formulas (each generator device has its own stream anyway)."""
    n, k = u.shape[0], args.max_count
    counts = count.tolist() if count is not None else [k] * n
    log_lo, log_span = math.log(args.ratio[0]), math.log(args.ratio[1]) - math.log(args.ratio[0])
    lo, span = args.scale[0], args.scale[1] - args.scale[0]
    out: list = [[], [], [], []]  # top, left, height, width: N·K each
    for row, m in zip(u.tolist(), counts):
        for b in range(k):
            box = (0, 0, 0, 0)
            if row[0] < args.p and b < m:
                s = 1 + b * _PER_BOX
                for a in range(N_ATTEMPTS):
                    area = height * width * (lo + span * row[s + a]) / m
                    r = math.exp(log_lo + log_span * row[s + N_ATTEMPTS + a])
                    bh, bw = round(math.sqrt(area * r)), round(math.sqrt(area / r))
                    if bh < height and bw < width:
                        top = min(math.floor(row[s + 2 * N_ATTEMPTS] * (height - bh + 1)), height - bh)
                        left = min(math.floor(row[s + 2 * N_ATTEMPTS + 1] * (width - bw + 1)), width - bw)
                        box = (top, left, bh, bw)
                        break
            for values, v in zip(out, box):
                values.append(v)
    return torch.tensor(out, dtype=torch.int64).view(4, n, k).unbind(0)


def _check_erasing_params(images: torch.Tensor, params) -> list | None:
    """Checks the record; returns its boxes as four Python lists ``[N·K]`` (top, left, height,
    width) when it read them (eager, N > 0), else None."""
    n, c, height, width = images.shape
    if not isinstance(params, RandomErasingParams):
        raise TypeError(f"`params` must be a RandomErasingParams, got {type(params).__name__}")
    shape = None
    for name in ("top", "left", "height", "width"):
        t = getattr(params, name)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"`params.{name}` must be a torch.Tensor [N, K], got {type(t).__name__}")
        check_ndim(f"params.{name}", t, 2, "[N, K]")
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"`params.{name}` must have an integer dtype, got {t.dtype}")
        if t.shape[0] != n or (shape is not None and t.shape != shape):
            raise ValueError(f"`params.{name}` must be [N, K] with N = {n} (the batch of `images`), got {tuple(t.shape)}")
        shape = t.shape
    fill = params.fill
    if not isinstance(fill, torch.Tensor) or not fill.is_floating_point():
        raise TypeError("`params.fill` must be a floating torch.Tensor [N, C, H, W]")
    if tuple(fill.shape) != (n, c, height, width):
        raise ValueError(f"`params.fill` must have the shape of `images` {(n, c, height, width)}, got {tuple(fill.shape)}")
    if compiling() or not n:
        return None
    # one transfer of the boxes, then Python: a few small tensor ops per check would cost more
    boxes = torch.stack([params.top, params.left, params.height, params.width]).reshape(4, -1).tolist()
    k = params.top.shape[1]
    for j, (t, l, bh, bw) in enumerate(zip(*boxes)):
        if t < 0 or l < 0 or bh < 0 or bw < 0 or t + bh > height or l + bw > width:
            raise ValueError(
                f"`params` box {j % k} of image {j // k} (top={t}, left={l}, height={bh}, "
                f"width={bw}) must lie inside the {height}x{width} image"
            )
    fill = _distinct(fill)
    if fill.numel() <= 64:  # a constant fill: its values, in Python
        values = fill.reshape(-1).tolist()
        if images.dtype == torch.uint8 and not all(0 <= v <= 255 and v == int(v) for v in values):
            raise ValueError("`params.fill` must hold integers in [0, 255] for uint8 images (random fills need float images)")
        if images.is_floating_point() and not all(math.isfinite(v) for v in values):
            raise ValueError("`params.fill` must be finite")
        return boxes
    if images.dtype == torch.uint8 and not bool(((fill == fill.round()) & (fill >= 0) & (fill <= 255)).all()):
        raise ValueError("`params.fill` must hold integers in [0, 255] for uint8 images (random fills need float images)")
    if images.is_floating_point() and not bool(torch.isfinite(fill).all()):
        raise ValueError("`params.fill` must be finite")
    return boxes


def erase(images: torch.Tensor, params: RandomErasingParams, *, inplace: bool = False) -> torch.Tensor:
    """Erase the boxes of ``params``: pixels inside any box of image n take ``params.fill``.

    ``out = where(∪_k box_nk, fill, images)`` per pixel and channel; boxes may overlap (the fill
    already holds, per pixel, the value of the box painted last). Under ``torch.compile`` and on
    a GPU: one batched select, no loop over the batch (``fullgraph=True`` holds). Eager on a CPU,
    when the batch holds many values per box, the same bytes come from one region write per box
    (into a copy of the batch, or into ``images`` itself with ``inplace=True``).

    Args:
        images: ``[N, C, H, W]`` uint8 or floating; not modified unless ``inplace``.
        params: :class:`RandomErasingParams` (value checks in eager mode only: boxes inside the
            image; for uint8 images a fill of integers in ``[0, 255]``).
        inplace: write the boxes into ``images`` and return it (torchvision's
            ``erase(..., inplace=True)``; timm erases in place). Default False: a new tensor.
            torch only: jax arrays are immutable.

    Returns:
        A new tensor, same shape, dtype and device as ``images`` (``images`` itself if
        ``inplace``).

    .. warning::
       torchvision's kernel writes a float fill into uint8 images by a cast; here uint8 images
       need an integer fill in ``[0, 255]`` (random fills are for normalised float images, where
       timm and torchvision's references apply them).

    References:
        Zhong, Zheng, Kang, Li, Yang, "Random Erasing Data Augmentation", AAAI 2020;
        torchvision ``transforms.v2.functional.erase``.
    """
    check_images("images", images)
    check_bool("inplace", inplace)
    boxes = _check_erasing_params(images, params)
    _, _, height, width = images.shape
    dev = images.device
    k = params.top.shape[1]
    if boxes is not None and dev.type == "cpu" and images.numel() > _VALUES_PER_BOX * len(boxes[0]):
        return _erase_box_by_box(images if inplace else images.clone(), boxes, k, params.fill)
    top, left, bh, bw = (getattr(params, f).to(dev) for f in ("top", "left", "height", "width"))
    mask = _erasing_box_masks(top, left, bh, bw, height, width).any(dim=1)  # [N, H, W]
    fill = _distinct(params.fill).to(dev, images.dtype).expand(images.shape)  # a constant fill stays expanded
    out = torch.where(mask[:, None], fill, images)
    return images.copy_(out) if inplace else out


#: Eager on a CPU, :func:`erase` writes box by box when the batch holds more than this many values
#: per box (large images, few boxes): a copy of the batch and one region write per box then cost
#: less than a select over every value (a box's Python overhead is that of a select over about this
#: many values on the development CPU, benchmarks/RESULTS.md).
_VALUES_PER_BOX = 16384


def _erase_box_by_box(out, boxes, k: int, fill) -> torch.Tensor:
    """:func:`erase` as one region write per box into ``out`` (the batch or its copy), from the
    fill (same bytes as the batched select: every pixel of a box takes the fill's value there, the
    fill already holds the last box's value where boxes overlap, and the cast is the same);
    ``boxes``: the four Python lists of :func:`_check_erasing_params`. Each region is one
    ``as_strided`` view of ``out`` and of the fill (a constant fill's broadcast dimensions get
    stride 0): a third of the cost of indexing ``out[j, :, t:t + h, l:l + w]``."""
    fill = _distinct(fill).to(out.device, out.dtype)
    c = out.shape[1]
    o_n, o_c, o_h, o_w = out.stride()
    o_0 = out.storage_offset()
    f_n, f_c, f_h, f_w = (0 if size == 1 else stride for size, stride in zip(fill.shape, fill.stride()))
    f_0 = fill.storage_offset()
    for j, (t, l, h, w) in enumerate(zip(*boxes)):
        if h and w:
            n = j // k
            region = out.as_strided((c, h, w), (o_c, o_h, o_w), o_0 + n * o_n + t * o_h + l * o_w)
            region.copy_(fill.as_strided((c, h, w), (f_c, f_h, f_w), f_0 + n * f_n + t * f_h + l * f_w))
    return out


class RandomErasing(RandomTransform, nn.Module):
    """Random erasing as a module, per image: ``forward(images) -> images``.

    torchvision v2's ``RandomErasing(p, scale, ratio, value, inplace)`` arguments and timm's
    ``mode`` (``"const"``, ``"rand"``, ``"pixel"``), ``min_count`` and ``max_count``; see
    :func:`sample_random_erasing_params`. ``inplace=True`` writes the boxes into the input batch
    and returns it (as torchvision's ``inplace=True`` and timm, which always erases in place;
    saves a copy of the batch); the default False leaves the input unmodified and returns a new
    tensor (the same values either way). ``generator`` (optional) is the only source of
    randomness.

    References:
        Zhong, Zheng, Kang, Li, Yang, "Random Erasing Data Augmentation", AAAI 2020.
    """

    def __init__(
        self,
        p: float = 0.5,
        scale=(0.02, 0.33),
        ratio=(0.3, 3.3),
        value=0.0,
        inplace: bool = False,
        *,
        mode: str | None = None,
        min_count: int = 1,
        max_count: int | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.inplace = check_bool("inplace", inplace)
        args = check_random_erasing_args(p, scale, ratio, value, mode, min_count, max_count)
        self.p, self.scale, self.ratio, self.mode = args.p, args.scale, args.ratio, args.mode
        self.value = "random" if args.mode == "pixel" else (args.value[0] if len(args.value) == 1 else args.value)
        self.min_count, self.max_count = args.min_count, args.max_count
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, c, h, w = check_images("images", images)
        params = sample_random_erasing_params(
            n,
            (h, w),
            c,
            p=self.p,
            scale=self.scale,
            ratio=self.ratio,
            value=self.value,
            mode=None if self.mode == "pixel" else self.mode,
            min_count=self.min_count,
            max_count=self.max_count,
            generator=self.generator,
            device=images.device,
        )
        return erase(images, params, inplace=self.inplace)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value!r}, mode={self.mode!r}, "
            f"min_count={self.min_count}, max_count={self.max_count}, inplace={self.inplace}"
        )


# ------------------------------------------------------------------------------------------
# The trainer's entries (cutout, random_erasing): collected by torch_impl.train (twintricks.tricks.collect_impls)
# ------------------------------------------------------------------------------------------


def _trainer_sample_random_erasing(n, trainer, g):
    c = trainer.config
    return sample_random_erasing_params(
        n, trainer.image_size, trainer.channels, p=c.random_erasing, mode=c.random_erasing_mode,
        max_count=c.random_erasing_count, generator=g, device=trainer.device,
    )


# At the ``erasing`` stage the batch is normalised: Cutout's fill 0 is the data set's mean.
TRICK_IMPLS = {
    "cutout": TrickImpl(
        lambda n, tr, g: sample_cutout_params(n, tr.image_size, n_holes=tr.config.cutout_holes, generator=g, device=tr.device),
        lambda x, y, p, tr: (cutout(x, p, length=tr.config.cutout), y),
    ),
    "random_erasing": TrickImpl(_trainer_sample_random_erasing, lambda x, y, p, tr: (erase(x, p), y)),
}
