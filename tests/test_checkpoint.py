"""Checkpoint files are data, never code: the format-2 round trip is exact, every damaged or foreign
file gets a one-line CheckpointError, and crafted files (an old-format pickle with a payload, a
new-format file with odd JSON, a torch pickle) run nothing through load_checkpoint, resume
(`fit` with config.resume, the CLI's --resume) or the teacher path (--teacher), in both backends."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra import numpy as hnp

from twintricks.checkpoint import (
    CheckpointError, convert_legacy, load_checkpoint, read_safetensors, save_checkpoint,
)

ml_dtypes = pytest.importorskip("ml_dtypes")
DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.float16, np.float32, np.float64, np.complex64, ml_dtypes.bfloat16]


# ----------------------------------------------------------------------------- exact round trip


def _same(a, b, where="payload"):
    """Equal values of the same Python type; arrays of the same dtype and shape, bit for bit."""
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), f"{where}: {a.dtype}{np.shape(a)} vs {b.dtype}{np.shape(b)}"
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b) or set(a) == set(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            assert type(k) is type(next(x for x in b if x == k)), f"{where}: key {k!r}"
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), where  # -0.0 stays -0.0
    else:
        assert a == b, where


def _roundtrip(payload):
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(Path(d) / "c.ckpt", payload)
        return load_checkpoint(Path(d) / "c.ckpt")


_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
_arrays = st.sampled_from(DTYPES[:-1]).flatmap(lambda dt: hnp.arrays(np.dtype(dt), _shapes)) | hnp.arrays(
    np.uint16, _shapes).map(lambda a: a.view(ml_dtypes.bfloat16))  # every bfloat16 bit pattern, NaNs included
_leaves = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**90)
    | st.floats() | st.text(max_size=8) | _arrays | _arrays.filter(lambda a: a.ndim == 0).map(lambda a: a[()])
)
_keys = st.text(max_size=6) | st.integers(-3, 10) | st.tuples(st.integers(0, 3), st.text(max_size=2)) | st.none()
_trees = st.recursive(
    _leaves,
    lambda kids: st.lists(kids, max_size=3) | st.lists(kids, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=6), kids, max_size=3) | st.dictionaries(_keys, kids, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "format"), _trees, max_size=4))
@example({"state": {0: {"momentum_buffer": np.ones(3, np.float32)}, 1: {"step": np.array(4.0, np.float32)}},
          "param_groups": [{"betas": (0.9, 0.999), "params": [0, 1], "foreach": None, "nesterov": True}],
          "scalar_vs_0d": [np.float32(1.5), np.array(1.5, np.float32)], "nan": float("nan"), "negzero": -0.0,
          "inf": [float("inf"), float("-inf")], "rng": np.arange(16, dtype=np.uint8), "empty": [(), [], {}],
          "bf16": np.array([1.5, -2.0], ml_dtypes.bfloat16), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
          "__metadata__": np.zeros(2), "a/b": np.ones(1), "a": {"b": np.zeros(1)}})  # tensor-name collisions
def test_payload_round_trips_exactly(payload):
    got = _roundtrip(payload)
    assert got.pop("format") == 2
    _same(payload, got)


def test_trainer_states_round_trip_exactly(tmp_path):
    """The real payloads: torch (SGD and AdamW: int-keyed state, tuple betas, 0-d step tensors) and jax."""
    from jax_impl import train as jtrain
    from torch_impl import train as ttrain
    from twintricks.datasets import load_digits
    from twintricks.recipe import TrainConfig

    ds = load_digits().subset(train=16, test=8)
    for opt in ("sgd", "adamw"):
        cfg = TrainConfig(model="fastnet", width=2, batch_size=8, epochs=1, progress=False, optimizer=opt)
        t = ttrain.Trainer(cfg, ds, device="cpu")
        t.train_step(t.data.train_images[:8], t.data.train_labels[:8], {})
        state = {**t.get_state(), "framework": "torch", "config": cfg.to_dict(), "epoch": 1, "history": [{"loss": 0.5}]}
        got = _roundtrip(state)
        got.pop("format")
        _same(state, got)
    cfg = TrainConfig(model="fastnet", width=2, batch_size=8, epochs=1, progress=False)
    state = {**jtrain.Trainer(cfg, ds).get_state(), "framework": "jax"}
    got = _roundtrip(state)
    got.pop("format")
    _same(state, got)


def test_unstorable_values_are_refused_on_save(tmp_path):
    with pytest.raises(TypeError, match=r"payload\['a'\]\[0\]: a builtins.set"):
        save_checkpoint(tmp_path / "c.ckpt", {"a": [{1, 2}]})
    with pytest.raises(TypeError, match="dtype object"):
        save_checkpoint(tmp_path / "c.ckpt", {"a": np.array([None])})
    with pytest.raises(TypeError, match="`payload`"):
        save_checkpoint(tmp_path / "c.ckpt", [1])
    with pytest.raises(ValueError, match="'format' is reserved"):
        save_checkpoint(tmp_path / "c.ckpt", {"format": 1})
    assert not list(tmp_path.iterdir())


def test_checkpoint_is_a_safetensors_file(tmp_path):
    """Any safetensors reader opens it; the tensors are named by their place in the payload."""
    from safetensors.numpy import load_file

    save_checkpoint(tmp_path / "c.ckpt", {"model": {"fc.weight": np.ones((2, 3), np.float32)}, "step": 3})
    assert list(load_file(tmp_path / "c.ckpt")) == ["model/fc.weight"]
    assert list(read_safetensors(tmp_path / "c.ckpt")) == ["model/fc.weight"]


# ----------------------------------------------------------------------------- damaged and foreign files


def _one_line_error(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, {"model": {"w": np.arange(64, dtype=np.float32)}, "step": 7, "config": {"lr": 0.1}})
    return path


def test_truncated_and_bit_flipped_files_are_corrupt(good):
    data = good.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for cut in (8 + n // 2, 8 + n, 8 + n + 100, len(data) - 1):  # inside the header, at / inside the tensors
        good.write_bytes(data[:cut])
        _one_line_error(good, "corrupt")
    rng = np.random.default_rng(0)
    positions = sorted({0, 3, 8, 9, 20, 8 + n - 1, 8 + n, len(data) - 1, *rng.integers(0, len(data), 40).tolist()})
    for pos in positions:
        for bit in (0, 5):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            good.write_bytes(bytes(bad))
            _one_line_error(good, "corrupt|not a twintricks checkpoint")


def test_a_damaged_version_field_is_corruption_not_another_version(good):
    """Found by CI's derandomized run: a bit flip in the metadata's ``"version"`` key left valid
    JSON without a version, which was reported as another format version."""
    data = good.read_bytes()
    for needle in (b'"version"', b'"2"'):
        pos = data.index(needle) + 1
        for bit in (0, 5):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            good.write_bytes(bytes(bad))
            _one_line_error(good, "corrupt")


def test_foreign_files_are_refused(tmp_path):
    from PIL import Image

    cases = {
        "random.bin": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.ckpt": b"",
        "data.json": json.dumps({"model": [1, 2, 3]}).encode(),
        "text.txt": b"not a checkpoint at all, just text" * 3,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        _one_line_error(tmp_path / name, "not a twintricks checkpoint|empty")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "img.png")
    _one_line_error(tmp_path / "img.png", "not a twintricks checkpoint")
    from safetensors.numpy import save_file

    save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "weights.safetensors"))
    _one_line_error(tmp_path / "weights.safetensors", "safetensors file but not a twintricks checkpoint")
    _one_line_error(tmp_path, "is a directory")
    _one_line_error(tmp_path / "missing.ckpt", "does not exist")


def test_resume_from_a_directory_says_directory(tmp_path):
    from torch_impl import train as ttrain
    from twintricks.datasets import load_digits
    from twintricks.recipe import CHECKPOINT_NAME, TrainConfig, fit

    (tmp_path / CHECKPOINT_NAME).mkdir()
    cfg = TrainConfig(model="fastnet", width=2, batch_size=8, epochs=1, progress=False, resume=True, out=str(tmp_path))
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        fit(ttrain.Trainer(cfg, load_digits().subset(train=16, test=8), device="cpu"), cfg, out=tmp_path, log=lambda s: None)


def _write_v2(path, payload_json: str, tensors=None, version="2"):
    """A format-2 file written from the module docstring's description (not with save_checkpoint):
    the hash is the SHA-256 of the header without ``sha256`` as canonical JSON, then the tensor bytes."""
    from safetensors.numpy import save

    meta = {"format": "twintricks-checkpoint", "version": version, "payload": payload_json}
    draft = save(tensors or {}, metadata=meta)
    (n,) = struct.unpack("<Q", draft[:8])
    header = json.loads(draft[8 : 8 + n])
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + draft[8 + n :])
    Path(path).write_bytes(save(tensors or {}, metadata={**meta, "sha256": digest.hexdigest()}))


def test_documented_hash_and_other_versions(tmp_path):
    _write_v2(tmp_path / "ok.ckpt", '{"dict": {"format": 2, "w": {"array": "w"}}}', {"w": np.ones(2)})
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "ok.ckpt")["w"], np.ones(2))
    _write_v2(tmp_path / "v3.ckpt", '{"dict": {"format": 3}}', version="3")
    _one_line_error(tmp_path / "v3.ckpt", "format version '3'; this twintricks reads version 2")


# ----------------------------------------------------------------------------- crafted files run nothing


class _Payload:
    """Unpickling this calls os.system (a stand-in for any code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _legacy_file(path, body_obj):
    """A format-1 checkpoint as twintricks wrote them: magic, SHA-256 of the body, the pickle body."""
    body = pickle.dumps(body_obj, protocol=4)
    Path(path).write_bytes(b"TWINTRICKS-CKPT1" + hashlib.sha256(body).digest() + body)


@pytest.fixture()
def crafted(tmp_path):
    """(a format-1 file with a genuine state and a payload that would touch MARKER, MARKER)."""
    marker = tmp_path / "MARKER"
    from torch_impl import train as ttrain
    from twintricks.datasets import load_digits
    from twintricks.recipe import TrainConfig

    cfg = TrainConfig(model="fastnet", width=2, batch_size=8, epochs=1, progress=False, out=str(tmp_path / "run"))
    state = ttrain.Trainer(cfg, load_digits().subset(train=16, test=8), device="cpu").get_state()
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.ckpt"
    _legacy_file(path, {"format": 1, **state, "framework": "torch", "config": cfg.to_dict(), "epoch": 0,
                        "history": [], "x": _Payload(marker)})
    return path, marker, cfg


def test_legacy_pickle_is_refused_everywhere(crafted):
    from jax_impl import train as jtrain
    from torch_impl import train as ttrain
    from twintricks.datasets import load_digits
    from twintricks.recipe import fit
    from twintricks_cli.train import load_teacher

    path, marker, cfg = crafted
    msg = _one_line_error(path, "old format 1")
    assert "python -m twintricks.checkpoint" in msg and "--trust" in msg
    ds = load_digits().subset(train=16, test=8)
    resume = type(cfg).from_dict({**cfg.to_dict(), "resume": True})
    for trainer in (ttrain.Trainer(resume, ds, device="cpu"), jtrain.Trainer(resume, ds)):
        with pytest.raises(CheckpointError, match="old format 1"):
            fit(trainer, resume, out=path.parent, log=lambda s: None)
    for backend in ("torch", "jax"):
        with pytest.raises(CheckpointError, match="old format 1"):
            load_teacher(str(path), backend, 10)
    # the conversion needs the opt-in, and even then accepts no globals beyond NumPy's arrays
    with pytest.raises(ValueError, match="`trust` must be True"):
        convert_legacy(path, path.parent / "new.ckpt")
    with pytest.raises(CheckpointError, match="refused to load the global posix.system|refused to load the global nt.system"):
        convert_legacy(path, path.parent / "new.ckpt", trust=True)
    assert not marker.exists()
    assert not (path.parent / "new.ckpt").exists()


def test_cli_resume_and_teacher_refuse_the_legacy_pickle(crafted, monkeypatch):
    import torch

    from twintricks_cli import main

    path, marker, _ = crafted
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # --threads sets it; restored afterwards
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # and leaves this process's torch threads alone
    common = ["train", "--model", "fastnet", "--width", "2", "--epochs", "1", "--no-progress", "--threads", "1"]
    for backend in ("torch", "jax"):
        with pytest.raises(SystemExit, match="old format 1"):
            main([*common, "--backend", backend, "--out", str(path.parent), "--resume", "--seed", "0"])
        with pytest.raises(SystemExit, match="old format 1"):
            main([*common, "--backend", backend, "--out", str(path.parent / "t"), "--teacher", str(path)])
    assert not marker.exists()


def test_trusted_legacy_checkpoint_converts(tmp_path):
    state = {"model": {"w": np.arange(4, dtype=np.float32)}, "rng": np.zeros(3, np.uint32), "step": 2,
             "optimizer": {"state": {0: {"m": np.ones(1)}}, "param_groups": [{"betas": (0.9, 0.99)}]}}
    _legacy_file(tmp_path / "old.ckpt", {"format": 1, **state})
    convert_legacy(tmp_path / "old.ckpt", tmp_path / "new.ckpt", trust=True)
    got = load_checkpoint(tmp_path / "new.ckpt")
    assert got.pop("format") == 2
    _same(state, got)
    from twintricks.checkpoint import _main

    assert _main([str(tmp_path / "old.ckpt"), str(tmp_path / "cli.ckpt"), "--trust"]) == 0
    _same(state, {k: v for k, v in load_checkpoint(tmp_path / "cli.ckpt").items() if k != "format"})


@pytest.mark.parametrize(
    "tree",
    [
        '{"py/object": "os.system", "args": ["touch MARKER"]}',  # another library's object tag
        '{"dict": {"format": 2, "x": {"__reduce__": ["os.system", "touch MARKER"]}}}',
        '{"dict": {"format": 2, "x": {"array": "nope"}}}',  # a tensor the file lacks
        '{"dict": {"format": 2, "x": {"items": [[[1, 2], 3]]}}}',  # an unhashable key
        '{"dict": {"format": 2, "x": {"tuple": [1], "dict": {}}}}',  # two tags
        '{"dict": {"format": 2, "x": {"scalar": "w"}}}',  # a scalar that is not 0-d
        "[" * 100_000 + "]" * 100_000,  # deeper than any parser's recursion
        "not json",
    ],
    ids=["object-tag", "reduce-tag", "missing-tensor", "unhashable-key", "two-tags", "scalar-shape", "deep", "not-json"],
)
def test_crafted_new_format_json_is_rejected(tmp_path, tree):
    _write_v2(tmp_path / "c.ckpt", tree, {"w": np.ones(2)})
    _one_line_error(tmp_path / "c.ckpt", "checkpoint")
    assert not (Path.cwd() / "MARKER").exists()


def test_crafted_new_format_strings_are_plain_data(tmp_path):
    code = "__import__('os').system('touch MARKER')"
    _write_v2(tmp_path / "c.ckpt", json.dumps({"dict": {"format": 2, "model_name": code, "cfg": {"dict": {"x": code}}}}))
    got = load_checkpoint(tmp_path / "c.ckpt")
    assert got["model_name"] == code and got["cfg"] == {"x": code}
    from twintricks_cli.train import load_teacher

    _write_v2(tmp_path / "t.ckpt", json.dumps({"dict": {"format": 2, "framework": "torch", "model_name": code,
                                                         "width": 2, "num_classes": 10, "model": {"dict": {}}}}))
    with pytest.raises(CheckpointError, match="unknown model"):
        load_teacher(str(tmp_path / "t.ckpt"), "torch", 10)
    assert not (Path.cwd() / "MARKER").exists()


# ----------------------------------------------------------------------------- teachers from elsewhere


@pytest.fixture(scope="module")
def torch_teacher():
    import torch

    from torch_impl.models import create_model

    torch.manual_seed(0)
    net = create_model("resnet18", 10, width=2)
    for m in net.modules():  # running statistics away from their initial values
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return net.eval()


def _logits_torch(net, x):
    import torch

    with torch.no_grad():
        return net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


def test_teacher_from_torch_and_safetensors_files(torch_teacher, tmp_path):
    import jax.numpy as jnp
    import torch
    from safetensors.torch import save_file

    import jax_impl
    from torch_impl.models import create_model
    from twintricks_cli.train import load_teacher

    sd = torch_teacher.state_dict()
    torch.save(sd, tmp_path / "t.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "t.safetensors"),
              metadata={"note": "x" * 100_000})  # a header longer than any first read of the file
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pt")  # DataParallel's names
    save_file({k: v.to(torch.bfloat16) for k, v in sd.items() if v.is_floating_point()}, str(tmp_path / "bf16.safetensors"))
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    want = _logits_torch(torch_teacher, x)
    for f in ("t.pt", "t.safetensors", "dp.pt"):
        name, width, w = load_teacher(str(tmp_path / f), "torch", 10)
        assert (name, width) == ("resnet18", 2)
        net = create_model(name, 10, width=width)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()})
        np.testing.assert_array_equal(_logits_torch(net.eval(), x), want)  # the same weights, exactly
        name, width, v = load_teacher(str(tmp_path / f), "jax", 10)
        got = jax_impl.models.create_model(name, 10, width=width).apply(v, jnp.asarray(x), train=False)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)  # float32 conv order differs
    # bfloat16 weights (no num_batches_tracked: torch's state_dict has them, other writers may not)
    name, width, w = load_teacher(str(tmp_path / "bf16.safetensors"), "torch", 10, model="resnet18", width=2)
    assert w["fc.weight"].dtype == np.float32 and w["bn1.num_batches_tracked"].shape == ()
    # what does not fit is named
    with pytest.raises(CheckpointError, match="is a resnet18 of width 2, the teacher options say fastnet"):
        save_checkpoint(tmp_path / "tt.ckpt", {"framework": "torch", "model_name": "resnet18", "width": 2,
                                               "num_classes": 10, "model": {k: v.numpy() for k, v in sd.items()}})
        load_teacher(str(tmp_path / "tt.ckpt"), "jax", 10, model="fastnet")
    with pytest.raises(CheckpointError, match="10 classes, the data set has 5"):
        load_teacher(str(tmp_path / "t.pt"), "torch", 5)
    with pytest.raises(CheckpointError, match="does not fit a fastnet"):
        load_teacher(str(tmp_path / "t.safetensors"), "torch", 10, model="fastnet")
    with pytest.raises(CheckpointError, match="does not fit a resnet18 of width 3"):
        load_teacher(str(tmp_path / "t.safetensors"), "jax", 10, width=3)
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "wrapped.pt")
    with pytest.raises(CheckpointError, match="save model.state_dict"):
        load_teacher(str(tmp_path / "wrapped.pt"), "torch", 10)
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="is not a twintricks checkpoint, a safetensors file"):
        load_teacher(str(tmp_path / "odd.bin"), "jax", 10)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_teacher(str(tmp_path), "torch", 10)


