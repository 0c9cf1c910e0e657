"""Per-image draws and pixel work of the input pipeline: the crop law, resizing, the eval crop.

Draws (:func:`image_rng`) come from NumPy's counter-based Philox generator keyed by the run's
``seed`` with the counter starting at ``(0, index, epoch, stream)``: image ``index`` of epoch
``epoch`` gets the same numbers whichever process or worker decodes it and whatever the world
size, and no two (image, epoch, stream) share a stream (each uses the counter's first word, up to
2⁶⁴ blocks). Streams: :data:`CROP`, :data:`FLIP`; the epoch's order uses :data:`ORDER`.

Training (:func:`train_crop`): torchvision's ``RandomResizedCrop`` sampling law on the *decoded
original* (:func:`sample_crop`: area ``scale``, aspect ``ratio`` drawn in log space, 10 attempts,
then the centre fallback of :func:`twintricks.geometry.fallback_crop_box`), the box resized to
``image_size × image_size`` with antialiased bilinear filtering (Pillow's ``resize`` of the
cropped box, ``reducing_gap=None``), then a horizontal flip with probability ``flip_p``.

Evaluation (:func:`eval_crop`): torchvision's ImageNet evaluation — the shorter side resized to
:func:`eval_resize_size` ``= floor(image_size / 0.875)`` (256 for 224, as torchvision's reference
recipe; timm's ``crop_pct`` rounding), the longer side to ``int(resize · long / short)`` as
``v2.Resize(int)``, antialiased bilinear, then the centre ``image_size × image_size`` crop
(``v2.CenterCrop``: top ``round((h - size) / 2)``).

.. note::
    **Bit-exact with torchvision's reference pipeline.** ``ImageFolder`` hands PIL images to the
    transforms, and torchvision's ``v2.RandomResizedCrop`` / ``v2.Resize`` / ``v2.functional.
    resized_crop`` on a PIL image call Pillow's ``resize`` exactly as here: on the same box the
    bytes are identical (``tests/test_data_transforms.py`` checks it, train and eval).

.. warning::
    Against torchvision's *tensor* kernel (``v2.functional.resized_crop(..., antialias=True)`` on
    the decoded uint8 tensor) the result is not bit-exact: both compute the same separable filter
    with different fixed-point precision (Pillow's weights have 22 fractional bits, torch's are
    int16). Each of the two passes (horizontal, then vertical, each rounded to uint8) is within one
    level, so a pixel is within two; on JPEG photograph-like images resized to 224, 1–3 % of the
    values are one level off and about one in a million two levels (``tests/test_data_transforms.py``;
    figures in ``benchmarks/RESULTS.md``).

Images are HWC uint8 RGB (``PIL.Image`` in, NumPy out).

References:
    Szegedy et al., "Going deeper with convolutions", CVPR 2015 (the crop law).
    torchvision ``transforms.v2.RandomResizedCrop.make_params`` and ``v2.functional.resized_crop``.
"""

from __future__ import annotations

import math

import numpy as np

from twintricks.checks import check_int, check_size
from twintricks.geometry import check_scale_ratio, fallback_crop_box

__all__ = [
    "CROP", "FLIP", "ORDER",
    "image_rng", "epoch_order", "sample_crop", "resized_crop", "train_crop", "eval_resize_size", "eval_crop",
]

#: Stream ids (the counter's last word) of :func:`image_rng`.
CROP, FLIP, ORDER = 0, 1, 2
_U64 = (1 << 64) - 1


def image_rng(seed: int, epoch: int, index: int, stream: int) -> np.random.Generator:
    """A generator for one (image, epoch, stream): Philox keyed by ``seed`` (taken mod 2⁶⁴),
    counter ``(0, index, epoch, stream)``."""
    bits = np.random.Philox(key=int(seed) & _U64, counter=[0, int(index) & _U64, int(epoch) & _U64, int(stream)])
    return np.random.Generator(bits)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The epoch's order of the ``n`` images: a permutation (int64 ``[n]``) drawn from
    :func:`image_rng` ``(seed, epoch, 0, ORDER)``."""
    return image_rng(seed, epoch, 0, ORDER).permutation(n)


def sample_crop(rng: np.random.Generator, height: int, width: int, scale, ratio) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop`` box ``(top, left, h, w)`` for a ``height × width`` image.

    Up to 10 attempts: area ``uniform(scale) · H · W``, aspect ``exp(uniform(log ratio))``,
    ``w = round(sqrt(area · aspect))``, ``h = round(sqrt(area / aspect))``; the first that fits
    is placed uniformly (``top ~ randint(0, H - h + 1)``, ``left ~ randint(0, W - w + 1)``);
    otherwise the centre fallback. ``scale`` and ``ratio`` are checked ``(min, max)`` pairs.
    """
    if not (hasattr(rng, "uniform") and hasattr(rng, "integers")):  # a numpy.random.Generator, or draws like it
        raise TypeError(f"`rng` must be a numpy.random.Generator, got {type(rng).__name__}")
    height, width = check_int("height", height, low=1), check_int("width", width, low=1)
    scale, ratio = check_scale_ratio(scale, ratio)
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return fallback_crop_box(height, width, ratio)


