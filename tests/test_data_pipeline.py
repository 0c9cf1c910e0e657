"""The streaming loader (twintricks/data/pipeline.py): epochs, process shares, keyed views,
evaluation padding, resumable state, grain workers (same bytes as in-process, a killed worker),
bad data met while decoding, batch transforms, argument checks."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from data_images import make_folder, png_bomb_bytes

from twintricks.data import Batch, BadImageError, Loader, LoaderWorkerError, open_source
from twintricks.data.decode import decode_rgb
from twintricks.data.transforms import CROP, FLIP, epoch_order, eval_crop, image_rng, train_crop

SIZE = 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "d", train=7, test=3)


def _epoch(source, epoch=0, **kw):
    kw = {"train": True, "batch_size": 6, "image_size": SIZE, "seed": 5, "workers": 0, **kw}
    loader = Loader(source, **kw)
    return list(loader.iterator(epoch))


def _cat(batches, field):
    return np.concatenate([getattr(b, field) for b in batches])


def test_epoch_is_a_permutation_and_each_process_takes_its_rows(folder):
    src = open_source("folder", folder, split="train")
    whole = _epoch(src)
    assert len(whole) == 3 and all(b.images.shape == (6, SIZE, SIZE, 3) and b.images.dtype == np.uint8 for b in whole)
    index = _cat(whole, "index")
    np.testing.assert_array_equal(index, epoch_order(5, 0, 21)[:18])  # the short tail (3 images) dropped
    np.testing.assert_array_equal(_cat(whole, "labels"), [src.label(i) for i in index])
    assert _cat(whole, "valid").all() and all(b.skipped == () for b in whole)
    for procs in (2, 3):
        shares = [_epoch(src, process_index=p, process_count=procs) for p in range(procs)]
        for step, batch in enumerate(whole):
            for field in ("images", "labels", "index"):
                np.testing.assert_array_equal(np.concatenate([getattr(s[step], field) for s in shares]), getattr(batch, field))
    again = _epoch(open_source("folder", folder, split="train"))
    np.testing.assert_array_equal(_cat(again, "images"), _cat(whole, "images"))
    other = _epoch(src, epoch=1)
    assert not np.array_equal(_cat(other, "index"), index)


def test_an_images_view_is_keyed_by_seed_epoch_and_index(folder):
    src = open_source("folder", folder, split="train")
    for epoch in (0, 3):
        batches = _epoch(src, epoch=epoch, flip=True)
        for b in batches:
            for row, g in enumerate(b.index):
                image = decode_rgb(src.read(int(g))[0], src.name(int(g)))
                want = train_crop(image, image_rng(5, epoch, g, CROP), image_rng(5, epoch, g, FLIP), SIZE,
                                  scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p=0.5)
                np.testing.assert_array_equal(b.images[row], want)


def test_evaluation_order_padding_and_views(folder):
    src = open_source("folder", folder, split="test")
    loader = Loader(src, train=False, batch_size=4, image_size=SIZE, seed=0, workers=0)
    assert loader.steps_per_epoch == 3
    batches = list(loader.iterator(0))
    np.testing.assert_array_equal(_cat(batches, "index"), [*range(9), -1, -1, -1])
    np.testing.assert_array_equal(_cat(batches, "valid"), [True] * 9 + [False] * 3)
    np.testing.assert_array_equal(_cat(batches, "labels"), [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0])
    images = _cat(batches, "images")
    assert not images[9:].any()
    for g in range(9):
        np.testing.assert_array_equal(images[g], eval_crop(decode_rgb(src.read(g)[0], "x"), SIZE))
    # padding lands in the last process's rows; every process gets the same number of batches
    halves = [list(Loader(src, train=False, batch_size=4, image_size=SIZE, seed=0, workers=0,
                          process_index=p, process_count=2).iterator(0)) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([np.concatenate([h[s].index for h in halves]) for s in range(3)]),
                                  _cat(batches, "index"))


def test_state_resumes_exactly_and_is_checked(folder):
    src = open_source("folder", folder, split="train")
    loader = Loader(src, train=True, batch_size=6, image_size=SIZE, seed=5, workers=0)
    whole = list(loader.iterator(2))
    it = loader.iterator(2)
    first = next(it)
    state = json.loads(json.dumps(it.get_state()))
    it.close()
    assert state["epoch"] == 2 and state["step"] == 1
    rest = list(Loader(open_source("folder", folder, split="train"), train=True, batch_size=6, image_size=SIZE,
                       seed=5, workers=0).iterator(2, state=state))
    assert len(rest) == 2
    for a, b in zip([first, *rest], whole):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.index, b.index)
    end = loader.iterator(2, state={**state, "step": 3})
    assert list(end) == []
    bad = {"epoch": (3, "epoch"), "seed": (6, "seed"), "batch_size": (12, "batch_size"), "fingerprint": ("0" * 64, "fingerprint"),
           "train": (False, "train"), "version": (2, "version")}
    for field, (value, name) in bad.items():
        with pytest.raises(ValueError, match=rf"`state\['{name}'\]` is"):
            loader.iterator(2, state={**state, field: value})
    with pytest.raises(ValueError, match=r"`state\['step'\]` must be in \[0, 3\]"):
        loader.iterator(2, state={**state, "step": 4})
    with pytest.raises(TypeError, match=r"`state\['step'\]` must be an integer"):
        loader.iterator(2, state={**state, "step": "1"})
    with pytest.raises(ValueError, match="lacks the field 'fingerprint'"):
        loader.iterator(2, state={k: v for k, v in state.items() if k != "fingerprint"})
    with pytest.raises(TypeError, match="`state` must be a dict"):
        loader.iterator(2, state=[1])


def test_epochs_continue_one_stream_and_a_superseded_iterator_raises(folder):
    src = open_source("folder", folder, split="train")
    loader = Loader(src, train=True, batch_size=6, image_size=SIZE, seed=5, workers=0)
    list(loader.iterator(0))
    stream = loader._stream
    second = list(loader.iterator(1))
    assert loader._stream is stream  # the next epoch went on where the last one ended
    np.testing.assert_array_equal(_cat(second, "images"), _cat(_epoch(src, epoch=1), "images"))
    old = loader.iterator(2)
    next(old)
    new = loader.iterator(2)  # restarts the stream at (2, 0): the first iterator is superseded
    assert loader._stream is not stream
    with pytest.raises(RuntimeError, match="superseded by a later loader.iterator"):
        next(old)
    np.testing.assert_array_equal(_cat(list(new), "index"), _cat(_epoch(src, epoch=2), "index"))
    evaluation = Loader(open_source("folder", folder, split="test"), train=False, batch_size=4, image_size=SIZE,
                        seed=0, workers=0)
    once = list(evaluation.iterator(0))
    stream = evaluation._stream
    again = list(evaluation.iterator(7))  # evaluation does not depend on the epoch: the stream goes on
    assert evaluation._stream is stream
    np.testing.assert_array_equal(_cat(once, "images"), _cat(again, "images"))
    loader.close()
    assert loader._stream is None


def test_arguments_are_checked(folder):
    src = open_source("folder", folder, split="train")
    ok = {"train": True, "batch_size": 6, "image_size": SIZE, "seed": 0}
    cases = [
        ({"batch_size": 7, "process_count": 2}, ValueError, "`batch_size` 7 .* multiple of the world size 2"),
        ({"process_index": 2, "process_count": 2}, ValueError, "`rank` must be in"),
        ({"image_size": 0}, ValueError, "`image_size` must be in"),
        ({"workers": -1}, ValueError, "`workers` must be in"),
        ({"train": 1}, TypeError, "`train` must be a bool"),
        ({"flip": "yes"}, TypeError, "`flip` must be a bool"),
        ({"batch_size": 24}, ValueError, "`batch_size` 24 is larger than the 21 training images"),
        ({"crop_scale": (0.5, 0.1)}, ValueError, "`scale` must be ordered"),
        ({"on_bad_image": "warn"}, ValueError, "`on_bad_image` must be one of"),
        ({"batch_transform": 3}, TypeError, "`batch_transform` must be callable"),
        ({"seed": 1.5}, TypeError, "`seed` must be an integer"),
    ]
    for change, exc, match in cases:
        with pytest.raises(exc, match=match):
            Loader(src, **{**ok, **change})
    cores = len(os.sched_getaffinity(0))
    assert Loader(src, **ok).workers == cores
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's processes on this machine share its cores
        assert Loader(src, **ok).workers == max(1, cores // 2)
    with pytest.raises(TypeError, match="`source` must be a twintricks.data source"):
        Loader(str(folder), **ok)
    with pytest.raises(ValueError, match="`epoch` must be in"):
        Loader(src, **ok, workers=0).iterator(-1)


def _mark_step(batch: Batch, seed: int, epoch: int, step: int) -> Batch:
    images = batch.images.copy()
    images[:, 0, 0, 0] = step
    return batch._replace(images=images, labels=batch.labels + 100 * epoch + seed)


def test_batch_transform_gets_seed_epoch_and_step(folder):
    src = open_source("folder", folder, split="train")
    plain = _epoch(src, epoch=1)
    loader = Loader(src, train=True, batch_size=6, image_size=SIZE, seed=5, workers=0, batch_transform=_mark_step)
    it = loader.iterator(1)
    next(it)
    out = list(loader.iterator(1, state=it.get_state()))  # a resumed epoch counts steps from its start
    assert [int(b.images[0, 0, 0, 0]) for b in out] == [1, 2]
    np.testing.assert_array_equal(out[0].labels, plain[1].labels + 105)
    np.testing.assert_array_equal(out[0].images[:, 1:], plain[1].images[:, 1:])
    wrong = Loader(src, train=True, batch_size=6, image_size=SIZE, seed=5, workers=0, batch_transform=lambda b, *a: b.images)
    with pytest.raises(TypeError, match="`batch_transform` must return a Batch, got ndarray"):
        next(wrong.iterator(0))


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("bad") / "d", train=4, test=2)
    good = (root / "train" / "ant" / "00.jpg").read_bytes()
    (root / "train" / "bee" / "01.jpg").write_bytes(b"<html>not found</html>")
    (root / "train" / "bee" / "02.jpg").write_bytes(good[: len(good) // 3])
    (root / "train" / "cat" / "00.png").write_bytes(png_bomb_bytes())
    (root / "test" / "cat" / "01.jpg").write_bytes(b"\xff\xd8garbage")
    return root


BAD_TRAIN = {"bee/01.jpg": "not an image", "bee/02.jpg": "truncated or corrupt", "cat/00.png": "decompression bomb"}


def test_bad_images_met_while_decoding(bad_folder):
    src = open_source("folder", bad_folder, split="train")
    assert len(src) == 13  # the index cannot tell: these are found when decoded
    with pytest.raises(BadImageError) as err:
        _epoch(src, batch_size=13)
    assert err.value.file in BAD_TRAIN and BAD_TRAIN[err.value.file] in err.value.reason and "\n" not in str(err.value)
    skip = _epoch(src, batch_size=13, on_bad_image="skip")[0]
    assert {f for f, _ in skip.skipped} == set(BAD_TRAIN)
    for f, reason in skip.skipped:
        assert BAD_TRAIN[f] in reason
    bad_index = {i for i in range(len(src)) if src.name(i) in BAD_TRAIN}
    assert not bad_index & set(skip.index.tolist()) and skip.valid.all()
    # each replaced row holds another image with that image's own label, and every row is decodable
    np.testing.assert_array_equal(skip.labels, [src.label(int(i)) for i in skip.index])
    assert len(set(skip.index.tolist())) < 13
    test = open_source("folder", bad_folder, split="test")
    with pytest.raises(BadImageError, match="^cat/01.jpg: not an image") as err:
        list(Loader(test, train=False, batch_size=4, image_size=SIZE, seed=0, workers=0).iterator(0))
    assert not getattr(err.value, "__notes__", None) and err.value.__cause__ is None
    ev = list(Loader(test, train=False, batch_size=4, image_size=SIZE, seed=0, workers=0, on_bad_image="skip").iterator(0))
    valid = _cat(ev, "valid")
    assert valid.tolist() == [True] * 5 + [False] + [False] * 2
    assert [s for b in ev for s in b.skipped] == [("cat/01.jpg", ev[1].skipped[0][1])]


def test_all_bad_after_a_bad_image_is_an_error(tmp_path):
    root = make_folder(tmp_path / "d", classes=("a",), train=3, test=1)
    for f in (root / "train" / "a").iterdir():
        f.write_bytes(b"junk")
    with pytest.raises(BadImageError, match="and the 2 images after it are bad too"):
        _epoch(open_source("folder", root, split="train"), batch_size=3, on_bad_image="skip")


def test_a_killed_trainer_leaves_no_worker_behind(folder):
    """kill -9 of the process that runs a loader (a trainer killed mid-epoch, to be resumed):
    its grain worker notices and exits instead of living on as an orphan."""
    import subprocess
    import sys

    psutil = pytest.importorskip("psutil")
    script = os.path.join(os.path.dirname(__file__), "data_orphan_parent.py")
    proc = subprocess.Popen([sys.executable, script, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        parent, worker = (int(v) for v in proc.stdout.readline().split())
        assert parent == proc.pid and psutil.pid_exists(worker)
        proc.kill()
        proc.wait(30)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(worker) and psutil.Process(worker).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the loader's worker outlived its killed parent by 30 s"
            time.sleep(0.2)
    finally:
        proc.kill()


def test_workers_same_bytes_resume_errors_and_a_killed_worker(bad_folder):
    """grain's worker processes: a worker killed with SIGKILL ends the epoch with
    LoaderWorkerError (never a hang); a state taken with one worker restores with two and gives
    the in-process bytes (bad files skipped the same way); the next epoch reuses the running
    workers; a bad file's error crosses the process boundary as the same one-line
    BadImageError. (One test: each worker process costs seconds to start.)"""
    psutil = pytest.importorskip("psutil")

    def workers():
        return {c.pid for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())}

    src = open_source("folder", bad_folder, split="train")
    kw = {"train": True, "batch_size": 2, "image_size": SIZE, "seed": 1, "on_bad_image": "skip"}
    in_process = Loader(src, workers=0, **kw)
    inline = list(in_process.iterator(0)) + list(in_process.iterator(1))
    assert len(inline) == 12 and any(b.skipped for b in inline)
    with Loader(src, workers=1, **kw) as loader:
        it = loader.iterator(0)
        first = next(it)
        state = it.get_state()
        (pid,) = workers()
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        signal.alarm(120)  # a hang fails the test instead of blocking the suite
        try:
            with pytest.raises(LoaderWorkerError, match=r"a loader worker process died \(.*exit code -9"):
                for _ in it:  # the dead worker's batches may already be buffered: read on
                    pass
                for epoch in (1, 2):
                    list(loader.iterator(epoch))
        finally:
            signal.alarm(0)
        assert time.monotonic() - start < 60
    with Loader(src, workers=2, **kw) as loader:
        rest = list(loader.iterator(0, state=state))
        pids = workers()
        following = list(loader.iterator(1))  # the next epoch: the same worker processes go on
        assert workers() == pids and len(pids) == 2
    for a, b in zip([first, *rest, *following], inline, strict=True):
        assert type(a.images) is np.ndarray and a.images.flags.c_contiguous
        for field in ("images", "labels", "index", "valid"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert a.skipped == b.skipped
    with Loader(src, workers=1, **{**kw, "on_bad_image": "error"}) as loader:
        with pytest.raises(BadImageError) as err:
            list(loader.iterator(0))
    assert err.value.file in BAD_TRAIN and "\n" not in str(err.value) and not getattr(err.value, "__notes__", None)
