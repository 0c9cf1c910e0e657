"""Packed data sets: ArrayRecord files that grain reads with random access.

``twintricks data pack SRC DST`` (:func:`twintricks.data.pack.pack`) copies the images of a folder (or tar shards)
into ``DST``:

* ``DST/<split>-NNNNN-of-MMMMM.array_record``: one record per image, in the source's index order,
  written with ``group_size:1,uncompressed`` (one record per chunk, what grain needs for fast
  random access; JPEG bytes do not compress). A record is a one-line JSON header
  ``{"label": 3, "name": "cat/001.jpg"}``, a newline, then the image file's bytes unchanged.
* ``DST/twintricks-packed.json``: ``{"format": "twintricks-packed", "version": 1, "classes": [...],
  "splits": {"train": {"files": [...], "images": N, "fingerprint": ..., "skipped": [...],
  "source": {...}}, ...}}``. The fingerprint is computed like the source's
  (:class:`~twintricks.data.sources.IndexHasher` over names, sizes and labels) over the images
  written: a packed copy of a folder that left nothing out has the folder's fingerprint, index
  and, for one seed, the very same batches. Packing reads each image's header and leaves out (or
  stops at) what is not an image or a decompression bomb (:func:`twintricks.data.pack.pack`).

:class:`PackedSource` opens a split with grain's ``ArrayRecordDataSource``; its in-memory index
is the file list (0 bytes per image): ``name(i)`` and ``label(i)`` read the record's header.
"""

from __future__ import annotations

import json
from pathlib import Path

from twintricks.data.errors import BadImageError
from twintricks.data.sources import Source, check_root

__all__ = ["META_NAME", "PACKED_FORMAT", "WRITER_OPTIONS", "FORMAT_VERSION", "PackedSource", "encode_record", "decode_record"]

META_NAME = "twintricks-packed.json"
PACKED_FORMAT = "twintricks-packed"
FORMAT_VERSION = 1
#: ArrayRecord writer options: one record per chunk (grain's random access), no compression.
WRITER_OPTIONS = "group_size:1,uncompressed"
#: A record's JSON header may not be longer than this (a name is a relative path).
MAX_HEADER_BYTES = 4096


def encode_record(name: str, label: int, data: bytes) -> bytes:
    """One record: ``{"label": label, "name": name}`` as one JSON line, then ``data``."""
    return json.dumps({"label": int(label), "name": name}, ensure_ascii=True).encode() + b"\n" + data


def decode_record(record: bytes, where: str) -> tuple[str, int, bytes]:
    """``(name, label, image bytes)`` of a record; a malformed record is a ``BadImageError``
    naming ``where`` (the file and record number)."""
    end = record.find(b"\n", 0, MAX_HEADER_BYTES)
    try:
        if end < 0:
            raise ValueError("no header line")
        head = json.loads(record[:end])
        name, label = head["name"], head["label"]
        if not isinstance(name, str) or type(label) is not int or label < 0:
            raise ValueError(f"header {head!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BadImageError(where, f"not a twintricks packed record ({exc})") from None
    return name, label, record[end + 1:]


def _read_meta(root: Path) -> dict:
    path = root / META_NAME
    if not path.is_file():
        raise ValueError(f"{str(root)!r} is not a packed data set (no {META_NAME}; make one with `twintricks data pack SRC DST`)")
    if path.stat().st_size > 64 << 20:
        raise ValueError(f"{str(path)!r} is larger than 64 MiB: not a packed data set's metadata")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != PACKED_FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{str(path)!r}: `format`/`version` must be {PACKED_FORMAT!r}/{FORMAT_VERSION}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{str(path)!r}: `classes` must be a non-empty list of names")
    if not isinstance(meta.get("splits"), dict):
        raise ValueError(f"{str(path)!r}: `splits` must be an object")
    return meta


class PackedSource(Source):
    """One split of a packed data set (see the module doc)."""

    kind = "packed"

    def __init__(self, path, *, split: str = "train", on_bad_image: str = "error"):
        import grain

        root = check_root(path, split, on_bad_image, f"PATH/{META_NAME}")  # on_bad_image: applied when packed
        meta = _read_meta(root)
        entry = meta["splits"].get(split)
        if entry is None and split == "test":
            entry = meta["splits"].get("val")
        if not isinstance(entry, dict):
            raise ValueError(f"{str(root)!r} has no {split!r} split (it has {sorted(meta['splits'])})")
        files, images = entry.get("files"), entry.get("images")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and "/" not in f for f in files):
            raise ValueError(f"{str(root / META_NAME)!r}: splits.{split}.files must be a list of file names")
        missing = [f for f in files if not (root / f).is_file()]
        if missing:
            raise ValueError(f"{str(root)!r}: packed file {missing[0]!r} is missing")
        try:
            self._records = grain.sources.ArrayRecordDataSource([str(root / f) for f in files])
        except (RuntimeError, ValueError, OSError) as exc:
            raise ValueError(f"{str(root)!r}: cannot open its ArrayRecord files: {exc}") from None
        if type(images) is not int or images != len(self._records):
            raise ValueError(f"{str(root)!r}: splits.{split}.images says {images!r}, the files hold {len(self._records)} records")
        fingerprint, skipped = entry.get("fingerprint"), entry.get("skipped", [])
        if not isinstance(fingerprint, str) or len(fingerprint) != 64:
            raise ValueError(f"{str(root / META_NAME)!r}: splits.{split}.fingerprint must be a SHA-256 hex digest")
        if not isinstance(skipped, list) or not all(isinstance(s, list) and len(s) == 2 for s in skipped):
            raise ValueError(f"{str(root / META_NAME)!r}: splits.{split}.skipped must be a list of [file, reason]")
        self.path, self.split, self.classes = str(root), split, tuple(meta["classes"])
        self.fingerprint, self.skipped = fingerprint, [tuple(s) for s in skipped]
        self._files = files

    def __len__(self) -> int:
        return len(self._records)

    def _record(self, i: int) -> tuple[str, int, bytes]:
        where = f"{self.split} record {i}"
        try:
            record = self._records[i]
        except (RuntimeError, OSError) as exc:  # a damaged file: array_record's own check
            raise BadImageError(where, f"unreadable packed record ({' '.join(str(exc).split())})") from None
        name, label, data = decode_record(record, where)
        if label >= len(self.classes):
            raise BadImageError(name, f"label {label} is not a class index (the data set has {len(self.classes)} classes)")
        return name, label, data

    def name(self, i: int) -> str:
        return self._record(i)[0]

    def label(self, i: int) -> int:
        return self._record(i)[1]

    def read(self, i: int) -> tuple[bytes, int]:
        _, label, data = self._record(i)
        return data, label

    @property
    def index_nbytes(self) -> int:
        return sum(len(f) for f in self._files)
