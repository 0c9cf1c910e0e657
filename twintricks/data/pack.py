"""Writing packed data sets: ``twintricks data pack SRC DST`` (the format: :mod:`twintricks.data.packed`)."""

from __future__ import annotations

import os
from pathlib import Path

from twintricks.checks import check_choice, check_int
from twintricks.data.decode import open_header
from twintricks.data.errors import BadImageError, check_on_bad_image
from twintricks.data.kinds import open_source
from twintricks.data.packed import FORMAT_VERSION, META_NAME, PACKED_FORMAT, WRITER_OPTIONS, encode_record
from twintricks.data.sources import SPLITS, IndexHasher
from twintricks.files import write_json

__all__ = ["pack"]


def pack(src, dst, *, kind: str = "folder", splits=SPLITS, images_per_file: int = 10_000,
         on_bad_image: str = "error", log=None) -> dict:
    """Copy the images of the data set at ``src`` (a ``kind`` source) into a packed data set at
    ``dst`` (created; it must not hold a packed data set already). Returns the metadata written.

    Every split of ``splits`` that ``src`` has is packed (``"test"`` also takes ``val/``); a
    missing ``train`` split is an error. Images are copied byte for byte; each one's header is
    read on the way (:func:`~twintricks.data.decode.open_header`: not an image, a decompression
    bomb), so those are found before training — raised (``on_bad_image="error"``) or left out and
    listed (``"skip"``), like what the index finds. A truncated or corrupt body still shows only
    when decoded, as for a folder. The fingerprint is computed over the images written: with none
    left out it is the source's.
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
        hasher, skipped, parts, writer, in_file, kept = IndexHasher(source.classes), list(source.skipped), [], None, 0, 0
        try:
            for i in range(len(source)):
                name = source.name(i)
                try:
                    data, label = source.read(i)
                    open_header(data, name)
                except BadImageError as exc:
                    if on_bad_image == "error":
                        raise
                    skipped.append((exc.file, exc.reason))
                    continue
                if writer is None or in_file == images_per_file:
                    if writer is not None:
                        writer.close()
                    parts.append(out / f".{split}-{len(parts):05d}.array_record.tmp")
                    writer, in_file = ArrayRecordWriter(str(parts[-1]), WRITER_OPTIONS), 0
                writer.write(encode_record(name, label, data))
                hasher.add(name, len(data), label)
                in_file, kept = in_file + 1, kept + 1
                if log is not None and kept % images_per_file == 0:
                    log(f"{split}: {kept} of {len(source)} images")
        finally:
            if writer is not None:
                writer.close()
        if not kept:
            raise ValueError(f"the {split!r} split of {str(src)!r} holds no usable image")
        files = [f"{split}-{k:05d}-of-{len(parts):05d}.array_record" for k in range(len(parts))]
        for tmp, fname in zip(parts, files):
            os.replace(tmp, out / fname)
        meta["splits"][split] = {"files": files, "images": kept, "fingerprint": hasher.hexdigest(),
                                 "skipped": [list(s) for s in skipped], "source": {"kind": kind, "path": str(src)}}
    write_json(out / META_NAME, meta)
    return meta