def test_teacher_torch_pickle_runs_nothing(tmp_path, monkeypatch):
    from twintricks_cli.train import load_teacher

    marker = tmp_path / "MARKER"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"fc.weight": _Payload(marker)}, protocol=2))
    for backend in ("torch", "jax"):
        with pytest.raises(CheckpointError, match="weights_only=True.*(system|Unsupported)"):
            load_teacher(str(tmp_path / "evil.pt"), backend, 10)
    assert not marker.exists()
    # a torch file for the jax backend on a machine without torch: a clear error
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(CheckpointError, match="needs torch installed"):
        load_teacher(str(tmp_path / "evil.pt"), "jax", 10)


# ----------------------------------------------------------------------------- values read back: the run-state schema


def _state(**change):
    """A valid run state (a checkpoint payload less the weights) of _RUN after 1 of 2 epochs, 2 steps per epoch."""
    from twintricks.recipe import TrainConfig

    cfg = TrainConfig(model="fastnet", width=2, batch_size=8, epochs=2, progress=False)
    row = {"epoch": 1, "train_loss": 2.3, "train_acc": 0.1, "test_loss": 2.2, "test_acc": 0.125, "lr": 0.05,
           "images": 8, "train_s": 0.1, "images_per_s": 80.0, "epoch_s": 0.2, "eval_s": 0.01, "compile_s": 0.0}
    state = {"framework": "torch", "config": cfg.to_dict(), "model_name": "fastnet", "width": 2, "num_classes": 10,
             "epoch": 1, "step": 2, "step_in_epoch": 0, "progress": None, "data": None, "history": [row],
             "threads": 1, "world_size": 1}
    state.update(change)
    return state, cfg


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(epoch=-3, step=-6, history=[]), r"`epoch` must be an integer in \[0, 2\], got -3"),
        (dict(epoch=7, step=14), r"`epoch` must be an integer in \[0, 2\], got 7"),
        (dict(epoch="1"), r"`epoch` must be an integer in \[0, 2\], got '1'"),
        (dict(epoch=1.0), r"`epoch` must be an integer .*got 1.0"),
        (dict(epoch=True), r"`epoch` must be an integer .*got True"),
        (dict(step="2"), r"`step` must be 2 \(epoch 1 × 2 steps per epoch \+ step_in_epoch 0\), got '2'"),
        (dict(step=3), r"`step` must be 2 .*got 3"),
        (dict(history="[]"), r"`history` must be a list of metric rows, got '\[\]'"),
        (dict(history=[]), r"`history` has 0 rows, its `epoch` says 1"),
        (dict(history=[{"epoch": 1}]), r"`history\[0\]` must have the fields .*missing \['train_loss'"),
        (dict(step_in_epoch=2, step=4), r"`step_in_epoch` must be an integer in \[0, 1\], got 2"),
        (dict(step_in_epoch=-1, step=1), r"`step_in_epoch` must be an integer in \[0, 1\], got -1"),
        (dict(step_in_epoch=1, step=3), r"`progress` must be an object with `loss_sum` and `correct`"),
        (dict(step_in_epoch=1, step=3, progress={"loss_sum": float("nan"), "correct": 1}), r"`progress.loss_sum` must be a finite"),
        (dict(step_in_epoch=1, step=3, progress={"loss_sum": 2.0, "correct": 9}), r"`progress.correct` must be an integer in \[0, 8\]"),
        (dict(progress={"loss_sum": 2.0, "correct": 1}), r"`progress` must be null at the end of an epoch"),
        (dict(data=[1, 2]), r"`data` must be null or an object"),
        (dict(threads=0), r"`threads` must be an integer in \[1, inf\], got 0"),
        (dict(world_size="2"), r"`world_size` must be an integer"),
        (dict(num_classes=None), r"`num_classes` must be an integer in \[2, inf\]"),
        (dict(model_name="resnet18"), r"`model_name` must be 'fastnet'"),
        (dict(config="lr=0.1"), r"`config` must be an object"),
        (dict(framework=["torch"]), r"written by the \['torch'\] backend"),
    ],
    ids=lambda x: None if isinstance(x, str) else "-".join(f"{k}" for k in x) if isinstance(x, dict) else None,
)
def test_run_state_values_are_checked(change, match):
    """Issue 22 item 1: every value a resume takes from a checkpoint is checked (type, range,
    consistency with the run) with a one-line error naming the field; ints are not parsed from
    strings or floats."""
    from twintricks.schema import check_run_state

    state, cfg = _state(**change)
    with pytest.raises(CheckpointError, match=match) as info:
        check_run_state(state, cfg, framework="torch", steps_per_epoch=2)
    assert "\n" not in str(info.value)


