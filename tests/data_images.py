"""Helpers of the data-pipeline tests (tests/test_data_*.py): synthetic images and folders."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A photograph-like uint8 ``[h, w, 3]`` image: smooth colour fields at three scales plus
    sensor-like noise (random noise alone is far harsher on resampling than photographs)."""
    acc = np.zeros((h, w, 3))
    for k, amp in ((4, 1.0), (16, 0.5), (64, 0.25)):
        small = rng.uniform(0, 255, (max(h // k, 2), max(w // k, 2), 3)).astype(np.uint8)
        acc += amp * np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), float)
    return np.clip(acc / 1.75 + rng.normal(0, 6, acc.shape), 0, 255).astype(np.uint8)


def jpeg_bytes(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bomb_bytes(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny valid PNG whose header announces ``width × height`` pixels (its IHDR rewritten,
    CRC fixed): what a decompression bomb looks like to a decoder before it inflates anything."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def make_folder(root: Path, *, classes=("ant", "bee", "cat"), train: int = 4, test: int = 2, seed: int = 0,
                sizes=(24, 64)) -> Path:
    """``root/train/<class>/NN.jpg`` and ``root/test/<class>/NN.jpg``: photo-like JPEGs of random
    sizes in ``sizes`` (both sides)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
                (root / split / c / f"{i:02d}.jpg").write_bytes(jpeg_bytes(photo_like(rng, h, w)))
    return root


def write_shards(folder: Path, out: Path, *, per_shard: int = 5, extra: bool = True) -> Path:
    """webdataset tar shards of an image folder made by :func:`make_folder`, in the folder's
    index order: ``out/<split>-NNNNNN.tar`` with ``<key>.jpg`` + ``<key>.cls`` (+ ``<key>.json``
    when ``extra``), and ``out/classes.txt``."""
    import tarfile

    from twintricks.data import open_source

    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        src = open_source("folder", folder, split=split)
        (out / "classes.txt").write_text("\n".join(src.classes) + "\n")
        for first in range(0, len(src), per_shard):
            with tarfile.open(out / f"{split}-{first // per_shard:06d}.tar", "w") as tar:
                for i in range(first, min(len(src), first + per_shard)):
                    data, label = src.read(i)
                    ext = src.name(i).rsplit(".", 1)[1]
                    members = [(f"s{i:05d}.{ext}", data), (f"s{i:05d}.cls", f"{label}\n".encode())]
                    if extra:
                        members.append((f"s{i:05d}.json", b'{"source": "%s"}' % src.name(i).encode()))
                    for name, payload in members:
                        add_member(tar, name, payload)
    return out


def add_member(tar, name: str, payload: bytes) -> None:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))
