"""Tar shards in the webdataset layout, indexed once and read at recorded offsets.

Layout: ``PATH/<split>-*.tar`` or ``PATH/<split>/*.tar`` (``"test"`` also finds ``val``), several
uncompressed tar files, sorted by name. A sample is the members sharing a *key* (the member's
path up to the first ``.`` of its file name, as webdataset groups them): one image
(``key.jpg``, ``.jpeg``, ``.png``, ``.webp``, ... — :data:`~twintricks.data.decode.IMAGE_EXTENSIONS`
without the dot) and ``key.cls``, the class index as decimal text. Other members of a sample
(``key.json``, ``key.txt``, ...) are ignored. Class names come from ``PATH/classes.txt`` (one per
line, in class-index order) when it exists; otherwise they are ``"0"``, ``"1"``, ... up to the
largest label of the split (give ``classes.txt`` so that both splits agree on the class count).
A label must be below :data:`MAX_CLASSES` (2^20): the class names are made for every index up to
the largest, so one ``.cls`` of ``99999999999`` would otherwise fill the memory.

:class:`ShardSource` reads every tar header once at :func:`~twintricks.data.open_source` (the
tar format lets it skip from header to header; only ``.cls`` members are read) and keeps, per
image, its shard, byte offset, size and label plus its name ``<shard>/<member>`` — the index is
``len(name) + 36`` bytes per image. An image is then read with one positioned read.

**Order, process shares and guarantees.** Because the index knows every image's offset, shards
are a random-access source like a folder: the epoch is the same global permutation, process
``p`` reads only its rows of each global batch, and every guarantee of the folder holds (each
image once per epoch at any world size, the same bytes at any worker count, exact resume).
The price is that reading is not sequential: each image is a positioned read in some shard.
That suits shards on local or network file systems (each read is one request); a store that
can only *stream* a tar front to back is not supported — pack the data set instead
(``twintricks data pack``), or copy the shards to a file system first. Compressed shards
(``.tar.gz``) cannot be read at offsets and are refused with that message.

Index-time checks (``on_bad_image``): a sample without an image, with several images, without a
``.cls`` or with a ``.cls`` that is not a class index, and an empty image member.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from twintricks.data.decode import IMAGE_EXTENSIONS
from twintricks.data.errors import BadImageError
from twintricks.data.sources import IndexHasher, NameTable, TableSource, check_root, raise_or_skip

__all__ = ["ShardSource", "find_shards"]

_IMAGE_EXTS = tuple(e[1:] for e in IMAGE_EXTENSIONS)
_MAX_CLS_BYTES = 64
#: Labels are below this (ImageNet-21k has 21,841 classes): a larger one is a bad sample.
MAX_CLASSES = 1 << 20


def find_shards(root: Path, split: str) -> list[Path]:
    """The split's tar files: ``root/<split>-*.tar`` or ``root/<split>/*.tar``, sorted."""
    names = ("test", "val") if split == "test" else ("train",)
    for n in names:
        found = sorted(root.glob(f"{n}-*.tar")) or sorted((root / n).glob("*.tar"))
        compressed = sorted(root.glob(f"{n}-*.tar.*")) + sorted((root / n).glob("*.tar.*")) + sorted(root.glob(f"{n}-*.tgz"))
        if compressed and not found:
            raise ValueError(
                f"{str(compressed[0])!r} is a compressed tar: shards are read at byte offsets and must be "
                "uncompressed .tar files (JPEG/PNG do not compress anyway)"
            )
        if found:
            return found
    pattern = " or ".join(f"{root}/{n}-*.tar, {root}/{n}/*.tar" for n in names)
    raise ValueError(f"no tar shards for the {split!r} split: expected {pattern}")


def _split_key(member: str) -> tuple[str, str]:
    """webdataset's grouping: ``dir/abc.seg.png`` → ``("dir/abc", "seg.png")``."""
    head, _, base = member.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (ext.lower() if dot else "")


