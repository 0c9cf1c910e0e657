"""The eager CPU form of the AutoAugment family's operation slots (:mod:`torch_impl.policies`).

Torch only, with no twin in :mod:`jax_impl` (jax always runs the static form): the split of
``policies.py`` that ``tests/test_isolation.py``'s 1,000-line limit asked for, sanctioned as the
home of the eager machinery.

Eagerly on a CPU a slot runs each operation only on the images that drew it, instead of every
candidate on the whole batch: :func:`apply_slot` groups the images by their op (one host read of
the slot's op ids), applies the op's kernel to a few images at a time (:func:`chunk_size`, where
that gives the same bytes) and writes them into the output's rows (:func:`put_rows`). On uint8
images the pixel-wise ops (Brightness, Contrast, Posterize, Solarize, AutoContrast, Equalize,
Invert) go through per-image 256-entry lookup tables (LUTs): the op's own kernel applied to the
256 values, then one gather.

Why chunks: a batch-sized float copy, grid or int32 position tensor is a fresh allocation of
megabytes whose page faults cost more than its arithmetic (a 36-image warp: 61 ms as one call,
12 ms in chunks of 4, one thread), while a chunk's temporaries stay in cache and are reused by the
allocator. The kernels treat images independently, so any grouping gives the same bytes.
"""

from __future__ import annotations

import torch

from torch_impl import kernels
from twintricks.policies import GEOMETRIC_OPS, LUT_OPS, OPS

#: Images per kernel call: a 224 px float chunk (2.4 MB) and its grid stay in cache.
CHUNK = 4


def chunk_size(images: torch.Tensor, count: int) -> int:
    """How many of ``count`` images one kernel call takes: :data:`CHUNK` for uint8 images whose
    ``C·H·W`` is a multiple of 64, else all ``count``, the grouping this code had before chunking.

    Same bytes either way: ATen's vectorised elementwise loops end a contiguous block with a scalar
    tail (which may round a fused multiply-add differently), and with ``C·H·W`` a multiple of 64 no
    tail falls inside an image, so every pixel runs through the same instructions however the
    images are grouped; otherwise the grouping stays as it was. Float images keep it too: the
    float Sharpness' ``conv2d`` picks its algorithm by batch size."""
    c, h, w = images.shape[1:]
    return CHUNK if images.dtype == torch.uint8 and (c * h * w) % 64 == 0 else max(count, 1)

# Each pixel-wise op as a LUT: ``kernel(values, images, magnitudes)`` with ``values`` the 256
# uint8 values laid out as ``[k, C, 1, 256]`` images and ``images`` the k images that drew it (for
# the statistics); the same kernels, so the same float32 operations and bytes as on the pixels.
# (Equalize: :func:`torch_impl.kernels.equalize_lut` of the histograms.)
LUT_KERNELS = {
    "Brightness": lambda v, x, m: kernels.brightness(v, m),
    "Contrast": lambda v, x, m: kernels.contrast(v, m, kernels.contrast_mean(x)),
    "Posterize": lambda v, x, m: kernels.posterize(v, m.to(torch.int64)),
    "Solarize": lambda v, x, m: kernels.solarize(v, m),
    "AutoContrast": lambda v, x, m: kernels.autocontrast(v, kernels.channel_min_max(x)),
    "Invert": lambda v, x, m: kernels.invert(v),
}

#: The ops whose LUT depends on the magnitude alone (tabulated once per policy and bin).
STATIC_LUT_OPS = ("Brightness", "Posterize", "Solarize", "Invert")

#: Every non-geometric op's kernel ``(images, magnitudes [N] float64)``.
KERNELS = {
    "Brightness": kernels.brightness,
    "Color": kernels.color,
    "Contrast": kernels.contrast,
    "Sharpness": kernels.sharpness,
    "Posterize": lambda x, m: kernels.posterize(x, m.to(torch.int64)),
    "Solarize": kernels.solarize,
    "AutoContrast": lambda x, m: kernels.autocontrast(x),
    "Equalize": lambda x, m: kernels.equalize(x),
    "Invert": lambda x, m: kernels.invert(x),
}



_CONSTANTS: dict = {}


