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

``decode_rgb`` turns Pillow's warning into an error with ``warnings.catch_warnings``, which is
process-wide state: the loader calls it from one thread per process (its worker processes, or
the calling thread with ``workers=0``).
"""

from __future__ import annotations

import io
import re
import warnings

from twintricks.data.errors import BadImageError

__all__ = ["IMAGE_EXTENSIONS", "decode_rgb", "has_image_extension"]

#: The file extensions of images (compared in lower case): torchvision's ``IMG_EXTENSIONS``.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def has_image_extension(name: str) -> bool:
    """Whether ``name`` ends with one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


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
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadImageError(name, "empty file (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that: both are errors here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # convert("RGB") of a palette image with transparency warns that RGBA would keep it;
            # ImageFolder drops the transparency the same way, so the warning says nothing new
            warnings.filterwarnings("ignore", message="Palette images with Transparency", category=UserWarning)
            im = Image.open(io.BytesIO(data))  # reads the header only; the bomb check is here
            rgb = im if im.mode == "RGB" else im.convert("RGB")  # convert("RGB") of RGB is a copy
            rgb.load()
            return rgb
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        # Pillow's message: "Image size (N pixels) exceeds limit of ...": keep the count
        found = re.search(r"\d+ pixels", str(exc))
        size = found.group(0) if found else str(exc).splitlines()[0]
        raise BadImageError(
            name, f"decompression bomb: the header announces {size}, more than PIL.Image.MAX_IMAGE_PIXELS = {limit}"
        ) from None
    except UnidentifiedImageError:
        raise BadImageError(name, "not an image (Pillow cannot identify the format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's "truncated", "broken data stream", ...
        detail = " ".join(str(exc).split())
        raise BadImageError(name, f"truncated or corrupt image ({type(exc).__name__}: {detail})") from None
