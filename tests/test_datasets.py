"""Framework-free data sets: the embedded digits, image folders and archives, CIFAR pickles, the cache."""

from __future__ import annotations

import pickle
import tarfile
import time

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


def test_cache_is_written_atomically_reused_and_invalidated(tmp_path):
    root = tmp_path / "d"
    _make_folder(root)
    ds = D.load_image_folder(root)
    caches = sorted(p.name for p in root.iterdir() if p.name.startswith(".twintricks-cache"))
    assert caches == [".twintricks-cache-folder.npz"]
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    t = time.perf_counter()
    again = D.load_image_folder(root)
    assert time.perf_counter() - t < 1.0
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    # a damaged cache is rebuilt, not trusted
    (root / caches[0]).write_bytes(b"garbage")
    np.testing.assert_array_equal(D.load_image_folder(root).test_images, ds.test_images)


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
