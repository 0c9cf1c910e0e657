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
import sys

__all__ = ["auto_threads", "set_threads"]


def auto_threads() -> int | None:
    """1 on a busy CPU (1-minute load average >= cores), else ``None`` (the backend's default).

    On a loaded 2-core machine two threads were measured 4x slower than one."""
    try:
        return 1 if os.getloadavg()[0] >= (os.cpu_count() or 1) else None
    except (OSError, AttributeError):  # no load average on this platform
        return None


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
            eigen = "false" if threads == 1 else "true"
            flags = os.environ.get("XLA_FLAGS", "")
            extra = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"
            os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()
    if torch:
        try:
            import torch as _torch
        except ImportError:
            pass
        else:
            _torch.set_num_threads(threads)
    return note
