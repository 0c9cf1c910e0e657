"""Framework-free image data sets as NumPy uint8 arrays, ``[N, H, W, C]``.

Three sources, one result type (:class:`ImageDataset`):

* :func:`load_digits` — the embedded default. scikit-learn's digits (1,797 grey 8×8 images
  with values 0..16, ships inside scikit-learn, no download), turned into 32×32 RGB uint8:
  each value ``v`` becomes ``round(v · 255 / 16)``, every pixel is repeated into a 4×4 block
  (nearest-neighbour upsampling, exact) and the grey channel is copied to R, G and B. The split
  is fixed, stratified and documented: within each class, the images taken in scikit-learn's
  order are numbered 0, 1, 2, ...; number ``j`` is a **test** image when ``j % 5 == 4``, a
  training image otherwise — 1,442 train and 355 test images (20% of each class, rounded down).
* :func:`load_cifar10` — CIFAR-10 from an image-folder directory (``train/<class>/*``,
  ``test/<class>/*``), straight from a ``.tar.gz`` archive with that layout (such as
  the project's ``shared/data/cifar10-jpeg.tar.gz``), or from torchvision's ``cifar-10-batches-py``
  pickles, read with an unpickler that builds nothing but NumPy arrays, lists, strings and
  numbers (a batch file cannot run code). Nothing is downloaded here (the CLI's ``--download``
  asks torchvision, lazily).
* :func:`load_image_folder` — the same folder / archive reader for the user's own data
  (classes are the sorted sub-directory names; every image is decoded as
  :func:`twintricks.data.decode.decode_rgb` does — RGB the way ``ImageFolder`` sees it, a
  corrupt file or a decompression bomb a one-line ``BadImageError`` naming it — and, if
  ``image_size`` is given, resized to it with bilinear filtering). Large or many-sized image sets
  should stream instead (:mod:`twintricks.data`): this path holds every image in memory.

Archive members are read one at a time and each is capped at :data:`MAX_MEMBER_BYTES` as its tar
header declares it (a small ``.tar.gz`` can inflate a member to gigabytes): a larger member is
refused by name before it is read.

Decoded data is cached as an uncompressed ``.npz`` of uint8 arrays in the cache folder
(:func:`cache_dir`: ``$TWINTRICKS_CACHE_DIR``, else ``$XDG_CACHE_HOME/twintricks`` or
``~/.cache/twintricks``), never beside the data. The cache records the source's signature — for
an archive its path, size and modification time; for a folder its path and every file's relative
path, size and modification time — and is rebuilt when it changes; it is written to a temporary
file and renamed, so a killed run never leaves a half-written cache. Loading it takes a fraction
of a second.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from twintricks.files import atomic_write_bytes

__all__ = [
    "ImageDataset",
    "MAX_MEMBER_BYTES",
    "cache_dir",
    "CIFAR10_CLASSES",
    "DATASETS",
    "load_dataset",
    "load_digits",
    "load_cifar10",
    "load_image_folder",
    "channel_stats",
]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
DATASETS = ("digits", "cifar10", "folder")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".webp", ".tif", ".tiff")
_CACHE_VERSION = 2
#: The largest archive member read (bytes, as its tar header declares it).
MAX_MEMBER_BYTES = 64 << 20


@dataclass(frozen=True)
class ImageDataset:
    """A classification data set held in host memory.

    Attributes:
        name: short name (``"digits"``, ``"cifar10"``, a folder name).
        train_images, test_images: ``[N, H, W, C]`` uint8.
        train_labels, test_labels: ``[N]`` int32 class indices.
        classes: class names, index order.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple = field(default=())

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"`{split}_images` must be uint8 [N, H, W, C], got {x.dtype} {x.shape}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"`{split}_labels` must be [{x.shape[0]}], got {y.shape}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return tuple(self.train_images.shape[1:])

    def subset(self, train: int | None = None, test: int | None = None) -> "ImageDataset":
        """The first ``train`` / ``test`` images of each split (a stratified-enough prefix when
        the split is shuffled; used by tests to shrink a data set)."""
        tr = slice(None) if train is None else slice(0, train)
        te = slice(None) if test is None else slice(0, test)
        return ImageDataset(
            self.name, self.train_images[tr], self.train_labels[tr], self.test_images[te],
            self.test_labels[te], self.classes,
        )


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 ``[N, H, W, C]`` images, on the [0, 1]
    scale (what the training step normalises with)."""
    c = images.shape[-1]
    values = np.arange(256, dtype=np.float64)
    mean, std = np.zeros(c), np.zeros(c)
    for ch in range(c):  # a 256-bin histogram per channel: exact, and no float copy of the data
        counts = np.bincount(images[..., ch].ravel(), minlength=256).astype(np.float64)
        n = max(counts.sum(), 1.0)
        mean[ch] = (counts * values).sum() / n
        std[ch] = np.sqrt((counts * np.square(values - mean[ch])).sum() / n)
    return tuple(float(m / 255.0) for m in mean), tuple(float(max(s / 255.0, 1e-3)) for s in std)


# ----------------------------------------------------------------------------- digits


def load_digits() -> ImageDataset:
    """scikit-learn's digits as 32×32 RGB uint8 with the fixed split described in the module doc."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    grey = np.rint(d.images.astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)  # [N, 8, 8]
    big = np.repeat(np.repeat(grey, 4, axis=1), 4, axis=2)  # [N, 32, 32]
    rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=-1))
    labels = d.target.astype(np.int32)
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each image within its class
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    is_test = rank % 5 == 4
    return ImageDataset(
        "digits", rgb[~is_test], labels[~is_test], rgb[is_test], labels[is_test],
        tuple(str(c) for c in range(10)),
    )