def _resized_box(image, box: tuple[int, int, int, int], size: tuple[int, int]):
    """The ``box = (top, left, h, w)`` of a PIL ``image`` resized to ``size = (H, W)``, as a PIL image.

    The box is cut first, then resized (Pillow's ``resize`` with ``box=`` would read pixels
    outside the box at its edges; torchvision crops first). Antialiased bilinear, no reducing gap.
    """
    from PIL import Image

    top, left, h, w = box
    part = image if (top, left, h, w) == (0, 0, image.height, image.width) else image.crop((left, top, left + w, top + h))
    if (h, w) != tuple(size):
        part = part.resize((size[1], size[0]), Image.BILINEAR, reducing_gap=None)
    return part


def resized_crop(image, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """The ``box = (top, left, h, w)`` of a PIL ``image`` resized to ``size = (H, W)``: HWC uint8
    (box cut first, as torchvision; antialiased bilinear, no reducing gap)."""
    _check_pil("image", image)
    size = check_size("size", size)
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise TypeError(f"`box` must be (top, left, h, w), got {box!r}")
    top, left, h, w = (check_int(f"box[{i}]", v) for i, v in enumerate(box))
    if not (0 <= top and 0 <= left and 0 < h and 0 < w and top + h <= image.height and left + w <= image.width):
        raise ValueError(f"`box` {tuple(box)} must lie inside the {image.height}x{image.width} image with h, w > 0")
    return np.asarray(_resized_box(image, (top, left, h, w), size))


def _check_pil(name: str, image) -> None:
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError(f"`{name}` must be a decoded PIL image (decode_rgb), got {type(image).__name__}")


def train_crop(image, rng_crop: np.random.Generator, rng_flip: np.random.Generator, image_size: int, *,
               scale, ratio, flip_p: float) -> np.ndarray:
    """Training view of one decoded image: :func:`sample_crop` → :func:`resized_crop` to
    ``image_size`` → flip with probability ``flip_p`` (one ``uniform() < flip_p`` draw from
    ``rng_flip``, always made). HWC uint8, C-contiguous (one copy out of Pillow: the flip is
    Pillow's exact mirror, not a strided NumPy copy, which costs more than the mirror itself)."""
    from PIL import Image

    box = sample_crop(rng_crop, image.height, image.width, scale, ratio)
    out = _resized_box(image, box, (image_size, image_size))
    if rng_flip.uniform() < flip_p:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out)


def eval_resize_size(image_size: int) -> int:
    """The shorter side before the eval centre crop: ``floor(image_size / 0.875)``, computed
    exactly as ``8 · image_size // 7``."""
    return 8 * int(image_size) // 7


def eval_crop(image, image_size: int) -> np.ndarray:
    """Evaluation view of one decoded image (see the module doc): HWC uint8 ``[S, S, 3]``,
    ``S = image_size``, C-contiguous."""
    from PIL import Image

    _check_pil("image", image)
    image_size = check_int("image_size", image_size, low=1)
    resize = eval_resize_size(image_size)
    h, w = image.height, image.width
    if h <= w:
        new_h, new_w = resize, int(resize * w / h)
    else:
        new_h, new_w = int(resize * h / w), resize
    if (new_h, new_w) != (h, w):
        image = image.resize((new_w, new_h), Image.BILINEAR, reducing_gap=None)
    arr = np.asarray(image)  # both sides >= resize > image_size: the crop always fits
    top = int(round((new_h - image_size) / 2.0))
    left = int(round((new_w - image_size) / 2.0))
    return np.ascontiguousarray(arr[top:top + image_size, left:left + image_size])
