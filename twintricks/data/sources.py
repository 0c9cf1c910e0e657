"""Random-access sources of encoded images: the index (names and labels only) and the bytes.

A source lists one split of a data set in a fixed order — its *index* — and reads any entry's
encoded bytes on demand; decoding happens later, in the loader's workers. Every source has the
same face (:class:`Source`): ``classes``, ``len()``, ``name(i)``, ``read(i) -> (bytes, label)``,
``fingerprint`` (a SHA-256 of the index: class names, then per image its name, byte size and
label — never a modification time, so copying or packing a data set keeps it), ``skipped``
(files left out at index time under ``on_bad_image="skip"``) and ``describe()`` (for
``config.json``).

This module holds the base class and the image folder (:class:`FolderSource`); tar shards live
in :mod:`twintricks.data.shards`, packed ArrayRecord files in :mod:`twintricks.data.packed`, and
:func:`twintricks.data.open_source` picks one by kind.

**Image folder.** ``PATH/train/<class>/…`` and ``PATH/test/<class>/…`` (``PATH/val/`` when there
is no ``test/``), torchvision's ``ImageFolder`` layout and order: classes are the sorted folder
names of ``train/`` (used for both splits, so a label means the same class in both; a class
folder of ``test/`` that ``train/`` lacks is an error), the images of a class are found by a
sorted recursive walk (symbolic links followed) and kept when their extension is an image's
(:data:`~twintricks.data.decode.IMAGE_EXTENSIONS`). Files and folders whose name starts with
``.`` are ignored (``.DS_Store``, ``.ipynb_checkpoints``; ``ImageFolder`` would make the latter a
class). Building the index costs one ``stat`` per file; it holds the relative paths as one
UTF-8 blob with int64 offsets and int32 labels: ``len(path) + 12`` bytes per image.

Checks at index time (no file is opened): a file without an image extension, an empty (0-byte)
file, a path that is not a regular file or cannot be examined (a dangling link, a FIFO, no
permission to list), and a class folder with no image. Under ``on_bad_image="error"`` the first
one raises :class:`~twintricks.data.errors.BadImageError` (the message counts the others); under
``"skip"`` they are left out and listed in ``skipped``. Content problems (corrupt bytes,
decompression bombs, unreadable files) are found when the image is decoded.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np

from twintricks.checks import check_choice
from twintricks.data.decode import IMAGE_EXTENSIONS, has_image_extension
from twintricks.data.errors import BadImageError, check_on_bad_image

__all__ = ["SPLITS", "Source", "TableSource", "FolderSource", "IndexHasher", "NameTable", "check_root", "raise_or_skip"]

#: The splits a source can open; ``"test"`` also finds a ``val/`` folder.
SPLITS = ("train", "test")


class IndexHasher:
    """The fingerprint of an index: SHA-256 over ``classes`` then one ``name\\tsize\\tlabel`` line
    per image, in index order. Sources that list the same files (a folder and its packed copy)
    get the same fingerprint."""

    def __init__(self, classes):
        self._h = hashlib.sha256(b"twintricks-index-v1\n")
        self._h.update(("\t".join(classes) + "\n").encode())

    def add(self, name: str, size: int, label: int) -> None:
        self._h.update(f"{name}\t{size}\t{label}\n".encode())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class NameTable:
    """Names (relative paths) packed as one UTF-8 blob plus int64 offsets, and int32 labels."""

    def __init__(self, names: list[str], labels):
        encoded = [n.encode() for n in names]
        self.offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.blob = b"".join(encoded)
        self.labels = np.asarray(labels, np.int32).reshape(len(encoded))

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        return self.blob[self.offsets[i]:self.offsets[i + 1]].decode()

    @property
    def nbytes(self) -> int:
        return len(self.blob) + self.offsets.nbytes + self.labels.nbytes


def raise_or_skip(problems: list[tuple[str, str]], on_bad_image: str) -> list[tuple[str, str]]:
    """Index-time problems ``[(file, reason)]``: raise the first (``"error"``) or return them."""
    if problems and on_bad_image == "error":
        file, reason = problems[0]
        more = f" (and {len(problems) - 1} more bad files)" if len(problems) > 1 else ""
        raise BadImageError(file, f"{reason}{more}; on_bad_image='skip' leaves bad files out and lists them")
    return list(problems)


class Source:
    """One split of a data set: an index of encoded images with labels.

    Subclasses set ``kind``, ``path``, ``split``, ``classes``, ``fingerprint``, ``skipped`` and
    implement ``__len__``, ``name(i)``, ``read(i)``; ``index_nbytes`` is what the index holds in
    memory. Instances are pickled into the loader's worker processes: they hold the index, never
    open files.
    """

    kind: str
    path: str
    split: str
    classes: tuple
    fingerprint: str
    skipped: list

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, i: int) -> str:
        """The image's name (as in error messages and ``skipped``)."""
        raise NotImplementedError

    def label(self, i: int) -> int:
        """The image's class index (without reading it)."""
        raise NotImplementedError

    def read(self, i: int) -> tuple[bytes, int]:
        """``(encoded bytes, label)`` of image ``i``; a read failure is a ``BadImageError``."""
        raise NotImplementedError

    @property
    def index_nbytes(self) -> int:
        raise NotImplementedError

    def describe(self) -> dict:
        """What ``config.json`` records: kind, path, split, images, classes, fingerprint, skipped."""
        return {
            "kind": self.kind, "path": self.path, "split": self.split, "images": len(self),
            "classes": list(self.classes), "fingerprint": self.fingerprint,
            "skipped": [list(s) for s in self.skipped],
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, split={self.split!r}, images={len(self)}, classes={self.num_classes})"


