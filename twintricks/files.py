"""Writing files safely: every file twintricks writes goes through :func:`atomic_write_bytes`.

A reader, or a run killed in the middle of a write, sees either the old file or the whole new
one, never a part; the new file gets the permissions any file created by the process would get
(``0o666`` less the umask), not the ``0o600`` of a private temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "write_json", "write_jsonl"]


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
