"""Data-parallel training, framework-free: how a global batch is cut between workers, and the
record of how many took part.

A run's *global batch* (``batch_size``) is the same at any scale. With ``world_size`` workers
(torch: processes; jax: devices across all processes), worker ``rank`` takes the contiguous rows
``[rank·b, (rank + 1)·b)`` with ``b = batch_size / world_size`` (:func:`local_rows`), so the
images, their order and the trick parameters are those of the one-worker run:

* the step's data indices and every trick's parameters are drawn for the *global* batch, on every
  worker, from the run's seeded streams (the draws never depend on the world size);
* tricks that act on each image alone (the stages before ``mixing``: crop + flip, AutoAugment,
  Cutout, label smoothing) take their rows of each parameter record (:func:`take_rows`);
* tricks that read other images of the batch (the ``mixing`` stage: mixup, RICAP) run on the
  whole global batch — torch gathers it from the workers first, jax's compiler moves the rows it
  needs — and each worker keeps its rows of the result (:data:`BATCH_STAGES`).

Only the order of floating-point sums changes with the world size (the gradient and BatchNorm
statistics are summed per worker, then across workers), so two runs of one recipe at different
scales agree up to that rounding.

The backends' engines do the work: :mod:`torch_impl.distributed` (``torch.distributed``,
``DistributedDataParallel``, launched by ``torchrun``) and :mod:`jax_impl.distributed`
(``jax.sharding`` meshes, ``jax.distributed``).
"""

from __future__ import annotations

import os

from twintricks.checks import check_int, check_real

__all__ = [
    "BATCH_STAGES", "DEFAULT_TIMEOUT_S", "SIGTERM_STATUS", "local_batch_size", "local_rows", "sigterm_message", "stop_on_sigterm",
    "take_rows", "timeout_from_env", "world_record",
]

#: Recipe stages whose kernels read other images of the batch: they run on the global batch.
BATCH_STAGES = ("mixing",)


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Images per worker: ``global_batch / world_size``.

    Raises ``ValueError`` naming ``batch_size`` when the global batch does not split evenly (every
    worker must hold the same number of images, or the averaged gradient would weight them
    unequally).
    """
    check_int("batch_size", global_batch, low=1)
    check_int("world_size", world_size, low=1)
    if global_batch % world_size:
        raise ValueError(
            f"`batch_size` {global_batch} (the global batch) must be a multiple of the world size "
            f"{world_size}, so that every worker takes the same number of images"
        )
    return global_batch // world_size


def local_rows(global_batch: int, rank: int, world_size: int) -> slice:
    """The rows of the global batch that worker ``rank`` takes: ``[rank·b, (rank + 1)·b)``."""
    b = local_batch_size(global_batch, world_size)
    check_int("rank", rank, low=0, high=world_size - 1)
    return slice(rank * b, (rank + 1) * b)


def take_rows(params, rows: slice):
    """``params`` with every array cut to ``rows`` along its first (batch) axis.

    ``params`` is a per-image parameter record (a ``NamedTuple`` of arrays, each ``[N, ...]``), a
    tuple or dict of them, or ``None``; the arrays may be torch tensors or NumPy/JAX arrays (only
    indexing is used). Records of batch-wide tricks (:data:`BATCH_STAGES`) must not be cut: their
    fields are not per image.
    """
    if params is None:
        return None
    if isinstance(params, dict):
        return {k: take_rows(v, rows) for k, v in params.items()}
    if isinstance(params, tuple):
        items = [take_rows(v, rows) for v in params]
        return type(params)(*items) if hasattr(params, "_fields") else tuple(items)
    if getattr(params, "ndim", 0) < 1:
        raise ValueError(f"`params` holds a {getattr(params, 'ndim', 0)}-d value: only per-image arrays [N, ...] can be cut to rows")
    return params[rows]


def world_record(processes: int, devices_per_process: int = 1) -> dict:
    """What ran a job, for ``config.json``/``summary.json``: ``world_size`` (processes × devices
    taking part), ``processes`` and ``devices_per_process``."""
    check_int("processes", processes, low=1)
    check_int("devices_per_process", devices_per_process, low=1)
    return {"world_size": processes * devices_per_process, "processes": processes, "devices_per_process": devices_per_process}


#: How long a process waits for a peer, in seconds (torch's process group, jax's heartbeat and
#: shutdown), unless ``TWINTRICKS_DIST_TIMEOUT`` says otherwise.
DEFAULT_TIMEOUT_S = 300.0


def timeout_from_env() -> float:
    """``TWINTRICKS_DIST_TIMEOUT`` in seconds (a positive number), or :data:`DEFAULT_TIMEOUT_S`."""
    value = os.environ.get("TWINTRICKS_DIST_TIMEOUT")
    if value is None or not value.strip():
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"environment variable TWINTRICKS_DIST_TIMEOUT must be a number of seconds, got {value!r}") from None
    return check_real("TWINTRICKS_DIST_TIMEOUT", seconds, low=0.0, low_inclusive=False)


#: The exit status after a SIGTERM (128 + 15, what a shell reports for a process it terminated).
SIGTERM_STATUS = 143


def sigterm_message(prefix: str, rank: int, world_size: int) -> str:
    """The line a process prints when SIGTERM stops it (:func:`stop_on_sigterm`)."""
    return (
        f"{prefix}: rank {rank} of {world_size}: stopped by SIGTERM (torchrun stops every process when one "
        f"of them fails, is killed or is stopped). The run stops here; continue it from the last checkpoint "
        f"with --resume."
    )


def stop_on_sigterm(prefix: str) -> None:
    """On SIGTERM, print one line that names this process's rank (``RANK``/``WORLD_SIZE``, as set
    by ``torchrun``) and says ``--resume`` continues the run, then exit with status 143.

    ``torchrun`` sends SIGTERM to every surviving process as soon as one fails; without a handler
    they die silently, with nothing of ours printed. A Python signal handler runs only when the
    main thread is back in Python, which a collective or rendezvous blocked in C++ may delay for
    its whole deadline; so the signal is taken through :func:`signal.set_wakeup_fd` by a thread of
    its own, which prints and exits at once (``os._exit``: unwinding would meet the shutdown
    barrier of a peer that is gone). Checkpoints are written to a temporary file and renamed
    (:func:`twintricks.files.atomic_write_bytes`), so a stop never leaves a half-written one.
    Call it from the main thread (Python's rule for signal handlers).
    """
    import signal
    import sys
    import threading

    line = sigterm_message(prefix, os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1"))

    def _stop(*_):  # pragma: no cover - runs in the signalled process
        try:
            sys.stdout.flush()
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        finally:
            os._exit(SIGTERM_STATUS)

    def _watch(fd):  # pragma: no cover - runs in the signalled process
        while True:
            data = os.read(fd, 64)
            if not data:
                return
            if signal.SIGTERM in data:
                _stop()

    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.signal(signal.SIGTERM, _stop)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r,), name="twintricks-sigterm", daemon=True).start()