class TableSource(Source):
    """A source whose index is a :class:`NameTable` in ``self._table``."""

    _table: NameTable

    def __len__(self) -> int:
        return len(self._table)

    def name(self, i: int) -> str:
        return self._table.name(i)

    def label(self, i: int) -> int:
        return int(self._table.labels[i])


def check_root(path, split: str, on_bad_image: str, layout: str) -> Path:
    """Check a source's common arguments; ``path`` as a ``Path`` to an existing folder."""
    check_choice("split", split, SPLITS)
    check_on_bad_image(on_bad_image)
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"data path {str(root)!r} is not a folder (expected {layout})")
    return root


def _split_dir(root: Path, split: str) -> Path:
    names = ("test", "val") if split == "test" else ("train",)
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise ValueError(
        f"{str(root)!r} has no {' or '.join(n + '/' for n in names)} folder (an image folder is "
        f"PATH/train/<class>/<image> and PATH/test/<class>/<image> or PATH/val/...)"
    )


def _class_dirs(base: Path) -> list[str]:
    try:
        with os.scandir(base) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError as exc:
        raise ValueError(f"cannot list {str(base)!r}: {exc.strerror or exc}") from None


class FolderSource(TableSource):
    """An image folder split (see the module doc)."""

    kind = "folder"

    def __init__(self, path, *, split: str = "train", on_bad_image: str = "error"):
        root = check_root(path, split, on_bad_image, "PATH/train/<class>/<image>")
        base = _split_dir(root, split)
        classes = _class_dirs(root / "train") if (root / "train").is_dir() else _class_dirs(base)
        if not classes:
            raise ValueError(f"{str(base)!r} has no class folders (expected {base}/<class>/<image>)")
        present = _class_dirs(base)
        unknown = sorted(set(present) - set(classes))
        if unknown:
            raise ValueError(f"{str(base)!r} has class folders {unknown} that train/ does not have")
        hasher = IndexHasher(classes)
        names, labels, problems = [], [], []
        for label, cls in enumerate(classes):
            found = 0
            for dirpath, _, filenames in sorted(os.walk(base / cls, followlinks=True)):
                if any(part.startswith(".") for part in Path(dirpath).relative_to(base).parts):
                    continue
                for fname in sorted(filenames):
                    if fname.startswith("."):
                        continue
                    rel = os.path.relpath(os.path.join(dirpath, fname), base)
                    reason, size = _examine(os.path.join(dirpath, fname), fname)
                    if reason is None:
                        names.append(rel)
                        labels.append(label)
                        hasher.add(rel, size, label)
                        found += 1
                    else:
                        problems.append((rel, reason))
            if not found and cls in present:
                problems.append((cls + "/", "empty class folder (no image files)"))
        self.skipped = raise_or_skip(problems, on_bad_image)
        if not names:
            raise ValueError(f"{str(base)!r} holds no usable image (expected {base}/<class>/<image>)")
        self.kind, self.path, self.split = "folder", str(root), split
        self._base = str(base)
        self.classes = tuple(classes)
        self._table = NameTable(names, labels)
        self.fingerprint = hasher.hexdigest()

    def read(self, i: int) -> tuple[bytes, int]:
        name = self._table.name(i)
        try:
            with open(os.path.join(self._base, name), "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BadImageError(name, f"unreadable ({exc.strerror or exc})") from None
        return data, int(self._table.labels[i])

    @property
    def index_nbytes(self) -> int:
        return self._table.nbytes


def _examine(path: str, fname: str) -> tuple[str | None, int]:
    """``(why path cannot be an image of the index, or None; its size)`` from its name and ``stat``."""
    if not has_image_extension(fname):
        return f"not an image file (its extension is not one of {', '.join(IMAGE_EXTENSIONS)})", 0
    try:
        st = os.stat(path)
    except OSError as exc:
        kind = "a dangling symbolic link" if os.path.islink(path) else (exc.strerror or str(exc))
        return f"unreadable ({kind})", 0
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file", 0
    if st.st_size == 0:
        return "empty file (0 bytes)", 0
    return None, st.st_size
