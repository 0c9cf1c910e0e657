"""Decoding one image file to RGB, the way torchvision's ``ImageFolder`` sees it.

:func:`decode_rgb` opens the bytes with Pillow and converts them with ``.convert("RGB")`` —
torchvision's ``pil_loader`` (the default loader of ``ImageFolder``), so greyscale, CMYK, RGBA,
palette images (with or without transparency: the transparency is dropped, as there), 16-bit
PNGs and every other mode become the same RGB pixels that ``ImageFolder`` + ``ToImage`` give.

.. warning::
    Like ``ImageFolder``, the EXIF orientation tag is **not** applied: a photo stored sideways
    with an orientation tag is decoded sideways, as torchvision's reference recipe trains on it.

Every failure is a one-line :class:`~twintricks.data.errors.BadImageError` naming the file: an
empty file, bytes Pillow cannot identify as an image, a truncated or corrupt file (Pillow's own
check: leave ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` off, or Pillow pads a truncated file
silently), and a *decompression bomb*: an image whose header announces more than
``PIL.Image.MAX_IMAGE_PIXELS`` pixels (89,478,485 unless changed) is
refused before its pixels are decoded — an error, where Pillow alone would only warn.

``decode_rgb`` (through :func:`open_header`) makes that an error by checking the header's size itself, not by changing the
warning filters (process-wide state), so it is safe in several threads at once. Pillow still
prints its own ``DecompressionBombWarning`` (once per process, with the default filters) for an
image between one and two times the limit, before the error. Converting a palette image with
transparency prints Pillow's advice to convert to RGBA (once per process): ``ImageFolder`` drops
the transparency the same way.
"""

from __future__ import annotations

import io
import re

from twintricks.data.errors import BadImageError

__all__ = ["IMAGE_EXTENSIONS", "decode_rgb", "has_image_extension", "open_header"]

#: The file extensions of images (compared in lower case): torchvision's ``IMG_EXTENSIONS``.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def has_image_extension(name: str) -> bool:
    """Whether ``name`` ends with one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def open_header(data: bytes, name: str):
    """Open ``data`` with Pillow, reading the header only (no pixels): the ``PIL.Image`` whose
    ``size`` and ``mode`` are known. Raises :class:`BadImageError` for an empty file, bytes that
    are not an image, and a decompression bomb (both above Pillow's warning limit and its error
    limit). Cheap: what ``twintricks data pack`` checks of every image."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadImageError(name, "empty file (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        # Pillow raises above twice the limit and only warns above it; the size check below makes
        # both an error (without touching the warning filters, which are process-wide state:
        # this may run in several threads)
        im = Image.open(io.BytesIO(data))
        if limit is not None and im.width * im.height > limit:
            raise Image.DecompressionBombError(f"{im.width}x{im.height} = {im.width * im.height} pixels")
        return im
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        # ours says "WxH = N pixels"; Pillow's "Image size (N pixels) exceeds limit of ...": keep the count
        found = re.search(r"(\d+x\d+ = )?\d+ pixels", str(exc))
        size = found.group(0) if found else str(exc).splitlines()[0]
        raise BadImageError(
            name, f"decompression bomb: the header announces {size}, more than PIL.Image.MAX_IMAGE_PIXELS = {limit}"
        ) from None
    except UnidentifiedImageError:
        raise BadImageError(name, "not an image (Pillow cannot identify the format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a header Pillow recognises but cannot read
        raise BadImageError(name, f"truncated or corrupt image ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def decode_rgb(data: bytes, name: str):
    """Decode ``data`` (an encoded image file) to a loaded RGB ``PIL.Image``.

    Args:
        data: the file's bytes.
        name: the file's name, for the error message.

    Returns:
        a ``PIL.Image.Image`` in mode ``"RGB"`` (pixels decoded; ``np.asarray`` of it is HWC uint8).

    Raises:
        BadImageError: empty, not an image, truncated or corrupt, or a decompression bomb.
    """
    im = open_header(data, name)
    try:
        rgb = im if im.mode == "RGB" else im.convert("RGB")  # convert("RGB") of RGB is a copy
        rgb.load()
        return rgb
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's "truncated", "broken data stream", ...
        detail = " ".join(str(exc).split())
        raise BadImageError(name, f"truncated or corrupt image ({type(exc).__name__}: {detail})") from None
