"""Checkpoint files: what a run needs to resume, and what a teacher or a port needs to load.

Files are data, never code: loading a checkpoint parses JSON and copies bytes into NumPy arrays,
so a file from elsewhere cannot run anything, whatever it contains.

**Format 2** (framework-free, so a checkpoint of one backend can be read by the other, e.g. a
cross-framework teacher) is a `safetensors <https://huggingface.co/docs/safetensors>`_ file:

* its tensors are the payload's NumPy arrays, each named by its place in the payload with ``/``
  between the keys (``model/conv1.conv.weight``, ``optimizer/state/0/momentum_buffer``, ``rng``),
  so any safetensors reader (``safetensors.torch.load_file``, ``safetensors.numpy.load_file``)
  opens it;
* its ``__metadata__`` (strings only) holds ``format = "twintricks-checkpoint"``,
  ``version = "2"``, ``payload`` — everything else as JSON (below) — and ``sha256``, the hex
  SHA-256 of the header without that entry (as canonical JSON: sorted keys, no spaces) followed by
  the tensor bytes.

The ``payload`` JSON is the payload's tree, written so that it round-trips exactly: ``null``,
booleans, integers, strings and finite floats are themselves; a list is a JSON array; any other
value is an object with one key saying what it is — ``{"array": NAME}`` (a NumPy array, the
tensor NAME), ``{"scalar": NAME}`` (a NumPy scalar such as ``np.float32(1.5)``, stored as a 0-d
tensor), ``{"tuple": [...]}``, ``{"dict": {...}}`` (string keys), ``{"items": [[key, value],
...]}`` (a dict with other keys, e.g. torch's optimizer ``state`` keyed by parameter index) and
``{"float": "nan" | "inf" | "-inf"}``. Named tuples come back as plain tuples and dict subclasses
as dicts. Array dtypes: bool, (u)int8–64, float16/32/64, complex64 and, through ``ml_dtypes``
(installed with jax), bfloat16 and float8.

**Caps.** Before anything is parsed, the header and the payload are measured
(:func:`twintricks.files.load_json`): a header over 64 MiB, nested deeper than 8 levels or of more
than 1,000,000 values (:data:`HEADER_CAPS`), or a payload over 16 MiB, nested deeper than 64
levels or of more than 1,000,000 values (:data:`PAYLOAD_CAPS`) is refused with a one-line
:class:`CheckpointError`, so a small crafted file cannot take the reader's memory (4 million empty
lists are a 12 MB payload and 650 MB of Python lists) or its stack. The tensors themselves are
views of the file's bytes (no copy). What the payload's values mean is checked when a run resumes
(:mod:`twintricks.schema`).

.. warning:: The SHA-256 detects corruption — a truncated copy, a flipped bit — not an attacker:
   anyone can recompute it. Safety does not rest on it but on the format carrying no code.

**Format 1** files (magic ``b"TWINTRICKS-CKPT1"``: a pickle behind a SHA-256) are refused by
:func:`load_checkpoint`, because unpickling can run code. A format-1 checkpoint you trust is
converted with :func:`convert_legacy` (or ``python -m twintricks.checkpoint OLD NEW --trust``), the
only function in twintricks that unpickles a checkpoint.
"""

from __future__ import annotations

import dataclasses

import hashlib
import io
import json
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from twintricks.files import JSON_CAPS, JsonCaps, atomic_write_bytes, load_json

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "read_safetensors",
    "is_safetensors",
    "convert_legacy",
    "check_resume_compatible",
    "HEADER_CAPS",
    "PAYLOAD_CAPS",
]

CHECKPOINT_NAME = "checkpoint.ckpt"
_FORMAT = 2
_FORMAT_NAME = "twintricks-checkpoint"
_LEGACY_MAGIC = b"TWINTRICKS-CKPT1"
# config fields that may differ between a run and its resumption (they do not change the result)
# (the loader's worker count and the checkpoint interval neither: a loader state restores at any worker count)
_RESUME_FREE = ("out", "resume", "compile", "progress", "data_dir", "download", "device", "devices", "epochs_hint",
                "workers", "save_every")