# ----------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where decoded data sets are cached: ``$TWINTRICKS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/twintricks``, else ``~/.cache/twintricks``."""
    override = os.environ.get("TWINTRICKS_CACHE_DIR")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "twintricks"


def _source_signature(path: Path) -> str:
    """A digest of what the decoded data depends on (see the module doc); a folder's signature
    does not depend on the folder's own modification time, which writing into it would change."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}:{path.resolve()}".encode())
    if path.is_dir():
        for dirpath, _, files in sorted(os.walk(path, followlinks=True)):
            for name in sorted(files):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{os.path.relpath(os.path.join(dirpath, name), path)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    else:
        st = path.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _cache_file(path: Path, tag: str) -> Path:
    digest = hashlib.sha1(f"{path.resolve()}:{tag}".encode()).hexdigest()[:16]
    return cache_dir() / f"{path.name.split('.')[0] or 'data'}-{digest}.npz"


def _read_cache(path: Path, tag: str, sig: str) -> ImageDataset | None:
    cand = _cache_file(path, tag)
    if not cand.is_file():
        return None
    try:
        with np.load(cand, allow_pickle=False) as z:
            if str(z["signature"]) != sig:
                return None
            return ImageDataset(
                str(z["name"]), z["train_images"], z["train_labels"], z["test_images"],
                z["test_labels"], tuple(str(c) for c in z["classes"]),
            )
    except Exception:  # a damaged cache is rebuilt, never trusted
        return None


def _write_cache(path: Path, tag: str, sig: str, ds: ImageDataset) -> Path | None:
    """Write ``ds`` atomically (:func:`twintricks.files.atomic_write_bytes`); None if the cache
    folder cannot be written (the data set is then simply not cached)."""
    buf = io.BytesIO()
    np.savez(
        buf, signature=np.array(sig), name=np.array(ds.name), classes=np.array(ds.classes),
        train_images=ds.train_images, train_labels=ds.train_labels,
        test_images=ds.test_images, test_labels=ds.test_labels,
    )
    cand = _cache_file(path, tag)
    try:
        cand.parent.mkdir(parents=True, exist_ok=True)
        if not cand.parent.stat().st_mode & stat.S_IWUSR:
            return None  # a read-only folder (root would bypass the permission; respect it)
        atomic_write_bytes(cand, buf.getvalue())
        return cand
    except OSError:
        return None


def _cached(path: Path, tag: str, build, use_cache: bool) -> ImageDataset:
    if not use_cache:
        return build()
    sig = _source_signature(path)
    ds = _read_cache(path, tag, sig)
    if ds is None:
        ds = build()
        _write_cache(path, tag, sig, ds)
    return ds


# ----------------------------------------------------------------------------- image folders


def _decode(data: bytes, image_size: tuple[int, int] | None, name: str) -> np.ndarray:
    from PIL import Image

    from twintricks.data.decode import decode_rgb

    im = decode_rgb(data, name)  # BadImageError (a ValueError) naming the file
    if image_size is not None and im.size != (image_size[1], image_size[0]):
        im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _split_key(parts: Sequence[str]) -> tuple[str, str] | None:
    """``(..., 'train'|'test', class, file)`` → ``(split, class)``; anything else → None."""
    if len(parts) < 3 or not parts[-1].lower().endswith(_IMAGE_EXTS):
        return None
    split, cls = parts[-3], parts[-2]
    if split not in ("train", "test"):
        return None
    return split, cls


def _assemble(name, items, classes, image_size) -> ImageDataset:
    """``items``: iterable of ``(split, class, sort_key, bytes)``, decoded as they come (only
    the decoded images are held, never every encoded file at once)."""
    per_split: dict[str, list] = {"train": [], "test": []}
    for split, cls, key, data in items:
        per_split[split].append((cls, key, _decode(data, image_size, key)))
    found = sorted({c for v in per_split.values() for c, _, _ in v})
    if classes is None:
        classes = tuple(found)
    else:
        classes = tuple(classes)
        unknown = set(found) - set(classes)
        if unknown:
            raise ValueError(f"data set has classes {sorted(unknown)} not in the expected {list(classes)}")
    if not per_split["train"] or not per_split["test"]:
        raise ValueError(
            f"no images found under train/<class>/ and test/<class>/ in {name!r} "
            "(expected an image-folder layout: train/<class>/*.jpg, test/<class>/*.jpg)"
        )
    index = {c: i for i, c in enumerate(classes)}
    arrays = {}
    for split, rows in per_split.items():
        rows.sort(key=lambda r: (index[r[0]], r[1]))
        imgs = [im for _, _, im in rows]
        shapes = {im.shape for im in imgs}
        if len(shapes) != 1:
            raise ValueError(
                f"images in {name!r} have different sizes {sorted(shapes)[:4]}...; pass image_size=(H, W)"
            )
        arrays[split] = (np.stack(imgs), np.array([index[c] for c, _, _ in rows], dtype=np.int32))
    return ImageDataset(name, *arrays["train"], *arrays["test"], classes)


def _folder_items(root: Path):
    for split in ("train", "test"):
        base = root / split
        if not base.is_dir():
            continue
        for cls_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for f in sorted(cls_dir.iterdir()):
                if f.suffix.lower() in _IMAGE_EXTS:
                    yield split, cls_dir.name, f"{split}/{cls_dir.name}/{f.name}", f.read_bytes()


def _archive_items(archive: Path):
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            if not m.isfile():
                continue
            key = _split_key(m.name.split("/"))
            if key is None:
                continue
            if m.size > MAX_MEMBER_BYTES:
                raise ValueError(
                    f"{str(archive)!r}: member {m.name!r} declares {m.size} bytes, more than the "
                    f"{MAX_MEMBER_BYTES >> 20} MiB an image may have (twintricks.datasets.MAX_MEMBER_BYTES)"
                )
            f = tar.extractfile(m)
            if f is not None:
                yield key[0], key[1], m.name, f.read()


def _find_folder_root(path: Path) -> Path:
    """``path`` itself if it has train/ and test/, else its only sub-directory that does."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        return path
    subs = [p for p in path.iterdir() if p.is_dir() and (p / "train").is_dir() and (p / "test").is_dir()]
    if len(subs) == 1:
        return subs[0]
    raise ValueError(f"{str(path)!r} is not an image-folder data set (no train/ and test/ sub-directories)")


