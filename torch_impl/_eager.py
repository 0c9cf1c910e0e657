"""The eager CPU form of the AutoAugment family's operation slots (:mod:`torch_impl.policies`).

Torch only, with no twin in :mod:`jax_impl` (jax always runs the static form): the split of
``policies.py`` that ``tests/test_isolation.py``'s 1,000-line limit asked for, sanctioned as the
home of the eager machinery.

Eagerly on a CPU a slot runs each operation only on the images that drew it, instead of every
candidate on the whole batch: :func:`apply_slot` groups the images by their op (one host read of
the slot's op ids), applies the op's kernel to a few images at a time (:func:`chunk_size`, where
that gives the same bytes) and writes them into the output's rows (:func:`put_rows`). On uint8
images:

* Brightness, Contrast, AutoContrast and Equalize go through per-image 256-entry lookup tables
  (LUTs): the op's own kernel applied to the 256 values, then one lookup (:func:`_lut_lookup`;
  histograms and lookups by OpenCV when it is installed, else by torch: :class:`_Planes`);
  Posterize, Solarize and Invert are whole-uint8 arithmetic (:data:`UINT8_KERNELS`); an image
  whose first two ops are both in :data:`PAIR_OPS`, one of them Equalize or AutoContrast, gets
  them as one LUT (:func:`pair_first_slots`);
* the nearest warp is one gather of ``grid_sample``'s own picks, cached per matrix
  (:func:`_picks`), and the bilinear warp samples on a cached grid (:func:`_per_matrix`: at most
  :data:`WARP_CACHE_BYTES`, 48 MB, held for the process).

Why chunks: a batch-sized float copy, grid or int32 position tensor is a fresh allocation of
megabytes whose page faults cost more than its arithmetic (a 36-image warp: 61 ms as one call,
12 ms in chunks of 4, one thread), while a chunk's temporaries stay in cache and are reused by the
allocator. Where an image's bytes could depend on its neighbours in a call (:func:`regroupable`),
each op keeps its images in one call, as before.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

from torch_impl import kernels
from twintricks.policies import GEOMETRIC_OPS, LUT_OPS, OPS, STATIC_LUT_OPS

#: Images per kernel call on large images: a 224 px float chunk (2.4 MB) and its grid stay in cache.
CHUNK = 4
#: From how many values per image (``C·H·W``) the images go :data:`CHUNK` at a time: below it
#: (CIFAR's 3,072) a chunk's fixed cost of a dozen small calls outweighs what it saves.
CHUNK_FROM = 1 << 16
#: The nearest warp gathers cached picks only below this many pixels per image: the picks are
#: sampled as float32 pixel numbers 1..H·W, exact up to 2^24; larger images warp with the kernel.
PICKS_BELOW = 1 << 24


def regroupable(images: torch.Tensor) -> bool:
    """Whether an image's result may depend on nothing but itself, bit for bit, however the images
    are grouped into kernel calls: uint8 images whose ``C·H·W`` is a multiple of 64.

    ATen's vectorised elementwise loops end a contiguous block with a scalar tail (which may round
    a fused multiply-add differently); with ``C·H·W`` a multiple of 64 no tail falls inside an
    image, so every pixel runs through the same instructions in any grouping. Otherwise each op
    keeps the grouping this code had before chunks (all its images in one call), and float images
    keep it too (the float Sharpness' ``conv2d`` picks its algorithm by batch size)."""
    c, h, w = images.shape[1:]
    return images.dtype == torch.uint8 and (c * h * w) % 64 == 0


def chunk_size(images: torch.Tensor, count: int) -> int:
    """How many of ``count`` images one kernel call takes: :data:`CHUNK` for large
    :func:`regroupable` images, else all ``count``."""
    large = images[0].numel() >= CHUNK_FROM if images.shape[0] else False
    return CHUNK if large and regroupable(images) else max(count, 1)


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



def _solarize_uint8(images: torch.Tensor, t64: torch.Tensor) -> torch.Tensor:
    """:func:`torch_impl.kernels.solarize` on uint8 images without floats: for a whole ``x``,
    ``x >= t`` (``t`` float32, as the kernel rounds it) is ``x >= ceil(t)``, and ``255 - x`` is
    ``x ^ 255`` (the comparison's bools as bytes, negated: 0 or 255; ``where`` is 4x slower)."""
    thr = (t64 * 255.0).to(torch.float32).ceil_().clamp_(0, 256)
    if bool((thr > 255).any()):  # no uint8 threshold says "none": the kernel itself
        return kernels.solarize(images, t64)
    thr = thr.to(torch.uint8).view(-1, 1, 1, 1)
    return images.bitwise_xor((images >= thr).view(torch.uint8).neg_())


#: On uint8 images, the pixel-wise ops cheaper as whole-uint8 arithmetic than as a LUT's gather
#: (the same function of each value as their LUT, which their kernels tabulate).
UINT8_KERNELS = {"Posterize": KERNELS["Posterize"], "Solarize": _solarize_uint8, "Invert": KERNELS["Invert"]}

_CONSTANTS: dict = {}


def constant(values: tuple, device, dtype=torch.int64) -> torch.Tensor:
    """``torch.tensor(values)`` cached per device and dtype."""
    key = (values, str(device), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return _CONSTANTS[key]


def put_rows(out: torch.Tensor, idx: torch.Tensor, values: torch.Tensor) -> None:
    """``out[idx] = values`` for distinct rows ``idx`` of ``out``, one ``copy_`` per row: a row of a
    contiguous batch is one block, so each is a plain copy (measured 0.97-3.2x as fast as one
    indexed assignment of the rows as int64 words, for 1 to 32 rows of 224 px)."""
    values = values.to(out.dtype)
    for j, i in enumerate(idx.tolist()):
        out[i].copy_(values[j])


_OPENCV: list = []


def opencv():
    """OpenCV's ``cv2`` when it is installed (the ``[opencv]`` extra, ``opencv-python-headless``),
    else None; imported on first use, so ``import torch_impl`` does not pay for it."""
    if not _OPENCV:
        try:
            import cv2
        except ImportError:
            cv2 = None
        _OPENCV.append(cv2)
    return _OPENCV[0]


#: OpenCV's ``calcHist`` counts in float32, exact below 2^24 pixels per channel (and its
#: ``LUT`` refuses empty planes): other images take the torch path.
OPENCV_BELOW = 1 << 24


class _Planes:
    """uint8 images ``[k, C, H, W]`` ready for per-channel histograms and LUT lookups.

    With OpenCV (optional, CPU), each channel plane is counted by ``cv2.calcHist`` and looked up
    by ``cv2.LUT``: at 224 px, 4 images took 0.20 ms for the histograms against 0.52 ms for
    ``bincount``, and 0.20 ms for the lookup against about 0.6 ms for widening the pixels to int32
    positions and gathering (2 threads, measured 2026-12-08); whole policies, interleaved with the
    torch path, 1.03-1.43x as fast (one reading 2.7x; benchmarks/RESULTS.md).
    Without it, the pixels are widened once to int32 positions in the flattened ``[k·C, 256]``
    LUTs (int64 would cost twice the bytes and a slower cast), which serve both."""

    def __init__(self, x: torch.Tensor):
        k, c, h, w = x.shape
        self.shape = x.shape
        self.cv2 = opencv() if x.device.type == "cpu" and 0 < h * w < OPENCV_BELOW else None
        if self.cv2 is not None:
            self.planes = x.contiguous().numpy().reshape(k * c, h, w)
        else:
            offsets = torch.arange(k * c, dtype=torch.int32, device=x.device).mul_(256).view(k * c, 1)
            self.flat = x.reshape(k * c, h * w).to(torch.int32).add_(offsets).view(-1)

    def histograms(self) -> torch.Tensor:
        """Each image's per-channel 256-bin histograms ``[k, C, 256]`` (int32)."""
        k, c = self.shape[:2]
        if self.cv2 is None:
            return torch.bincount(self.flat, minlength=k * c * 256).view(k, c, 256).to(torch.int32)
        counts = [self.cv2.calcHist([plane], [0], None, [256], [0, 256]) for plane in self.planes]
        return torch.from_numpy(np.stack(counts).astype(np.int32)).view(k, c, 256)

    def look_up(self, lut: torch.Tensor) -> torch.Tensor:
        """Each pixel through its image's and channel's LUT (``lut`` ``[k, C, 256]`` uint8)."""
        if self.cv2 is None:
            return lut.reshape(-1).index_select(0, self.flat).view(self.shape)
        table = lut.reshape(-1, 256).contiguous().numpy()
        out = np.empty_like(self.planes)
        for i, plane in enumerate(self.planes):
            self.cv2.LUT(plane, table[i], dst=out[i])
        return torch.from_numpy(out).view(self.shape)


def _lut_lookup(name: str, x: torch.Tensor, mag: torch.Tensor, static_rows: torch.Tensor) -> torch.Tensor:
    """The pixel-wise op ``name`` on the uint8 images ``x`` as per-image LUTs and one lookup
    (:class:`_Planes`, which also gives Equalize its histograms). ``static_rows`` ``[k, 256]``: the
    tabulated LUTs of :data:`STATIC_LUT_OPS`."""
    k, c, h, w = x.shape
    planes = _Planes(x)
    if name == "Equalize":
        lut = kernels.equalize_lut(planes.histograms())
    elif name in STATIC_LUT_OPS:
        lut = static_rows.view(k, 1, 256).expand(k, c, 256)
    else:
        values = constant(tuple(range(256)), x.device, torch.uint8).view(1, 1, 1, 256).expand(k, c, 1, 256)
        lut = LUT_KERNELS[name](values.contiguous(), x, mag)
    return planes.look_up(lut)


#: Pixel-wise ops whose LUT follows from the per-channel histograms alone: two of them in a row,
#: one of them Equalize or AutoContrast (:data:`STAT_PAIR_OPS`), become one LUT and one lookup
#: (:func:`pair_first_slots`). (Contrast's mean needs the pixels. Posterize and Invert, cheaper
#: alone as their own uint8 arithmetic, still save a pass in a pair: whole policies interleaved,
#: AutoAugment 1.05x as fast with OpenCV, 1.06x without, the others 0.99-1.07x.)
PAIR_OPS = ("Brightness", "Solarize", "Equalize", "AutoContrast", "Posterize", "Invert")
STAT_PAIR_OPS = ("Equalize", "AutoContrast")


def _hist_luts(op: torch.Tensor, static_rows: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """Each image's LUT ``[k, C, 256]`` for its op in :data:`PAIR_OPS` (``op`` ``[k]`` :data:`OPS`
    ids) on images with the histograms ``hist`` ``[k, C, 256]``: the tabulated ``static_rows``
    ``[k, 256]``, or Equalize's :func:`torch_impl.kernels.equalize_lut`, or AutoContrast's kernel on
    the 256 values with each channel's least and greatest used value (what
    :func:`torch_impl.kernels.channel_min_max` finds on the pixels, in float32): the LUTs
    :func:`_lut_lookup` builds from the pixels."""
    k, c, _ = hist.shape
    lut = static_rows.view(k, 1, 256).expand(k, c, 256)
    is_eq, is_ac = op == OPS.index("Equalize"), op == OPS.index("AutoContrast")
    if bool(is_eq.any()):
        lut = torch.where(is_eq.view(k, 1, 1), kernels.equalize_lut(hist.to(torch.int32)), lut)
    if bool(is_ac.any()):
        used = hist > 0
        lo = used.to(torch.uint8).argmax(dim=-1, keepdim=True)
        hi = 255 - used.flip(-1).to(torch.uint8).argmax(dim=-1, keepdim=True)
        values = constant(tuple(range(256)), hist.device, torch.uint8).view(1, 1, 1, 256).expand(k, c, 1, 256)
        ac = kernels.autocontrast(values.contiguous(), (lo.to(torch.float32).view(k, c, 1, 1),
                                                       hi.to(torch.float32).view(k, c, 1, 1)))
        lut = torch.where(is_ac.view(k, 1, 1), ac.view(k, c, 256), lut)
    return lut


def _pair_lookup(x: torch.Tensor, op: torch.Tensor, static_rows: torch.Tensor) -> torch.Tensor:
    """Two pixel-wise ops (:data:`PAIR_OPS`, ``op`` ``[k, 2]``) on uint8 images ``x`` as one LUT
    and one lookup: the second op's histograms are the first's pushed through its LUT (the
    second's input, counted exactly), and the LUT is the second's after the first's; so the same
    bytes as one op after the other. ``static_rows`` ``[k, 2, 256]``: the tabulated LUTs."""
    planes = _Planes(x)
    hist = planes.histograms()
    first = _hist_luts(op[:, 0], static_rows[:, 0], hist).to(torch.int64)
    hist = torch.zeros_like(hist).scatter_add_(-1, first, hist)
    return planes.look_up(_hist_luts(op[:, 1], static_rows[:, 1], hist).gather(-1, first))


def pair_first_slots(images: torch.Tensor, op: torch.Tensor, static_luts) -> tuple:
    """For uint8 images (``static_luts`` ``[N, S, 256]`` not None) whose first two slots (``op``
    ``[N, S]`` :data:`OPS` ids) are both ops of :data:`PAIR_OPS`, one of them in
    :data:`STAT_PAIR_OPS`: their results, as one LUT each
    (:func:`_pair_lookup`, a few images at a time), computed now from ``images``, and ``op`` with
    those two slots turned off (-1) for them. Returns ``(op, [(rows, results), ...])`` for
    :func:`put_rows` after the slots; ``(op, [])`` when no image qualifies."""
    if static_luts is None or op.shape[1] < 2 or images.numel() == 0:
        return op, []
    pair, stat = {OPS.index(name) for name in PAIR_OPS}, {OPS.index(name) for name in STAT_PAIR_OPS}
    rows = [i for i, (a, b) in enumerate(op[:, :2].tolist()) if a in pair and b in pair and (a in stat or b in stat)]
    if not rows:
        return op, []
    idx = torch.tensor(rows, dtype=torch.int64, device=images.device)
    size = chunk_size(images, len(rows))
    done = []
    for i in range(0, len(rows), size):
        r = idx[i:i + size]
        done.append((r, _pair_lookup(images.index_select(0, r), op.index_select(0, r)[:, :2],
                                     static_luts.index_select(0, r)[:, :2])))
    op = op.clone()
    op[idx, :2] = -1
    return op, done


_WARPS: dict = {}  # (kind, H, W, the 6 matrix entries) -> a grid [H, W, 2] or picks [H·W]
_WARP_BYTES = [0]
_WARP_LOCK = threading.Lock()
#: The most bytes of warp grids and nearest picks kept (first in, first out): 48 MB, e.g. 120
#: bilinear grids or 480 nearest picks (uint16) at 224 px (RandAugment draws 10 matrices,
#: AutoAugment's ImageNet policy 18, AugMix 100, TrivialAugmentWide 310).
WARP_CACHE_BYTES = 48 << 20


def _per_matrix(kind: str, images: torch.Tensor, matrix: torch.Tensor, compute) -> torch.Tensor:
    """``compute(images, matrix)`` ``[k, ...]``, each image's row cached per (kind, size, matrix):
    the policies' matrices come from a few tabulated bins. For :func:`regroupable` images a row
    does not depend on the other images of the call, so a cached row is the computed one. Each
    missing matrix is computed once per call; the cache is changed under a lock."""
    k, _, h, w = images.shape
    keys = [(kind, h, w, *row) for row in matrix.tolist()]
    with _WARP_LOCK:
        found = [_WARPS.get(key) for key in keys]
    first: dict = {}  # each missing key -> the first image with it
    for i, (key, row) in enumerate(zip(keys, found)):
        if row is None and key not in first:
            first[key] = i
    if first:
        idx = torch.tensor(list(first.values()), dtype=torch.int64, device=images.device)
        rows = compute(images.index_select(0, idx), matrix.index_select(0, idx))
        new = {key: rows[j].clone() for j, key in enumerate(first)}
        with _WARP_LOCK:
            for key, row in new.items():
                size = row.numel() * row.element_size()
                old = _WARPS.pop(key, None)
                _WARP_BYTES[0] -= 0 if old is None else old.numel() * old.element_size()
                while _WARPS and _WARP_BYTES[0] + size > WARP_CACHE_BYTES:
                    old = _WARPS.pop(next(iter(_WARPS)))
                    _WARP_BYTES[0] -= old.numel() * old.element_size()
                if size <= WARP_CACHE_BYTES:
                    _WARPS[key] = row
                    _WARP_BYTES[0] += size
        found = [new[key] if row is None else row for key, row in zip(keys, found)]
    return found[0].unsqueeze(0) if k == 1 else torch.stack(found)


def _picks(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Each image's nearest-neighbour pick ``[k, H·W]`` for the inverse matrices ``matrix``
    ``[k, 6]``: the flat index of the input pixel ``grid_sample`` picks, plus 1, or 0 outside.
    Found by ``grid_sample`` itself on the image of the values ``1 .. H·W`` (exact in float32),
    with :func:`torch_impl.kernels.affine_grid`'s grid, so the picks are the warp's own, tie for tie.
    Stored as uint16 where ``H·W`` < 65,536 (half the bytes of int32, so the cache holds twice as
    many: TrivialAugmentWide's ~300 matrices at 224 px fit), else int32."""
    k, _, h, w = images.shape
    values = torch.arange(1, h * w + 1, dtype=torch.float32, device=images.device).view(1, 1, h, w)
    picks = F.grid_sample(values.expand(k, 1, h, w), kernels.affine_grid(images, matrix), mode="nearest",
                          padding_mode="zeros", align_corners=False)
    return picks.view(k, h * w).to(torch.int32 if h * w >= 1 << 16 else torch.uint16)


def _warp_nearest_uint8(images: torch.Tensor, matrix: torch.Tensor, fill) -> torch.Tensor:
    """:func:`torch_impl.kernels.affine_nearest` on uint8 images as one gather: each channel with
    its fill pixel in front (the kernel's: the fill rounded half to even, or 0), indexed by
    :func:`_picks` (cached). Nearest sampling copies pixels, so the same bytes."""
    k, c, h, w = images.shape
    hw = h * w
    src = torch.empty(k, c, hw + 1, dtype=torch.uint8, device=images.device)
    src[:, :, 1:] = images.view(k, c, hw)
    if fill is None:
        src[:, :, 0] = 0
    else:
        pixel = torch.tensor(fill, dtype=torch.float32, device=images.device).round_().to(torch.uint8)
        src[:, :, 0] = pixel.view(1, -1).expand(k, c)
    # each image's picks expanded over its channels (a stride-0 view, not a copy): whole policies
    # took 0.71-0.96x the time of ``index_select`` on flat int32 positions built per call
    picks = _per_matrix("picks", images, matrix, _picks).to(torch.int64).view(k, 1, hw).expand(k, c, hw)
    return torch.gather(src, 2, picks).view(k, c, h, w)


def apply_slot(images, op, mag, fill, matrix, static_luts, inplace: bool, interpolation: str) -> torch.Tensor:
    """One operation slot, eagerly: ``op`` ``[N]`` (:data:`OPS` ids, -1: none), ``mag`` ``[N]`` float64
    signed magnitudes, ``matrix`` ``[N, 6]`` the geometric ops' inverse matrices, ``static_luts``
    ``[N, 256]`` (uint8 images; None: no LUTs) the tabulated LUTs. Returns a new batch, or
    ``images`` itself written in place if ``inplace`` (then contiguous and ours)."""
    ops = op.tolist()
    keep = [i for i, o in enumerate(ops) if o < 0]
    if inplace:
        out = images
    elif 2 * len(keep) >= len(ops):
        out = images.clone(memory_format=torch.contiguous_format)
    else:  # most rows are written below: copy only the others (a batch-sized clone saved)
        out = torch.empty(images.shape, dtype=images.dtype, device=images.device)
        if keep:
            idx = torch.tensor(keep, dtype=torch.int64, device=images.device)
            put_rows(out, idx, images.index_select(0, idx))
    groups: dict = {}  # "geo" or an op name -> the images that drew it
    for i, o in enumerate(ops):
        if o >= 0:
            groups.setdefault("geo" if OPS[o] in GEOMETRIC_OPS else OPS[o], []).append(i)
    for name, rows in groups.items():
        idx = torch.tensor(rows, dtype=torch.int64, device=images.device)
        size = chunk_size(images, len(rows))
        for i in range(0, len(rows), size):
            r = idx[i:i + size]
            x = images.index_select(0, r)  # read before ``out`` (maybe ``images``) is written
            if name == "geo" and interpolation == "nearest" and regroupable(images) and x[0, 0].numel() < PICKS_BELOW:
                y = _warp_nearest_uint8(x, matrix.index_select(0, r), fill)
            elif name == "geo" and interpolation == "bilinear" and regroupable(images):  # on a cached grid
                m = matrix.index_select(0, r)
                y = kernels.affine(x, m, fill, interpolation, grid=_per_matrix("grid", x, m, kernels.affine_grid))
            elif name == "geo":
                y = kernels.affine(x, matrix.index_select(0, r), fill, interpolation)
            elif static_luts is not None and name in UINT8_KERNELS:
                y = UINT8_KERNELS[name](x, mag.index_select(0, r))
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
