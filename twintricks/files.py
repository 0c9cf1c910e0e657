"""Files written and read safely.

Writing: every file twintricks writes goes through :func:`atomic_write_bytes`. A reader, or a run
killed in the middle of a write, sees either the old file or the whole new one, never a part; the
new file gets the permissions any file created by the process would get (``0o666`` less the
umask), not the ``0o600`` of a private temporary file.

Reading: every JSON text twintricks reads back (a checkpoint's header and payload, ``config.json``
on ``--resume``) goes through :func:`load_json`, which measures the text before parsing it and
refuses, with a one-line ``ValueError``, one that is larger, deeper or holds more values than its
caps (:data:`JSON_CAPS`): a crafted file cannot make the parser recurse past Python's limit
(``RecursionError``) or build gigabytes of objects from megabytes of text (4 million empty lists
are 12 MB of JSON and 650 MB of Python lists).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["atomic_write_bytes", "write_json", "write_jsonl", "JsonCaps", "JSON_CAPS", "json_extent", "load_json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, ``fsync`` and a
    rename. Creates the parent folders. The file's mode is ``0o666 & ~umask``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    """``obj`` as strict JSON (``NaN``/``Infinity`` are refused: they are not JSON), atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False, default=str)
    atomic_write_bytes(path, (text + "\n").encode())


def write_jsonl(path: str | os.PathLike, rows: list) -> None:
    """One strict JSON object per line, atomically."""
    text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in rows)
    atomic_write_bytes(path, text.encode())


class JsonCaps(NamedTuple):
    """Limits on a JSON text: its size in bytes, its nesting depth (arrays and objects) and the
    number of values it holds (counted from its structure: containers, ``,`` and ``:``; an
    over-estimate of at most 2x)."""

    max_bytes: int
    max_depth: int
    max_values: int


#: The default caps of :func:`load_json`: 16 MiB, 64 levels, 1,000,000 values. What twintricks
#: writes stays far below them (a checkpoint payload of a long run: tens of kB, depth < 12).
JSON_CAPS = JsonCaps(max_bytes=16 << 20, max_depth=64, max_values=1_000_000)

# a JSON string (escapes included), written as an unrolled loop so that re needs no backtracking
_STRING_PATTERN = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_JSON_STRING = re.compile(_STRING_PATTERN.encode())
_JSON_STRING_TEXT = re.compile(_STRING_PATTERN)
_OPEN, _CLOSE = np.zeros(256, np.int8), np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE[[ord("]"), ord("}")]] = 1
_SEPARATOR = np.zeros(256, np.int64)
_SEPARATOR[[ord(","), ord(":"), ord("["), ord("{")]] = 1


def json_extent(text) -> tuple[int, int]:
    """``(depth, values)`` of a JSON text (``str`` or bytes-like) without parsing it: the deepest
    nesting of arrays and objects, and the number of values it holds (containers + ``,`` + ``:``
    + 1, outside strings). Linear time, memory of about two copies of the text; never recurses."""
    if isinstance(text, str):
        bare = _JSON_STRING_TEXT.sub('""', text).encode("utf-8", "surrogatepass")
    else:
        bare = _JSON_STRING.sub(b'""', text)
    depth = values = level = 0
    for start in range(0, len(bare), 1 << 20):
        a = np.frombuffer(bare, np.uint8, count=min(1 << 20, len(bare) - start), offset=start)
        running = np.cumsum(_OPEN[a].astype(np.int32) - _CLOSE[a]) + level
        if running.size:
            depth, level = max(depth, int(running.max())), int(running[-1])
        values += int(_SEPARATOR[a].sum())
    return depth, values + 1


def load_json(text, *, what: str, caps: JsonCaps = JSON_CAPS) -> Any:
    """Parse ``text`` (``str`` or bytes-like) as JSON after checking it against ``caps``
    (:class:`JsonCaps`; a ``str`` is measured in characters).

    ``what`` names the text in errors (a file, a field). Raises ``ValueError`` in one line:
    larger than ``caps.max_bytes``, nested deeper than ``caps.max_depth``, more than
    ``caps.max_values`` values, not UTF-8, or not valid JSON (NaN and Infinity are refused too:
    they are not JSON).
    """
    size = len(text) if isinstance(text, str) else memoryview(text).nbytes  # characters of a str
    if size > caps.max_bytes:
        raise ValueError(f"{what} is {size} bytes of JSON, more than the {caps.max_bytes} this reads")
    depth, values = json_extent(text)
    if depth > caps.max_depth:
        raise ValueError(f"{what} is JSON nested {depth} levels deep, more than the {caps.max_depth} this reads")
    if values > caps.max_values:
        raise ValueError(f"{what} is JSON of about {values} values, more than the {caps.max_values} this reads")

    def constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text if isinstance(text, (str, bytes)) else bytes(text), parse_constant=constant)
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not valid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