def test_valid_run_states_pass_and_history_rows_are_checked():
    from twintricks.schema import check_run_state

    state, cfg = _state()
    assert check_run_state(state, cfg, framework="torch", steps_per_epoch=2)["step_in_epoch"] == 0
    mid, _ = _state(step_in_epoch=1, step=3, progress={"loss_sum": 2.5, "correct": 3}, data={"iterator": {}})
    check_run_state(mid, cfg, framework="torch", steps_per_epoch=2)
    old = dict(state)
    del old["step_in_epoch"], old["progress"], old["data"]  # a checkpoint from before mid-epoch saves
    assert check_run_state(old, cfg, framework="torch", steps_per_epoch=2)["step_in_epoch"] == 0
    done, _ = _state(epoch=2, step=4, history=[state["history"][0], {**state["history"][0], "epoch": 2}])
    check_run_state(done, cfg, framework="torch", steps_per_epoch=2)
    for field, bad in (("train_acc", 1.5), ("test_loss", float("inf")), ("images", 8.0), ("epoch", 2), ("lr", "0.05")):
        row = {**state["history"][0], field: bad}
        with pytest.raises(CheckpointError, match=rf"`history\[0\]\.?{field}"):
            check_run_state({**state, "history": [row]}, cfg, framework="torch", steps_per_epoch=2)


