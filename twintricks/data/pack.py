"""Writing packed data sets: ``twintricks data pack SRC DST`` (the format: :mod:`twintricks.data.packed`)."""

from __future__ import annotations

import os
from pathlib import Path

from twintricks.checks import check_choice, check_int
from twintricks.data.errors import BadImageError, check_on_bad_image
from twintricks.data.kinds import open_source
from twintricks.data.packed import FORMAT_VERSION, META_NAME, PACKED_FORMAT, WRITER_OPTIONS, encode_record
from twintricks.data.sources import SPLITS
from twintricks.files import write_json

__all__ = ["pack"]


def pack(src, dst, *, kind: str = "folder", splits=SPLITS, images_per_file: int = 10_000,
         on_bad_image: str = "error", log=None) -> dict:
    """Copy the images of the data set at ``src`` (a ``kind`` source) into a packed data set at
    ``dst`` (created; it must not hold a packed data set already). Returns the metadata written.

    Every split of ``splits`` that ``src`` has is packed (``"test"`` also takes ``val/``); a
    missing ``train`` split is an error. ``on_bad_image`` is applied to the index, as when
    training; images are copied byte for byte, not decoded (corrupt content is found when the
    packed set is decoded, as for a folder).
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    check_int("images_per_file", images_per_file, low=1)
    check_on_bad_image(on_bad_image)
    for s in splits:
        check_choice("splits", s, SPLITS)
    out = Path(dst)
    if (out / META_NAME).exists():
        raise ValueError(f"{str(out)!r} already holds a packed data set ({META_NAME}); choose a new folder")
    meta = {"format": PACKED_FORMAT, "version": FORMAT_VERSION, "classes": None, "splits": {}}
    for split in splits:
        try:
            source = open_source(kind, src, split=split, on_bad_image=on_bad_image)
        except ValueError as exc:
            if split == "train" or isinstance(exc, BadImageError):
                raise
            continue  # no test/val split: pack what there is
        if meta["classes"] is None:
            meta["classes"] = list(source.classes)
        elif list(source.classes) != meta["classes"]:
            raise ValueError(f"the {split!r} split's classes differ from the train split's")
        out.mkdir(parents=True, exist_ok=True)
        n, count = len(source), -(-len(source) // images_per_file)
        files = [f"{split}-{k:05d}-of-{count:05d}.array_record" for k in range(count)]
        for k, fname in enumerate(files):
            tmp = out / f".{fname}.tmp"
            writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
            try:
                for i in range(k * images_per_file, min(n, (k + 1) * images_per_file)):
                    data, label = source.read(i)
                    writer.write(encode_record(source.name(i), label, data))
            finally:
                writer.close()
            os.replace(tmp, out / fname)
            if log is not None:
                log(f"{split}: {fname} ({min(n, (k + 1) * images_per_file)} of {n} images)")
        meta["splits"][split] = {"files": files, "images": n, "fingerprint": source.fingerprint,
                                 "skipped": [list(s) for s in source.skipped], "source": {"kind": kind, "path": str(src)}}
    write_json(out / META_NAME, meta)
    return meta
