"""Checkpoint files: what a run needs to resume, and what a teacher or a port needs to load.

File format (framework-free, so a checkpoint of one backend can be read by the other, e.g. a
cross-framework teacher): the 16-byte magic ``b"TWINTRICKS-CKPT1"``, the 32-byte SHA-256 of the
body, then the body: a pickle (protocol 4) of a dict of plain Python values and NumPy arrays —
``format``, ``framework``, ``config``, ``epoch``, ``step``, ``model`` (torch: the ``state_dict``
by name; jax: the linen variables as nested dicts), ``optimizer``, ``rng``, ``history``. A file
with another magic or a wrong hash is reported as corrupt.

.. warning:: A checkpoint is a pickle: load only checkpoints you trust.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from twintricks.files import atomic_write_bytes

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "check_resume_compatible",
]

CHECKPOINT_NAME = "checkpoint.ckpt"
_MAGIC = b"TWINTRICKS-CKPT1"
_FORMAT = 1
# config fields that may differ between a run and its resumption (they do not change the result)
_RESUME_FREE = ("out", "resume", "compile", "progress", "data_dir", "download", "device", "epochs_hint")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or from another configuration."""


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write a checkpoint file (format in the module docstring) atomically."""
    body = pickle.dumps({"format": _FORMAT, **payload}, protocol=4)
    atomic_write_bytes(path, _MAGIC + hashlib.sha256(body).digest() + body)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and verify a checkpoint file; :class:`CheckpointError` says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    data = path.read_bytes()
    if len(data) < 48 or data[:16] != _MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a twintricks checkpoint (bad header): corrupt or another format")
    body = data[48:]
    if hashlib.sha256(body).digest() != data[16:48]:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt (checksum mismatch; truncated or modified)")
    try:
        payload = pickle.loads(body)
    except Exception as exc:  # pragma: no cover - the checksum makes this unlikely
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be decoded: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unsupported format {payload.get('format')!r}")
    return payload


def check_resume_compatible(saved: dict, config, framework: str) -> None:
    """Raise :class:`CheckpointError` naming every setting where ``saved`` (a checkpoint) and the
    current run differ (only the output/compile/progress settings may differ)."""
    if saved.get("framework") != framework:
        raise CheckpointError(
            f"checkpoint was written by the {saved.get('framework')!r} backend, this run uses {framework!r}"
        )
    old, new = saved.get("config", {}), config.to_dict()
    diffs = [
        f"{k}: checkpoint {old.get(k)!r} vs now {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if k not in _RESUME_FREE and old.get(k) != new.get(k)
    ]
    if diffs:
        raise CheckpointError("checkpoint does not match this run's configuration: " + "; ".join(diffs))
