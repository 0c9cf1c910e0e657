"""Framework-free data sets: the embedded digits, image folders and archives, CIFAR pickles, the cache."""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from twintricks import datasets as D


def test_digits_layout_and_split():
    ds = D.load_digits()
    from sklearn.datasets import load_digits

    sk = load_digits()
    assert ds.train_images.shape == (1442, 32, 32, 3) and ds.test_images.shape == (355, 32, 32, 3)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert ds.classes == tuple("0123456789")
    # every class: 20% (rounded down) in test, the rest in train, nothing lost or duplicated
    for c in range(10):
        n = int((sk.target == c).sum())
        assert (ds.test_labels == c).sum() == n // 5 and (ds.train_labels == c).sum() == n - n // 5
    # the documented pixel mapping: round(v*255/16), 4x4 blocks, grey in R, G and B, and the split
    # rule written out again: within each class, image number j (sklearn order) is test iff j % 5 == 4
    seen: dict = {}
    test_idx = []
    for i, c in enumerate(sk.target):
        seen[c] = seen.get(c, -1) + 1
        if seen[c] % 5 == 4:
            test_idx.append(i)
    want = np.rint(sk.images[test_idx] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(ds.test_images[:, ::4, ::4, 0], want)
    np.testing.assert_array_equal(ds.test_images[:, 3::4, 3::4, 2], want)
    np.testing.assert_array_equal(ds.test_labels, sk.target[test_idx])
    img = ds.test_images[0]
    assert (img[..., 0] == img[..., 1]).all()
    # deterministic
    again = D.load_digits()
    np.testing.assert_array_equal(again.train_images, ds.train_images)


def _make_folder(root, sizes=(8, 8), per_class=3, classes=("cat", "ant", "bee")):
    rng = np.random.default_rng(0)
    expected = {}
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, size=(*sizes, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i:02d}.png")
                expected[(split, c, i)] = arr
    return expected


def test_image_folder_directory_and_archive_agree(tmp_path):
    root = tmp_path / "mydata"
    expected = _make_folder(root)
    ds = D.load_image_folder(root, cache=False)
    assert ds.classes == ("ant", "bee", "cat")  # sorted
    assert ds.train_images.shape == (9, 8, 8, 3)
    np.testing.assert_array_equal(ds.train_labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(ds.train_images[6], expected[("train", "cat", 0)])  # PNG is lossless
    archive = tmp_path / "mydata.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="mydata")
    ds2 = D.load_image_folder(archive, cache=False)
    for a in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(ds2, a), getattr(ds, a))
    resized = D.load_image_folder(root, image_size=(4, 6), cache=False)
    assert resized.train_images.shape == (9, 4, 6, 3)


def test_cache_lives_in_the_cache_dir_hits_for_folders_and_is_invalidated(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TWINTRICKS_CACHE_DIR", str(cache))
    assert D.cache_dir() == cache
    root = tmp_path / "d"
    _make_folder(root)
    before = sorted(p.name for p in root.iterdir())
    ds = D.load_image_folder(root)
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written beside the data
    assert [p.suffix for p in cache.iterdir()] == [".npz"] and not [p for p in cache.iterdir() if p.name.startswith(".")]
    decoded = []
    monkeypatch.setattr(D, "_decode", lambda *a: decoded.append(a) or np.zeros((8, 8, 3), np.uint8))
    again = D.load_image_folder(root)  # a folder's cache hits (its own mtime is not the signature)
    assert decoded == []
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    f = root / "train" / "ant" / "00.png"
    f.write_bytes(f.read_bytes())  # rewritten: a newer modification time
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    D.load_image_folder(root)
    assert len(decoded) == 18  # rebuilt
    monkeypatch.undo()
    monkeypatch.setenv("TWINTRICKS_CACHE_DIR", str(cache))
    next(cache.iterdir()).write_bytes(b"garbage")  # a damaged cache is rebuilt, not trusted
    np.testing.assert_array_equal(D.load_image_folder(root).test_images, ds.test_images)


def test_archive_member_size_is_capped_before_reading(tmp_path):
    """Issue 22 item 2: a small .tar.gz whose member inflates to 512 MB is refused by name from
    its header, before anything is inflated (here the archive holds the header alone)."""
    archive = tmp_path / "bomb.tar.gz"
    info = tarfile.TarInfo("data/train/a/big.png")
    info.size = 512 << 20
    with tarfile.open(archive, "w:gz") as tar:
        tar.fileobj.write(info.tobuf(tar.format, tar.encoding, tar.errors))
    assert archive.stat().st_size < 2048
    with pytest.raises(ValueError, match=r"member 'data/train/a/big.png' declares 536870912 bytes, more than the 64 MiB"):
        D.load_image_folder(archive, cache=False)


def test_decompression_bomb_in_a_folder_is_a_one_line_error(tmp_path):
    """Issue 22 item 2: a decompression-bomb PNG in a data folder names the file (was a raw traceback)."""
    from data_images import png_bomb_bytes

    from twintricks.data import BadImageError

    root = tmp_path / "d"
    _make_folder(root)
    (root / "train" / "bee" / "zz.png").write_bytes(png_bomb_bytes())
    with pytest.raises(BadImageError, match=r"^train/bee/zz.png: decompression bomb: the header announces 400000000 pixels") as err:
        D.load_image_folder(root, cache=False)
    assert "\n" not in str(err.value)


def test_cifar_batches_layout(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    parts = {}
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 5)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=n))
        parts[name] = (data, labels)
        with open(root / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    ds = D.load_cifar10(tmp_path)  # the parent, as torchvision lays it out
    assert ds.train_images.shape == (20, 32, 32, 3) and ds.test_images.shape == (5, 32, 32, 3)
    assert ds.classes == D.CIFAR10_CLASSES
    d0 = parts["data_batch_1"][0][0]
    np.testing.assert_array_equal(ds.train_images[0, :, :, 1], d0[1024:2048].reshape(32, 32))  # CHW rows → HWC
    np.testing.assert_array_equal(ds.test_labels, parts["test_batch"][1])


def _py2_batch(data: np.ndarray, labels: list[int], batch_label: str, filenames: list[str]) -> bytes:
    """A CIFAR-10 python batch byte for byte as the published files are: Python 2's cPickle,
    protocol 2, of ``{'data': uint8 array, 'labels': [int], 'batch_label': str, 'filenames': [str]}``,
    the array written by NumPy 1.x's ``ndarray.__reduce__`` (``numpy.core.multiarray._reconstruct``,
    a ``numpy.dtype('u1')`` and the raw bytes as a Python 2 ``str``)."""
    import struct

    def s(b: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING or BINSTRING
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b

    def i(n: int) -> bytes:
        return b"K" + bytes([n]) if n < 256 else b"M" + struct.pack("<H", n) if n < 65536 else b"J" + struct.pack("<i", n)

    n, m = data.shape
    out = b"\x80\x02}q\x01(" + s(b"data") + b"q\x02"
    out += b"cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85" + s(b"b") + b"\x87Rq\x05("
    out += b"K\x01" + i(n) + i(m) + b"\x86cnumpy\ndtype\nq\x06" + s(b"u1") + b"K\x00K\x01\x87Rq\x07("
    out += b"K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + s(data.tobytes()) + b"tb"
    out += s(b"labels") + b"](" + b"".join(i(int(v)) for v in labels) + b"e"
    out += s(b"batch_label") + s(batch_label.encode()) + s(b"filenames") + b"](" + b"".join(s(f.encode()) for f in filenames) + b"e"
    return out + b"u."


def test_cifar_batches_as_published(tmp_path):
    """Batches as Python 2 wrote them load through the restricted unpickler (and, as a check of the
    writer above, equal what the unrestricted one reads)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    want = {}
    for name, n in [*[(f"data_batch_{i}", 3) for i in range(1, 6)], ("test_batch", 2)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        blob = _py2_batch(data, labels, f"{name} of 5", [f"img_{j}.png" for j in range(n)])
        (root / name).write_bytes(blob)
        plain = pickle.loads(blob, encoding="latin1")
        np.testing.assert_array_equal(plain["data"], data)
        assert plain["labels"] == labels and plain["filenames"][0] == "img_0.png"
        want[name] = (data, labels)
    ds = D.load_cifar10(root)
    np.testing.assert_array_equal(ds.train_images[3], want["data_batch_2"][0][0].reshape(3, 32, 32).transpose(1, 2, 0))
    np.testing.assert_array_equal(ds.train_labels, sum((want[f"data_batch_{i}"][1] for i in range(1, 6)), []))
    np.testing.assert_array_equal(ds.test_labels, want["test_batch"][1])


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_crafted_cifar_batch_runs_nothing(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    good = _py2_batch(np.zeros((1, 3072), np.uint8), [0], "b", ["f.png"])
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (root / name).write_bytes(good)
    marker = tmp_path / "MARKER"
    payloads = {
        "reduce": pickle.dumps({"data": _System(marker), "labels": [0]}, protocol=2),
        "eval": b"cbuiltins\neval\n(Vprint(1)\ntR.",
        "truncated": good[: len(good) // 2],
        "wrong": pickle.dumps({"data": np.zeros((1, 5), np.uint8), "labels": [0]}),
        "labels": pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [12]}),
    }
    expect = {"reduce": "refused to load the global posix.system|refused to load the global nt.system",
              "eval": "refused to load the global builtins.eval", "truncated": "not a readable CIFAR-10 python batch",
              "wrong": r"uint8 \[N, 3072\] array, got uint8 \(1, 5\)", "labels": "1 integers in 0..9"}
    for case, blob in payloads.items():
        (root / "data_batch_3").write_bytes(blob)
        with pytest.raises(ValueError, match=expect[case]):
            D.load_cifar10(tmp_path)
    assert not marker.exists()


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_cifar10(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an image-folder"):
        D.load_image_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="`dataset`"):
        D.load_dataset("mnist")
    with pytest.raises(ValueError, match="data_dir"):
        D.load_dataset("cifar10")
    with pytest.raises(ValueError, match="uint8"):
        D.ImageDataset("x", np.zeros((2, 4, 4, 3), np.float32), np.zeros(2), np.zeros((1, 4, 4, 3), np.uint8), np.zeros(1))
    root = tmp_path / "odd"
    _make_folder(root, classes=("a",))
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "train" / "a" / "zz.png")
    with pytest.raises(ValueError, match="different sizes"):
        D.load_image_folder(root, cache=False)
    with pytest.raises(ValueError, match="not in the expected"):
        D.load_image_folder(tmp_path / "odd", classes=("b",), image_size=(8, 8), cache=False)


def test_channel_stats():
    x = np.zeros((2, 2, 2, 3), np.uint8)
    x[..., 0] = 255
    mean, std = D.channel_stats(x)
    assert mean == (1.0, 0.0, 0.0) and std[0] == pytest.approx(1e-3)
