"""Tar shards and packed ArrayRecord data sets (twintricks/data/shards.py, packed.py) and the
``twintricks data`` command: the same index and the same batches as the folder they were made
from, and every malformed file a one-line error."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from data_images import add_member, make_folder, write_shards

from twintricks.data import BadImageError, Loader, open_source, pack
from twintricks.data.packed import META_NAME, encode_record
from twintricks_cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("fmt") / "d", train=5, test=2)


def _batches(source, train, **kw):
    kw = {"batch_size": 5, "image_size": 12, "seed": 9, "workers": 0, **kw}
    return list(Loader(source, train=train, **kw).iterator(1))


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for field in ("images", "labels", "index", "valid"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))


def test_shards_index_and_batches_equal_the_folders(folder, tmp_path):
    shards = write_shards(folder, tmp_path / "wds", per_shard=4)
    for split in ("train", "test"):
        ref, src = open_source("folder", folder, split=split), open_source("shards", shards, split=split)
        assert src.classes == ref.classes and len(src) == len(ref) and src.skipped == []
        for i in range(len(src)):
            assert src.read(i) == ref.read(i) and src.label(i) == ref.label(i)
        assert src.name(5) == "train-000001.tar/s00005.jpg" if split == "train" else True
        _same(_batches(src, split == "train"), _batches(ref, split == "train"))
        assert json.loads(json.dumps(src.describe()))["kind"] == "shards"
    (shards / "classes.txt").unlink()  # without names: "0".."K-1" from the largest label
    assert open_source("shards", shards, split="train").classes == ("0", "1", "2")
    assert src.index_nbytes == sum(len(src.name(i)) + 36 for i in range(len(src))) + 8


def test_shards_reading_survives_pickling_into_workers(folder, tmp_path):
    import pickle

    src = open_source("shards", write_shards(folder, tmp_path / "wds", per_shard=4), split="train")
    src.read(0)
    clone = pickle.loads(pickle.dumps(src))  # open file descriptors are not carried over
    assert clone._fds == {} and clone.read(7) == src.read(7)


def test_bad_shards(tmp_path, folder):
    root = tmp_path / "bad"
    root.mkdir()
    img = open_source("folder", folder, split="train").read(0)[0]
    with tarfile.open(root / "train-000000.tar", "w") as tar:
        for name, payload in [("a.jpg", img), ("a.cls", b"1"), ("b.jpg", img), ("b.cls", b"0"), ("nolabel.jpg", img), ("onlycls.cls", b"0"),
                              ("word.jpg", img), ("word.cls", b"cat"), ("two.jpg", img), ("two.png", img),
                              ("two.cls", b"0"), ("empty.jpg", b""), ("empty.cls", b"0")]:
            add_member(tar, name, payload)
    with pytest.raises(BadImageError, match=r"^train-000000.tar/nolabel.jpg: sample without a .cls label \(and 4 more"):
        open_source("shards", root, split="train")
    src = open_source("shards", root, split="train", on_bad_image="skip")
    assert len(src) == 2 and src.classes == ("0", "1")
    assert dict(src.skipped) == {
        "train-000000.tar/nolabel.jpg": "sample without a .cls label",
        "train-000000.tar/onlycls": "sample without an image member",
        "train-000000.tar/word.jpg": ".cls is not a class index: 'cat'",
        "train-000000.tar/two": "sample with 2 image members",
        "train-000000.tar/empty.jpg": "empty file (0 bytes)",
    }
    (root / "classes.txt").write_text("only\n")
    src = open_source("shards", root, split="train", on_bad_image="skip")
    assert src.classes == ("only",) and len(src) == 1
    assert dict(src.skipped)["train-000000.tar/a.jpg"] == "label 1 is not a class index (classes.txt lists 1)"
    with pytest.raises(ValueError, match="no tar shards for the 'test' split"):
        open_source("shards", root, split="test")
    (root / "test-000000.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match="is a compressed tar: shards are read at byte offsets"):
        open_source("shards", root, split="test")
    (root / "test-000000.tar.gz").unlink()
    (root / "val").mkdir()
    (root / "val" / "x.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(ValueError, match="x.tar' is not a readable tar file"):
        open_source("shards", root, split="test")


def test_packed_copy_has_the_folders_fingerprint_and_batches(folder, tmp_path):
    dst = tmp_path / "packed"
    meta = pack(folder, dst, images_per_file=4)
    assert sorted(p.name for p in dst.iterdir()) == sorted([META_NAME, *meta["splits"]["train"]["files"],
                                                          *meta["splits"]["test"]["files"]])
    assert meta["splits"]["train"]["files"] == [f"train-{k:05d}-of-00004.array_record" for k in range(4)]
    for split in ("train", "test"):
        ref, src = open_source("folder", folder, split=split), open_source("packed", dst, split=split)
        assert (src.classes, len(src), src.fingerprint) == (ref.classes, len(ref), ref.fingerprint)
        assert [src.name(i) for i in range(len(src))] == [ref.name(i) for i in range(len(ref))]
        _same(_batches(src, split == "train"), _batches(ref, split == "train"))
    # from shards too (their names, their fingerprint)
    shards = write_shards(folder, tmp_path / "wds")
    pack(shards, tmp_path / "p2", kind="shards")
    assert open_source("packed", tmp_path / "p2", split="train").fingerprint == open_source("shards", shards, split="train").fingerprint
    with pytest.raises(ValueError, match="already holds a packed data set"):
        pack(folder, dst)
    import pickle  # a packed source crosses into grain's worker processes

    src = open_source("packed", dst, split="train")
    assert pickle.loads(pickle.dumps(src)).read(9) == src.read(9)


def test_packing_reads_each_header(folder, tmp_path):
    """Not-an-image bytes and a decompression bomb are found when packing, before any training."""
    import shutil

    from data_images import png_bomb_bytes

    src = shutil.copytree(folder, tmp_path / "src")
    (src / "train" / "bee" / "zz.jpg").write_bytes(b"<html>404</html>")
    (src / "train" / "cat" / "99.png").write_bytes(png_bomb_bytes())
    (src / "train" / "ant" / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImageError, match="^ant/empty.jpg: empty file"):
        pack(src, tmp_path / "p0")
    (src / "train" / "ant" / "empty.jpg").unlink()
    with pytest.raises(BadImageError, match="^bee/zz.jpg: not an image"):
        pack(src, tmp_path / "p1")
    (src / "train" / "ant" / "empty.jpg").write_bytes(b"")
    meta = pack(src, tmp_path / "p2", on_bad_image="skip")
    entry = meta["splits"]["train"]
    assert entry["images"] == 15 and {f for f, _ in entry["skipped"]} == {"ant/empty.jpg", "bee/zz.jpg", "cat/99.png"}
    assert dict(map(tuple, entry["skipped"]))["cat/99.png"].startswith("decompression bomb")
    packed = open_source("packed", tmp_path / "p2", split="train")
    assert len(packed) == 15 and packed.skipped == [tuple(s) for s in entry["skipped"]]
    assert packed.fingerprint == open_source("folder", folder, split="train").fingerprint  # the same 15 images
    assert packed.fingerprint != open_source("folder", src, split="train", on_bad_image="skip").fingerprint


def test_malformed_packed_sets(folder, tmp_path):
    dst = tmp_path / "p"
    pack(folder, dst, splits=("train",))
    with pytest.raises(ValueError, match="has no 'test' split"):
        open_source("packed", dst, split="test")
    meta_path = dst / META_NAME
    meta = json.loads(meta_path.read_text())
    edits = [
        (lambda m: m.update(format="other"), "`format`/`version` must be"),
        (lambda m: m["splits"]["train"].update(images=99), "images says 99, the files hold 15 records"),
        (lambda m: m["splits"]["train"]["files"].append("gone.array_record"), "packed file 'gone.array_record' is missing"),
        (lambda m: m["splits"]["train"].update(files=["../../etc/passwd"]), "must be a list of file names"),
        (lambda m: m["splits"]["train"].update(fingerprint=3), "fingerprint must be a SHA-256"),
        (lambda m: m.update(classes=[]), "`classes` must be a non-empty list"),
    ]
    for edit, match in edits:
        bad = json.loads(json.dumps(meta))
        edit(bad)
        meta_path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            open_source("packed", dst, split="train")
    meta_path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        open_source("packed", dst, split="train")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="is not a packed data set"):
        open_source("packed", folder, split="train")
    # records that are not ours, or name a class that does not exist: named when read
    from array_record.python.array_record_module import ArrayRecordWriter

    f = dst / meta["splits"]["train"]["files"][0]
    w = ArrayRecordWriter(str(f), "group_size:1,uncompressed")
    img = open_source("folder", folder, split="train").read(0)[0]
    for k in range(15):
        w.write(b"\x89PNG no header" if k == 0 else encode_record(f"c/{k}.jpg", 7 if k == 1 else 0, img))
    w.close()
    src = open_source("packed", dst, split="train")
    with pytest.raises(BadImageError, match=r"^train record 0: not a twintricks packed record"):
        src.read(0)
    with pytest.raises(BadImageError, match=r"^c/1.jpg: label 7 is not a class index \(the data set has 3 classes\)"):
        src.read(1)
    assert src.read(2)[0] == img


def test_data_command(folder, tmp_path, capsys):
    assert main(["data", "pack", str(folder), str(tmp_path / "p"), "--images-per-file", "8"]) == 0
    out = capsys.readouterr().out
    assert "train: 15 images in 2 files" in out and "twintricks train --dataset packed --data-dir" in out
    assert main(["data", "describe", str(tmp_path / "p"), "--kind", "packed", "--split", "test"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["images"] == 6 and d["fingerprint"] == open_source("folder", folder, split="test").fingerprint
    for argv, match in [
        (["data", "pack", str(folder), str(tmp_path / "p")], "^twintricks data pack: .* already holds a packed data set"),
        (["data", "pack", str(tmp_path / "nope"), str(tmp_path / "q")], "^twintricks data pack: data path .* is not a folder"),
        (["data", "pack", str(folder), str(tmp_path / "q"), "--images-per-file", "0"], "`images_per_file` must be in"),
        (["data", "describe", str(folder), "--kind", "shards"], "^twintricks data describe: no tar shards"),
    ]:
        with pytest.raises(SystemExit, match=match) as err:
            main(argv)
        assert "\n" not in str(err.value)