# safetensors dtype tags ↔ NumPy; the ml_dtypes ones are looked up when needed
_NUMPY_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
    "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64,
    "F16": np.float16, "F32": np.float32, "F64": np.float64, "C64": np.complex64,
}
_ML_DTYPES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_SAVABLE = {np.dtype(t).name for t in _NUMPY_DTYPES.values()} | set(_ML_DTYPES.values())


#: Caps on a safetensors header read here (checked before it is parsed): the header holds one
#: small entry per tensor and the metadata strings, the payload among them (:data:`PAYLOAD_CAPS`).
HEADER_CAPS = JsonCaps(max_bytes=64 << 20, max_depth=8, max_values=1_000_000)
#: Caps on a checkpoint's ``payload`` JSON (:func:`twintricks.files.load_json`'s defaults: 16 MiB,
#: depth 64, 1,000,000 values). A long run's payload is tens of kB, nested < 12 levels.
PAYLOAD_CAPS = JSON_CAPS


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, foreign, or from another configuration."""


# ----------------------------------------------------------------------------- payload ↔ JSON tree


class _Encoder:
    """Turns a payload into a JSON tree plus a dict of named arrays (the tags in the module doc)."""

    def __init__(self):
        self.tensors: dict[str, np.ndarray] = {}

    def _name(self, path: list) -> str:
        base = "/".join(map(str, path)) or "_"
        name, i = base, 1
        while name in self.tensors or name == "__metadata__":
            i += 1
            name = f"{base}#{i}"
        return name

    def _array(self, x: np.ndarray, path: list) -> str:
        if x.dtype.name not in _SAVABLE:
            raise TypeError(
                f"checkpoint payload at {_where(path)}: arrays of dtype {x.dtype} cannot be stored "
                f"(supported: {', '.join(sorted(_SAVABLE))})"
            )
        name = self._name(path)
        self.tensors[name] = x if x.flags.c_contiguous else x.copy(order="C")  # keeps 0-d arrays 0-d
        return name

    def encode(self, x: Any, path: list) -> Any:
        if isinstance(x, np.generic):  # before float: np.float64 is a float subclass
            return {"scalar": self._array(np.asarray(x), path)}
        if isinstance(x, np.ndarray):
            return {"array": self._array(x, path)}
        if x is None or type(x) in (bool, int, str):
            return x
        if isinstance(x, (int, str)):  # an IntEnum, a str subclass: stored as the plain value
            return int(x) if isinstance(x, int) else str(x)
        if isinstance(x, float):
            return float(x) if math.isfinite(x) else {"float": repr(float(x))}
        if isinstance(x, list):
            return [self.encode(v, path + [i]) for i, v in enumerate(x)]
        if isinstance(x, tuple):
            return {"tuple": [self.encode(v, path + [i]) for i, v in enumerate(x)]}
        if isinstance(x, dict):
            if all(type(k) is str for k in x):
                return {"dict": {k: self.encode(v, path + [k]) for k, v in x.items()}}
            return {"items": [[self.encode(k, path + ["key"]), self.encode(v, path + [k])] for k, v in x.items()]}
        raise TypeError(
            f"checkpoint payload at {_where(path)}: a {type(x).__module__}.{type(x).__qualname__} cannot be stored "
            "(NumPy arrays and scalars, None, bool, int, float, str, and lists, tuples and dicts of them only)"
        )


def _where(path: list) -> str:
    return "payload" + "".join(f"[{p!r}]" for p in path)


def _decode(node: Any, tensors: dict[str, np.ndarray], where: str) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, tensors, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict) and len(node) == 1:
        ((tag, value),) = node.items()
        if tag in ("array", "scalar") and isinstance(value, str):
            if value not in tensors:
                raise CheckpointError(f"refers to a tensor {value!r} that the file does not hold (at {where})")
            arr = tensors[value]
            if tag == "array":
                return arr
            if arr.ndim != 0:
                raise CheckpointError(f"has a scalar {value!r} of shape {arr.shape} (at {where})")
            return arr[()]
        if tag == "tuple" and isinstance(value, list):
            return tuple(_decode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value))
        if tag == "dict" and isinstance(value, dict):
            return {k: _decode(v, tensors, f"{where}[{k!r}]") for k, v in value.items()}
        if tag == "items" and isinstance(value, list) and all(isinstance(kv, list) and len(kv) == 2 for kv in value):
            out = {}
            for i, (k, v) in enumerate(value):
                key = _decode(k, tensors, f"{where} key {i}")
                try:
                    hash(key)
                except TypeError:
                    raise CheckpointError(f"has a dict key that is a {type(key).__name__} (at {where})") from None
                out[key] = _decode(v, tensors, f"{where}[{key!r}]")
            return out
        if tag == "float" and value in ("nan", "inf", "-inf"):
            return float(value)
    raise CheckpointError(f"has an unexpected JSON value {json.dumps(node)[:60]} (at {where})")


# ----------------------------------------------------------------------------- safetensors framing


def _digest(header: dict, buffer) -> str:
    meta = {k: v for k, v in header.get("__metadata__", {}).items() if k != "sha256"}
    canonical = json.dumps({**header, "__metadata__": meta}, sort_keys=True, separators=(",", ":")).encode()
    h = hashlib.sha256(canonical)
    h.update(buffer)
    return h.hexdigest()


def _split(data: bytes) -> tuple[dict, memoryview] | None:
    """``(header, tensor bytes)`` of safetensors bytes; None when ``data`` is not framed as one;
    :class:`ValueError` when it is framed as one but truncated or its header is not a JSON object."""
    if len(data) < 9 or data[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"truncated: its header says {n} bytes, the file has {len(data) - 8} after the length")
    try:
        header = load_json(memoryview(data)[8 : 8 + n], what="its safetensors header", caps=HEADER_CAPS)
    except ValueError as exc:
        raise ValueError(str(exc) if "this reads" in str(exc) else "its safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ValueError("its safetensors header is not a JSON object")
    return header, memoryview(data)[8 + n :]


def is_safetensors(data: bytes) -> bool:
    """Whether ``data`` (a file's first bytes suffice) starts like a safetensors file: an 8-byte
    little-endian header length followed by ``{``."""
    return len(data) >= 9 and data[8:9] == b"{"


def _tensors(data: bytes) -> dict[str, np.ndarray]:
    """Every tensor of safetensors bytes as a writable NumPy array (bfloat16/float8 need ml_dtypes)."""
    from safetensors import deserialize

    out = {}
    for name, t in deserialize(data):
        tag = t["dtype"]
        if tag in _NUMPY_DTYPES:
            dtype = np.dtype(_NUMPY_DTYPES[tag])
        elif tag in _ML_DTYPES:
            try:
                import ml_dtypes
            except ImportError:
                raise ValueError(f"tensor {name!r} is {tag}, which needs the ml_dtypes package (pip install ml_dtypes)") from None
            dtype = np.dtype(getattr(ml_dtypes, _ML_DTYPES[tag]))
        else:
            raise ValueError(f"tensor {name!r} has dtype {tag}, which twintricks does not read")
        out[name] = np.frombuffer(t["data"], dtype=dtype).reshape(t["shape"])
    return out


def _check_path(path: Path, what: str) -> None:
    if path.is_dir():
        raise CheckpointError(f"{what} {str(path)!r} is a directory, not a checkpoint file")
    if not path.exists():
        raise CheckpointError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} is not a regular file")


def _read(path: Path, what: str) -> bytes:
    _check_path(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (a twintricks checkpoint or a ``state_dict`` saved with
    ``safetensors.torch.save_file`` elsewhere) as NumPy arrays by name; only parses, never runs
    anything. bfloat16 and float8 tensors need ``ml_dtypes``. :class:`CheckpointError` if the file
    is not a readable safetensors file."""
    path = Path(path)
    data = _read(path, "file")
    try:
        if _split(data) is None:
            raise ValueError("not a safetensors file")
        return _tensors(data)
    except Exception as exc:  # the safetensors parser's own errors have no common base class
        raise CheckpointError(f"{str(path)!r} cannot be read as safetensors: {_line(exc)}") from None


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` as a format-2 checkpoint (module docstring) atomically
    (:func:`twintricks.files.atomic_write_bytes`).

    ``payload``: a dict with string keys holding NumPy arrays and scalars, ``None``, bools, ints,
    floats, strings, and lists, tuples and dicts of them (any hashable keys of those types).
    Anything else is a :class:`TypeError` naming where it is. The key ``"format"`` is the format
    version: :func:`load_checkpoint` adds it, and a payload may hold it only with that value.
    """
    from safetensors.numpy import save

    if not isinstance(payload, dict) or not all(type(k) is str for k in payload):
        raise TypeError(f"`payload` must be a dict with str keys, got {type(payload).__name__}")
    if payload.get("format", _FORMAT) != _FORMAT:
        raise ValueError(f"`payload` key 'format' is reserved for the format version ({_FORMAT}), got {payload['format']!r}")
    enc = _Encoder()
    tree = enc.encode({**payload, "format": _FORMAT}, [])
    meta = {
        "format": _FORMAT_NAME,
        "version": str(_FORMAT),
        "payload": json.dumps(tree, allow_nan=False, separators=(",", ":")),
    }
    draft = save(enc.tensors, metadata=meta)
    header, buffer = _split(draft)
    meta["sha256"] = _digest(header, buffer)
    atomic_write_bytes(path, save(enc.tensors, metadata=meta))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and verify a format-2 checkpoint (module docstring) without running anything from it.

    Returns the payload given to :func:`save_checkpoint`, plus ``"format": 2``. A one-line
    :class:`CheckpointError` says what is wrong: missing, a directory, truncated, corrupt (checksum),
    another format (random bytes, an image, JSON, a safetensors file that is not a checkpoint), a
    format-1 pickle checkpoint (with how to convert one you trust), or another format version.
    """
    path = Path(path)
    name = repr(str(path))
    data = _read(path, "checkpoint")
    if data.startswith(_LEGACY_MAGIC):
        raise CheckpointError(
            f"checkpoint {name} is in twintricks' old format 1 (a pickle, which can run code when loaded) and is "
            "not loaded; if you trust its origin, convert it with `python -m twintricks.checkpoint OLD NEW --trust` "
            "(twintricks.checkpoint.convert_legacy)"
        )
    if not data:
        raise CheckpointError(f"{name} is empty: not a twintricks checkpoint (corrupt or another format)")
    try:
        split = _split(data)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {name} is corrupt ({exc})") from None
    if split is None:
        raise CheckpointError(f"{name} is not a twintricks checkpoint (not a safetensors file): corrupt or another format")
    header, buffer = split
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT_NAME:
        raise CheckpointError(
            f"{name} is a safetensors file but not a twintricks checkpoint (no twintricks metadata)"
        )
    version = meta.get("version")
    if meta.get("sha256") != _digest(header, buffer):
        # the checksum covers the version field too: a damaged one is corruption, not another version
        other = "" if version == str(_FORMAT) else f", or of another format version ({version!r}; this reads {_FORMAT})"
        raise CheckpointError(f"checkpoint {name} is corrupt (checksum mismatch; truncated or modified{other})")
    if version != str(_FORMAT):
        raise CheckpointError(f"checkpoint {name} has format version {version!r}; this twintricks reads version {_FORMAT}")
    try:
        tree = load_json(meta["payload"], what="its payload", caps=PAYLOAD_CAPS) if isinstance(meta.get("payload"), str) else None
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {name}: {exc}") from None
    try:
        tensors = _tensors(data)
        payload = _decode(tree, tensors, "payload")
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {name} {exc}") from None
    except Exception as exc:  # the safetensors parser's errors, a JSON error, a too-deep tree
        raise CheckpointError(f"checkpoint {name} cannot be decoded: {_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"checkpoint {name} has no payload of format {_FORMAT}")
    return payload


# ----------------------------------------------------------------------------- format 1


class _LegacyUnpickler(pickle.Unpickler):
    """Format-1 payloads hold only builtin containers and NumPy arrays: every other global is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load the global {module}.{name}")


def convert_legacy(path: str | os.PathLike, out: str | os.PathLike, *, trust: bool = False) -> None:
    """Convert a format-1 checkpoint (a pickle) at ``path`` into a format-2 file at ``out``.

    This is the only place in twintricks that unpickles a checkpoint, and it does so only with
    ``trust=True``: say that you know where the file comes from. The header and SHA-256 are
    checked first, and the unpickler accepts no globals beyond NumPy's array and scalar
    reconstruction and ``OrderedDict`` (what format-1 payloads hold), so most hostile files are
    refused anyway — but a pickle is still code, so convert only files you trust.
    """
    if trust is not True:
        raise ValueError(
            "`trust` must be True: a format-1 checkpoint is a pickle, which can run code when loaded; "
            "convert only a file whose origin you trust"
        )
    path = Path(path)
    name = repr(str(path))
    data = _read(path, "checkpoint")
    if not data.startswith(_LEGACY_MAGIC) or len(data) < 48:
        raise CheckpointError(f"{name} is not a format-1 twintricks checkpoint (no b'TWINTRICKS-CKPT1' header)")
    body = data[48:]
    if hashlib.sha256(body).digest() != data[16:48]:
        raise CheckpointError(f"checkpoint {name} is corrupt (checksum mismatch; truncated or modified)")
    try:
        payload = _LegacyUnpickler(io.BytesIO(body)).load()
    except Exception as exc:
        raise CheckpointError(f"checkpoint {name} cannot be converted: {_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CheckpointError(f"checkpoint {name} has no format-1 payload")
    save_checkpoint(out, {k: v for k, v in payload.items() if k != "format"})


def check_resume_compatible(saved: dict, config, framework: str) -> None:
    """Raise :class:`CheckpointError` naming every setting where ``saved`` (a checkpoint) and the
    current run differ (only the output, compile, progress, device, data folder, loader worker and
    checkpoint-interval settings may differ: they do not change the result). A setting the
    checkpoint does not record (an option added after it was written) counts as that option's
    default: the run it continues had that trick off."""
    if saved.get("framework") != framework:
        raise CheckpointError(
            f"checkpoint was written by the {saved.get('framework')!r} backend (`framework`), this run uses {framework!r}"
        )
    old, new = dict(saved.get("config", {})), config.to_dict()
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            if f.name not in old and f.default is not dataclasses.MISSING:
                old[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
    diffs = [
        f"{k}: checkpoint {old.get(k)!r} vs now {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if k not in _RESUME_FREE and old.get(k) != new.get(k)
    ]
    if diffs:
        raise CheckpointError("checkpoint does not match this run's configuration: " + "; ".join(diffs))


def _main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m twintricks.checkpoint",
        description="Convert a format-1 (pickle) twintricks checkpoint that you trust into format 2.",
    )
    p.add_argument("old", help="the format-1 checkpoint")
    p.add_argument("new", help="where to write the format-2 checkpoint")
    p.add_argument("--trust", action="store_true", help="required: you trust the old file's origin (a pickle can run code)")
    a = p.parse_args(argv)
    if not a.trust:
        p.error("--trust is required: a format-1 checkpoint is a pickle, which can run code when loaded")
    try:
        convert_legacy(a.old, a.new, trust=True)
    except CheckpointError as exc:
        p.exit(1, f"{p.prog}: {exc}\n")
    print(f"wrote {a.new}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