class ShardSource(TableSource):
    """One split of a set of webdataset tar shards (see the module doc)."""

    kind = "shards"

    def __init__(self, path, *, split: str = "train", on_bad_image: str = "error"):
        root = check_root(path, split, on_bad_image, "PATH/train-*.tar")
        shards = find_shards(root, split)
        entries, problems = [], []  # entries: (name, shard, offset, size, label)
        for s, shard in enumerate(shards):
            samples: dict[str, dict] = {}
            try:
                with tarfile.open(shard, "r:") as tar:
                    for m in tar:
                        if not m.isfile():
                            continue
                        key, ext = _split_key(m.name)
                        sample = samples.setdefault(key, {"images": [], "cls": None})
                        if ext in _IMAGE_EXTS:
                            sample["images"].append((m.name, m.offset_data, m.size))
                        elif ext == "cls":
                            f = tar.extractfile(m)
                            sample["cls"] = f.read(_MAX_CLS_BYTES + 1) if f is not None else b""
            except (tarfile.TarError, OSError) as exc:
                raise ValueError(f"{str(shard)!r} is not a readable tar file: {exc}") from None
            for key, sample in samples.items():
                where = f"{shard.name}/{key}"
                if not sample["images"]:
                    problems.append((where, "sample without an image member"))
                    continue
                if len(sample["images"]) > 1:
                    problems.append((where, f"sample with {len(sample['images'])} image members"))
                    continue
                name, offset, size = sample["images"][0]
                label = _parse_cls(sample["cls"])
                if isinstance(label, str):
                    problems.append((f"{shard.name}/{name}", label))
                elif size == 0:
                    problems.append((f"{shard.name}/{name}", "empty file (0 bytes)"))
                else:
                    entries.append((f"{shard.name}/{name}", s, offset, size, label))
        classes = _classes(root, max((e[4] for e in entries), default=-1))
        for e in entries:
            if e[4] >= len(classes):
                problems.append((e[0], f"label {e[4]} is not a class index (classes.txt lists {len(classes)})"))
        entries = [e for e in entries if e[4] < len(classes)]
        self.skipped = raise_or_skip(problems, on_bad_image)
        if not entries:
            raise ValueError(f"the {split!r} shards of {str(root)!r} hold no usable image")
        hasher = IndexHasher(classes)
        for name, _, _, size, label in entries:
            hasher.add(name, size, label)
        self.path, self.split, self.classes, self.fingerprint = str(root), split, tuple(classes), hasher.hexdigest()
        self._shards = [str(p) for p in shards]
        self._table = NameTable([e[0] for e in entries], [e[4] for e in entries])
        self._where = np.array([(e[1], e[2], e[3]) for e in entries], np.int64)  # shard, offset, size
        self._fds: dict[int, int] = {}

    def __getstate__(self):
        return {**self.__dict__, "_fds": {}}  # each process opens the shards itself

    def read(self, i: int) -> tuple[bytes, int]:
        shard, offset, size = (int(v) for v in self._where[i])
        try:
            fd = self._fds.get(shard)
            if fd is None:
                fd = self._fds[shard] = os.open(self._shards[shard], os.O_RDONLY)
            data = os.pread(fd, size, offset)
        except OSError as exc:
            raise BadImageError(self.name(i), f"unreadable ({exc.strerror or exc})") from None
        if len(data) != size:
            raise BadImageError(self.name(i), f"unreadable (the shard ends {size - len(data)} bytes early)")
        return data, self.label(i)

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def index_nbytes(self) -> int:
        return self._table.nbytes + self._where.nbytes


def _parse_cls(raw) -> int | str:
    """The class index in a ``.cls`` member, or why it is not one."""
    if raw is None:
        return "sample without a .cls label"
    text = raw.decode("ascii", "replace").strip()
    if len(raw) > _MAX_CLS_BYTES or not text.isdigit():
        return f".cls is not a class index: {text[:20]!r}"
    if int(text) >= MAX_CLASSES:
        return f".cls {text[:20]} is not a class index: labels are below {MAX_CLASSES}"
    return int(text)


def _classes(root: Path, largest: int) -> list[str]:
    path = root / "classes.txt"
    if not path.is_file():
        return [str(c) for c in range(largest + 1)]
    if path.stat().st_size > 16 << 20:
        raise ValueError(f"{str(path)!r} is larger than 16 MiB: not a list of class names")
    names = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{str(path)!r} must list distinct class names, one per line")
    return names