@pytest.fixture()
def one_epoch_run(tmp_path, monkeypatch):
    """A CLI run of 1 of 2 epochs (torch, digits, width 2), stopped after its first epoch's checkpoint."""
    import torch

    import twintricks.recipe as recipe
    from twintricks_cli import main

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    args = ["train", "--width", "2", "--epochs", "2", "--batch-size", "256", "--no-progress", "--threads", "1",
            "--out", str(tmp_path / "run")]

    class Stop(Exception):
        pass

    real = recipe.write_jsonl

    def stop_after_first_epoch(path, rows):
        real(path, rows)
        if rows:
            raise Stop

    monkeypatch.setattr(recipe, "write_jsonl", stop_after_first_epoch)
    with pytest.raises(Stop):
        main(args)
    monkeypatch.setattr(recipe, "write_jsonl", real)
    return args, tmp_path / "run"


def test_a_re_signed_checkpoint_with_a_negative_epoch_is_refused_by_resume(one_epoch_run, capsys):
    """The issue's case: ``epoch: -3`` in a checkpoint re-signed with a valid SHA-256 made
    ``--resume`` train epochs -2 ... 2 with exit 0; a string ``epoch`` gave a raw traceback. Now:
    a one-line error naming the field, before any training, and no epoch is added."""
    from twintricks_cli import main

    args, run = one_epoch_run
    path = run / "checkpoint.ckpt"
    good = load_checkpoint(path)
    good.pop("format")
    metrics = (run / "metrics.jsonl").read_text()
    for change, match in ((dict(epoch=-3), r"`epoch` must be an integer in \[0, 2\], got -3"),
                          (dict(epoch="1"), r"`epoch` must be an integer in \[0, 2\], got '1'"),
                          (dict(step="5"), r"`step` must be 5 .*got '5'"),
                          (dict(history="x"), r"`history` must be a list")):
        save_checkpoint(path, {**good, **change})  # a valid SHA-256: anyone can re-sign
        with pytest.raises(SystemExit, match=match) as info:
            main([*args, "--resume"])
        assert str(info.value).startswith("twintricks train: checkpoint field") and "\n" not in str(info.value)
        assert (run / "metrics.jsonl").read_text() == metrics  # nothing trained, nothing rewritten
    assert "epoch   2/2" not in capsys.readouterr().out