def constant(values: tuple, device, dtype=torch.int64) -> torch.Tensor:
    """``torch.tensor(values)`` cached per device and dtype."""
    key = (values, str(device), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return _CONSTANTS[key]


def put_rows(out: torch.Tensor, idx: torch.Tensor, values: torch.Tensor) -> None:
    """``out[idx] = values`` for rows of the contiguous ``out``. Indexed assignment copies element
    by element, so the rows are moved as int64 words where their size allows (8x fewer elements
    for uint8)."""
    row = out[0].numel() if out.shape[0] else 0
    if not row or not idx.numel():
        return
    target, values = out.view(out.shape[0], row), values.to(out.dtype).contiguous().view(idx.numel(), row)
    if row * out.element_size() % 8 == 0:
        target, values = target.view(torch.int64), values.view(torch.int64)
    target[idx] = values


def _lut_lookup(name: str, x: torch.Tensor, mag: torch.Tensor, static_rows: torch.Tensor) -> torch.Tensor:
    """The pixel-wise op ``name`` on the uint8 images ``x`` as per-image LUTs and one gather.

    The pixels are widened once, to int32 positions in the flattened ``[k·C, 256]`` LUTs (int64
    would cost twice the bytes and a slower cast), which also give Equalize its histograms.
    ``static_rows`` ``[k, 256]``: the tabulated LUTs of :data:`STATIC_LUT_OPS`."""
    k, c, h, w = x.shape
    offsets = torch.arange(k * c, dtype=torch.int32, device=x.device).mul_(256).view(k * c, 1)
    flat = x.reshape(k * c, h * w).to(torch.int32).add_(offsets)
    if name == "Equalize":
        lut = kernels.equalize_lut(torch.bincount(flat.view(-1), minlength=k * c * 256).view(k, c, 256).to(torch.int32))
    elif name in STATIC_LUT_OPS:
        lut = static_rows.view(k, 1, 256).expand(k, c, 256)
    else:
        values = constant(tuple(range(256)), x.device, torch.uint8).view(1, 1, 1, 256).expand(k, c, 1, 256)
        lut = LUT_KERNELS[name](values.contiguous(), x, mag)
    return lut.reshape(-1).index_select(0, flat.view(-1)).view(k, c, h, w)


def apply_slot(images, op, mag, fill, matrix, static_luts, inplace: bool, interpolation: str) -> torch.Tensor:
    """One operation slot, eagerly: ``op`` ``[N]`` (:data:`OPS` ids, -1: none), ``mag`` ``[N]`` float64
    signed magnitudes, ``matrix`` ``[N, 6]`` the geometric ops' inverse matrices, ``static_luts``
    ``[N, 256]`` (uint8 images; None: no LUTs) the tabulated LUTs. Returns a new batch, or
    ``images`` itself written in place if ``inplace`` (then contiguous and ours)."""
    out = images if inplace else images.clone(memory_format=torch.contiguous_format)
    groups: dict = {}  # "geo" or an op name -> the images that drew it
    for i, o in enumerate(op.tolist()):
        if o >= 0:
            groups.setdefault("geo" if OPS[o] in GEOMETRIC_OPS else OPS[o], []).append(i)
    for name, rows in groups.items():
        idx = torch.tensor(rows, dtype=torch.int64, device=images.device)
        size = chunk_size(images, len(rows))
        for i in range(0, len(rows), size):
            r = idx[i:i + size]
            x = images.index_select(0, r)  # read before ``out`` (maybe ``images``) is written
            if name == "geo":
                y = kernels.affine(x, matrix.index_select(0, r), fill, interpolation)
            elif static_luts is not None and name in LUT_OPS:
                y = _lut_lookup(name, x, mag.index_select(0, r), static_luts.index_select(0, r))
            else:
                y = KERNELS[name](x, mag.index_select(0, r))
            put_rows(out, r, y)
    return out


def mix_uint8(images: torch.Tensor, augs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """AugMix's ``(((m·x) + v_1·a_1) + v_2·a_2) + …`` for uint8 ``images`` ``[N, C, H, W]`` and chain
    images ``augs`` ``[W, N, C, H, W]``, each product rounded to float32, then the sum, truncated
    back to uint8 (torchvision's operations, element for element), :data:`CHUNK` images at a time
    in two reused float32 buffers."""
    n = images.shape[0]
    out = torch.empty_like(images, memory_format=torch.contiguous_format)
    w = weights.to(torch.float32).view(n, -1, 1, 1, 1)
    mix = prod = None
    size = chunk_size(images, n)
    for i in range(0, n, size):
        j = min(i + size, n)
        if mix is None or mix.shape[0] != j - i:
            mix = torch.empty((j - i,) + tuple(images.shape[1:]), dtype=torch.float32, device=images.device)
            prod = torch.empty_like(mix)
        mix.copy_(images[i:j]).mul_(w[i:j, 0])
        for a in range(augs.shape[0]):
            mix.add_(prod.copy_(augs[a, i:j]).mul_(w[i:j, a + 1]))
        out[i:j] = kernels.cast_uint8(mix)
    return out
