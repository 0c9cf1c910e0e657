"""twintricks.files: atomic writes with the permissions the user's umask gives."""

import json
import os
import stat

import pytest

from twintricks.files import atomic_write_bytes, write_json, write_jsonl


@pytest.fixture
def umask():
    """Run with a known umask, and restore the process's afterwards."""
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_get_the_umask_mode_not_a_private_temp_files(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("a.bin", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


def test_replace_is_whole_and_leaves_no_temporary_file(tmp_path, umask):
    path = tmp_path / "sub" / "f.txt"  # parent folders are created
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path, umask):
    path = tmp_path / "f.json"
    write_json(path, {"ok": True})
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is replaced
        write_json(path, {"loss": float("nan")})
    assert json.loads(path.read_text()) == {"ok": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_jsonl_is_one_strict_object_per_line(tmp_path):
    write_jsonl(tmp_path / "m.jsonl", [{"a": 1}, {"b": [1, 2]}])
    assert [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()] == [{"a": 1}, {"b": [1, 2]}]
    with pytest.raises(ValueError):
        write_jsonl(tmp_path / "n.jsonl", [{"x": float("inf")}])