def load_image_folder(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
    name: str | None = None,
    cache: bool = True,
) -> ImageDataset:
    """An image-folder data set from a directory or a tar archive (``.tar``, ``.tar.gz``, ``.tgz``).

    Layout: ``[<prefix>/]train/<class>/<image>`` and ``[<prefix>/]test/<class>/<image>``. Classes
    are the sorted class-directory names unless ``classes`` gives the order. Images are sorted by
    class, then file name, so the arrays do not depend on the file system's order.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data path {str(p)!r} does not exist")
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    tag = "folder" if size is None else f"folder{size[0]}x{size[1]}"
    nm = name or p.name.split(".")[0]
    if p.is_dir():
        root = _find_folder_root(p)
        return _cached(root, tag, lambda: _assemble(nm, _folder_items(root), classes, size), cache)
    if tarfile.is_tarfile(p):
        return _cached(p, tag, lambda: _assemble(nm, _archive_items(p), classes, size), cache)
    raise ValueError(f"{str(p)!r} is neither a directory nor a tar archive")


# ----------------------------------------------------------------------------- CIFAR-10


def _numpy_globals() -> dict:
    """The NumPy constructors a CIFAR-10 batch may name, by the names pickles use for them."""
    try:  # NumPy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray, numeric
    found = {
        "_reconstruct": multiarray._reconstruct,  # arrays, as Python 2's cPickle wrote the batches
        "scalar": multiarray.scalar,  # NumPy scalars, and arrays pickled by Python 3
        "_frombuffer": getattr(numeric, "_frombuffer", None),
    }
    out = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        for name, fn in found.items():
            if fn is not None:
                out[(f"{mod}.{'numeric' if name == '_frombuffer' else 'multiarray'}", name)] = fn
    return out


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler for ``cifar-10-batches-py``: a dict of a uint8 array, a list of int labels and
    strings, written by Python 2's cPickle (protocol 2). Only NumPy's array, dtype and scalar
    constructors may be named; any other global (``os.system``, ``builtins.eval``, ...) is refused,
    so a crafted batch file cannot run code."""

    _ALLOWED = _numpy_globals()

    def find_class(self, module, name):
        fn = self._ALLOWED.get((module, name))
        if fn is None:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name} (a CIFAR-10 batch holds only NumPy arrays, "
                "lists, strings and numbers)"
            )
        return fn


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 32, 32, 3] uint8, labels [N] int32)`` of one python batch file."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # UnpicklingError, EOFError, a constructor's error on a damaged file
        raise ValueError(f"{str(path)!r} is not a readable CIFAR-10 python batch: {exc}") from None
    data = d.get("data") if isinstance(d, dict) else None
    labels = d.get("labels") if isinstance(d, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{str(path)!r}: a CIFAR-10 batch's 'data' must be a uint8 [N, 3072] array, got {got}")
    y = np.asarray(labels if isinstance(labels, (list, tuple, np.ndarray)) else [None])
    if y.shape != (data.shape[0],) or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 9)):
        raise ValueError(f"{str(path)!r}: a CIFAR-10 batch's 'labels' must be {data.shape[0]} integers in 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int32)


def _load_cifar_batches(root: Path) -> ImageDataset:
    def read(name):
        return _read_cifar_batch(root / name)

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    tx, ty = read("test_batch")
    return ImageDataset(
        "cifar10", np.ascontiguousarray(np.concatenate([p[0] for p in parts])),
        np.concatenate([p[1] for p in parts]), np.ascontiguousarray(tx), ty, CIFAR10_CLASSES,
    )


def load_cifar10(path: str | os.PathLike, *, cache: bool = True) -> ImageDataset:
    """CIFAR-10 from ``path``: a ``cifar-10-batches-py`` directory (or its parent, as torchvision
    lays it out), an image-folder directory, or a tar archive of one (e.g. the shared
    ``cifar10-jpeg.tar.gz``). Class order is CIFAR-10's (alphabetical)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"CIFAR-10 path {str(p)!r} does not exist (give a cifar-10-batches-py directory, an "
            "image-folder directory or a .tar.gz of one; `--download` fetches it with torchvision)"
        )
    if p.is_dir():
        for cand in (p, p / "cifar-10-batches-py"):
            if (cand / "data_batch_1").is_file() and (cand / "test_batch").is_file():
                # torchvision's pickles are already uint8 arrays: no cache needed (loads in < 1 s)
                return _load_cifar_batches(cand)
    ds = load_image_folder(p, classes=CIFAR10_CLASSES, name="cifar10", cache=cache)
    return ds


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **kwargs) -> ImageDataset:
    """Load a data set by name: ``"digits"`` (no ``data_dir``), ``"cifar10"`` or ``"folder"``."""
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        if data_dir is None:
            raise ValueError("`data_dir` is required for the cifar10 data set")
        return load_cifar10(data_dir, **kwargs)
    if name == "folder":
        if data_dir is None:
            raise ValueError("`data_dir` is required for an image-folder data set")
        return load_image_folder(data_dir, **kwargs)
    raise ValueError(f"`dataset` must be one of {list(DATASETS)}, got {name!r}")
