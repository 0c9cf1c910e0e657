"""The streaming sources' index: order, fingerprint, splits, describe(), and every bad-data case
the index can tell (twintricks/data/sources.py and open_source)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from data_images import make_folder
from torchvision.datasets import ImageFolder

from twintricks.data import BadImageError, open_source


def test_folder_index_is_imagefolders(tmp_path):
    root = make_folder(tmp_path / "d", train=3, test=2)
    nested = root / "train" / "bee" / "sub" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(root / "train" / "ant" / "00.jpg", nested / "a.JPG")  # upper-case extension, nested
    shutil.copy(root / "train" / "ant" / "01.jpg", root / "train" / "bee" / "sub" / "b.png")
    src = open_source("folder", root, split="train")
    ref = ImageFolder(str(root / "train"))
    assert src.classes == tuple(ref.classes) == ("ant", "bee", "cat")
    assert len(src) == len(ref.samples) == 11
    assert [os.path.join(str(root / "train"), src.name(i)) for i in range(len(src))] == [p for p, _ in ref.samples]
    assert [src.label(i) for i in range(len(src))] == ref.targets
    data, label = src.read(4)
    assert data == open(ref.samples[4][0], "rb").read() and label == ref.targets[4]
    assert src.index_nbytes == sum(len(src.name(i).encode()) + 12 for i in range(len(src))) + 8


def test_test_split_val_folder_and_class_ids(tmp_path):
    root = make_folder(tmp_path / "d", train=2, test=1)
    shutil.rmtree(root / "test" / "ant")  # the test split lacks a class: ids still follow train/
    test = open_source("folder", root, split="test")
    assert test.classes == ("ant", "bee", "cat") and [test.label(i) for i in range(len(test))] == [1, 2]
    (root / "test").rename(root / "val")
    assert len(open_source("folder", root, split="test")) == 2
    (root / "val" / "dog").mkdir()
    (root / "val" / "dog" / "x.jpg").write_bytes((root / "train" / "ant" / "00.jpg").read_bytes())
    with pytest.raises(ValueError, match=r"class folders \['dog'\] that train/ does not have"):
        open_source("folder", root, split="test")
    with pytest.raises(ValueError, match="`split` must be one of"):
        open_source("folder", root, split="validation")
    with pytest.raises(ValueError, match="`kind` must be one of"):
        open_source("imagenet", root, split="train")
    with pytest.raises(ValueError, match="is not a folder"):
        open_source("folder", tmp_path / "missing", split="train")
    with pytest.raises(ValueError, match="has no train/ folder"):
        open_source("folder", root / "val", split="train")


def test_fingerprint_is_of_the_index_not_of_times(tmp_path):
    root = make_folder(tmp_path / "d", train=2, test=1)
    fp = open_source("folder", root, split="train").fingerprint
    for p in (root / "train").rglob("*"):
        os.utime(p, (1, 1))
    (root / "train" / ".DS_Store").write_bytes(b"x")  # hidden files are not part of the index
    assert open_source("folder", root, split="train").fingerprint == fp
    copy = shutil.copytree(root, tmp_path / "copy")
    assert open_source("folder", copy, split="train").fingerprint == fp  # a copy elsewhere: same
    f = root / "train" / "bee" / "01.jpg"
    f.write_bytes(f.read_bytes() + b"\0")  # one byte longer
    assert open_source("folder", root, split="train").fingerprint != fp
    f.write_bytes(f.read_bytes()[:-1])
    f.rename(root / "train" / "cat" / "99.jpg")  # a different label
    assert open_source("folder", root, split="train").fingerprint != fp


def test_describe_is_json(tmp_path):
    root = make_folder(tmp_path / "d", train=2, test=1)
    d = open_source("folder", root, split="test").describe()
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "folder" and d["split"] == "test" and d["images"] == 3 and d["classes"] == ["ant", "bee", "cat"]
    assert len(d["fingerprint"]) == 64 and d["skipped"] == []


def _bad_folder(tmp_path):
    """A folder with one of each problem the index can tell (besides good images)."""
    root = make_folder(tmp_path / "d", train=2, test=1)
    cls = root / "train" / "bee"
    (cls / "notes.txt").write_text("labelling notes")
    (cls / "zero.jpg").write_bytes(b"")
    os.symlink(tmp_path / "nowhere.jpg", cls / "dangling.jpg")
    os.mkfifo(cls / "pipe.jpg")  # reading it would block forever: refused by the index
    (root / "train" / "cat" / "folder.jpg").mkdir()  # a folder named like an image: walked, empty
    (root / "train" / "dog").mkdir()  # an empty class folder
    return root


EXPECTED_BAD = {
    "bee/dangling.jpg": "unreadable (a dangling symbolic link)",
    "bee/notes.txt": "not an image file",
    "bee/pipe.jpg": "not a regular file",
    "bee/zero.jpg": "empty file (0 bytes)",
    "dog/": "empty class folder",
}


def test_bad_files_the_index_can_tell(tmp_path):
    root = _bad_folder(tmp_path)
    with pytest.raises(BadImageError) as err:
        open_source("folder", root, split="train")
    msg = str(err.value)
    assert msg.startswith("bee/dangling.jpg: unreadable (a dangling symbolic link) (and 4 more bad files)") and "\n" not in msg
    src = open_source("folder", root, split="train", on_bad_image="skip")
    assert len(src) == 6 and src.classes == ("ant", "bee", "cat", "dog")
    got = dict(src.skipped)
    assert set(got) == set(EXPECTED_BAD)
    for file, reason in EXPECTED_BAD.items():
        assert got[file].startswith(reason), (file, got[file])
    assert src.describe()["skipped"] == [list(s) for s in src.skipped]
    with pytest.raises(ValueError, match="`on_bad_image` must be one of"):
        open_source("folder", root, split="train", on_bad_image="ignore")


def test_file_gone_after_indexing_is_named_when_read(tmp_path):
    root = make_folder(tmp_path / "d", train=2, test=1)
    src = open_source("folder", root, split="train")
    (root / "train" / "ant" / "01.jpg").unlink()
    with pytest.raises(BadImageError, match=r"^ant/01.jpg: unreadable \(No such file or directory\)$"):
        src.read(1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file anyway; the dangling-link case covers 'unreadable' for root")
def test_unreadable_file_is_named_when_read(tmp_path):
    root = make_folder(tmp_path / "d", train=2, test=1)
    f = root / "train" / "ant" / "00.jpg"
    f.chmod(0)
    src = open_source("folder", root, split="train")
    with pytest.raises(BadImageError, match="ant/00.jpg: unreadable"):
        src.read(0)
