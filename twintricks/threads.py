"""CPU thread counts for both frameworks, set in one place for ``twintricks train`` and
``twintricks bench`` (and for a script of yours).

XLA reads its thread flags from ``XLA_FLAGS`` when jax is first imported, so
:func:`set_threads` must run before the first ``import jax`` — which is why it lives here, in the
framework-free package, and not in a backend (importing :mod:`jax_impl` imports jax). It writes
the environment variable for jax and imports nothing of jax; torch's intra-op pool is set with
``torch.set_num_threads`` at any time, torch imported only when it is installed and asked for.
"""

from __future__ import annotations

import os
import re
import sys

from twintricks.checks import check_int

__all__ = ["auto_threads", "set_threads", "xla_thread_flag", "xla_threads_requested"]


def auto_threads() -> int | None:
    """1 on a busy CPU (1-minute load average >= cores), else ``None`` (the backend's default).

    On a loaded 2-core machine two threads were measured 4x slower than one."""
    try:
        return 1 if os.getloadavg()[0] >= (os.cpu_count() or 1) else None
    except (OSError, AttributeError):  # no load average on this platform
        return None


def xla_thread_flag(threads: int) -> str:
    """The ``XLA_FLAGS`` entry for ``threads`` CPU threads: one thread turns Eigen's multi-threading
    off; more leave XLA's pool as it is, one thread per core (the CPU client has no flag for its
    size). Every entry is a ``--flag``: XLA stops reading ``XLA_FLAGS`` at the first word that is
    not one, so a bare ``intra_op_parallelism_threads=N`` (often quoted, and written here before)
    silently dropped every flag after it. ``threads`` below 1 (or not an integer) is a
    ValueError (TypeError)."""
    threads = check_int("threads", threads, low=1)
    return f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'}"


def xla_threads_requested(flags: str) -> int | None:
    """1 when ``flags`` (an ``XLA_FLAGS`` value) turns Eigen's multi-threading off (the last
    setting wins, as in XLA), else ``None``: XLA's default pool. A non-string is a TypeError."""
    if not isinstance(flags, str):
        raise TypeError(f"`flags` must be an XLA_FLAGS string, got {type(flags).__name__}")
    values = re.findall(r"--xla_cpu_multi_thread_eigen=(\w+)", flags)
    return 1 if values and values[-1].lower() in ("false", "0") else None


def set_threads(threads: int | None, *, torch: bool = True, jax: bool = True) -> str | None:
    """Use ``threads`` CPU threads in torch and/or XLA; ``None`` leaves the defaults.

    Returns a note when the request could not apply (jax already imported), else ``None``.
    Raises ``ValueError`` for ``threads < 1``.
    """
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`threads` must be an integer >= 1, got {threads!r}")
    note = None
    if jax:
        if "jax" in sys.modules:
            note = "jax was already imported: its thread pool is unchanged"
        else:
            flags = os.environ.get("XLA_FLAGS", "")
            os.environ["XLA_FLAGS"] = f"{flags} {xla_thread_flag(threads)}".strip()
    if torch:
        try:
            import torch as _torch
        except ImportError:
            pass
        else:
            _torch.set_num_threads(threads)
    return note