def test_a_deeply_nested_config_json_on_resume_is_a_clear_error(one_epoch_run):
    """Issue 22 item 2: a nested config.json made --resume raise RecursionError; a config.json
    whose threads is a string was silently ignored."""
    from twintricks_cli import main

    args, run = one_epoch_run
    args = [a for a in args if a not in ("--threads", "1")]  # --resume then reads the recorded thread count
    (run / "config.json").write_text('{"threads": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SystemExit, match=r"config.json is JSON nested 100001 levels deep, more than the 64") as info:
        main([*args, "--resume"])
    assert "\n" not in str(info.value)
    (run / "config.json").write_text('{"threads": "4"}')
    with pytest.raises(SystemExit, match=r"config.json: field `threads` must be null or an integer >= 1, got '4'"):
        main([*args, "--resume"])


def test_a_payload_of_millions_of_empty_lists_is_refused_cheaply(tmp_path):
    """Issue 22 item 2: a 12 MB payload of 4M empty lists took 653 MB to load (1.37 GB through
    --resume). It is measured before it is parsed: refused in one line, using a few copies of
    its text (tracemalloc: 62 MB for this 12 MB file — the file, the header's text and its
    payload string, the measuring copies — where the parse took 650 MB)."""
    import tracemalloc

    _write_v2(tmp_path / "c.ckpt", '{"dict": {"format": 2, "x": [' + "[]," * 4_000_000 + "[]]}}")
    size = (tmp_path / "c.ckpt").stat().st_size
    assert size > 12_000_000
    tracemalloc.start()
    try:
        _one_line_error(tmp_path / "c.ckpt", r"payload is JSON of about \d+ values, more than the 1000000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * size, (peak, size)
    # a header crafted the same way (not the payload string): refused before it is parsed too
    data = b'{"__metadata__": {"x": [' + b"[]," * 2_000_000 + b"[]]}}"
    (tmp_path / "h.ckpt").write_bytes(struct.pack("<Q", len(data)) + data)
    _one_line_error(tmp_path / "h.ckpt", r"corrupt \(its safetensors header is JSON nested|of about \d+ values")
    big = b'{"__metadata__": {"payload": "' + b"x" * (65 << 20) + b'"}}'
    (tmp_path / "b.ckpt").write_bytes(struct.pack("<Q", len(big)) + big)
    _one_line_error(tmp_path / "b.ckpt", r"header is \d+ bytes of JSON, more than the 67108864")


def test_json_caps_are_measured_outside_strings():
    from twintricks.files import JsonCaps, json_extent, load_json

    assert json_extent('{"a": [1, 2, {"b": "x[[[,,"}], "c": "\\"[["}') == (3, 10)
    assert json_extent("[" * 300 + "]" * 300) == (300, 301)
    assert load_json('{"s": "[[[[[[[[[["}', what="x", caps=JsonCaps(100, 1, 10)) == {"s": "[[[[[[[[[["}
    with pytest.raises(ValueError, match="x is JSON nested 2 levels deep, more than the 1"):
        load_json('{"s": ["]"]}', what="x", caps=JsonCaps(100, 1, 10))
    with pytest.raises(ValueError, match="x is 12 bytes of JSON, more than the 10"):
        load_json('{"s": "abc"}', what="x", caps=JsonCaps(10, 9, 10))
    with pytest.raises(ValueError, match="NaN is not JSON|not valid JSON"):
        load_json('[NaN]', what="x")


def test_a_resnet50_state_dict_is_recognised_as_a_teacher(tmp_path):
    """torchvision's resnet50 names (Bottleneck ``conv3``, ``downsample.0``) are read as resnet50,
    not resnet18 (here at width 2; its conversion to jax is tests/test_models.py's)."""
    import torch
    from safetensors.torch import save_file

    from torch_impl.models import create_model
    from twintricks_cli.train import load_teacher

    torch.manual_seed(0)
    net = create_model("resnet50", 10, width=2).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r50.safetensors"))
    name, width, weights = load_teacher(str(tmp_path / "r50.safetensors"), "torch", 10)
    assert (name, width) == ("resnet50", 2)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(weights[k], v.numpy(), err_msg=k)
